"""Divergence: a NaN or inf in the loss, an ELBO term or a gradient is found at the step it
happens; the run stops with the last good checkpoint intact, or skips the batch on request."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from pyro_vsc.build import build_guide
from pyro_vsc.run import build_optimizers, runtime_settings, train
from pyro_vsc.train.checkpoint import load
from pyro_vsc.train.divergence import DivergenceMonitor, TrainingDiverged
from pyro_vsc.train.divergence_policy import SkipDivergentBatches
from pyro_vsc.train.step import ObjectiveStep
from pyro_vsc.train.trainer import Trainer
from tests.faults import STEPS_PER_EPOCH, TINY_RUN, hook_objective, nan_batch, read_metrics
from tests.helpers import compose_config


def poison_dictionary_at(step):
    """Before step ``step`` one dictionary entry becomes NaN: the likelihood term 'x' and the
    gradients turn non-finite, the KL terms of 'z' and 'threshold' (guide only) stay finite."""

    def hook(call, x, params):
        if call == step:
            with torch.no_grad():
                params[0][0, 0] = float("nan")  # params[0]: the model's dictionary A
        return x

    return hook


def test_a_nan_stops_the_run_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """NaN at step 8 (epoch 2, batch 2); checkpoints every 3 steps would write step 9, after it."""
    hook_objective(monkeypatch, poison_dictionary_at(8))
    with pytest.raises(TrainingDiverged) as diverged:
        train(compose_config([*TINY_RUN, "checkpoint_every=3", f"run_dir={tmp_path}"]))
    message = str(diverged.value)
    assert "non-finite loss, ELBO term 'x', gradient of model.decoder.weight" in message
    assert "at step 8 (epoch 2, batch 2 of 6)" in message
    checkpoint = tmp_path / "checkpoint.pt"
    assert f"the last checkpoint, {checkpoint} at step 6 (the end of epoch 1), is intact" in message
    assert "ELBO term 'z'" not in message and "ELBO term 'threshold'" not in message
    saved = load(tmp_path / "checkpoint.pt")
    assert (saved["step"], saved["epoch"], saved["batch"]) == (6, 1, 0)
    assert all(torch.isfinite(value).all() for part in ("model", "guide")
               for value in saved[part].values() if value.is_floating_point())
    first, last = read_metrics(tmp_path)
    assert first["epoch"] == 1 and "diverged" not in first
    assert last == diverged.value.record
    assert {k: last[k] for k in ("epoch", "step", "batch", "diverged")} == \
        {"epoch": 2, "step": 8, "batch": 2, "diverged": True}
    assert last["nonfinite"][:3] == ["loss", "ELBO term 'x'", "gradient of model.decoder.weight"]


def test_the_skip_policy_skips_bad_batches_and_counts_them(tmp_path, monkeypatch):
    """NaN batches at steps 2 and 9: their updates, schedule steps and warm-up steps are left out."""
    hook_objective(monkeypatch, lambda call, x, params: nan_batch(x) if call in (2, 9) else x)
    history = train(compose_config([*TINY_RUN, "on_divergence=skip", f"run_dir={tmp_path}"]))
    assert [r["skipped_steps"] for r in history] == [1, 1, 0]
    assert all(math.isfinite(r["train_loss"]) for r in history)
    saved = load(tmp_path / "checkpoint.pt")
    assert saved["skipped_steps"] == 2
    assert saved["step"] == 3 * STEPS_PER_EPOCH
    assert int(saved["guide"]["step"]) == 3 * STEPS_PER_EPOCH - 2  # the warm-up counts updates
    assert saved["optimizers"]["guide"]["scheduler"]["last_epoch"] == 3 * STEPS_PER_EPOCH - 2
    assert all(torch.isfinite(value).all() for value in saved["model"].values())


def test_more_skipped_batches_than_allowed_stop_the_run_as_diverged(tmp_path, monkeypatch):
    hook_objective(monkeypatch, lambda call, x, params: nan_batch(x) if call in (2, 4) else x)
    with pytest.raises(TrainingDiverged, match=r"more than max_skipped_steps=1 batches had non-finite "
                                               r"values, the last at step 4 \(epoch 1, batch 4 of 6\)"):
        train(compose_config([*TINY_RUN, "on_divergence=skip", "max_skipped_steps=1",
                              f"run_dir={tmp_path}"]))
    record = read_metrics(tmp_path)[-1]
    assert record["diverged"] and record["step"] == 4 and record["skipped_steps"] == 2
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_learning_rate_that_blows_up_fails_the_command_with_one_line(tmp_path):
    """A real divergence (no injection): a dictionary learning rate of 1e20 overflows at step 2."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, "-m", "pyro_vsc.run", *TINY_RUN, "model.optim.model.optimizer.lr=1e20",
         f"run_dir={tmp_path / 'run'}", f"hydra.run.dir={tmp_path / 'hydra'}"],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 3, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "training diverged: non-finite loss" in errors[0]
    assert "at step 2 (epoch 1, batch 2 of 6); no checkpoint was written" in errors[0]
    assert read_metrics(tmp_path / "run")[-1]["diverged"] is True


def test_a_diverged_run_of_a_sweep_is_recorded_and_the_sweep_goes_on(tmp_path):
    """Hydra multirun: the first job diverges (dictionary lr 1e20), the second still trains."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, "-m", "pyro_vsc.run", "-m", *TINY_RUN, "epochs=1",
         "model.optim.model.optimizer.lr=1e20,0.5", f"hydra.sweep.dir={tmp_path}",
         "hydra.sweep.subdir=${hydra.job.num}"],
        check=False, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_metrics(tmp_path / "0")[-1]["diverged"] is True
    finished = read_metrics(tmp_path / "1")
    assert [record["epoch"] for record in finished] == [1]
    assert math.isfinite(finished[-1]["val_objective"])


class TestDivergenceMonitor:
    """The health vector and the device-side record of the first unhealthy step."""

    @staticmethod
    def monitor_with_gradients(*grads):
        params = [torch.zeros(len(g), requires_grad=True) for g in grads]
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g)
        return DivergenceMonitor([(f"p{i}", p) for i, p in enumerate(params)])

    def test_the_health_vector_names_loss_terms_and_gradients(self):
        monitor = self.monitor_with_gradients([1.0, -3.0], [0.5])
        names, values = monitor.health(torch.tensor(2.0), {"x": torch.tensor([[1.0, 2.0]])})
        assert names == ("loss", "ELBO term 'x'", "gradient of p0", "gradient of p1")
        torch.testing.assert_close(values, torch.tensor([2.0, 3.0, -2.0, 0.5]))

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
    def test_any_non_finite_value_is_named(self, bad):
        monitor = self.monitor_with_gradients([-bad, bad], [0.5])  # inf - inf: NaN, still caught
        assert monitor.nonfinite(torch.tensor(1.0), {"z": torch.tensor([0.0, bad])}) == \
            ["ELBO term 'z'", "gradient of p0"]
        assert monitor.nonfinite(torch.tensor(bad)) == ["loss", "gradient of p0"]

    def test_only_the_first_unhealthy_step_is_kept(self):
        monitor = self.monitor_with_gradients([1.0])
        monitor.observe(1, torch.tensor(1.0), {"x": torch.tensor([1.0])})
        assert monitor.first_divergence() is None
        monitor.observe(2, torch.tensor(1.0), {"x": torch.tensor([float("nan")])})
        monitor.observe(3, torch.tensor(float("nan")), {"x": torch.tensor([float("nan")])})
        assert monitor.first_divergence() == (2, ["ELBO term 'x'"])


def test_a_skipped_batch_leaves_networks_with_batchnorm_untouched():
    """The conv networks' BatchNorm statistics, updated by the forward pass of the bad batch, are
    restored along with everything else."""
    cfg = compose_config(["model=fmnist", "guide=thresh_gauss", "model.latent_dim=6"])
    with runtime_settings(cfg):  # as in a run: validation off, the NaN reaches the loss
        _check_skipped_batch(cfg)


def _check_skipped_batch(cfg):
    model = instantiate(cfg.model.module, prior=instantiate(cfg.prior))
    guide = build_guide(cfg.guide, model)
    objective = ObjectiveStep(instantiate(cfg.elbo), model, guide, dict(cfg.kl_weights))
    trainer = Trainer(model=model, guide=guide, objective=objective,
                      optimizers=build_optimizers(cfg, model, guide, 10), batches=None,
                      epochs=1, divergence=SkipDivergentBatches())
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert trainer.train_step(x) is not None
    before = {part: {k: v.clone() for k, v in getattr(trainer, part).state_dict().items()}
              for part in ("model", "guide")}
    assert trainer.train_step(nan_batch(x)) is None
    for part in ("model", "guide"):
        torch.testing.assert_close(getattr(trainer, part).state_dict(), before[part], rtol=0, atol=0)
    assert (trainer.position.step, trainer.position.skipped_steps) == (2, 1)
