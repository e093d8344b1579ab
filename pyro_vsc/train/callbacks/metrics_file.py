"""``metrics.jsonl``: one JSON record per epoch, and a final ``diverged`` record if the run
diverged (README, "Reliability")."""

import json
from pathlib import Path

from ..checkpoint import RunFolderWriteError, write_text_atomic
from . import Callback

METRICS_NAME = "metrics.jsonl"


class MetricsFile(Callback):
    """Writes the run's history to ``<run_dir>/metrics.jsonl`` atomically after every epoch.

    The whole file is rewritten from the history (which the checkpoint holds), so that a run
    killed between the two writes of an epoch's end, whose checkpoint is one record ahead,
    gets the missing record when it continues.
    """

    def __init__(self, run_dir):
        self.path = Path(run_dir) / METRICS_NAME

    def write(self, trainer, records):
        try:
            write_text_atomic("".join(json.dumps(record) + "\n" for record in records), self.path)
        except OSError as error:
            raise RunFolderWriteError(
                f"cannot write {self.path}: {error}; {trainer.checkpoints.describe_last()}: free space "
                f"(or fix the folder) and continue with resume={self.path.parent}") from error

    def on_fit_start(self, trainer):
        if trainer.history:
            self.write(trainer, trainer.history)

    def on_epoch_end(self, trainer, record):
        self.write(trainer, trainer.history)

    def on_divergence(self, trainer, record):
        self.write(trainer, [*trainer.history, record])
