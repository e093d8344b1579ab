"""Evaluate a trained guide at the end of its warm-up schedules (Appendices B and D)."""

import torch


def warmup_schedules(guide):
    """Every schedule object (with an ``end_step()``) held by the guide or its submodules."""
    return [value for module in guide.modules() for value in vars(module).values()
            if callable(getattr(value, "end_step", None))]


@torch.no_grad()
def finish_warmups(guide):
    """Moves the guide's step counter to where all of its warm-ups have reached their final value.

    The evaluation describes the trained posterior q(z|x): the Laplace scale warm-up ω = 1 (so
    samples follow the law whose ``log_prob`` the IWAE weights use), the spike-and-slab slab warm-up
    ω = 1 and temperature at its minimum, FISTA's λ at its full value. A run trained to its end has
    passed every warm-up already (schedules are compressed for short runs), and then nothing
    changes; a checkpoint from the middle of a run is evaluated as if its warm-ups had finished,
    as the published evaluation did (``ramp_hyperparams``). Guides without a step counter are left
    alone.

    :returns: ``(trained_step, evaluated_step)``, or ``(None, None)`` without a step counter.
    """
    step = getattr(guide, "step", None)
    if not isinstance(step, torch.Tensor):
        return None, None
    trained = int(step)
    end = max([schedule.end_step() for schedule in warmup_schedules(guide)], default=0)
    evaluated = max(trained, end)
    step.fill_(evaluated)
    return trained, evaluated
