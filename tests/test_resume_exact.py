"""Exact resume: a run killed (SIGKILL) or stopped (SIGTERM, SIGINT) at any step and then
resumed ends with the same parameters, optimizer states and metrics as an uninterrupted run."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyro_vsc.run import train
from pyro_vsc.train.checkpoint import load
from pyro_vsc.train.interruption import TrainingInterrupted
from tests.faults import (STEPS_PER_EPOCH, TINY_RUN, assert_same_run, hook_objective, one_thread,
                          read_metrics)
from tests.helpers import compose_config
from tests.image_data import write_fashion_mnist

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted tiny run every interrupted one is compared with."""
    run_dir = tmp_path_factory.mktemp("straight")
    with one_thread():
        train(compose_config([*TINY_RUN, f"run_dir={run_dir}"]))
    return run_dir


def resume(run_dir, overrides=TINY_RUN):
    with one_thread():
        return train(compose_config([*overrides, f"resume={run_dir}"]))


def start_command(overrides, tmp_path):
    """``python -m pyro_vsc.run`` in a subprocess on one thread (like the in-process runs)."""
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "pyro_vsc.run", *overrides,
                             f"hydra.run.dir={tmp_path / 'hydra'}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def pause_at_checkpoint(process, run_dir, wanted, timeout=240):
    """Polls the run folder until its checkpoint satisfies ``wanted``; returns that checkpoint
    with the process stopped (SIGSTOP), so that it cannot write another one meanwhile."""
    path = run_dir / "checkpoint.pt"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the run ended before the wanted checkpoint:\n{process.stderr.read()[-3000:]}")
        if path.exists():
            os.kill(process.pid, signal.SIGSTOP)
            state = load(path)
            if wanted(state):
                return state
            os.kill(process.pid, signal.SIGCONT)
        time.sleep(0.005)
    process.kill()
    pytest.fail("no wanted checkpoint before the timeout")


def test_a_run_killed_inside_an_epoch_resumes_to_the_uninterrupted_result(straight, tmp_path):
    run_dir = tmp_path / "killed"
    process = start_command([*TINY_RUN, "checkpoint_every=1", f"run_dir={run_dir}"], tmp_path)
    try:
        state = pause_at_checkpoint(process, run_dir, lambda s: s["epoch"] >= 1 and s["batch"] > 0)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert 0 < state["batch"] < STEPS_PER_EPOCH  # killed inside an epoch, after the first
    # what a kill in the middle of a checkpoint write leaves (whether or not this one did)
    (run_dir / ".checkpoint.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    resume(run_dir)
    assert_same_run(run_dir, straight)
    assert not list(run_dir.glob(".checkpoint.pt.*.tmp"))


def test_sigterm_writes_a_checkpoint_and_exits_with_143(straight, tmp_path):
    run_dir = tmp_path / "terminated"
    process = start_command([*TINY_RUN, f"run_dir={run_dir}"], tmp_path)
    try:
        pause_at_checkpoint(process, run_dir, lambda s: s["epoch"] == 1)
        process.send_signal(signal.SIGTERM)
        os.kill(process.pid, signal.SIGCONT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    line = stderr.strip().splitlines()[-1]
    assert re.match(rf"stopped by SIGTERM after step \d+ .*resume={re.escape(str(run_dir))}$", line), line
    saved = load(run_dir / "checkpoint.pt")
    assert f"after step {saved['step']} " in line  # the checkpoint is the step it stopped after
    resume(run_dir)
    assert_same_run(run_dir, straight)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_checkpoints_the_step_it_arrived_in(signum, straight, tmp_path, monkeypatch):
    """The signal arrives during step 8 (epoch 2, batch 2): the checkpoint is taken right after
    it, inside the epoch, and continuing from it gives the uninterrupted run."""
    run_dir = tmp_path / "signalled"

    def signal_at_step_8(call, x, params):
        if call == 8:
            os.kill(os.getpid(), signum)
        return x

    hook_objective(monkeypatch, signal_at_step_8)
    with one_thread(), pytest.raises(TrainingInterrupted, match=f"stopped by {signum.name} after "
                                                                 r"step 8 \(epoch 2, batch 2 of 6\)") as stop:
        train(compose_config([*TINY_RUN, f"run_dir={run_dir}"]))
    assert stop.value.exit_status == 128 + signum
    saved = load(run_dir / "checkpoint.pt")
    assert (saved["epoch"], saved["batch"], saved["step"]) == (1, 2, 8)
    assert [r["epoch"] for r in read_metrics(run_dir)] == [1]
    monkeypatch.undo()
    resume(run_dir)
    assert_same_run(run_dir, straight)


def test_an_image_run_resumed_inside_an_epoch_sees_the_same_batches(tmp_path, monkeypatch):
    """Fashion-MNIST through a DataLoader (2 steps per epoch), stopped after step 3."""
    write_fashion_mnist(tmp_path / "data", train_count=32, test_count=16)
    overrides = ["model=fmnist", f"data.root={tmp_path / 'data'}", "data.train_size=32",
                 "data.val_size=16", "data.download=false", "model.latent_dim=8",
                 "elbo.num_particles=2", "batch_size=16", "epochs=2", "num_workers=0", "progress=false"]
    with one_thread():
        train(compose_config([*overrides, f"run_dir={tmp_path / 'straight'}"]))
    hook_objective(monkeypatch, lambda call, x, params: os.kill(os.getpid(), signal.SIGTERM) or x
                   if call == 3 else x)
    with one_thread(), pytest.raises(TrainingInterrupted):
        train(compose_config([*overrides, f"run_dir={tmp_path / 'split'}"]))
    assert load(tmp_path / "split" / "checkpoint.pt")["batch"] == 1
    monkeypatch.undo()
    resume(tmp_path / "split", overrides)
    assert_same_run(tmp_path / "split", tmp_path / "straight")


@pytest.mark.parametrize("cadence", ["checkpoint_every=2", "checkpoint_every_seconds=1e-6"])
def test_a_crash_loses_only_the_steps_since_the_last_checkpoint(cadence, straight, tmp_path, monkeypatch):
    """A crash in step 5 (an exception: no handler runs) leaves the checkpoint of step 4, written
    by the step count or by the clock, and continuing from it gives the uninterrupted run."""

    def crash_at_step_5(call, x, params):
        if call == 5:
            raise RuntimeError("simulated crash")
        return x

    hook_objective(monkeypatch, crash_at_step_5)
    with one_thread(), pytest.raises(RuntimeError, match="simulated crash"):
        train(compose_config([*TINY_RUN, cadence, f"run_dir={tmp_path}"]))
    saved = load(tmp_path / "checkpoint.pt")
    assert (saved["epoch"], saved["batch"], saved["step"]) == (0, 4, 4)
    monkeypatch.undo()
    resume(tmp_path)
    assert_same_run(tmp_path, straight)
