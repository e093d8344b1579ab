"""``metrics.csv``: the history as a table, for spreadsheets and ``pandas.read_csv``."""

import csv
import io
from pathlib import Path

from ..checkpoint import write_text_atomic
from . import Callback


class CSVLogger(Callback):
    """Rewrites ``<run_dir>/<name>`` from the history after every epoch (and when a run
    continues): one row per epoch, one column per metric, in order of first appearance; a
    metric an epoch does not have is left empty.

    :param run_dir: the run folder.
    :param str name: the file name.
    """

    def __init__(self, run_dir, name="metrics.csv"):
        self.path = Path(run_dir) / name

    def write(self, history):
        columns = list(dict.fromkeys(key for record in history for key in record))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        write_text_atomic(text.getvalue(), self.path)

    def on_fit_start(self, trainer):
        if trainer.history:
            self.write(trainer.history)

    def on_epoch_end(self, trainer, record):
        self.write(trainer.history)
