import pytest
import torch

from pyro_vsc.metrics import sparse_coding_objective


def test_hand_computed_case():
    dictionary = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    x = torch.tensor([[1.0, 1.0], [3.0, -2.0]])
    codes = torch.tensor([[1.0, 0.5], [2.0, 0.0]])
    # Row 0: A z = (1, 1), residual 0, |z|_1 = 1.5 -> 0 + 2 * 1.5 = 3.
    # Row 1: A z = (2, 0), residual (1, -2), 0.5 * 5 = 2.5; |z|_1 = 2 -> 2.5 + 2 * 2 = 6.5.
    loss = sparse_coding_objective(x, dictionary, codes, lam=2.0)
    assert torch.allclose(loss, torch.tensor([3.0, 6.5]))


def test_zero_code_scores_half_squared_norm():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, generator=generator, dtype=torch.float64)
    dictionary = torch.randn(5, 9, generator=generator, dtype=torch.float64)
    loss = sparse_coding_objective(x, dictionary, torch.zeros(7, 9, dtype=torch.float64))
    assert torch.allclose(loss, 0.5 * x.pow(2).sum(-1))


def test_default_lambda_is_the_papers_twenty():
    codes = torch.tensor([[0.5, -0.25]])
    dictionary = torch.eye(2)
    loss = sparse_coding_objective(codes @ dictionary.T, dictionary, codes)
    assert loss.item() == pytest.approx(20.0 * 0.75)


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="do not chain"):
        sparse_coding_objective(torch.zeros(3, 4), torch.zeros(5, 2), torch.zeros(3, 2))
