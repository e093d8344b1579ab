"""What a run does when a step's loss, an ELBO term or a gradient is NaN or infinite.

A policy is one object behind the interface of :class:`DivergencePolicy`, used by the trainer at
three points of every step: before the forward pass, after the backward pass (where it decides
whether the update is applied) and where the loop reads the host anyway (the progress interval,
before a checkpoint, at the epoch's end). ``on_divergence=stop|skip`` selects one by name
(:data:`POLICIES`); a new policy is a new subclass.
"""

import logging

import torch

from .divergence import DivergenceMonitor

log = logging.getLogger(__name__)


def _summary(names, shown=4):
    """The first ``shown`` names, then how many more."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


class DivergencePolicy:
    """The interface: a trainer calls :meth:`start` once, then at every step :meth:`before_step`,
    :meth:`after_backward`, and :meth:`check` at its host reads. A policy stops a run with
    ``trainer.diverged(step, batch, nonfinite, what)``, which writes the ``diverged`` record and
    raises :class:`~pyro_vsc.train.divergence.TrainingDiverged`.

    :param int max_skipped_steps: for policies that skip batches, the most a run may skip.
    """

    def __init__(self, max_skipped_steps=100):
        self.max_skipped_steps = int(max_skipped_steps)

    def start(self, trainer):
        """Builds the monitor of the trainer's parameters (their gradients are not checked under
        float16 gradient scaling, whose scaler handles overflowing gradients itself)."""
        named = trainer.named_parameters() if trainer.optimizers.grad_scaler is None else []
        self.monitor = DivergenceMonitor(named)

    def before_step(self, trainer):
        """Called before the step's forward pass."""

    def after_backward(self, trainer, loss, site_terms):
        """Called after the backward pass; returns whether the optimizers may apply the update."""
        return True

    def check(self, trainer):
        """Called where the loop reads the host (no later than before any checkpoint)."""


class StopOnDivergence(DivergencePolicy):
    """``on_divergence=stop``: the first unhealthy step is remembered on the device without a host
    read, found at the next :meth:`check`, and the run stops there, with no checkpoint written
    after it."""

    def after_backward(self, trainer, loss, site_terms):
        self.monitor.observe(trainer.position.step + 1, loss, site_terms)
        return True

    def check(self, trainer):
        found = self.monitor.first_divergence()
        context = trainer.context
        if context.distributed:
            found = min((f for f in context.gather(found) if f is not None), default=None, key=lambda f: f[0])
        if found is not None:
            step, nonfinite = found
            batch = step - (trainer.position.step - trainer.position.batch)
            trainer.diverged(step, batch, nonfinite,
                             f"non-finite {_summary(nonfinite)} at {trainer.describe_position(step, batch)}")


class SkipDivergentBatches(DivergencePolicy):
    """``on_divergence=skip``: every step is checked at once (one host synchronisation per step)
    and an unhealthy batch changes nothing: no optimizer, schedule or warm-up step, and the
    buffers its forward pass changed (BatchNorm statistics) are restored. More than
    ``max_skipped_steps`` skipped batches stop the run as diverged.
    """

    def start(self, trainer):
        super().start(trainer)
        self.buffers = [b for module in (trainer.model, trainer.guide) for b in module.buffers()]

    def before_step(self, trainer):
        self._saved = [b.clone() for b in self.buffers]  # the forward pass updates BatchNorm's

    def after_backward(self, trainer, loss, site_terms):
        nonfinite = self.monitor.nonfinite(loss, site_terms)
        if trainer.context.distributed:  # every process must skip the same steps
            nonfinite = sorted({name for names in trainer.context.gather(nonfinite) for name in names})
        if not nonfinite:
            return True
        with torch.no_grad():
            for buffer, saved in zip(self.buffers, self._saved):
                buffer.copy_(saved)
        position = trainer.position
        position.skipped()
        where = trainer.describe_position(batch=position.batch + 1)
        if position.skipped_steps > self.max_skipped_steps:
            trainer.diverged(position.step, position.batch + 1, nonfinite,
                             f"more than max_skipped_steps={self.max_skipped_steps} batches had "
                             f"non-finite values, the last at {where}")
        if trainer.context.is_main:
            log.warning("skipped the batch of %s: non-finite %s (%d skipped so far)", where,
                        _summary(nonfinite), position.skipped_steps)
        return False


#: ``on_divergence`` names → policies.
POLICIES = {"stop": StopOnDivergence, "skip": SkipDivergentBatches}


def divergence_policy(name, max_skipped_steps=100):
    """The policy of a config's ``on_divergence`` (and ``max_skipped_steps``)."""
    if name not in POLICIES:
        raise ValueError(f"on_divergence must be one of {', '.join(POLICIES)}, got {name!r}")
    return POLICIES[name](max_skipped_steps)
