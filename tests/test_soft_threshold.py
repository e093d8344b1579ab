"""Eq. (2) (shifted soft-threshold) and eq. (4) (straight-through estimator), function level."""

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pyro_vsc.distributions import shifted_soft_threshold, straight_through_threshold

# Finite, moderately sized float64 inputs: the properties below are exact up to a few ulps of
# the largest magnitude involved, which the tolerances account for.
reals = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
thresholds = st.floats(min_value=0.0, max_value=1e3, allow_nan=False, allow_infinity=False)
property_settings = settings(max_examples=100, deadline=None)


def _t(x):
    return torch.tensor(x, dtype=torch.float64)


def _eq2_literal(s, lam, mu):
    """Eq. (2) exactly as printed: sign(s-μ) max(|s-μ|-λ, 0) + I[|s-μ|>λ] μ (plain Python floats)."""
    d = s - mu
    return math.copysign(1.0, d) * max(abs(d) - lam, 0.0) + (abs(d) > lam) * mu


def _ulps(*values):
    return 8 * 2.0 ** -52 * max(1.0, *(abs(v) for v in values))


@property_settings
@given(s=reals, lam=thresholds, mu=reals)
def test_matches_eq2_as_printed(s, lam, mu):
    z = shifted_soft_threshold(_t(s), _t(lam), _t(mu)).item()
    assert z == pytest.approx(_eq2_literal(s, lam, mu), abs=_ulps(s, lam, mu))


@property_settings
@given(s=reals, lam=thresholds, mu=reals)
def test_zero_exactly_iff_within_threshold_of_loc(s, lam, mu):
    z = shifted_soft_threshold(_t(s), _t(lam), _t(mu)).item()
    if abs(s - mu) <= lam:
        assert z == 0.0  # exactly zero, not merely small
    else:
        # active: moved by exactly λ towards μ
        assert z == pytest.approx(s - math.copysign(lam, s - mu), abs=_ulps(s, lam, mu))


@property_settings
@given(s=reals, lam=thresholds, mu=reals)
def test_active_distance_to_loc_is_shrunk_by_threshold(s, lam, mu):
    """|T(s) - μ| = max(|s - μ| - λ, 0) on the active set, and T(s) stays on s's side of μ."""
    z = shifted_soft_threshold(_t(s), _t(lam), _t(mu)).item()
    if abs(s - mu) > lam:
        assert abs(z - mu) == pytest.approx(max(abs(s - mu) - lam, 0.0), abs=_ulps(s, lam, mu))
        assert (z - mu) * (s - mu) >= 0


@property_settings
@given(s1=reals, s2=reals, lam=thresholds)
def test_monotone_non_decreasing_at_zero_loc(s1, s2, lam):
    """With μ = 0, eq. (2) is the ordinary soft threshold, which is non-decreasing."""
    lo, hi = sorted((s1, s2))
    z_lo = shifted_soft_threshold(_t(lo), _t(lam), _t(0.0)).item()
    z_hi = shifted_soft_threshold(_t(hi), _t(lam), _t(0.0)).item()
    assert z_lo <= z_hi


@property_settings
@given(s1=reals, s2=reals, lam=thresholds, mu=reals)
def test_monotone_on_each_side_of_loc(s1, s2, lam, mu):
    """For μ ≠ 0 eq. (2) is non-decreasing on each active branch (the jump to 0 breaks global monotonicity)."""
    lo, hi = sorted((s1, s2))
    assume((lo - mu) * (hi - mu) > 0)  # same side of μ
    assume(abs(lo - mu) > lam and abs(hi - mu) > lam)  # both active
    z_lo, z_hi = (shifted_soft_threshold(_t(v), _t(lam), _t(mu)).item() for v in (lo, hi))
    assert z_lo <= z_hi


def test_not_globally_monotone_for_nonzero_loc():
    """A concrete counter-example: μ = 5, λ = 1 maps s = 3 to 4 but s = 4.5 to 0 (eq. 2)."""
    z = shifted_soft_threshold(_t([3.0, 4.5, 7.0]), _t(1.0), _t(5.0))
    assert z.tolist() == [4.0, 0.0, 6.0]


def test_known_values_and_broadcasting():
    s = _t([[-3.0, -1.0, 0.2, 0.5, 2.5], [-3.0, -1.0, 0.2, 0.5, 2.5]])
    threshold = _t([[1.0], [0.0]])  # per-row threshold, broadcast over columns
    loc = _t(0.5)
    z = shifted_soft_threshold(s, threshold, loc)
    assert z.tolist() == [[-2.0, 0.0, 0.0, 0.0, 1.5], [-3.0, -1.0, 0.2, 0.0, 2.5]]


@property_settings
@given(s=reals, lam=thresholds, mu=reals)
def test_straight_through_forward_value_is_exactly_eq2(s, lam, mu):
    """Eq. (4): s + T(sg[s]) - sg[s] equals T(s) bit for bit (exact zeros stay exact)."""
    base = _t(s).requires_grad_()
    assert (straight_through_threshold(base, _t(lam), _t(mu)).item()
            == shifted_soft_threshold(_t(s), _t(lam), _t(mu)).item())


def _grads(fn, s, threshold, loc):
    s, threshold, loc = (x.clone().requires_grad_() for x in (s, threshold, loc))
    fn(s, threshold, loc).sum().backward()
    return s.grad, threshold.grad, loc.grad


@pytest.fixture
def elementwise_inputs():
    """Elementwise s, λ, μ with both active and inactive entries, on both sides of μ."""
    generator = torch.Generator().manual_seed(0)
    s = torch.randn(200, generator=generator, dtype=torch.float64) * 2
    threshold = torch.rand(200, generator=generator, dtype=torch.float64)
    loc = torch.randn(200, generator=generator, dtype=torch.float64)
    active = (s - loc).abs() > threshold
    assert active.any() and (~active).any()
    return s, threshold, loc, active


def test_subgradient_partial_derivatives(elementwise_inputs):
    """Eq. (2) a.e.: ∂T/∂s = 1, ∂T/∂λ = -sign(s-μ), ∂T/∂μ = 0 on the active set; all 0 elsewhere."""
    s, threshold, loc, active = elementwise_inputs
    ds, dlam, dmu = _grads(shifted_soft_threshold, s, threshold, loc)
    sign = (s - loc).sign()
    torch.testing.assert_close(ds, active.double(), rtol=0, atol=0)
    torch.testing.assert_close(dlam, torch.where(active, -sign, 0.0), rtol=0, atol=0)
    torch.testing.assert_close(dmu, torch.zeros_like(loc), rtol=0, atol=0)


def test_straight_through_partial_derivatives(elementwise_inputs):
    """Eq. (4): ∂z/∂s = 1 everywhere (zeros included); λ is not stopped: ∂z/∂λ = -sign(s-μ) if active."""
    s, threshold, loc, active = elementwise_inputs
    ds, dlam, dmu = _grads(straight_through_threshold, s, threshold, loc)
    sign = (s - loc).sign()
    torch.testing.assert_close(ds, torch.ones_like(s), rtol=0, atol=0)
    torch.testing.assert_close(dlam, torch.where(active, -sign, 0.0), rtol=0, atol=0)
    torch.testing.assert_close(dmu, torch.zeros_like(loc), rtol=0, atol=0)
