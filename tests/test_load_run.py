"""Trained runs you can load (pyro_vsc.load_run), runs that continue from their folder alone,
and the training display that shows what moves."""

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyro
import pytest
import torch

import pyro_vsc
import pyro_vsc.run
from pyro_vsc.elbo import AverageELBO, MaxELBO
from pyro_vsc.run import build_run, run_command, train
from pyro_vsc.train.checkpoint import load
from tests.faults import TIMING, TINY_RUN, read_metrics
from tests.helpers import compose_config
from tests.image_data import write_fashion_mnist

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def linear_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("linear") / "run"
    train(compose_config([*TINY_RUN, "epochs=2", f"run_dir={folder}"]))
    return folder


def test_a_linear_run_loads_and_encodes_with_exact_zeros(linear_run):
    trained = pyro_vsc.load_run(linear_run)
    x = trained.load_data().val[:50]
    pyro.set_rng_seed(0)
    z = trained.encode(x)
    assert z.shape == (50, 256) and bool((z == 0).any()) and bool((z != 0).any())
    torch.testing.assert_close(trained.decode(z), z @ trained.dictionary.T)
    pyro.set_rng_seed(0)
    torch.testing.assert_close(trained.reconstruct(x), trained.decode(z))
    assert trained.epochs_trained == 2 and len(trained.history) == 2
    assert trained.encode(x.numpy()[:3]).shape == (3, 256)  # numpy arrays are accepted


def test_the_checkpoint_alone_loads_without_data_or_a_training_objective(linear_run, tmp_path, monkeypatch):
    """checkpoint.pt copied elsewhere (no config.yaml beside it) loads; no data are read and no
    training objective (or its recording) is built."""
    alone = tmp_path / "shared" / "checkpoint.pt"
    alone.parent.mkdir()
    shutil.copy(linear_run / "checkpoint.pt", alone)
    monkeypatch.setattr(pyro_vsc.run, "ObjectiveStep", None)
    monkeypatch.setattr("pyro_vsc.data.load_whitened_patches", None)
    trained = pyro_vsc.load_run(alone)
    original = pyro_vsc.load_run(linear_run)
    torch.testing.assert_close(trained.dictionary, original.dictionary, rtol=0, atol=0)
    assert trained.config.guide._target_ == original.config.guide._target_
    assert load(alone)["config"]["epochs"] == 2


def test_loading_needs_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path} holds no trained run: no checkpoint\.pt"):
        pyro_vsc.load_run(tmp_path)


def test_an_image_run_loads_and_reconstructs(tmp_path):
    write_fashion_mnist(tmp_path / "data", train_count=32, test_count=16)
    run_dir = tmp_path / "run"
    train(compose_config(["model=fmnist", f"data.root={tmp_path / 'data'}", "data.train_size=32",
                          "data.val_size=16", "data.download=false", "model.latent_dim=8", "batch_size=8",
                          "epochs=1", "num_workers=0", "progress=false", f"run_dir={run_dir}"]))
    trained = pyro_vsc.load_run(run_dir)
    _, val = trained.load_data()
    x = torch.stack([val[i][0] for i in range(4)])
    z = trained.encode(x)
    assert z.shape == (4, 8)
    assert trained.reconstruct(x).shape == (4, 1, 28, 28)


def _split_run(tmp_path):
    """A run stopped after one of its three epochs, started with settings that are not the
    defaults (so that resuming with the defaults would change it)."""
    run_dir = tmp_path / "run"
    train(compose_config([*TINY_RUN, "session_epochs=1", f"run_dir={run_dir}"]))
    return run_dir


def test_resume_alone_continues_with_the_saved_config(tmp_path):
    """The run was started with session_epochs=1 (saved with it): each resume with the folder
    alone trains one more epoch, and the three sessions equal one uninterrupted run."""
    whole = train(compose_config([*TINY_RUN, f"run_dir={tmp_path / 'whole'}"]))
    run_dir = _split_run(tmp_path)
    for epochs in ([1, 2], [1, 2, 3]):
        assert run_command(compose_config([f"resume={run_dir}"]), overrides=[f"resume={run_dir}"]) == 0
        assert [r["epoch"] for r in read_metrics(run_dir)] == epochs
    strip = [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run_dir)]
    assert strip == [{k: v for k, v in r.items() if k not in TIMING} for r in whole]


@pytest.mark.parametrize("overrides, changed", [
    (["epochs=30"], "epochs: 3 -> 30"),
    (["guide=thresh"], "prior._target_: 'pyro_vsc.models.priors.ThresholdedLaplaceGammaPrior' -> "
                       "'pyro_vsc.models.priors.ThresholdedLaplacePrior'"),
    (["kl_weight=0.5", "data.num_train=8000"], "data.num_train: 300 -> 8000, kl_weight: 0.01 -> 0.5"),
])
def test_resume_refuses_explicit_settings_that_change_the_experiment(overrides, changed, tmp_path, capsys):
    run_dir = _split_run(tmp_path)
    before = (run_dir / "checkpoint.pt").read_bytes()
    assert run_command(compose_config([*overrides, f"resume={run_dir}"]),
                       overrides=[*overrides, f"resume={run_dir}"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: cannot resume {run_dir}: the command line "
                                                     "changes the experiment it was started with (")
    assert changed in errors[0] and "resume=<folder> alone continues it as it was" in errors[0]
    assert (run_dir / "checkpoint.pt").read_bytes() == before


def test_resume_on_the_command_line_with_resumable_settings(tmp_path):
    """As a user types it: the folder alone, plus a setting that does not change the numbers."""
    run_dir = _split_run(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    result = subprocess.run([sys.executable, "-m", "pyro_vsc.run", f"resume={run_dir}", "session_epochs=null",
                             "log_every=2", "progress=false"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r["epoch"] for r in read_metrics(run_dir)] == [1, 2, 3]


@pytest.mark.parametrize("objective", [MaxELBO, AverageELBO])
@pytest.mark.parametrize("guide, particles", [("thresh_gamma", 1), ("thresh_gamma", 4), ("gaussian", 3)])
def test_the_loss_breakdown_adds_up_and_shows_the_reconstruction_error(guide, particles, objective):
    """recon + kl + constant = the loss per data point; recon is the per-pixel MSE of the kept
    particles (the selected one of eq. 9, all of them for eq. 7) with σ² = D/2, and the constant
    is D/2 · log(2π σ²)."""
    cfg = compose_config(["model.data_dim=16", "model.latent_dim=12", "model.backbone.hidden=[32]",
                          f"guide={guide}"])
    built = build_run(cfg, torch.device("cpu"), data=object())
    model, guide_module = built["model"], built["guide"]
    x = torch.randn(7, 16)
    particles_elbo = objective(num_particles=particles, max_plate_nesting=1).particle_elbo(model, guide_module, x)
    parts = particles_elbo.breakdown()
    total = parts["recon"] + parts["kl"] + parts["constant"]
    torch.testing.assert_close(total, particles_elbo.loss / 7)
    assert float(parts["constant"]) == pytest.approx(8 * math.log(2 * math.pi * 8), rel=1e-6)
    z = particles_elbo.values("z") if objective is AverageELBO else particles_elbo.selected("z")
    mse = (x - model.decoder(z)).pow(2).mean()
    torch.testing.assert_close(parts["recon"], mse.detach(), rtol=1e-5, atol=1e-6)


def test_epoch_records_and_curves_show_what_moves(linear_run):
    record = read_metrics(linear_run)[-1]
    assert record["train_loss"] - record["train_loss_without_constant"] == pytest.approx(
        128 * math.log(2 * math.pi * 128), rel=1e-5)
    assert record["train_loss_without_constant"] == pytest.approx(record["train_recon"] + record["train_kl"])
    assert 0 < record["train_recon"] < 2 and record["train_kl"] > 0


def test_the_readme_dictionary_figure_is_drawn_from_a_run(linear_run, tmp_path):
    from pyro_vsc.dictionary_figure import main

    main([str(linear_run), str(tmp_path / "dictionary.png"), "--width", "3", "--dpi", "50"])
    from PIL import Image

    width, height = Image.open(tmp_path / "dictionary.png").size
    assert 100 < width <= 200 and height > 100  # about 3 × 50 pixels wide, the title included
