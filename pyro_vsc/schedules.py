"""Per-step warm-up schedules of Appendices B and D, evaluated on device from a step counter.

``time_scale`` runs a schedule faster than the paper's per-step constants, so that a shorter
run passes through the same warm-up (1 reproduces the paper).
"""

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LinearWarmup:
    """ω(t) = min(start + increment·max(s·t - delay, 0), maximum), s = ``time_scale``.

    Appendix B (Laplace scale): start 0.1, increment 2e-4, maximum 1. Appendix D (spike-and-slab):
    start 0, increment 2e-4 after step 1500. Appendix D (FISTA λ): start 0.1, increment 1e-4.
    """

    start: float
    increment: float
    maximum: float = 1.0
    delay: float = 0
    time_scale: float = 1.0

    def __call__(self, step):
        elapsed = (self.time_scale * step - self.delay).clamp(min=0).to(torch.get_default_dtype())
        return (self.start + self.increment * elapsed).clamp(max=self.maximum)

    def end_step(self):
        """First step at which ω has reached its final value (0 if it never changes)."""
        if self.start >= self.maximum or self.increment <= 0:
            return 0
        return math.ceil((self.delay + (self.maximum - self.start) / self.increment) / self.time_scale)


@dataclass(frozen=True)
class ExponentialDecay:
    """τ(t) = max(start·factor^(s·t), minimum), s = ``time_scale``: the Gumbel-softmax
    temperature of Appendix D (start 1, factor 0.9995 per step, minimum 0.5)."""

    start: float
    factor: float
    minimum: float
    time_scale: float = 1.0

    def __call__(self, step):
        value = self.start * torch.exp(math.log(self.factor) * self.time_scale
                                        * step.to(torch.get_default_dtype()))
        return value.clamp(min=self.minimum)

    def end_step(self):
        """First step at which τ has reached its minimum (0 if it never changes)."""
        if self.start <= self.minimum or self.factor >= 1:
            return 0
        return math.ceil(math.log(self.minimum / self.start) / math.log(self.factor) / self.time_scale)
