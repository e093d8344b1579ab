"""From a sweep to the paper's tables: train tiny runs, evaluate each, report the folder."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyro_vsc import evaluate, report
from pyro_vsc.evaluate import METRIC_NAMES, EvaluationSettings, evaluate_run
from pyro_vsc.reporting.collect import collect_evaluations
from pyro_vsc.run import train
from pyro_vsc.train.divergence import TrainingDiverged
from tests.helpers import TINY_LINEAR, compose_config

#: 4×4 patches, a 16-atom dictionary and a small encoder: the pipeline, not the paper's sizes.
SMALL = [*TINY_LINEAR, "epochs=1", "data.patch_size=4", "model.data_dim=16", "model.latent_dim=16",
         "model.backbone.hidden=[32,16]"]
#: Seconds, not minutes: few samples, a 2-point SNR subset, a loose reference FISTA.
TINY_EVALUATION = EvaluationSettings(iwae_samples=30, snr_points=2, snr_samples=8,
                                     consistency_samples=5, fista_tol=1e-3, device="cpu",
                                     progress=False)
RUN_FIGURES = {"dictionary.png", "estimated_dictionary.png", "jaccard_histogram.png", "snr.png"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A folder like a researcher's ``runs/``: a Hydra multirun of ``experiment=jaccard`` (max and
    avg), a FISTA run, a subgradient run that diverged, and a run not evaluated yet."""
    root = tmp_path_factory.mktemp("runs")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    sweep = subprocess.run(
        [sys.executable, "-m", "pyro_vsc.run", "-m", "experiment=jaccard", "elbo.num_particles=2",
         "seed=0", *SMALL, f"hydra.sweep.dir={root / 'multirun' / 'today'}"],
        capture_output=True, text=True, env=env, timeout=300)
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    train(compose_config([*SMALL, "guide=fista", f"run_dir={root / 'fista'}"]))
    # A dictionary step of 1e30 overflows at once: the run stops, and is recorded, not lost.
    with pytest.raises(TrainingDiverged):
        train(compose_config([*SMALL, "guide=thresh", "guide.straight_through=false",
                              "elbo.num_particles=2", "model.optim.model.optimizer.lr=1e30",
                              f"run_dir={root / 'subgradient'}"]))
    records = (root / "subgradient" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(records[-1])["diverged"]
    (root / "pending").mkdir()
    shutil.copy(root / "fista" / "config.yaml", root / "pending" / "config.yaml")
    return root


def test_evaluate_writes_metrics_and_figures_and_report_writes_the_tables(runs):
    swept = sorted((runs / "multirun" / "today").glob("*_thresh_*"))
    assert [path.name.split("_")[2] for path in swept] == ["max", "avg"]
    # The sweep through the command line (a folder of runs), the others through the function.
    evaluate.main([str(runs / "multirun"), "--iwae-samples", "30", "--snr-points", "2",
                   "--snr-samples", "8", "--consistency-samples", "5", "--fista-tol", "1e-3",
                   "--device", "cpu", "--no-progress", "--skip-evaluated"])
    for run_dir in (runs / "fista", runs / "subgradient"):
        evaluate_run(run_dir, TINY_EVALUATION)

    for run_dir, objective in zip(swept, ("max", "avg")):
        record = json.loads((run_dir / "evaluation.json").read_text())
        assert record["status"] == "ok" and record["nan_metrics"] == [] and not record["not_applicable"]
        assert record["run"]["objective"] == objective and record["run"]["num_particles"] == 2
        assert set(METRIC_NAMES) <= set(record["metrics"])
        metrics = record["metrics"]
        assert metrics["iwae_bound"] >= metrics["elbo"]  # logmeanexp ≥ mean for every patch
        assert metrics["fista_objective"] <= metrics["validation_objective"] * (1 + 1e-3)
        assert 0 <= metrics["jaccard_mean"] <= 1 and 0 <= metrics["psis_khat_fraction_above"] <= 1
        assert sum(record["per_point"]["jaccard_histogram"]) == 100  # every validation patch
        assert RUN_FIGURES <= {path.name for path in run_dir.iterdir()}

    fista = json.loads((runs / "fista" / "evaluation.json").read_text())
    assert fista["status"] == "ok"
    assert {"iwae_loss", "posterior_collapse_pct", "snr_encoder"} <= set(fista["not_applicable"])
    assert fista["metrics"]["iwae_loss"] is None and fista["metrics"]["jaccard_mean"] == 1.0

    diverged = json.loads((runs / "subgradient" / "evaluation.json").read_text())
    assert diverged["status"] == "diverged" and "non-finite" in diverged["diverged"]
    assert set(diverged["nan_metrics"]) == set(METRIC_NAMES)
    assert all(value is None for value in diverged["metrics"].values())

    evaluations, unevaluated = collect_evaluations(runs)
    assert len(evaluations) == 4 and unevaluated == [runs / "pending"]
    report.main([str(runs)])
    for name in ("table1.md", "table6.md", "table2.md", "snr.png", "jaccard.png"):
        assert (runs / name).stat().st_size > 0
    table1 = (runs / "table1.md").read_text()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table1.splitlines() if line.startswith("| ")}
    assert "FISTA (baseline)" in rows and "Thresholded Laplacian" in rows
    assert rows["FISTA (baseline)"].rstrip(" |").endswith("–")  # no IWAE loss for a point mass
    table2 = (runs / "table2.md").read_text()
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in table2.splitlines()
            if line.startswith("| Thresholded")}
    assert all(cell.strip(" |") == "NaN" for cell in rows["Thresholded Laplacian (SG)"])
    assert all(cell.strip(" |").endswith("%") for cell in rows["Thresholded Laplacian (ST)"])
    assert "J = 2" in (runs / "table6.md").read_text()


def test_a_checkpoint_with_nan_parameters_is_evaluated_as_diverged(runs, tmp_path):
    source = sorted((runs / "multirun" / "today").glob("*_thresh_max_*"))[0]
    run_dir = tmp_path / "nan_run"
    shutil.copytree(source, run_dir, ignore=shutil.ignore_patterns("evaluation.json"))
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    state["guide"]["encoder.heads.loc.bias"][0] = float("nan")
    torch.save(state, run_dir / "checkpoint.pt")
    record = evaluate_run(run_dir, TINY_EVALUATION)
    assert record["status"] == "diverged"
    assert "guide.encoder.heads.loc.bias" in record["diverged"]
    assert set(record["nan_metrics"]) == set(METRIC_NAMES)
