"""Thresholded Laplace: a spike-and-slab whose slab is the whole base Laplace (Prop. 3.1)."""

import math

import torch

from .thresholded import ThresholdedDistribution

#: Appendix B clamps the log term of the Laplace reparameterization at this minimum.
LAPLACE_LOG_CLAMP = 1e-6


def laplace_noise(shape, like, log_clamp=LAPLACE_LOG_CLAMP):
    r"""Standard Laplace noise by Appendix B's rule (Connor et al., 2020).

    :math:`u \sim \mathrm{Unif}(-\tfrac12, \tfrac12)`, :math:`\epsilon = -\mathrm{sign}(u)\log(1-2|u|)`
    with ``1 - 2|u|`` clamped below at ``log_clamp`` (so |ε| ≤ -log(log_clamp) ≈ 13.8).
    """
    u = torch.rand(shape, dtype=like.dtype, device=like.device) - 0.5
    return -u.sign() * torch.log((1.0 - 2.0 * u.abs()).clamp(min=log_clamp))


class ThresholdedLaplace(ThresholdedDistribution):
    r"""Law of :math:`z = T(s;\lambda,\mu)`, :math:`s \sim \mathrm{Laplace}(\mu, b)` (§3.2, Appendix A).

    By Prop. 3.1 the law is exactly the spike-and-slab

    .. math:: p(z) = (1-\gamma)\,\delta_0(z) + \gamma\,\mathrm{Laplace}(z;\mu,b),
              \qquad \gamma = e^{-\lambda/b}.

    Derivation (Appendix A, eq. 14): for :math:`s > \mu+\lambda` the sample moves to
    :math:`z = s-\lambda > \mu`, with density
    :math:`\frac{1}{2b}e^{-(z+\lambda-\mu)/b} = \gamma\,\frac{1}{2b}e^{-|z-\mu|/b}`, and symmetrically
    below :math:`\mu`, so the slab is the full, untruncated base Laplace scaled by γ, while
    :math:`P(|s-\mu|\le\lambda) = 1-e^{-\lambda/b}` (eq. 3) collapses to zero.
    """

    def standard_noise(self, shape):
        return laplace_noise(shape, self.loc)

    @classmethod
    def log_nonzero_prob_of(cls, scale, threshold):
        return -threshold / scale

    @classmethod
    def log_zero_prob_of(cls, scale, threshold):
        # log(1 - exp(-λ/b)) computed without cancellation for small λ/b; -inf at λ = 0, where
        # the stand-in ratio keeps log(0)'s infinite derivative out of autograd (see thresholded.py)
        ratio = threshold / scale
        has_spike = ratio > 0
        safe_ratio = torch.where(has_spike, ratio, torch.ones_like(ratio))
        return torch.where(has_spike, torch.log(-torch.expm1(-safe_ratio)), -math.inf)

    @classmethod
    def slab_log_prob_of(cls, value, loc, scale, threshold):
        return (cls.log_nonzero_prob_of(scale, threshold) - (value - loc).abs() / scale
                - torch.log(2 * scale))

    @property
    def mean(self):
        return self.nonzero_prob * self.loc

    @property
    def variance(self):
        gamma = self.nonzero_prob
        second_moment = gamma * (self.loc ** 2 + 2 * self.scale ** 2)
        return second_moment - (gamma * self.loc) ** 2

    @staticmethod
    def threshold_for(scale, nonzero_fraction):
        r"""λ0 giving a target non-zero fraction γ under a Laplace(0, b) base: :math:`\lambda_0 = -b\ln\gamma`."""
        return -scale * math.log(nonzero_fraction)

    @staticmethod
    def nonzero_fraction_for(scale, threshold):
        """γ = exp(-λ/b) for a Laplace(μ, b) base and threshold λ."""
        return math.exp(-threshold / scale)
