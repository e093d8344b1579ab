"""TensorBoard event files of a run (``tensorboard --logdir runs``); needs the ``tensorboard``
package (``pip install 'pyro-vsc[tensorboard]'``)."""

from pathlib import Path

from . import Callback


class TensorBoardLogger(Callback):
    """Every numeric entry of each epoch's record as a scalar at step = epoch, in
    ``<run_dir>/<subdir>``. A continued run drops the events past its last checkpointed epoch
    (``purge_step``), so curves have no duplicated epochs.

    :param run_dir: the run folder.
    :param str subdir: the folder of the event files inside it.
    """

    def __init__(self, run_dir, subdir="tensorboard"):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ValueError("loggers.tensorboard=true needs the tensorboard package: "
                             "pip install 'pyro-vsc[tensorboard]' (or pip install tensorboard)") from error
        self._writer_class = SummaryWriter
        self.log_dir = Path(run_dir) / subdir
        self.writer = None

    def on_fit_start(self, trainer):
        self.writer = self._writer_class(str(self.log_dir), purge_step=len(trainer.history) + 1)

    def on_epoch_end(self, trainer, record):
        for key, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
                self.writer.add_scalar(key, value, global_step=record["epoch"])
        self.writer.flush()

    def on_fit_end(self, trainer):
        if self.writer is not None:
            self.writer.close()
            self.writer = None
