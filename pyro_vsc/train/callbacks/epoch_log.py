"""One log line per epoch with its numbers (``logging``, level INFO)."""

import logging

from . import Callback

log = logging.getLogger("pyro_vsc.train")


class EpochLog(Callback):
    def on_epoch_end(self, trainer, record):
        log.info("epoch %d/%d: %s", record["epoch"], trainer.epochs,
                 ", ".join(f"{key}={value:.4g}" for key, value in record.items() if isinstance(value, float)))
