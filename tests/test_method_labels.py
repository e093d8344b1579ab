"""A run's method and its Table 1 label are part of its config (``method.name``, ``method.label``),
read by evaluate, report and dnn_figures; run folders saved before keep the names they had."""

from importlib.resources import files
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from pyro_vsc.evaluation.methods import METHOD_LABELS, TABLE1_METHODS, describe_run, method_label, method_of
from pyro_vsc.reporting.collect import RunEvaluation
from pyro_vsc.reporting.tables import table1_markdown, table2_markdown
from pyro_vsc.run import save_config
from tests.helpers import compose_config

#: Table 1's row labels (the paper's names of the methods).
PAPER_LABELS = {
    "fista": "FISTA (baseline)",
    "gaussian": "Gaussian",
    "laplace": "Laplacian",
    "spike_slab": "Spike-and-slab",
    "thresh_gauss": "Thresholded Gaussian",
    "thresh_gauss_gamma": "Thresholded Gaussian+Gamma",
    "thresh": "Thresholded Laplacian",
    "thresh_gamma": "Thresholded Laplacian+Gamma",
}


def _without_method(cfg):
    """The config as a run folder saved before configs had ``method``."""
    old = OmegaConf.to_container(cfg, resolve=False)
    del old["method"]
    return OmegaConf.create(old)


def test_every_guide_config_names_its_method_with_the_paper_label():
    guide_configs = sorted(path.stem for path in (files("pyro_vsc.conf") / "guide").iterdir()
                           if path.name.endswith(".yaml"))
    assert guide_configs == sorted(TABLE1_METHODS)
    assert METHOD_LABELS == PAPER_LABELS and list(METHOD_LABELS) == list(TABLE1_METHODS)
    for method in TABLE1_METHODS:
        cfg = compose_config([f"guide={method}"])
        assert (method_of(cfg), method_label(cfg)) == (method, PAPER_LABELS[method])


def test_the_label_is_what_the_config_says():
    cfg = compose_config(["guide=thresh", "prior._target_=my_priors.AnnealedThresholdLaplacePrior",
                          "method.name=annealed", "method.label=Annealed threshold"])
    run = describe_run(cfg)
    assert (run["method"], run["label"]) == ("annealed", "Annealed threshold")
    # without a name of its own, a run keeps the method of its guide= choice
    cfg = compose_config(["guide=thresh", "prior._target_=my_priors.AnnealedThresholdLaplacePrior"])
    assert (method_of(cfg), method_label(cfg)) == ("thresh", "Thresholded Laplacian")


@pytest.mark.parametrize("method", TABLE1_METHODS)
def test_folders_saved_without_a_method_keep_their_names(method):
    """The method from the prior's class (FISTA from its guide's), the label the packaged config
    gives it."""
    old = _without_method(compose_config([f"guide={method}"]))
    assert (method_of(old), method_label(old)) == (method, PAPER_LABELS[method])
    assert describe_run(old)["label"] == PAPER_LABELS[method]


def test_folders_saved_without_a_method_and_an_unknown_prior_are_named_by_its_class():
    old = _without_method(compose_config(["guide=thresh", "prior._target_=my_priors.AnnealedPrior"]))
    assert (method_of(old), method_label(old)) == ("AnnealedPrior", "AnnealedPrior")


def test_a_folder_saved_without_a_method_resumes(tmp_path):
    cfg = compose_config(["guide=thresh", f"run_dir={tmp_path}"])
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(_without_method(cfg)))
    save_config(cfg, tmp_path)  # the method may differ on resume: it names the run
    changed = compose_config(["guide=thresh", f"run_dir={tmp_path}", "seed=1"])
    with pytest.raises(ValueError, match="seed: 0 -> 1"):
        save_config(changed, tmp_path)


def _evaluation(method, label, straight_through=True, seed=0):
    run = {"method": method, "objective": "max", "num_particles": 1, "seed": seed,
           "straight_through": straight_through}
    if label is not None:
        run["label"] = label
    return RunEvaluation(run_dir=Path("runs") / method, run=run, status="ok",
                         metrics={"validation_objective": 1.0, "posterior_collapse_pct": 2.0,
                                  "feature_collapse_pct": 3.0}, per_point={}, settings={})


def test_reports_use_the_labels_the_runs_were_evaluated_with():
    evaluations = [_evaluation("thresh", "Thresholded Laplacian"), _evaluation("annealed", "Annealed λ"),
                   _evaluation("legacy", None)]
    table1 = table1_markdown(evaluations)
    rows = [line.split(" | ")[0].lstrip("| ") for line in table1.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["Thresholded Laplacian", "Annealed λ", "legacy"]  # Table 1 order, then sorted
    assert "Annealed λ J=1: 1" in table1
    assert "| Annealed λ (ST) |" in table2_markdown(evaluations)
