"""The training loop's extension points: callbacks from the config, early stopping (recorded,
resume-safe), the CSV and TensorBoard loggers, and checkpoints that load without running code."""

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_vsc.run import run_command, train
from pyro_vsc.train.callbacks import Callback, CallbackList
from pyro_vsc.train.callbacks.early_stopping import EarlyStopping
from pyro_vsc.train.checkpoint import load
from tests.faults import TIMING, TINY_RUN, read_metrics
from tests.helpers import compose_config

#: Six epochs of the tiny run; early stopping on a metric that cannot keep improving.
RUN = [*TINY_RUN, "epochs=6"]


def _without_timing(records):
    return [{k: v for k, v in record.items() if k not in TIMING} for record in records]


class _Stub:
    """The parts of a trainer that EarlyStopping touches."""

    def __init__(self):
        self.stop_reason = None

    def request_stop(self, reason):
        self.stop_reason = reason


@pytest.mark.parametrize("mode, values, stopped_at", [
    ("min", [5.0, 4.0, 4.0, 3.99, 4.5, 3.0], 5),   # 4.0 and 3.99 are not better by min_delta 0.05
    ("max", [1.0, 2.0, 1.5, 2.01, 3.0], None),      # 3.0 improves before patience runs out
    ("min", [1.0, float("nan"), float("nan"), float("nan")], 4),  # NaN never improves
])
def test_early_stopping_counts_epochs_without_an_improvement_of_min_delta(mode, values, stopped_at):
    callback, trainer = EarlyStopping("val_objective", mode=mode, patience=3, min_delta=0.05), _Stub()
    for epoch, value in enumerate(values, start=1):
        record = {"epoch": epoch, "val_objective": value}
        callback.on_validation_end(trainer, record)
        if trainer.stop_reason is not None:
            assert record["stopped_early"] and epoch == stopped_at
            assert record["early_stopping_wait"] == 3
            break
    else:
        assert stopped_at is None


def test_early_stopping_stops_the_run_records_why_and_stays_stopped_when_resumed(tmp_path):
    """patience=2 with a min_delta no change reaches: the run stops after epoch 3 of 6."""
    settings = ["early_stopping.metric=val_objective", "early_stopping.patience=2",
                "early_stopping.min_delta=1e6"]
    history = train(compose_config([*RUN, *settings, f"run_dir={tmp_path}"]))
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["stopped_early"] and history[-1]["early_stopping_wait"] == 2
    assert [r["early_stopping_best"] for r in history] == [history[0]["val_objective"]] * 3
    assert _without_timing(read_metrics(tmp_path)) == _without_timing(history)
    again = train(compose_config([*RUN, *settings, f"resume={tmp_path}"]))
    assert len(again) == 3  # not trained further
    assert load(tmp_path / "checkpoint.pt")["callbacks"]["EarlyStopping"]["stopped"] is True


def test_early_stopping_resumes_its_count(tmp_path):
    """Two sessions equal one: the best value and the wait survive the checkpoint."""
    settings = ["early_stopping.metric=val_objective", "early_stopping.patience=3",
                "early_stopping.min_delta=1.0"]
    whole = train(compose_config([*RUN, *settings, f"run_dir={tmp_path / 'whole'}"]))
    train(compose_config([*RUN, *settings, "session_epochs=2", f"run_dir={tmp_path / 'split'}"]))
    split = train(compose_config([*RUN, *settings, f"resume={tmp_path / 'split'}"]))
    assert _without_timing(split) == _without_timing(whole)


def test_an_unknown_early_stopping_metric_is_one_line(tmp_path, capsys):
    status = run_command(compose_config([*TINY_RUN, "early_stopping.metric=val_objectiv", f"run_dir={tmp_path}"]))
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(errors) == 1
    assert errors[0].startswith("error: early_stopping.metric=val_objectiv is not a metric of this run; "
                                "its epoch records have epoch, step, train_loss")


@pytest.mark.parametrize("override, message", [
    ("early_stopping.patience=0", "early_stopping.patience must be an integer ≥ 1"),
    ("early_stopping.mode=lowest", "early_stopping.mode must be min or max"),
    ("loggers.csv=yes", "loggers.csv must be true or false"),
])
def test_bad_loop_settings_fail_before_training(override, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        train(compose_config([*TINY_RUN, override, f"run_dir={tmp_path}"]))
    assert not (tmp_path / "metrics.jsonl").exists()


def test_the_csv_logger_writes_the_history_and_rewrites_it_on_resume(tmp_path):
    train(compose_config([*TINY_RUN, "loggers.csv=true", "session_epochs=2", f"run_dir={tmp_path}"]))
    train(compose_config([*TINY_RUN, "loggers.csv=true", f"resume={tmp_path}"]))
    with open(tmp_path / "metrics.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    history = read_metrics(tmp_path)
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    for row, record in zip(rows, history):
        assert float(row["val_objective"]) == pytest.approx(record["val_objective"], rel=1e-12)
        assert set(row) == set(record)


def test_the_tensorboard_logger_writes_every_numeric_metric_once_per_epoch(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    train(compose_config([*TINY_RUN, "loggers.tensorboard=true", "session_epochs=2", f"run_dir={tmp_path}"]))
    train(compose_config([*TINY_RUN, "loggers.tensorboard=true", f"resume={tmp_path}"]))
    history = read_metrics(tmp_path)
    events = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("val_objective")
    assert [s.step for s in scalars] == [1, 2, 3]
    assert [s.value for s in scalars] == pytest.approx([r["val_objective"] for r in history], rel=1e-6)
    assert "train_loss" in events.Tags()["scalars"]


def test_a_users_callback_is_one_file_and_one_config_entry(tmp_path):
    run = [*TINY_RUN, "+callbacks.best_epoch._target_=tests.callback_examples.BestEpochFile"]
    train(compose_config([*run, "session_epochs=1", f"run_dir={tmp_path}"]))
    first = json.loads((tmp_path / "best_epoch.json").read_text())
    assert load(tmp_path / "checkpoint.pt")["callbacks"]["BestEpochFile"] == {"best": first}
    history = train(compose_config([*run, f"resume={tmp_path}"]))
    best = min(history, key=lambda record: record["val_objective"])
    assert json.loads((tmp_path / "best_epoch.json").read_text()) == {
        "epoch": best["epoch"], "value": best["val_objective"]}


def test_callbacks_run_in_order_and_main_process_only_ones_only_on_rank_0():
    calls = []

    class Recorder(Callback):
        def __init__(self, name, main_only):
            self.name, self.main_process_only = name, main_only

        def on_log(self, trainer):
            calls.append(self.name)

    everywhere, main = Recorder("everywhere", False), Recorder("main", True)
    CallbackList([main, everywhere], is_main=True).on_log(None)
    CallbackList([main, everywhere], is_main=False).on_log(None)
    assert calls == ["main", "everywhere", "everywhere"]


def test_a_checkpoint_stores_the_rng_states_once_in_plain_types(tmp_path):
    train(compose_config([*TINY_RUN, "epochs=1", f"run_dir={tmp_path}"]))
    state = load(tmp_path / "checkpoint.pt")
    assert "rng" not in state and len(state["process_rng"]) == 1
    assert isinstance(state["process_rng"][0]["numpy"][1], torch.Tensor)


def test_a_checkpoint_carrying_a_pickled_callable_is_refused_in_one_line(tmp_path, capsys):
    train(compose_config([*TINY_RUN, "session_epochs=1", f"run_dir={tmp_path}"]))
    state = load(tmp_path / "checkpoint.pt")
    state["history"].append({"payload": os.system})  # what a crafted file could carry
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"refusing to load the checkpoint .*checkpoint\.pt: it holds a "
                                         r"pickled posix\.system, and loading it would run code"):
        load(tmp_path / "checkpoint.pt")
    status = run_command(compose_config([*TINY_RUN, f"resume={tmp_path}"]))
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(errors) == 1 and "pickled posix.system" in errors[0]


def test_a_checkpoint_of_the_previous_format_still_resumes_exactly(tmp_path):
    """Checkpoints written before this layout (RNG stored twice, NumPy's state as an array, no
    callback or objective state) continue the run as before."""
    whole = train(compose_config([*TINY_RUN, f"run_dir={tmp_path / 'whole'}"]))
    split = tmp_path / "split"
    train(compose_config([*TINY_RUN, "session_epochs=1", f"run_dir={split}"]))
    state = load(split / "checkpoint.pt")
    for process in state["process_rng"]:
        name, keys, *rest = process["numpy"]
        process["numpy"] = (name, keys.numpy().astype(np.uint32), *rest)
    state["rng"] = state["process_rng"][0]
    state["epoch_applied"] = 0
    for key in ("callbacks", "objective"):
        del state[key]
    torch.save(state, split / "checkpoint.pt")
    resumed = train(compose_config([*TINY_RUN, f"resume={split}"]))
    assert _without_timing(resumed) == _without_timing(whole)
    assert Path(split / "metrics.jsonl").exists()
