"""Threshold calibration (Prop. 3.1): the λ0 that gives a target fraction γ of non-zeros."""

from .thresholded_laplace import ThresholdedLaplace
from .thresholded_normal import ThresholdedNormal

#: The base families a threshold can be calibrated for, by the names configs use.
FAMILIES = {"laplace": ThresholdedLaplace, "normal": ThresholdedNormal}


def _family(name):
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown base family {name!r}; expected one of {sorted(FAMILIES)}") from None


def _check_scale(scale):
    if not scale > 0:
        raise ValueError(f"prior scale must be positive, got {scale}")


def calibrated_threshold(family, scale, nonzero_fraction):
    """λ0 such that a zero-centred base of the given ``scale`` is non-zero with probability γ.

    Laplace(0, b): λ0 = -b ln γ (eq. 3). Normal(0, σ²): λ0 = σ Φ⁻¹(1 - γ/2).
    Appendix D: Normal with variance 0.1 at γ = 10% gives 0.52; Laplace with b = 0.1 at 10%
    gives 0.230, which the paper rounds to 0.25 (≈ 8.2% non-zero).
    """
    if not 0.0 < nonzero_fraction < 1.0:
        raise ValueError(f"target non-zero fraction must lie in (0, 1), got {nonzero_fraction}")
    _check_scale(scale)
    return _family(family).threshold_for(scale, nonzero_fraction)


def nonzero_fraction(family, scale, threshold):
    """γ, the prior probability of a non-zero component, for a zero-centred base and λ0."""
    if threshold < 0:
        raise ValueError(f"threshold must be non-negative, got {threshold}")
    _check_scale(scale)
    return _family(family).nonzero_fraction_for(scale, threshold)
