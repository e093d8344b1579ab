"""Thresholded Normal: soft-thresholded Gaussian samples (§3.2, Table 1 'Thresholded Gaussian')."""

import math

import torch
from scipy.stats import norm

from .constants import HALF_LOG_2PI
from .thresholded import ThresholdedDistribution

_LOG_2 = math.log(2.0)


class ThresholdedNormal(ThresholdedDistribution):
    r"""Law of :math:`z = T(s;\lambda,\mu)`, :math:`s \sim \mathcal N(\mu, \sigma^2)`.

    Spike: :math:`P(z=0) = P(|s-\mu|\le\lambda) = \mathrm{erf}(\lambda/(\sigma\sqrt2))`, so
    :math:`\gamma = 2\Phi(-\lambda/\sigma)`.

    Slab: unlike the Laplace case the slab is *not* the base Normal. For :math:`s>\mu+\lambda`,
    :math:`z=s-\lambda>\mu` has density :math:`\mathcal N(z+\lambda;\mu,\sigma)`, i.e.
    :math:`\mathcal N(|z-\mu|+\lambda; 0,\sigma)`; the case :math:`s<\mu-\lambda` gives the same
    expression for :math:`z<\mu`. Hence, for :math:`z \ne 0`,

    .. math:: p(z) = \frac{1}{\sigma\sqrt{2\pi}}\exp\Big(-\frac{(|z-\mu|+\lambda)^2}{2\sigma^2}\Big),

    which integrates to :math:`2\int_{\lambda}^\infty \mathcal N(t;0,\sigma)\,dt = \gamma`. The
    Normal tail does not factor as the Laplace tail does (no memorylessness), so the slab is a
    Normal folded about μ and pulled in by λ, with a cusp at μ.
    """

    def standard_noise(self, shape):
        return torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)

    @classmethod
    def log_nonzero_prob_of(cls, scale, threshold):
        return torch.special.log_ndtr(-threshold / scale) + _LOG_2

    @classmethod
    def log_zero_prob_of(cls, scale, threshold):
        # -inf at λ = 0, where the stand-in ratio keeps log(0)'s infinite derivative out of
        # autograd (see thresholded.py)
        ratio = threshold / (scale * math.sqrt(2.0))
        has_spike = ratio > 0
        safe_ratio = torch.where(has_spike, ratio, torch.ones_like(ratio))
        return torch.where(has_spike, torch.log(torch.erf(safe_ratio)), -math.inf)

    @classmethod
    def slab_log_prob_of(cls, value, loc, scale, threshold):
        shifted = ((value - loc).abs() + threshold) / scale
        return -0.5 * shifted ** 2 - torch.log(scale) - HALF_LOG_2PI

    @property
    def mean(self):
        # The slab is symmetric about μ with mass γ.
        return self.nonzero_prob * self.loc

    @property
    def variance(self):
        # E[u^2; z != 0] with u = z - μ: 2∫_a^∞ (σt - λ)^2 φ(t) dt, a = λ/σ, using
        # ∫_a^∞ t²φ = aφ(a) + Q(a), ∫_a^∞ tφ = φ(a), ∫_a^∞ φ = Q(a).
        a = self.threshold / self.scale
        pdf = torch.exp(-0.5 * a ** 2 - HALF_LOG_2PI)
        tail = torch.special.ndtr(-a)
        slab_u2 = 2 * (self.scale ** 2 * (a * pdf + tail) - 2 * self.scale * self.threshold * pdf
                       + self.threshold ** 2 * tail)
        gamma = self.nonzero_prob
        return gamma * self.loc ** 2 + slab_u2 - (gamma * self.loc) ** 2

    @staticmethod
    def threshold_for(scale, nonzero_fraction):
        r"""λ0 giving non-zero fraction γ under a N(0, σ²) base: :math:`\lambda_0 = \sigma\,\Phi^{-1}(1-\gamma/2)`."""
        return scale * float(norm.ppf(1.0 - nonzero_fraction / 2.0))

    @staticmethod
    def nonzero_fraction_for(scale, threshold):
        """γ = 2 Φ(-λ/σ) for a N(μ, σ²) base and threshold λ."""
        return float(2.0 * norm.cdf(-threshold / scale))
