import math

import pytest
import torch

from pyro_vsc.metrics import GradientSNR, flatten_gradients


def test_snr_of_gaussian_gradients_matches_mean_over_std():
    # Gradients g = mu + sigma * eps with known per-parameter SNR |mu| / sigma.
    generator = torch.Generator().manual_seed(0)
    num_samples = 4000
    mu = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0, -0.1], dtype=torch.float64)
    sigma = torch.tensor([1.0, 1.0, 2.0, 1.0, 1.5, 0.05], dtype=torch.float64)
    accumulator = GradientSNR()
    for _ in range(num_samples):
        accumulator.update(mu + sigma * torch.randn(6, generator=generator, dtype=torch.float64))
    true_snr = mu.abs() / sigma
    # Delta method: sd(|mean| / std) ~ sqrt((1 + SNR^2 / 2) / n) (mean and std of a normal
    # sample are independent with variances sigma^2/n and sigma^2/(2n)). At |mu| = 0 the
    # estimate is |N(0, 1/n)|, inside the same bound. Allow 5 sd per parameter.
    tolerance = 5 * torch.sqrt((1 + true_snr**2 / 2) / num_samples)
    assert torch.all((accumulator.snr() - true_snr).abs() <= tolerance)
    mean_tolerance = tolerance.max().item()
    assert accumulator.mean_snr() == pytest.approx(true_snr.mean().item(), abs=mean_tolerance)


def test_streaming_equals_batch_computation():
    generator = torch.Generator().manual_seed(1)
    gradients = 3.0 + 2.0 * torch.randn(50, 200, generator=generator)
    accumulator = GradientSNR()
    for gradient in gradients:
        accumulator.update(gradient)
    batch = gradients.double()
    assert accumulator.count == 50
    assert torch.allclose(accumulator.mean, batch.mean(0), rtol=1e-12, atol=1e-12)
    assert torch.allclose(accumulator.std, batch.std(0, correction=0), rtol=1e-12, atol=1e-12)
    expected_snr = batch.mean(0).abs() / batch.std(0, correction=0)
    assert torch.allclose(accumulator.snr(), expected_snr, rtol=1e-10)
    assert accumulator.mean_snr() == pytest.approx(expected_snr.mean().item(), rel=1e-10)


def test_constant_gradients_are_excluded():
    # Parameter 0 never gets a gradient, parameter 1 always the same one: SNR undefined (NaN),
    # left out of the mean. Parameter 2 alternates 1, 3: mean 2, population std 1, SNR 2.
    accumulator = GradientSNR()
    for value in [1.0, 3.0, 1.0, 3.0]:
        accumulator.update(torch.tensor([0.0, 0.7, value]))
    snr = accumulator.snr()
    assert math.isnan(snr[0]) and math.isnan(snr[1])
    assert snr[2].item() == pytest.approx(2.0)
    assert accumulator.num_constant == 2
    assert accumulator.mean_snr() == pytest.approx(2.0)


def test_needs_two_samples_and_fixed_length():
    accumulator = GradientSNR()
    accumulator.update(torch.zeros(3))
    with pytest.raises(ValueError, match="at least 2"):
        accumulator.snr()
    with pytest.raises(ValueError, match="entries"):
        accumulator.update(torch.zeros(4))


def test_flatten_gradients_concatenates_in_order_with_zeros_for_unused():
    layer = torch.nn.Linear(3, 2)
    unused = torch.nn.Parameter(torch.ones(4))
    layer(torch.ones(1, 3)).sum().backward()
    flat = flatten_gradients([layer.weight, unused, layer.bias])
    # d(sum(W x + b))/dW = 1 x^T with x = 1: all ones; d/db = 1.
    expected = torch.cat([torch.ones(6), torch.zeros(4), torch.ones(2)])
    assert torch.equal(flat, expected)
