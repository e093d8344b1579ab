"""KL weights β of eq. (5), applied to named latent sites of both model and guide, and their
optional linear warm-up."""

import torch
from pyro.poutine.messenger import Messenger
from torch import nn


class KLWeights(Messenger):
    r"""Multiplies the scale of named latent sites, like ``poutine.scale`` restricted to them.

    Eq. (5) weights the KL of the base distribution by β₁ and the KL of the threshold posterior
    by β₂ (Appendix D: β₂ = β₁/10). Wrapping *both* the model and the guide with the same
    weights keeps every ELBO consistent: ``TraceMeanField_ELBO`` and :class:`MaxELBO` scale an
    analytic KL by the guide site's scale, ``Trace_ELBO`` and ``RenyiELBO`` scale log p by the
    model site's and log q by the guide site's. Observed sites are never touched.

    :param weights: latent site → weight, e.g. ``{"z": 1e-2, "threshold": 1e-3}``, or a
        :class:`KLWarmup` whose weights change during training.
    """

    def __init__(self, weights):
        super().__init__()
        self.weights = weights if isinstance(weights, KLWarmup) else dict(weights)

    def _process_message(self, msg):
        if msg["type"] != "sample" or msg["is_observed"]:
            return
        weight = self.weights.get(msg["name"])
        if weight is not None:
            msg["scale"] = weight * msg["scale"]


class KLWarmup(nn.Module):
    r"""KL weights that ramp up linearly from 0 (KL annealing, Bowman et al., 2016):
    :math:`\beta_s(t) = \beta_s \min(1, t / T)` for every weighted site s after t training
    steps, T = ``warmup_steps``.

    The weights and the step counter are buffers: a recorded objective
    (:mod:`pyro_vsc.train.capture`) reads their current values at every replay, ``.to(device)``
    moves them and checkpoints keep them. The training loop calls :meth:`advance` after every
    applied step.

    :param dict weights: latent site → target weight β_s.
    :param int warmup_steps: T ≥ 1, the steps after which every weight has reached its target.
    """

    def __init__(self, weights, warmup_steps):
        super().__init__()
        if int(warmup_steps) != warmup_steps or warmup_steps < 1:
            raise ValueError(f"kl_warmup_steps must be an integer ≥ 1 for a warm-up, got {warmup_steps}")
        self.warmup_steps = int(warmup_steps)
        self.sites = {site: index for index, site in enumerate(weights)}
        for site, index in self.sites.items():
            self.register_buffer(f"target_{index}", torch.as_tensor(float(weights[site])))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def factor(self):
        """min(1, t / T)."""
        return (self.step.to(torch.get_default_dtype()) / self.warmup_steps).clamp(max=1.0)

    def get(self, site):
        """The current weight of ``site`` (a 0-dim tensor), or ``None`` if it is not weighted."""
        index = self.sites.get(site)
        return None if index is None else getattr(self, f"target_{index}") * self.factor()

    def advance(self):
        """One training step later (no host synchronisation)."""
        self.step += 1
