"""Which Table 1 method a run folder holds, from its saved config."""

#: Table 1 rows in the paper's order: key (the ``guide=`` choice) → row label.
METHOD_LABELS = {
    "fista": "FISTA (baseline)",
    "gaussian": "Gaussian",
    "laplace": "Laplacian",
    "spike_slab": "Spike-and-slab",
    "thresh_gauss": "Thresholded Gaussian",
    "thresh_gauss_gamma": "Thresholded Gaussian+Gamma",
    "thresh": "Thresholded Laplacian",
    "thresh_gamma": "Thresholded Laplacian+Gamma",
}

#: The prior of every variational method is unique to it (FISTA is told apart by its guide).
_PRIOR_METHODS = {
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


def method_of(cfg):
    """The ``guide=`` choice of a run (e.g. ``thresh``), or the prior's class name if unknown."""
    if _class_name(cfg.get("guide") or {}) == "FistaGuide":  # summaries may keep only the prior
        return "fista"
    prior = _class_name(cfg["prior"])
    return _PRIOR_METHODS.get(prior, prior)


def method_label(cfg):
    """The Table 1 name of a run's method (e.g. "Thresholded Laplacian")."""
    method = method_of(cfg)
    return METHOD_LABELS.get(method, method)


def describe_run(cfg):
    """What identifies a run in the tables: method, objective, J, estimator, seed, epochs.

    ``straight_through`` is ``None`` for methods without a threshold (no estimator choice).
    """
    method = method_of(cfg)
    straight_through = cfg["guide"].get("straight_through")
    return {
        "method": method,
        "label": method_label(cfg),
        "objective": str(cfg["elbo"]["objective"]),
        "num_particles": int(cfg["elbo"]["num_particles"]),
        "straight_through": None if straight_through is None else bool(straight_through),
        "seed": int(cfg["seed"]),
        "epochs": int(cfg["epochs"]),
        "model": _class_name(cfg["model"].get("module") or {}),
    }
