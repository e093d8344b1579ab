import numpy as np
import pytest
import torch
from scipy import stats

from pyro_vsc.metrics import point_biserial_correlation


def test_equals_scipy_pointbiserialr():
    generator = torch.Generator().manual_seed(0)
    rates = torch.tensor([0.1, 0.5, 0.7, 0.3])
    attributes = (torch.rand(300, 4, generator=generator) < rates).float()
    codes = torch.randn(300, 6, generator=generator)
    codes[:, 0] += 2.0 * attributes[:, 1]  # one strongly correlated pair
    codes[:, 3] *= torch.rand(300, generator=generator) < 0.2  # a sparse feature
    result = point_biserial_correlation(codes, attributes)
    assert result.shape == (4, 6)
    for m in range(4):
        for k in range(6):
            expected = stats.pointbiserialr(attributes[:, m].numpy(), codes[:, k].numpy()).statistic
            assert result[m, k].item() == pytest.approx(expected, abs=1e-6)
    assert result[1, 0] > 0.5


def test_hand_computed_case():
    # y = (1, 1, 0, 0), z = (3, 1, 0, 0): M1 = 2, M0 = 0, s_N = sqrt(1.5) (mean 1, squares 4+0+1+1
    # over 4), sqrt(n1 n0) / N = 1/2 -> rho = 2 / sqrt(1.5) / 2 = sqrt(2/3).
    codes = torch.tensor([[3.0], [1.0], [0.0], [0.0]])
    result = point_biserial_correlation(codes, torch.tensor([[1], [1], [0], [0]]))
    assert result.item() == pytest.approx(np.sqrt(2 / 3))


def test_constant_feature_or_attribute_gives_zero():
    codes = torch.tensor([[0.3, 1.0], [0.3, 2.0], [0.3, 5.0]])
    attributes = torch.tensor([[1, 1], [0, 1], [1, 1]])
    result = point_biserial_correlation(codes, attributes)
    # Feature 0 is constant; attribute 1 is always 1.
    assert result[:, 0].tolist() == [0.0, 0.0]
    assert result[1].tolist() == [0.0, 0.0]
    assert result[0, 1].item() != 0.0


def test_non_binary_attributes_are_rejected():
    with pytest.raises(ValueError, match="binary"):
        point_biserial_correlation(torch.randn(4, 2), torch.tensor([[0], [1], [2], [1]]))
