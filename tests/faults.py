"""Fault injection for tests: runs of ``pyro_vsc.run.train`` whose objective misbehaves on cue,
and the tiny linear run the reliability tests share."""

import contextlib
import json
from pathlib import Path

import torch

import pyro_vsc.run
from pyro_vsc.train.checkpoint import load
from pyro_vsc.train.step import ObjectiveStep
from tests.helpers import TINY_LINEAR

#: A tiny linear run of 3 epochs of 6 steps (300 patches, batch 50, a small Table 3 backbone).
TINY_RUN = [*TINY_LINEAR, "model.backbone.hidden=[64,64]", "guide=thresh_gamma", "epochs=3"]
STEPS_PER_EPOCH = 6
#: Metrics that measure time, not the run.
TIMING = {"seconds", "steps_per_second"}


def hook_objective(monkeypatch, hook):
    """Makes runs built by ``pyro_vsc.run`` call ``hook(call, x, params)`` before every training
    step (``call`` counts from 1); the step then uses the batch ``hook`` returns."""

    class HookedObjective(ObjectiveStep):
        calls = 0

        def __call__(self, x, params):
            HookedObjective.calls += 1
            return super().__call__(hook(HookedObjective.calls, x, params), params)

    monkeypatch.setattr(pyro_vsc.run, "ObjectiveStep", HookedObjective)


def nan_batch(x):
    """The batch with one NaN pixel: every ELBO term and gradient of that step is non-finite."""
    x = x.clone()
    x[0, 0] = float("nan")
    return x


@contextlib.contextmanager
def one_thread():
    """Runs torch on one thread (as the subprocesses with OMP_NUM_THREADS=1), so that parallel
    reductions split work the same way in every process that is compared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def read_metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def without_timing(records):
    return [{k: v for k, v in record.items() if k not in TIMING} for record in records]


def assert_same_run(run_dir, reference_dir):
    """Final model, guide and optimizer states bit for bit, and the metrics except timing."""
    done, reference = (load(Path(d) / "checkpoint.pt") for d in (run_dir, reference_dir))
    for part in ("model", "guide"):
        torch.testing.assert_close(done[part], reference[part], rtol=0, atol=0,
                                   msg=lambda m, part=part: f"{part}: {m}")
    for name, states in reference["optimizers"].items():
        torch.testing.assert_close(done["optimizers"][name]["optimizer"], states["optimizer"],
                                   rtol=0, atol=0, msg=lambda m, name=name: f"optimizer {name}: {m}")
        assert done["optimizers"][name]["scheduler"] == states["scheduler"]
    assert done["step"] == reference["step"] and done["epoch"] == reference["epoch"]
    assert without_timing(read_metrics(run_dir)) == without_timing(read_metrics(reference_dir))
