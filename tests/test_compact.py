"""Compact parameters under particle expansion (pyro_vsc.distributions.compact): one value per
distinct parameter, the same values and gradients as the full-size computation."""

import pyro.distributions as dist
import pytest
import torch

from pyro_vsc.distributions import ThresholdedLaplace, ThresholdedNormal
from pyro_vsc.distributions.compact import broadcast_to_batch, compact, compact_parameters

J, B, D = 5, 4, 3


@pytest.mark.parametrize("expanded,narrowed", [
    (torch.randn(B, D).expand(J, B, D), (1, B, D)),          # the particle plate's expansion
    (torch.randn(D).expand(J, B, D), (1, 1, D)),             # a prior's constants in both plates
    (torch.tensor(0.3).expand(J, B, D), (1, 1, 1)),
    (torch.randn(B, 1).expand(B, D), (B, 1)),
    (torch.randn(J, 1, D).expand(J, B, D), (J, 1, D)),
])
def test_compact_narrows_exactly_the_broadcast_dims(expanded, narrowed):
    small = compact(expanded)
    assert small.shape == narrowed
    assert torch.equal(small.expand(expanded.shape), expanded)
    assert small.data_ptr() == expanded.data_ptr()  # a view, no copy


@pytest.mark.parametrize("tensor", [torch.randn(J, B, D), torch.randn(1, B, D), torch.tensor(1.0),
                                    torch.randn(D, B).T])
def test_compact_returns_a_tensor_without_broadcast_dims_itself(tensor):
    assert compact(tensor) is tensor


def test_compact_parameters_prefer_what_a_distribution_was_given():
    """The thresholded laws hand over their parameters as constructed (before broadcasting and
    expand); other laws their attributes, narrowed."""
    loc, scale = torch.randn(B, D), torch.rand(B, D) + 0.1
    thresholded = ThresholdedLaplace(loc, scale, 0.25).expand((J, B, D))
    got_loc, got_scale, got_threshold = compact_parameters(thresholded, ("loc", "scale", "threshold"))
    assert got_loc is loc and got_scale is scale and got_threshold.shape == ()
    normal = dist.Normal(loc, scale).expand((J, B, D))
    assert [t.shape for t in compact_parameters(normal, ("loc", "scale"))] == [(1, B, D)] * 2


def test_broadcast_to_batch_keeps_larger_results():
    assert broadcast_to_batch(torch.zeros(1, B, D), (J, B, D)).shape == (J, B, D)
    assert broadcast_to_batch(torch.zeros(J, B, D), (B, D)).shape == (J, B, D)


@pytest.mark.parametrize("source", ["given", "narrowed"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_formula_on_compact_parameters_has_the_full_size_values_and_gradients(source, dtype):
    """exp(-λ/b)·|μ| evaluated once per distinct value and broadcast equals the same formula on
    the J-fold expanded parameters, and so do the gradients of a weighted sum of it."""
    loc = torch.randn(B, D, dtype=dtype, requires_grad=True)
    scale = (torch.rand(B, D, dtype=dtype) + 0.2).requires_grad_()
    threshold = torch.tensor(0.4, dtype=dtype, requires_grad=True)
    law = (ThresholdedNormal(loc, scale, threshold) if source == "given"
           else dist.Normal(loc, scale)).expand((J, B, D))

    def formula(loc, scale, threshold):
        return torch.exp(-threshold / scale) * loc.abs()

    names = ("loc", "scale")
    compact_result = broadcast_to_batch(
        formula(*compact_parameters(law, names), compact(threshold.expand(J, B, D))), law.batch_shape)
    full_result = formula(law.loc, law.scale, threshold.expand(J, B, D))
    assert compact_result.shape == full_result.shape == (J, B, D)
    assert torch.equal(compact_result, full_result)
    weights = torch.rand(J, B, D, dtype=dtype)
    leaves = (loc, scale, threshold)
    got = torch.autograd.grad((weights * compact_result).sum(), leaves)
    want = torch.autograd.grad((weights * full_result).sum(), leaves)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
