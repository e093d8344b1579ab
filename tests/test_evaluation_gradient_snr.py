"""Gradient SNR of encoder and dictionary from per-sample gradient moments (§4.1.1)."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_vsc.guides.mlp import MLPBackbone
from pyro_vsc.guides.threshold import GammaThreshold
from pyro_vsc.guides.thresholded import ThresholdedLaplaceGuide
from pyro_vsc.models.linear import LinearDictionary, LinearSparseCoding
from pyro_vsc.models.priors import ThresholdedLaplaceGammaPrior
from pyro_vsc.elbo import MaxELBO
from pyro_vsc.elbo.kl_weights import KLWeights
from pyro_vsc.evaluation.gradient_snr import gradient_snr, linear_layers, per_point_gradient_moments
from pyro_vsc.metrics import GradientSNR
from pyro_vsc.train.objective import Objective

# Toy model with analytically known gradient moments (all scalars):
#   z ~ N(0, 1),  x | z ~ N(a z, s²);   guide q(z | x) = N(μ, σ²),  μ = w x + c,  σ fixed.
# Per sample z = μ + σ ε the loss is l = (x - a z)² / 2s² + β KL(N(μ, σ²) || N(0, 1)) + const.
X, A, S, W, C, SIGMA, BETA = 1.2, 0.8, 0.5, 0.6, -0.4, 0.3, 0.5
MU = W * X + C


class ToyModel(PyroModule):
    def __init__(self):
        super().__init__()
        self.decoder = LinearDictionary(1, 1).double()
        with torch.no_grad():
            self.decoder.weight.fill_(A)

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(1, dtype=x.dtype), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(self.decoder(z), S).to_event(1), obs=x)


class ToyGuide(PyroModule):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(1, 1).double()
        with torch.no_grad():
            self.head.weight.fill_(W)
            self.head.bias.fill_(C)

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(self.head(x), SIGMA).to_event(1))


def toy_snr():
    """Exact SNRs of the toy's encoder (w and c) and dictionary (a) gradients.

    dl/dμ = -a (x - a μ) / s² + β μ + (a² σ / s²) ε: Gaussian, and dl/dw = x dl/dμ, dl/dc = dl/dμ
    share its SNR. dl/da = -(x z - a z²) / s² with E z = μ, E z² = μ² + σ², Var z = σ²,
    Var z² = 4 μ² σ² + 2 σ⁴ and Cov(z, z²) = 2 μ σ².
    """
    encoder = abs(-A * (X - A * MU) / S**2 + BETA * MU) / (A**2 * SIGMA / S**2)
    mean = (X * MU - A * (MU**2 + SIGMA**2)) / S**2
    variance = (X**2 * SIGMA**2 + A**2 * (4 * MU**2 * SIGMA**2 + 2 * SIGMA**4)
                - 2 * A * X * 2 * MU * SIGMA**2) / S**4
    return encoder, abs(mean) / math.sqrt(variance)


def test_snr_of_a_toy_estimator_matches_its_analytic_value():
    encoder_snr, dictionary_snr = toy_snr()
    num_samples = 20000
    snr = gradient_snr(Objective(ToyModel(), ToyGuide(), kl_weights={"z": BETA}),
                       torch.tensor([[X]], dtype=torch.float64), num_samples=num_samples)
    # SNR-hat = |mean| / sd: relative sd about sqrt(1 / (SNR² n) + (kurtosis - 1) / 4n) (delta
    # method). Gaussian encoder gradients have kurtosis 3; the dictionary gradient is a quadratic
    # form of a Gaussian, kurtosis at most that of a chi-square(1), 15. Allow 5 relative sds.
    for value, exact, kurtosis in ((snr["encoder"][0], encoder_snr, 3),
                                   (snr["dictionary"][0], dictionary_snr, 15)):
        relative_sd = math.sqrt(1 / (exact**2 * num_samples) + (kurtosis - 1) / (4 * num_samples))
        assert value.item() == pytest.approx(exact, rel=5 * relative_sd)
    assert snr["encoder"].shape == snr["dictionary"].shape == (1,)


def small_thresholded_run():
    torch.manual_seed(0)
    prior = ThresholdedLaplaceGammaPrior(latent_dim=4, scale=0.5, threshold=0.3)
    model = LinearSparseCoding(prior, data_dim=6, dict_size=4, noise_variance=0.5)
    guide = ThresholdedLaplaceGuide(MLPBackbone(6, (8,)), 4, threshold=GammaThreshold())
    return model.double(), guide.double(), torch.randn(2, 6, dtype=torch.float64)


def test_moments_equal_those_of_per_sample_backward_passes():
    """The outer-product sums give exactly the moments of one backward pass per sample, here
    with J = 3 max-ELBO particles, Gamma thresholds, biases and KL weights."""
    model, guide, x = small_thresholded_run()
    num_samples, particles, weights = 7, 3, {"z": 0.1, "threshold": 0.01}
    pyro.set_rng_seed(3)
    moments = per_point_gradient_moments(Objective(model, guide, particles, weights), x, num_samples)

    pyro.set_rng_seed(3)  # the same draws, then one backward pass per row (sample)
    rows = x.repeat_interleave(num_samples, dim=0)
    kl_weights = KLWeights(weights)
    result = MaxELBO(num_particles=particles, max_plate_nesting=1).particle_elbo(
        kl_weights(model), kl_weights(guide), rows)
    row_losses = -result.local[result.best, torch.arange(rows.shape[0])]
    for role, module in (("encoder", guide), ("dictionary", model)):
        parameters = [p for layer in linear_layers(module, role) for p in layer.parameters(recurse=False)]
        mean, m2 = moments[role]
        for point in range(x.shape[0]):
            reference = GradientSNR()
            for row in range(point * num_samples, (point + 1) * num_samples):
                grads = torch.autograd.grad(row_losses[row], parameters, retain_graph=True,
                                            allow_unused=True)
                reference.update(torch.cat([
                    torch.zeros(p.numel(), dtype=torch.float64) if g is None else g.reshape(-1)
                    for p, g in zip(parameters, grads)]))
            torch.testing.assert_close(mean[point], reference.mean, rtol=1e-9, atol=1e-12)
            torch.testing.assert_close(m2[point] / num_samples, reference.std**2, rtol=1e-7, atol=1e-12)


def test_update_moments_merges_batches_exactly():
    generator = torch.Generator().manual_seed(1)
    gradients = 3.0 + 2.0 * torch.randn(30, 5, generator=generator, dtype=torch.float64)
    streamed, merged = GradientSNR(), GradientSNR()
    for gradient in gradients:
        streamed.update(gradient)
    for batch in gradients.split(11):
        mean = batch.mean(0)
        merged.update_moments(batch.shape[0], mean, (batch - mean).pow(2).sum(0))
    assert merged.count == 30
    torch.testing.assert_close(merged.mean, streamed.mean)
    torch.testing.assert_close(merged.std, streamed.std)
    with pytest.raises(ValueError, match="non-negative"):
        merged.update_moments(2, mean, -torch.ones(5, dtype=torch.float64))


def test_layers_other_than_linear_are_refused():
    class ConvGuide(PyroModule):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(1, 1, 3)

    with pytest.raises(NotImplementedError, match="Conv1d"):
        linear_layers(ConvGuide(), "encoder")
