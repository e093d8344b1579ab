"""A user's callback, as README "The training loop" describes it: one file, one config entry
(``+callbacks.best_epoch._target_=tests.callback_examples.BestEpochFile``)."""

import json

from pyro_vsc.train.callbacks import Callback


class BestEpochFile(Callback):
    """Writes ``best_epoch.json`` with the epoch of the lowest ``metric`` so far; keeps the best
    value in its state, so that a continued run remembers it."""

    def __init__(self, metric="val_objective"):
        self.metric, self.best = metric, None

    def on_validation_end(self, trainer, record):  # state: updated before the checkpoint
        if self.best is None or record[self.metric] < self.best["value"]:
            self.best = {"epoch": record["epoch"], "value": record[self.metric]}

    def on_epoch_end(self, trainer, record):  # side effects: after it
        (trainer.run_dir / "best_epoch.json").write_text(json.dumps(self.best))

    def state_dict(self):
        return {} if self.best is None else {"best": self.best}

    def load_state_dict(self, state):
        self.best = state["best"]
