"""Thresholded posteriors (§3.2, Algorithm 1): the four 'Thresholded …' rows of Table 1."""

import pyro

from pyro_vsc.distributions import ThresholdedLaplace, ThresholdedNormal
from pyro_vsc.schedules import LinearWarmup

from .base import AmortizedGuide
from .laplace import PAPER_SCALE_WARMUP

#: No warm-up: ω = 1 throughout (the Gaussian base has none in the paper).
NO_WARMUP = LinearWarmup(start=1.0, increment=0.0)


class ThresholdedGuide(AmortizedGuide):
    r"""z = T_λ(s), s ~ Base(μ(x), scale(x)), with the straight-through estimator of eq. (4).

    Subclasses name the base family's law (:attr:`family`, a
    :class:`~pyro_vsc.distributions.ThresholdedDistribution`), its location and scale heads
    (:attr:`heads`, location first) and how the scale head becomes the scale
    (:meth:`base_scale`). ``threshold`` is a :class:`~pyro_vsc.guides.threshold.FixedThreshold`
    (λ₀) or a :class:`~pyro_vsc.guides.threshold.GammaThreshold` (Gamma posterior), whose heads
    are added to the encoder's. The warm-up ω of Appendix B multiplies the sampling noise.

    :param bool straight_through: eq. (4) (default) or the subgradient (Appendix C, Table 2).
    :param scale_warmup: schedule of ω (default: none, ω = 1).
    """

    family = None

    def __init__(self, backbone, latent_dim, threshold, straight_through=True, scale_warmup=NO_WARMUP):
        super().__init__(backbone, latent_dim, extra_heads=threshold.heads)
        self.threshold = threshold
        self.straight_through = straight_through
        self.scale_warmup = scale_warmup

    def base_scale(self, params):
        """The base distribution's scale from the encoder's outputs."""
        raise NotImplementedError

    def sample_latents(self, params):
        threshold = self.threshold(params)
        return pyro.sample("z", self.family(
            params["loc"], self.base_scale(params), threshold,
            straight_through=self.straight_through,
            noise_factor=self.scale_warmup(self.step)).to_event(1))


class ThresholdedLaplaceGuide(ThresholdedGuide):
    r"""z = T_λ(s), s ~ Laplace(μ(x), b(x)), heads (μ, log b): 'Thresholded Laplacian' (λ₀ = 0.25,
    fixed) and 'Thresholded Laplacian+Gamma' (Gamma threshold posterior), with the Laplace scale
    warm-up ω of Appendix B by default."""

    heads = ("loc", "log_scale")
    family = ThresholdedLaplace

    def __init__(self, backbone, latent_dim, threshold, straight_through=True,
                 scale_warmup=PAPER_SCALE_WARMUP):
        super().__init__(backbone, latent_dim, threshold, straight_through, scale_warmup)

    def base_scale(self, params):
        return params["log_scale"].exp()


class ThresholdedNormalGuide(ThresholdedGuide):
    r"""z = T_λ(s), s ~ N(μ(x), σ(x)²), heads (μ, 2 log σ): 'Thresholded Gaussian' (λ₀ = 0.52,
    fixed) and 'Thresholded Gaussian+Gamma' (Gamma threshold posterior). No warm-up by default."""

    heads = ("loc", "log_variance")
    family = ThresholdedNormal

    def base_scale(self, params):
        return (0.5 * params["log_variance"]).exp()
