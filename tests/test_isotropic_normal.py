"""The shared-variance Gaussian likelihood equals Normal(...).to_event(n)."""

import pyro.distributions as dist
import pytest
import torch

from pyro_vsc.distributions import IsotropicNormal

@pytest.mark.parametrize("event_dims", [1, 3])
def test_isotropic_normal_equals_normal_to_event(event_dims):
    loc = torch.randn(5, 4, *(2,) * event_dims, requires_grad=True)
    x = torch.randn(4, *(2,) * event_dims)
    ours = IsotropicNormal(loc, 1.7, event_dims=event_dims)
    reference = dist.Normal(loc, 1.7).to_event(event_dims)
    assert ours.batch_shape == reference.batch_shape and ours.event_shape == reference.event_shape
    torch.testing.assert_close(ours.log_prob(x), reference.log_prob(x))
    (g1,) = torch.autograd.grad(ours.log_prob(x).sum(), loc)
    (g2,) = torch.autograd.grad(reference.log_prob(x).sum(), loc)
    torch.testing.assert_close(g1, g2)
    expanded = ours.expand((3, 5, 4))
    assert expanded.batch_shape == (3, 5, 4)
    torch.testing.assert_close(expanded.log_prob(x)[1], ours.log_prob(x))
    samples = IsotropicNormal(torch.zeros(20000, 3), 0.5).rsample()
    assert abs(float(samples.std()) - 0.5) < 5 * 0.5 / (2 * 60000) ** 0.5
