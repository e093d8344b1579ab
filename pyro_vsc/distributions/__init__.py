"""Distributions of variational sparse coding (§3.2, Appendices A-B)."""

from . import kl  # noqa: F401  (registers the analytic KLs of the package's own laws)
from .calibration import calibrated_threshold, nonzero_fraction
from .gamma import VectorizedGamma
from .kl import (
    bernoulli_kl,
    closed_form_kl,
    gamma_kl,
    laplace_kl,
    normal_kl,
    thresholded_laplace_exact_kl,
)
from .isotropic_normal import IsotropicNormal
from .soft_threshold import shifted_soft_threshold, straight_through_threshold
from .spike_slab import ConcreteSpikeSlab
from .thresholded import ThresholdedDistribution
from .thresholded_laplace import ThresholdedLaplace, laplace_noise
from .thresholded_normal import ThresholdedNormal
from .warmup_laplace import WarmupLaplace

__all__ = [
    "ConcreteSpikeSlab",
    "IsotropicNormal",
    "ThresholdedDistribution",
    "ThresholdedLaplace",
    "ThresholdedNormal",
    "VectorizedGamma",
    "WarmupLaplace",
    "bernoulli_kl",
    "calibrated_threshold",
    "closed_form_kl",
    "gamma_kl",
    "laplace_kl",
    "laplace_noise",
    "nonzero_fraction",
    "normal_kl",
    "shifted_soft_threshold",
    "straight_through_threshold",
    "thresholded_laplace_exact_kl",
]
