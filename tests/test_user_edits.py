"""Edits users make to priors and guides give the eager Pyro program's numbers, or stop with one
clear line (README, "Writing your own prior or guide").

Every case is trained with ``capture=true`` (recorded objectives, the default) and
``capture=false`` (the Pyro program itself at every step): losses, ELBO terms, codes, parameters
and random streams must be identical, and where a recording cannot be trusted the fallback to
the eager program must be announced once, at WARNING level, with the reason.
"""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pyro
import pytest
import torch
from hydra.utils import instantiate

from pyro_vsc.elbo import MaxELBO
from pyro_vsc.elbo.kl_weights import KLWarmup
from pyro_vsc.run import build_optimizers, build_run, run_command, runtime_settings, train
from pyro_vsc.train.objective import Objective
from pyro_vsc.train.trainer import Trainer
from tests.faults import TIMING
from tests.helpers import TINY_LINEAR, compose_config

REPOSITORY = Path(__file__).resolve().parents[1]
SMALL = ["model.data_dim=16", "model.latent_dim=12", "model.backbone.hidden=[32,16]"]
USER = "tests.user_programs"
CAPTURE_LOG = "pyro_vsc.train.capture"


def _trainer(overrides, capture):
    cfg = compose_config([*SMALL, *overrides, f"capture={capture}"])
    pyro.set_rng_seed(0)
    built = build_run(cfg, torch.device("cpu"), data=object())
    model, guide = built["model"], built["guide"]
    return cfg, Trainer(model=model, guide=guide, objective=built["step"],
                        optimizers=build_optimizers(cfg, model, guide, 10), batches=None, epochs=1)


def _train(trainer, batches, between_steps):
    pyro.set_rng_seed(1)
    steps = []
    for index, x in enumerate(batches):
        between_steps(trainer, index)
        loss = trainer.train_step(x)
        steps.append((loss, dict(trainer.objective.site_terms), trainer.objective.latent()))
    state = {part: getattr(trainer, part).state_dict() for part in ("model", "guide")}
    return steps, state, torch.get_rng_state()


def _assert_same_numbers(overrides, between_steps=lambda trainer, step: None, steps=8):
    """Trains ``steps`` steps both ways; returns the recorded objective (``CapturedProgram``)."""
    batches = list(torch.randn(steps, 5, 16, generator=torch.Generator().manual_seed(2)))
    cfg, eager = _trainer(overrides, capture=False)
    with runtime_settings(cfg):
        _, captured = _trainer(overrides, capture=True)
        expected = _train(eager, batches, between_steps)
        replayed = _train(captured, batches, between_steps)
    for step, ((loss, terms, latent), (loss_r, terms_r, latent_r)) in enumerate(zip(expected[0], replayed[0])):
        assert torch.equal(loss, loss_r), f"step {step + 1}: {loss} eager, {loss_r} with capture"
        assert torch.equal(latent, latent_r) and terms.keys() == terms_r.keys()
        assert all(torch.equal(terms[name], terms_r[name]) for name in terms)
    for part in ("model", "guide"):
        torch.testing.assert_close(replayed[1][part], expected[1][part], rtol=0, atol=0)
    assert torch.equal(replayed[2], expected[2])
    return captured.objective._terms


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == CAPTURE_LOG and r.levelno == logging.WARNING]


@pytest.mark.parametrize("prior, changed", [
    ("PythonAnnealedPrior", "prior.scale_now: 0.05 -> 0.025"),  # a Python-float schedule
    ("CountingPrior", "prior.calls: 1 -> 2"),                     # a Python counter
])
def test_a_prior_that_changes_its_python_state_runs_eagerly_and_says_so(prior, changed, caplog):
    with caplog.at_level(logging.WARNING, logger=CAPTURE_LOG):
        program = _assert_same_numbers(["guide=thresh", f"prior._target_={USER}.{prior}"])
    assert program.unsupported is not None and not program.graphs
    messages = _warnings(caplog)
    assert len(messages) == 1, messages  # announced once, not at every step
    assert "its Python state changes while it runs" in messages[0] and changed in messages[0]


@pytest.mark.parametrize("elbo", ["max", "avg"])  # both objectives record and replay
def test_the_same_schedule_in_a_buffer_is_recorded_and_replayed(elbo, caplog):
    with caplog.at_level(logging.WARNING, logger=CAPTURE_LOG):
        program = _assert_same_numbers(["guide=thresh", f"elbo={elbo}", "elbo.num_particles=3",
                                        f"prior._target_={USER}.BufferAnnealedPrior"])
    assert program.unsupported is None and len(program.graphs) == 1 and not _warnings(caplog)


def test_a_program_drawing_from_numpys_generator_runs_eagerly(caplog):
    with caplog.at_level(logging.WARNING, logger=CAPTURE_LOG):
        program = _assert_same_numbers(["guide=thresh", f"prior._target_={USER}.NumpyNoisePrior"])
    assert "NumPy's random generator" in program.unsupported and len(_warnings(caplog)) == 1


@pytest.mark.parametrize("elbo", ["max", "avg"])
def test_a_guide_attribute_the_training_loop_changes_is_read_at_every_step(elbo, caplog):
    """``guide.temperature``, a plain float, changes at steps 0-3, then once more at step 6: each
    value is used when it is current (eager while it keeps changing, recorded once it holds)."""
    temperatures = {0: 0.5, 1: 0.6, 2: 0.8, 3: 1.0, 6: 1.5}

    def schedule(trainer, step):
        if step in temperatures:
            trainer.guide.temperature = temperatures[step]

    with caplog.at_level(logging.WARNING, logger=CAPTURE_LOG):
        program = _assert_same_numbers(["guide=thresh", f"elbo={elbo}", f"guide._target_={USER}.TemperedGuide"],
                                       schedule, steps=10)
    assert program.unsupported is None and len(program.graphs) == 3  # 0.5 (first call), 1.0, 1.5
    messages = _warnings(caplog)
    assert len(messages) == 1 and "changes between steps" in messages[0]
    assert "TemperedGuide.temperature: 0.8 -> 1.0" in messages[0]


def test_a_submodule_switched_to_eval_mode_is_seen():
    """Only the encoder's backbone (with dropout) goes to eval mode at step 3: the signature of
    the top-level modules does not change, the guarded state does."""
    def to_eval(trainer, step):
        if step == 3:
            trainer.guide.encoder.backbone.eval()

    program = _assert_same_numbers(["guide=thresh", f"model.backbone._target_={USER}.DropoutBackbone"],
                                   to_eval)
    assert program.unsupported is None and len(program.graphs) == 2


def test_kl_weights_changed_by_the_training_loop_are_used():
    def anneal(trainer, step):
        if step == 4:
            trainer.objective.weights.weights["z"] = 0.5

    program = _assert_same_numbers(["guide=thresh_gamma"], anneal)
    assert len(program.graphs) == 2


@pytest.mark.parametrize("guide", ["thresh", "thresh_gamma", "gaussian"])
def test_a_kl_warmup_ramps_in_tensors_and_is_replayed(guide, caplog):
    """β(t) = β·min(1, t/T) with T = 5, over 8 steps: recorded once, identical to eager, and the
    KL terms grow from exactly 0 at the first step."""
    with caplog.at_level(logging.WARNING, logger=CAPTURE_LOG):
        program = _assert_same_numbers([f"guide={guide}", "kl_warmup_steps=5", "kl_weight=0.5"])
    assert program.unsupported is None and len(program.graphs) == 1 and not _warnings(caplog)
    cfg, trainer = _trainer([f"guide={guide}", "kl_warmup_steps=5", "kl_weight=0.5"], capture=True)
    with runtime_settings(cfg):
        trainer.train_step(torch.randn(5, 16))
    assert torch.equal(trainer.objective.site_terms["z"], torch.zeros_like(trainer.objective.site_terms["z"]))


def test_the_kl_warmup_schedule_is_linear_from_zero():
    warmup = KLWarmup({"z": 0.2, "threshold": 0.02}, warmup_steps=4)
    weights = []
    for _ in range(6):
        weights.append((float(warmup.get("z")), float(warmup.get("threshold"))))
        warmup.advance()
    expected = [(0.2 * min(1, t / 4), 0.02 * min(1, t / 4)) for t in range(6)]
    for (z, threshold), (z_expected, threshold_expected) in zip(weights, expected):
        assert z == pytest.approx(z_expected, rel=1e-6) and threshold == pytest.approx(threshold_expected, rel=1e-6)
    assert warmup.get("x") is None
    with pytest.raises(ValueError, match="kl_warmup_steps must be an integer ≥ 1"):
        KLWarmup({"z": 1.0}, 0)


def _metrics(run_dir):
    records = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in record.items() if k not in TIMING} for record in records]


def test_a_kl_warmup_resumes_exactly(tmp_path):
    """The warm-up's step is checkpointed: two sessions equal one, mid-ramp."""
    run = [*TINY_LINEAR, "guide=thresh", "model.backbone.hidden=[64,64]", "kl_warmup_steps=9"]
    train(compose_config([*run, f"run_dir={tmp_path / 'whole'}"]))
    train(compose_config([*run, "session_epochs=1", f"run_dir={tmp_path / 'split'}"]))
    train(compose_config([*run, f"resume={tmp_path / 'split'}"]))
    assert _metrics(tmp_path / "split") == _metrics(tmp_path / "whole")


def test_the_readme_prior_swap_trains_end_to_end_with_and_without_capture(tmp_path):
    """``ThresholdedNormal`` in ``ThresholdedLaplaceGammaPrior`` under the Laplace + Gamma guide:
    no closed-form KL for that pair, so the sampled log-density ratio is used; same numbers."""
    run = [*TINY_LINEAR, "guide=thresh_gamma", "model.backbone.hidden=[64,64]",
           f"prior._target_={USER}.NormalBaseLaplaceGammaPrior"]
    for capture in (True, False):
        train(compose_config([*run, f"capture={capture}", f"run_dir={tmp_path / str(capture)}"]))
    metrics = _metrics(tmp_path / "True")
    assert metrics == _metrics(tmp_path / "False") and len(metrics) == 2
    assert all(torch.isfinite(torch.tensor(record["val_objective"])) for record in metrics)


def test_kl_weight_zero_trains_and_reports_unweighted_kls(tmp_path):
    history = train(compose_config([*TINY_LINEAR, "guide=thresh_gamma", "kl_weight=0",
                                    f"run_dir={tmp_path}"]))
    for record in history:
        assert all(value == value for value in record.values())  # no NaN
        assert record["val_kl_z"] > 0 and record["val_kl_threshold"] > 0


def _command(overrides, tmp_path, capsys):
    """What ``python -m pyro_vsc.run <overrides>`` reports: its exit status and error line."""
    status = run_command(compose_config([*TINY_LINEAR, "epochs=1", *overrides, f"run_dir={tmp_path / 'run'}"]))
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(errors) == 1, errors
    return errors[0]


def _cli(overrides, tmp_path):
    """The same in a new process, as a user runs it: one line on stderr, no traceback, status 2."""
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    result = subprocess.run([sys.executable, "-m", "pyro_vsc.run", *TINY_LINEAR, "epochs=1",
                             *overrides, f"run_dir={tmp_path / 'run'}"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


MISSPELT = ("guide samples 'zz', which the model does not have (mark a guide-only auxiliary site "
            "infer={'is_auxiliary': True}); the model's latent 'z' has no guide site")


@pytest.mark.parametrize("elbo", ["max", "avg", "iwae"])
@pytest.mark.parametrize("guide, message", [
    ("MisspeltGuide", MISSPELT),
    ("ForgetfulGuide", "the model's latent 'z' has no guide site"),
])
def test_mismatched_sites_stop_every_objective_in_one_line(elbo, guide, message, tmp_path, capsys):
    """With validation off (the default)."""
    line = _command(["guide=thresh", f"guide._target_={USER}.{guide}", f"elbo={elbo}", "validate=false"],
                    tmp_path, capsys)
    assert line == f"error: model and guide do not match: {message}"


def test_a_misspelt_site_is_one_line_on_the_command_line(tmp_path):
    line = _cli(["guide=thresh", f"guide._target_={USER}.MisspeltGuide"], tmp_path)
    assert line == f"error: model and guide do not match: {MISSPELT}"


def test_mismatched_sites_are_refused_by_max_elbo_itself():
    cfg = compose_config([*SMALL, "guide=thresh", f"guide._target_={USER}.MisspeltGuide"])
    built = build_run(cfg, torch.device("cpu"), data=object())
    with pytest.raises(ValueError, match="guide samples 'zz'"):
        MaxELBO(max_plate_nesting=1).differentiable_loss(built["model"], built["guide"], torch.randn(3, 16))


def test_a_marked_auxiliary_guide_site_is_accepted():
    """It is kept out of the model and contributes its entropy term -log q to the ELBO."""
    program = _assert_same_numbers(["guide=thresh", f"guide._target_={USER}.AuxiliaryGuide"], steps=3)
    assert program.unsupported is None
    cfg, trainer = _trainer(["guide=thresh", f"guide._target_={USER}.AuxiliaryGuide"], capture=True)
    with runtime_settings(cfg):
        trainer.train_step(torch.randn(5, 16))
    noise = trainer.objective.site_terms["noise"]
    assert noise.shape == (1, 5) and bool((noise != 0).all())


@pytest.mark.parametrize("device", ["mps", "meta", "cuda:7"])
def test_an_unusable_device_is_refused_in_one_line(device, tmp_path, capsys):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has that many CUDA devices")
    line = _command([f"device={device}"], tmp_path, capsys)
    assert line.startswith(f"error: device={device} ")
    assert line.endswith(("use auto, cpu, cuda or cuda:N", "use device=cpu or auto", "cuda or auto"))


def test_an_unusable_device_is_one_line_on_the_command_line(tmp_path):
    assert _cli(["device=mps"], tmp_path).startswith("error: device=mps cannot be used on this machine")


def test_validation_follows_the_runs_analytic_kl_setting():
    cfg = compose_config([*SMALL, "guide=thresh", "elbo.analytic_kl=false"])
    pyro.set_rng_seed(0)
    built = build_run(cfg, torch.device("cpu"), data=object())
    assert built["objective"].analytic_kl is False
    validation = instantiate(cfg.model.validation)
    val = torch.randn(200, 16)
    kls = {}
    for analytic in (True, False):
        pyro.set_rng_seed(3)
        objective = Objective(built["model"], built["guide"], kl_weights=built["objective"].kl_weights,
                              analytic_kl=analytic)
        kls[analytic] = validation(objective, val)["kl_z"]
    # the paper's base KL (analytic) and the sampled exact log-density ratio differ
    assert kls[True] > 0 and kls[True] != pytest.approx(kls[False], rel=1e-3)
