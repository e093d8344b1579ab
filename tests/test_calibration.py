"""Threshold calibration (eq. 3, Prop. 3.1) against the values of Appendix D."""

import math

import pytest
import torch

from pyro_vsc.distributions import (
    ThresholdedLaplace,
    ThresholdedNormal,
    calibrated_threshold,
    nonzero_fraction,
)

FAMILIES = {"laplace": ThresholdedLaplace, "normal": ThresholdedNormal}


def test_appendix_d_normal_threshold():
    """Normal prior with variance 0.1 (σ = √0.1) at 10% non-zero: λ0 = 0.52."""
    assert round(calibrated_threshold("normal", math.sqrt(0.1), 0.1), 2) == 0.52


def test_appendix_d_laplace_threshold():
    """Laplace prior with b = 0.1 at 10% non-zero: λ0 = -b ln 0.1 = 0.230."""
    assert round(calibrated_threshold("laplace", 0.1, 0.1), 3) == 0.230


def test_appendix_d_rounded_laplace_threshold_fraction():
    """The paper's rounded λ0 = 0.25 with b = 0.1 leaves e^{-2.5} ≈ 8.2% non-zero."""
    assert nonzero_fraction("laplace", 0.1, 0.25) == pytest.approx(0.082, abs=5e-4)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("scale", [0.1, 1.0, 3.0])
@pytest.mark.parametrize("fraction", [1e-4, 0.05, 0.1, 0.5, 0.99])
def test_round_trip(family, scale, fraction):
    threshold = calibrated_threshold(family, scale, fraction)
    assert threshold > 0
    assert nonzero_fraction(family, scale, threshold) == pytest.approx(fraction, rel=1e-9)
    recovered = nonzero_fraction(family, scale, threshold)
    assert calibrated_threshold(family, scale, recovered) == pytest.approx(threshold, rel=1e-9)


@pytest.mark.parametrize("family", FAMILIES)
def test_calibrated_fraction_is_the_distribution_nonzero_prob(family):
    """The calibration agrees with the prior distribution's own γ at λ0."""
    threshold = calibrated_threshold(family, 0.3, 0.1)
    as_tensor = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    prior = FAMILIES[family](as_tensor(0.0), as_tensor(0.3), as_tensor(threshold))
    assert prior.nonzero_prob.item() == pytest.approx(0.1, rel=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_rejects_fraction_outside_unit_interval(family, fraction):
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        calibrated_threshold(family, 0.1, fraction)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("scale", [0.0, -0.1])
def test_rejects_non_positive_scale(family, scale):
    with pytest.raises(ValueError, match="scale must be positive"):
        calibrated_threshold(family, scale, 0.1)
    with pytest.raises(ValueError, match="scale must be positive"):
        nonzero_fraction(family, scale, 0.25)


def test_rejects_negative_threshold_and_unknown_family():
    with pytest.raises(ValueError, match="non-negative"):
        nonzero_fraction("laplace", 0.1, -0.25)
    with pytest.raises(ValueError, match="laplace"):
        calibrated_threshold("cauchy", 0.1, 0.1)
