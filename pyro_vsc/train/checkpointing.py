"""When and where a run writes its checkpoint, and resuming from it (README, "Reliability").

The trainer assembles *what* a checkpoint holds (:meth:`~pyro_vsc.train.trainer.Trainer.state_dict`);
a :class:`Checkpointer` decides *when* to write it (after every epoch, every ``every_steps``
steps, at least every ``every_seconds`` seconds, and when a signal asks the run to stop), writes
it atomically (:func:`~pyro_vsc.train.checkpoint.save_atomic`), and finds it again when the run
continues.
"""

import logging
import time
from pathlib import Path

from .checkpoint import (CHECKPOINT_NAME, RunFolderWriteError, load, prepare_run_folder,
                         remove_stale_temporaries, save_atomic)
from .distributed import DistributedContext
from .position import describe_position

log = logging.getLogger(__name__)


class Checkpointer:
    """Writes ``checkpoint.pt`` of a run folder and reads it back.

    Rank 0 writes; under data parallelism every process reads the same file when the run
    continues (on several nodes the run folder must be on a shared filesystem), and the
    time-based decision is taken by rank 0 for all.

    :param run_dir: the run folder.
    :param every_steps: also write every this many steps inside an epoch (``None``: at epoch ends).
    :param every_seconds: also write when this many seconds have passed since the last
        checkpoint (``None``: no time limit).
    :param context: a :class:`~pyro_vsc.train.distributed.DistributedContext`.
    :param dict config: the run's resolved config (plain data), stored in every checkpoint under
        ``config`` so that the file alone describes the run (:func:`pyro_vsc.load_run`).
    """

    def __init__(self, run_dir, every_steps=None, every_seconds=None, context=None, config=None):
        self.run_dir = Path(run_dir)
        self.every_steps, self.every_seconds = every_steps, every_seconds
        self.config = config
        self.context = context or DistributedContext()
        self.saved_at = None  # (epoch, batch, step) of the last checkpoint on disk
        self._last_save = time.monotonic()

    @property
    def path(self):
        return self.run_dir / CHECKPOINT_NAME

    def prepare(self):
        """Checks that rank 0 can write the folder and removes temporary files of a killed write."""
        if self.context.is_main:
            prepare_run_folder(self.run_dir)
            for stale in remove_stale_temporaries(self.path):
                log.info("removed %s, left by an interrupted checkpoint write", stale)

    def load(self):
        """The checkpoint's content (on the CPU: RNG states must be there; the trainer moves the
        rest), or ``None`` if the folder has none (a collective)."""
        if not self.context.broadcast(self.path.exists()):
            return None
        if not self.path.exists():
            raise FileNotFoundError(f"rank {self.context.rank} cannot read {self.path}, which rank 0 "
                                    "resumes from: put the run folder on a filesystem that every node shares")
        return load(self.path)

    def restart_clock(self):
        self._last_save = time.monotonic()

    def due(self, step, at_log):
        """Whether to write a checkpoint after ``step``: every ``every_steps`` steps, or when
        ``every_seconds`` have passed (decided together at the progress interval under data
        parallelism)."""
        timed = self.every_seconds is not None and time.monotonic() - self._last_save >= self.every_seconds
        if self.context.distributed:
            timed = self.context.broadcast(timed) if at_log else False
        return (self.every_steps is not None and step % self.every_steps == 0) or timed

    def save(self, state, position, steps=None):
        """Writes ``state`` (rank 0); a failed write stops the run and keeps the previous
        checkpoint (a run that cannot save would otherwise lose all its work silently)."""
        if self.context.is_main:
            if self.config is not None:
                state = {**state, "config": self.config}
            try:
                save_atomic(state, self.path)
            except OSError as error:
                raise RunFolderWriteError(
                    f"cannot write the checkpoint at {position.describe(steps=steps)}: {error}; "
                    f"{self.describe_last(steps)}: free space (or fix the folder) and continue with "
                    f"resume={self.run_dir}") from error
        self.saved_at = (position.epoch, position.batch, position.step)
        self.restart_clock()

    def describe_last(self, steps=None):
        """'the last checkpoint, <path> at step k (...), is intact', for messages."""
        if self.saved_at is None:
            return "no checkpoint was written"
        return f"the last checkpoint, {self.path} at {describe_position(*self.saved_at, steps)}, is intact"
