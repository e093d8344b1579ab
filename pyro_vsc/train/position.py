"""Where a run is: epochs and steps done, the position inside the epoch and its running sums."""

from dataclasses import dataclass, field

import torch


def describe_position(epoch, batch, step, steps=None):
    """A training position for messages: step k (epoch e, batch b of n), counted from 1."""
    if step == 0:
        return "step 0 (before training)"
    if batch == 0:
        return f"step {step} (the end of epoch {epoch})"
    return f"step {step} (epoch {epoch + 1}, batch {batch}{'' if steps is None else f' of {steps}'})"


@dataclass
class TrainingPosition:
    """The counters of a run, checkpointed so that a resumed run continues exactly.

    :ivar int epoch: epochs completed.
    :ivar int step: training steps taken (applied or skipped).
    :ivar int batch: batches of the current epoch done.
    :ivar int skipped_steps: batches skipped by the divergence policy, in the whole run.
    :ivar epoch_loss: sum of the losses of the current epoch's applied steps (device), or ``None``.
    :ivar epoch_breakdown: their sums of what moves in the loss (name → device tensor: ``recon``,
        ``kl``, ``constant``, see :meth:`~pyro_vsc.elbo.max_elbo.ParticleELBO.breakdown`).
    :ivar int epoch_skipped: batches of the current epoch skipped.
    :ivar float epoch_seconds: training time of the current epoch so far.
    """

    epoch: int = 0
    step: int = 0
    batch: int = 0
    skipped_steps: int = 0
    epoch_loss: torch.Tensor = field(default=None, repr=False)
    epoch_breakdown: dict = field(default_factory=dict, repr=False)
    epoch_skipped: int = 0
    epoch_seconds: float = 0.0

    @property
    def epoch_applied(self):
        """Steps of the current epoch whose update was applied."""
        return self.batch - self.epoch_skipped

    def add_loss(self, loss, breakdown=None):
        """Adds an applied step's loss (and its breakdown) to the epoch's sums (on the device)."""
        self.epoch_loss = loss if self.epoch_loss is None else self.epoch_loss + loss
        for name, value in (breakdown or {}).items():
            total = self.epoch_breakdown.get(name)
            self.epoch_breakdown[name] = value if total is None else total + value

    def skipped(self):
        """Counts a skipped batch: the step counter moves on, the training state does not."""
        self.step += 1
        self.skipped_steps += 1
        self.epoch_skipped += 1

    def next_epoch(self):
        """The current epoch is complete."""
        self.epoch += 1
        self.batch, self.epoch_loss, self.epoch_skipped, self.epoch_seconds = 0, None, 0, 0.0
        self.epoch_breakdown = {}

    def describe(self, step=None, batch=None, steps=None):
        """'step k (epoch e, batch b of n)'; defaults to the current position."""
        return describe_position(self.epoch, self.batch if batch is None else batch,
                                 self.step if step is None else step, steps)

    def state_dict(self):
        """The counters (the running loss is gathered over processes by the trainer)."""
        return {"epoch": self.epoch, "step": self.step, "batch": self.batch,
                "skipped_steps": self.skipped_steps, "epoch_skipped": self.epoch_skipped,
                "epoch_seconds": self.epoch_seconds}

    def load_state_dict(self, state, epoch_loss=None, epoch_breakdown=None):
        self.next_epoch()
        self.epoch, self.step = state["epoch"], state["step"]
        self.batch, self.skipped_steps = state.get("batch", 0), state.get("skipped_steps", 0)
        if self.batch:
            self.epoch_loss, self.epoch_breakdown = epoch_loss, dict(epoch_breakdown or {})
            self.epoch_skipped, self.epoch_seconds = state["epoch_skipped"], state["epoch_seconds"]
