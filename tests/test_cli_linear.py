"""The linear-generator command: every Table 1 method runs and fills its run folder."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyro_vsc.run import train
from tests.helpers import TINY_LINEAR, compose_config

GUIDES = ["gaussian", "laplace", "spike_slab", "thresh_gauss", "thresh_gauss_gamma", "thresh",
          "thresh_gamma", "fista"]
RUN_FILES = {"config.yaml", "metrics.jsonl", "checkpoint.pt", "dictionary.png", "training_curves.png"}
METRICS = {"epoch", "step", "train_loss", "val_objective", "val_nonzero_pct", "val_recon",
           "val_mse", "val_kl_z", "seconds"}


def read_metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("guide", GUIDES)
def test_every_table1_method_trains_and_writes_its_run_folder(guide, tmp_path):
    cfg = compose_config([*TINY_LINEAR, f"guide={guide}", f"run_dir={tmp_path}"])
    history = train(cfg)
    assert RUN_FILES <= {p.name for p in tmp_path.iterdir()}
    records = read_metrics(tmp_path)
    assert records == history and [r["epoch"] for r in records] == [1, 2]
    # FISTA's codes are a point mass: no KL to the prior; the prior term has its own name
    expected = METRICS - {"val_kl_z"} | {"val_log_prior_z"} if guide == "fista" else METRICS
    for record in records:
        assert expected <= record.keys()
        assert all(value == value for value in record.values())  # no NaN
        assert 0.0 <= record["val_nonzero_pct"] <= 100.0
        assert all(value >= 0 for key, value in record.items() if key.startswith("val_kl_"))
        assert guide != "fista" or not any(key.startswith("val_kl_") for key in record)
    # objective (10) is ½‖x−Az‖² + 20‖z‖₁ ≥ the reconstruction term
    assert records[-1]["val_objective"] >= records[-1]["val_recon"]


@pytest.mark.parametrize("elbo,particles", [("avg", 3), ("iwae", 3), ("max", 4)])
def test_objectives_with_several_particles(elbo, particles, tmp_path):
    cfg = compose_config([*TINY_LINEAR, "guide=thresh", f"elbo={elbo}",
                          f"elbo.num_particles={particles}", "epochs=1", f"run_dir={tmp_path}"])
    history = train(cfg)
    assert len(history) == 1 and history[0]["train_loss"] == history[0]["train_loss"]


def test_resuming_continues_exactly_where_the_run_stopped(tmp_path):
    """Two sessions of one epoch each give the same run as one session of two epochs."""
    overrides = [*TINY_LINEAR, "guide=thresh_gamma", "epochs=2"]
    straight = train(compose_config([*overrides, f"run_dir={tmp_path / 'straight'}"]))
    first = train(compose_config([*overrides, "session_epochs=1", f"run_dir={tmp_path / 'split'}"]))
    assert len(first) == 1
    assert torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=False)["epoch"] == 1
    resumed = train(compose_config([*overrides, f"resume={tmp_path / 'split'}"]))
    timing = {"seconds", "steps_per_second"}
    strip = [{k: v for k, v in record.items() if k not in timing} for record in resumed]
    assert strip == [{k: v for k, v in record.items() if k not in timing} for record in straight]
    done = [torch.load(tmp_path / name / "checkpoint.pt", weights_only=False)
            for name in ("straight", "split")]
    for key, value in done[0]["model"].items():
        torch.testing.assert_close(done[1]["model"][key], value, rtol=0, atol=0)


def test_resuming_with_a_different_experiment_is_refused(tmp_path):
    train(compose_config([*TINY_LINEAR, "guide=thresh", "epochs=1", f"run_dir={tmp_path}"]))
    with pytest.raises(ValueError, match="epochs: 1 -> 3"):
        train(compose_config([*TINY_LINEAR, "guide=thresh", "epochs=3", f"resume={tmp_path}"]))


def test_resuming_a_folder_without_checkpoint_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint.pt"):
        train(compose_config([*TINY_LINEAR, f"resume={tmp_path}"]))


def test_command_line_entry_point(tmp_path):
    """``python -m pyro_vsc.run`` as a user types it (one subprocess: the real CLI)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, "-m", "pyro_vsc.run", "model=linear", "guide=thresh_gamma",
         *TINY_LINEAR, "epochs=1", f"run_dir={tmp_path / 'run'}"],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert RUN_FILES <= {p.name for p in (tmp_path / "run").iterdir()}


def test_unknown_guide_lists_the_valid_ones():
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException) as error:
        compose_config(["guide=thresholded"])
    assert "thresh_gamma" in str(error.value)
