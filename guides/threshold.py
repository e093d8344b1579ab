"""Threshold posteriors for the thresholded guides: fixed λ₀ or a Gamma posterior (§3.2)."""

import pyro
import torch
from torch import nn

from pyro_vsc.distributions import VectorizedGamma

#: Appendix B: the Gamma parameters are clamped to [1e-6, 1e6].
GAMMA_CLAMP = (1e-6, 1e6)


class FixedThreshold(nn.Module):
    """λ = λ₀ for every data point and dimension (§3.2, "fixed as a hyper-parameter")."""

    heads = ()

    def __init__(self, threshold):
        super().__init__()
        if not threshold > 0:
            raise ValueError(f"threshold λ₀ must be > 0, got {threshold}")
        self.register_buffer("threshold", torch.as_tensor(float(threshold)))

    def forward(self, params):
        return self.threshold


class GammaThreshold(nn.Module):
    r"""λ ~ Γ(α(x), β(x)) per dimension, pathwise-reparameterized (Jankowiak & Obermeyer, 2018).

    Heads (log α, log β); α and β are clamped to ``clamp`` (Appendix B: [1e-6, 1e6]). Samples
    the ``threshold`` site, which the model's Gamma prior Γ(α₀, α₀/λ₀) scores, with
    :class:`~pyro_vsc.distributions.VectorizedGamma` (torch's Gamma law, a vectorized sampler and
    gradient: the same distribution, another random stream than ``dist.Gamma``).
    """

    heads = ("log_alpha", "log_beta")

    def __init__(self, clamp=GAMMA_CLAMP):
        super().__init__()
        low, high = clamp
        if not 0 < low < high:
            raise ValueError(f"Gamma parameter clamp must satisfy 0 < low < high, got {clamp}")
        self.clamp = (float(low), float(high))

    def forward(self, params):
        alpha = params["log_alpha"].exp().clamp(*self.clamp)
        rate = params["log_beta"].exp().clamp(*self.clamp)
        return pyro.sample("threshold", VectorizedGamma(alpha, rate).to_event(1))
