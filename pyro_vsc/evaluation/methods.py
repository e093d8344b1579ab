"""Which Table 1 method a run folder holds, from its saved config.

A run's method is part of its config: every ``guide=`` choice sets ``method.name`` (the choice's
name, e.g. ``thresh``) and ``method.label`` (its Table 1 row, e.g. "Thresholded Laplacian"),
which evaluations, reports and figures read. A run whose prior or guide is your own can say what
it is with ``method.name=... method.label=...`` on its command line.
"""

from importlib.resources import files

from omegaconf import OmegaConf

#: Table 1 rows in the paper's order, by their ``guide=`` choice.
TABLE1_METHODS = ("fista", "gaussian", "laplace", "spike_slab", "thresh_gauss", "thresh_gauss_gamma",
                  "thresh", "thresh_gamma")


def _packaged_label(method):
    """``method.label`` of the packaged ``guide=<method>`` config."""
    return str(OmegaConf.load(files("pyro_vsc.conf") / "guide" / f"{method}.yaml").method.label)


#: Table 1 row labels of the packaged methods, from their configs: ``guide=`` choice → label.
METHOD_LABELS = {method: _packaged_label(method) for method in TABLE1_METHODS}

#: Run folders saved before configs named their method: the method of each Table 1 prior, whose
#: class was unique to it (FISTA, which shares the Laplace prior, is told apart by its guide).
_LEGACY_PRIOR_METHODS = {
    "GaussianPrior": "gaussian",
    "LaplacePrior": "laplace",
    "SpikeSlabPrior": "spike_slab",
    "ThresholdedNormalPrior": "thresh_gauss",
    "ThresholdedNormalGammaPrior": "thresh_gauss_gamma",
    "ThresholdedLaplacePrior": "thresh",
    "ThresholdedLaplaceGammaPrior": "thresh_gamma",
}


def _class_name(node):
    return str(node.get("_target_", "")).rsplit(".", 1)[-1]


def _legacy_method(cfg):
    """The method of a config saved without ``method``, from its guide and prior classes (the
    prior's class name if it is none of Table 1's)."""
    if _class_name(cfg.get("guide") or {}) == "FistaGuide":
        return "fista"
    prior = _class_name(cfg["prior"])
    return _LEGACY_PRIOR_METHODS.get(prior, prior)


def method_of(cfg):
    """The method of a run (e.g. ``thresh``): ``method.name`` of its config."""
    method = cfg.get("method")
    return str(method["name"]) if method else _legacy_method(cfg)


def method_label(cfg):
    """The Table 1 name of a run's method (e.g. "Thresholded Laplacian"): ``method.label`` of its
    config (for a folder saved without it, the packaged label of its method, else the method)."""
    method = cfg.get("method")
    if method:
        return str(method["label"])
    name = _legacy_method(cfg)
    return METHOD_LABELS.get(name, name)


def describe_run(cfg):
    """What identifies a run in the tables: method, label, objective, J, estimator, seed, epochs.

    ``straight_through`` is ``None`` for methods without a threshold (no estimator choice).
    """
    straight_through = cfg["guide"].get("straight_through")
    return {
        "method": method_of(cfg),
        "label": method_label(cfg),
        "objective": str(cfg["elbo"]["objective"]),
        "num_particles": int(cfg["elbo"]["num_particles"]),
        "straight_through": None if straight_through is None else bool(straight_through),
        "seed": int(cfg["seed"]),
        "epochs": int(cfg["epochs"]),
        "model": _class_name(cfg["model"].get("module") or {}),
    }
