import pytest
import torch

from pyro_vsc.metrics import feature_collapse, posterior_collapse


def _values_with_small_counts(small_counts, num_points=100, small=0.0, large=1.0):
    """(N, K) values: column k holds small_counts[k] entries `small`, the rest `large`."""
    values = torch.full((num_points, len(small_counts)), large)
    for k, count in enumerate(small_counts):
        values[:count, k] = small
    return values


def test_posterior_collapse_known_percentage():
    # Collapsed: 100/100 and 95/100 (exactly 1 - delta) at or below eps; not: 94, 50, 0.
    # KL exactly equal to eps counts as collapsed (<=). 2 of 5 collapsed -> 40%.
    kl = _values_with_small_counts([100, 95, 94, 50, 0], small=1e-2, large=0.5)
    assert posterior_collapse(kl) == pytest.approx(40.0)


def test_feature_collapse_uses_magnitude():
    # Signs do not matter: -0.005 is within eps. Columns: 100, 96, 10 near zero -> 2 of 4 -> 50%.
    codes = _values_with_small_counts([100, 96, 10, 0], small=-0.005, large=-0.3)
    assert feature_collapse(codes) == pytest.approx(50.0)


def test_thresholds_are_parameters():
    codes = _values_with_small_counts([80, 60], small=0.05, large=2.0)
    assert feature_collapse(codes) == 0.0
    assert feature_collapse(codes, eps=0.1, delta=0.2) == pytest.approx(50.0)
    assert feature_collapse(codes, eps=0.1, delta=0.4) == pytest.approx(100.0)


def test_bad_delta_is_rejected():
    with pytest.raises(ValueError, match="delta"):
        posterior_collapse(torch.zeros(3, 2), delta=1.5)
