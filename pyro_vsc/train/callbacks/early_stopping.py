"""Early stopping on a validation metric (as Lightning's ``EarlyStopping``), resume-safe."""

import math

from . import Callback


class EarlyStoppingMetricError(ValueError):
    """The metric to watch is not in the run's epoch records."""


class EarlyStopping(Callback):
    """Stops training once ``metric`` has not improved by more than ``min_delta`` for
    ``patience`` epochs in a row.

    Each epoch's record gets ``early_stopping_best`` (the best value so far) and
    ``early_stopping_wait`` (epochs since it), and the last record ``stopped_early: true`` when
    this callback stopped the run. Its state is checkpointed, and a run that stopped early does
    not train further when it is continued. A NaN value never counts as an improvement.

    :param str metric: a key of the epoch records, e.g. ``val_objective`` (``None``: disabled).
    :param str mode: ``min`` (lower is better) or ``max``.
    :param int patience: epochs without improvement before stopping (≥ 1).
    :param float min_delta: the smallest change that counts as an improvement (≥ 0).
    """

    main_process_only = False  # every process must stop at the same epoch

    def __init__(self, metric=None, mode="min", patience=5, min_delta=0.0):
        if mode not in ("min", "max"):
            raise ValueError(f"early_stopping.mode must be min or max, got {mode!r}")
        if int(patience) != patience or patience < 1:
            raise ValueError(f"early_stopping.patience must be an integer ≥ 1, got {patience!r}")
        if not min_delta >= 0:
            raise ValueError(f"early_stopping.min_delta must be a number ≥ 0, got {min_delta!r}")
        self.metric, self.mode = metric, mode
        self.patience, self.min_delta = int(patience), float(min_delta)
        self.best, self.best_epoch, self.wait, self.stopped = None, None, 0, False

    @property
    def enabled(self):
        return self.metric is not None

    def _improves(self, value):
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        return value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta

    def on_fit_start(self, trainer):
        if self.stopped:
            trainer.request_stop(self._reason())

    def on_validation_end(self, trainer, record):
        if not self.enabled:
            return
        if self.metric not in record:
            numeric = [k for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
            raise EarlyStoppingMetricError(
                f"early_stopping.metric={self.metric} is not a metric of this run; its epoch records "
                f"have {', '.join(numeric)}")
        value = float(record[self.metric])
        if self._improves(value):
            self.best, self.best_epoch, self.wait = value, record["epoch"], 0
        else:
            self.wait += 1
        record["early_stopping_best"] = self.best
        record["early_stopping_wait"] = self.wait
        if self.wait >= self.patience:
            self.stopped = True
            record["stopped_early"] = True
            trainer.request_stop(self._reason())

    def _reason(self):
        best = "none (every value was NaN)" if self.best is None else f"{self.best:.6g}, at epoch {self.best_epoch}"
        return (f"early stopping: {self.metric} has not improved by more than {self.min_delta:g} "
                f"for {self.patience} epoch(s); the best: {best}")

    def state_dict(self):
        if not self.enabled:
            return {}
        return {"metric": self.metric, "best": self.best, "best_epoch": self.best_epoch,
                "wait": self.wait, "stopped": self.stopped}

    def load_state_dict(self, state):
        if state.get("metric") == self.metric:
            self.best, self.best_epoch = state["best"], state["best_epoch"]
            self.wait, self.stopped = state["wait"], state["stopped"]
