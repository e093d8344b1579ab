import math
from collections import Counter

import numpy as np
import pytest
import torch

from pyro_vsc.metrics import PAPER_BIN_EDGES, discretize_codes, multi_information


def _plug_in_entropy_bits(outcomes):
    counts = np.array(list(Counter(outcomes).values()), dtype=float)
    p = counts / counts.sum()
    return -(p * np.log2(p)).sum()


def test_paper_bin_edges():
    assert len(PAPER_BIN_EDGES) == 22
    assert PAPER_BIN_EDGES[0] == -2.0 and PAPER_BIN_EDGES[-1] == 2.0
    assert PAPER_BIN_EDGES[10] == -1e-50 and PAPER_BIN_EDGES[11] == 1e-50


def test_digitize_semantics_and_zero_bin():
    values = np.array([[-3.0, -2.0, -0.05, -0.0, 0.0, 1e-60, 0.05, 1.99, 2.0, 5.0]])
    expected = np.array([[0, 1, 10, 11, 11, 11, 12, 21, 22, 22]])
    np.testing.assert_array_equal(discretize_codes(values), expected)


def test_hand_computed_case():
    # z1 = (0, 0, 1, 1): H = 1 bit. z2 = (0, 0, 1, -1): H = 1.5 bits.
    # Joint rows (0,0), (0,0), (1,1), (1,-1): H = 1.5 bits. Multi-information = 1 + 1.5 - 1.5 = 1.
    codes = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, -1.0]])
    assert multi_information(codes) == pytest.approx(1.0, abs=1e-12)


def test_duplicated_variable_gives_its_entropy_exactly():
    rng = np.random.default_rng(0)
    feature = rng.choice([-1.5, 0.0, 0.3, 1.0], p=[0.1, 0.6, 0.2, 0.1], size=5000)
    codes = np.stack([feature, feature], axis=1)
    # h(z1) + h(z1) - h(z1, z1) = h(z1) for the plug-in estimator, with no bias term.
    expected = _plug_in_entropy_bits(feature.tolist())
    assert multi_information(codes) == pytest.approx(expected, abs=1e-12)


def test_independent_variables_have_near_zero_multi_information():
    rng = np.random.default_rng(1)
    num_samples, num_features, values = 100_000, 3, [-1.5, 0.0, 0.5, 1.5]
    codes = rng.choice(values, size=(num_samples, num_features))
    estimate = multi_information(codes)
    # For independent features 2 N ln2 * (plug-in multi-information) is the G statistic of the
    # independence test, asymptotically chi-square with df = (4**3 - 1) - 3 * (4 - 1) = 54 degrees
    # of freedom (mean df, sd sqrt(2 df)); the bias (df / (2 N ln 2) ~ 4e-4 bits) is the
    # (bins - 1) / (2 N ln 2) per-variable bias of the entropies. Allow mean + 6 sd.
    degrees_of_freedom = (len(values) ** num_features - 1) - num_features * (len(values) - 1)
    g_statistic_bound = degrees_of_freedom + 6 * math.sqrt(2 * degrees_of_freedom)
    bound = g_statistic_bound / (2 * num_samples * math.log(2))
    assert 0.0 <= estimate <= bound


def test_matches_tuple_counting_on_sparse_codes():
    rng = np.random.default_rng(2)
    codes = rng.laplace(scale=0.7, size=(3000, 12)) * (rng.random((3000, 12)) < 0.3)
    codes[:, 5] = 0.9 * codes[:, 4]  # a redundant feature
    bins = discretize_codes(codes)
    expected = sum(_plug_in_entropy_bits(bins[:, i].tolist()) for i in range(12))
    expected -= _plug_in_entropy_bits([tuple(row) for row in bins])
    assert multi_information(codes) == pytest.approx(expected, abs=1e-9)
    assert multi_information(torch.from_numpy(codes)) == pytest.approx(expected, abs=1e-9)


def test_non_finite_codes_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        multi_information(np.array([[0.0, np.nan]]))
