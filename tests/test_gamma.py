"""VectorizedGamma (the threshold posterior of §3.2): exact Γ(α, β) variates and unbiased pathwise
gradients, checked against scipy, known derivatives and torch's own Gamma.

Statistical tolerances. A mean of n i.i.d. terms is accepted within ``Z_TOL = 5`` standard
errors, estimated from the same n terms (two-sided normal tail ≈ 6e-7 per check); distribution
shapes are checked by Kolmogorov-Smirnov and Pyro's density goodness of fit at p-value
``P_MIN = 1e-3``. Every draw uses a fixed seed, so the checks are deterministic; a failure is a
real discrepancy. Deterministic checks of the gradient against a reference use the reference's
own accuracy (about 1e-9, see ``gamma_gradient_fit.reference_gradient``) plus the table's.
"""

import numpy as np
import pyro.distributions as dist
import pytest
import scipy.special
import scipy.stats
import torch
from pyro.distributions.testing.gof import density_goodness_of_fit
from torch.distributions import kl_divergence

from pyro_vsc.distributions import VectorizedGamma, gamma_kl
from pyro_vsc.distributions.gamma import PACKED_DRAWS_FROM, _normal_and_uniform, relative_gradient
from pyro_vsc.distributions.gamma_gradient_fit import reference_gradient

Z_TOL = 5.0
P_MIN = 1e-3
DTYPES = [torch.float32, torch.float64]
#: Relative accuracy of dz/dα: the fit's 8e-6, amplified up to 4x by the recurrence of α < 1;
#: in float32 the rounding of the polynomial evaluation, whose condition number grows in the upper
#: tail (to ~1e4 at the 1 - 1e-12 quantile), and for α < 1 beyond the 1 - 1e-4 quantile the
#: cancellation of the recurrence's two terms (both ≈ log z) as well.
GRADIENT_RTOL = {torch.float64: 5e-5, torch.float32: 2e-4}
FLOAT32_FAR_TAIL_RTOL = 2e-2


def _randomized_pit(samples, alpha, rate, dtype, generator):
    """F(z) for each variate, with the clamped atom at the smallest normal number spread
    uniformly over [0, F(tiny)] (it holds the mass of every value below): U(0, 1) exactly when
    the variates follow Γ(α, β) with that clamp."""
    values = samples.double().numpy() * rate
    cdf = scipy.stats.gamma.cdf(values, alpha)
    atom = samples.double().numpy() <= torch.finfo(dtype).tiny * 1.001
    spread = torch.rand(len(values), generator=generator, dtype=torch.float64).numpy()
    return np.where(atom, spread * scipy.stats.gamma.cdf(torch.finfo(dtype).tiny * 1.001 * rate, alpha), cdf)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [1e-3, 0.05, 0.5, 1.0, 2.5, 30.0, 1e3])
def test_samples_follow_the_gamma_law(alpha, dtype):
    """KS of the probability integral transform and the first two moments against
    scipy.stats.gamma, for α from 1e-3 (most mass below float32's smallest number) to 1e3."""
    n, rate = 40_000, 2.5
    torch.manual_seed(1)
    samples = VectorizedGamma(torch.tensor(alpha, dtype=dtype), torch.tensor(rate, dtype=dtype)).sample((n,))
    _assert_gamma_law(samples, alpha, rate, dtype, n)


@pytest.mark.parametrize("alpha", [1e-3, 0.05, 1.0, 30.0, 1e3])
def test_packed_draws_follow_the_gamma_law(alpha):
    """Large float32 arrays on a CPU take both random numbers of a variate from one 64-bit
    word (``PACKED_DRAWS_FROM``): the same checks on an odd number of variates above it."""
    n, rate = PACKED_DRAWS_FROM + 1, 2.5
    torch.manual_seed(13)
    samples = VectorizedGamma(torch.tensor(alpha), torch.tensor(rate)).sample((n,))
    _assert_gamma_law(samples, alpha, rate, torch.float32, n)


def _assert_gamma_law(samples, alpha, rate, dtype, n):
    assert samples.dtype == dtype and samples.shape == (n,)
    assert torch.isfinite(samples).all() and (samples >= torch.finfo(dtype).tiny).all()
    pit = _randomized_pit(samples, alpha, rate, dtype, torch.Generator().manual_seed(2))
    assert scipy.stats.kstest(pit, "uniform").pvalue > P_MIN
    # moments: mean α/β and variance α/β² within Z_TOL standard errors (the variance's from the
    # fourth central moment 3α(α + 2)/β⁴)
    x = samples.double()
    mean_se = (alpha / rate**2 / n) ** 0.5
    assert abs(x.mean().item() - alpha / rate) <= Z_TOL * mean_se
    variance_se = ((3 * alpha * (alpha + 2) - alpha**2) / rate**4 / n) ** 0.5
    assert abs(x.var().item() - alpha / rate**2) <= Z_TOL * variance_se


@pytest.mark.parametrize("count", [2 * 150_001, 2 * 150_001 - 1])
def test_packed_draws_are_torchs_uniforms_and_normal_deviates(count):
    """The two random numbers unpacked from one 64-bit word: uniforms on torch's grid
    k·2⁻²⁴ (k < 2²⁴) with the uniform law, standard normal deviates (KS), and no correlation
    within Z_TOL/√n between the uniform and the normal of a variate, between the two normals of
    a Box-Muller pair, or between their squares."""
    torch.manual_seed(14)
    normal, uniform = _normal_and_uniform([count], torch.device("cpu"))
    assert normal.shape == uniform.shape == (count,) and normal.dtype == uniform.dtype == torch.float32
    u = uniform.double()
    k = u * 2.0**24
    assert k.max() < 2.0**24
    small = k[k < 2.0**17]
    assert len(small) > 0 and ((small - small.round()).abs() < 0.25).all()
    assert scipy.stats.kstest(u.numpy(), "uniform").pvalue > P_MIN
    assert scipy.stats.kstest(normal.numpy(), "norm").pvalue > P_MIN
    half = (count + 1) // 2
    first, second = normal[: count - half].double(), normal[half:].double()
    pairs = [(normal.double(), u), (first, second), (first**2, second**2)]
    for a, b in pairs:
        correlation = np.corrcoef(a.numpy(), b.numpy())[0, 1]
        assert abs(correlation) <= Z_TOL / len(a) ** 0.5


@pytest.mark.parametrize("alpha", [0.3, 1.0, 4.0])
def test_pyro_density_goodness_of_fit(alpha):
    """Pyro's generic check: the samples against the distribution's own log_prob."""
    torch.manual_seed(3)
    d = VectorizedGamma(torch.tensor(alpha, dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64))
    samples = d.sample((20_000,))
    assert density_goodness_of_fit(samples, d.log_prob(samples).exp()) > P_MIN


def test_particles_are_independent_and_share_the_parameters():
    """Parameters expanded along a particle dimension (stride 0, as Pyro's vectorized particles
    do) give independent draws per particle: pooled KS, and particle-to-particle correlation
    within Z_TOL/√n of zero."""
    particles, points = 8, 5_000
    alpha = torch.linspace(0.5, 3.0, points, dtype=torch.float64)
    d = VectorizedGamma(alpha, torch.ones(points, dtype=torch.float64)).expand((particles, points))
    assert d.concentration.stride(0) == 0
    torch.manual_seed(4)
    samples = d.rsample()
    assert samples.shape == (particles, points)
    pit = scipy.stats.gamma.cdf(samples.numpy(), alpha.numpy())
    assert scipy.stats.kstest(pit.ravel(), "uniform").pvalue > P_MIN
    correlation = np.corrcoef(pit)[np.triu_indices(particles, 1)]
    assert np.abs(correlation).max() <= Z_TOL / points**0.5


def _reference_relative_gradient(z, alpha):
    return reference_gradient(z, alpha) / z


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [1e-6, 1e-3, 0.2, 0.9, 1.0, 1.7, 3.0, 12.0, 150.0, 1e4, 1e6])
def test_relative_gradient_is_the_implicit_derivative(alpha, dtype):
    """z⁻¹ dz/dα = −∂_αF(z;α) / (z f(z;α)) on quantiles 1e-12 … 1 − 1e-12 (1e-3 … 1 − 1e-3
    at α = 1e6, where scipy's reference is only accurate there), against a central difference of
    scipy's incomplete gamma; the values are those representable in the dtype."""
    lo = -3 if alpha > 1e5 else -12
    quantiles = np.concatenate([np.logspace(lo, -1, 12), np.linspace(0.15, 0.85, 8), 1 - np.logspace(-1, lo, 12)])
    z = torch.tensor(scipy.stats.gamma.ppf(quantiles, alpha), dtype=dtype)
    kept = z >= torch.finfo(dtype).tiny
    z, quantiles = z[kept], quantiles[kept.numpy()]
    got = relative_gradient(z.log(), torch.tensor(alpha, dtype=dtype)).double().numpy()
    want = _reference_relative_gradient(z.double().numpy(), alpha)
    far = (dtype == torch.float32) & (alpha < 1) & (quantiles > 1 - 1e-4)
    np.testing.assert_allclose(got[~far], want[~far], rtol=GRADIENT_RTOL[dtype], atol=0)
    np.testing.assert_allclose(got[far], want[far], rtol=FLOAT32_FAR_TAIL_RTOL, atol=0)


@pytest.mark.parametrize("alpha", [0.05, 0.5, 1.0, 3.0, 40.0])
def test_per_sample_gradient_agrees_with_torch(alpha):
    """On the same variates, dz/dα agrees with torch's own kernel (``_standard_gamma_grad``, an
    approximation whose relative error against the same reference is 1.1e-3 at α = 0.05 and
    below 5e-4 from α = 0.5 on; ours is below 2e-5) to 2e-3."""
    torch.manual_seed(5)
    z = torch._standard_gamma(torch.full((20_000,), alpha, dtype=torch.float64))
    z = z[z > 1e-300]
    ours = relative_gradient(z.log(), torch.tensor(alpha, dtype=torch.float64)) * z
    theirs = torch._standard_gamma_grad(torch.full_like(z, alpha), z)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=2e-3, atol=0)


def _per_sample_gradients(alpha, rate, n, seed, function, particles=1):
    """f(z) for z ~ VectorizedGamma(α, β), with its per-sample derivatives in α and β; with
    ``particles`` > 1, each of n / particles parameter values draws that many variates (as
    Pyro's vectorized particles do: the fitted table's path), and its derivatives are the
    particles' mean."""
    concentration = torch.full((n // particles,), alpha, dtype=torch.float64, requires_grad=True)
    rates = torch.full((n // particles,), rate, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(seed)
    z = VectorizedGamma(concentration, rates).rsample((particles,) if particles > 1 else ())
    function(z).sum().backward()
    return concentration.grad / particles, rates.grad / particles


def _assert_mean_close(terms, expected):
    assert abs(terms.mean().item() - expected) <= Z_TOL * terms.std().item() / len(terms) ** 0.5


@pytest.mark.parametrize("particles", [1, 4])  # torch's kernel at J = 1, the fitted table with particles
@pytest.mark.parametrize("alpha", [0.02, 0.3, 1.0, 2.2, 8.0, 200.0])
def test_gradients_are_unbiased(alpha, particles):
    """Monte Carlo means of the pathwise gradients against the known derivatives
    d/dα E[z] = 1/β, d/dβ E[z] = −α/β² and d/dα E[log z] = ψ'(α)."""
    rate, n = 1.7, 100_000
    grad_alpha, grad_rate = _per_sample_gradients(alpha, rate, n, 6, lambda z: z, particles)
    _assert_mean_close(grad_alpha, 1 / rate)
    _assert_mean_close(grad_rate, -alpha / rate**2)
    if alpha >= 0.3:  # below, float64 clamps a visible share of log z at the smallest number
        grad_alpha, _ = _per_sample_gradients(alpha, rate, n, 7, torch.log, particles)
        _assert_mean_close(grad_alpha, scipy.special.polygamma(1, alpha))


@pytest.mark.parametrize("particles", [1, 4])
@pytest.mark.parametrize("alpha", [0.4, 1.3, 6.0])
def test_gradients_agree_with_torch_in_expectation(alpha, particles):
    """E[f'(z) dz/dα] and E[f'(z) dz/dβ] of a non-linear f from independent draws of ours and of
    torch's Gamma.rsample agree within Z_TOL combined standard errors."""
    rate, n = 0.8, 100_000

    def f(z):
        return torch.sin(3 * z) + z.sqrt()

    ours = _per_sample_gradients(alpha, rate, n, 8, f, particles)
    concentration = torch.full((n,), alpha, dtype=torch.float64, requires_grad=True)
    rates = torch.full((n,), rate, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(9)
    f(dist.Gamma(concentration, rates).rsample()).sum().backward()
    for mine, theirs in zip(ours, (concentration.grad, rates.grad)):
        se = (mine.var() / len(mine) + theirs.var() / len(theirs)).sqrt().item()
        assert abs(mine.mean().item() - theirs.mean().item()) <= Z_TOL * se


def test_gradient_of_shared_parameters_sums_over_particles():
    """With α, β expanded along the particle dimension, their gradients are the sums over
    particles of the per-variate gradients."""
    alpha = torch.tensor([0.6, 2.0, 9.0], dtype=torch.float64, requires_grad=True)
    rate = torch.tensor([1.5, 0.3, 4.0], dtype=torch.float64, requires_grad=True)
    torch.manual_seed(10)
    z = VectorizedGamma(alpha, rate).expand((6, 3)).rsample()
    (z**2).sum().backward()
    standard = (z * rate).detach()
    dz_dalpha = relative_gradient(standard.log(), alpha.detach()) * z.detach()
    torch.testing.assert_close(alpha.grad, (2 * z.detach() * dz_dalpha).sum(0))
    torch.testing.assert_close(rate.grad, (2 * z.detach() * -z.detach() / rate.detach()).sum(0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_appendix_b_clamp_range_gives_finite_values_and_gradients(dtype):
    """α and β anywhere in [1e-6, 1e6] (Appendix B's clamp)."""
    values = torch.tensor([1e-6, 1e-3, 1.0, 1e3, 1e6], dtype=dtype)
    alpha = values.repeat_interleave(5).requires_grad_()
    rate = values.repeat(5).requires_grad_()
    torch.manual_seed(11)
    z = VectorizedGamma(alpha, rate).expand((50, 25)).rsample()
    assert torch.isfinite(z).all() and (z > 0).all()
    z.log().sum().backward()
    assert torch.isfinite(alpha.grad).all() and torch.isfinite(rate.grad).all()


def test_is_pyros_gamma_with_its_kl_and_density():
    """A Pyro Gamma: same log_prob, moments, expand and registered KL (analytic, once per
    distinct parameter) as dist.Gamma."""
    alpha, rate = torch.tensor([0.7, 3.0]), torch.tensor([2.0, 0.5])
    ours, theirs = VectorizedGamma(alpha, rate), dist.Gamma(alpha, rate)
    assert isinstance(ours, dist.Gamma) and ours.has_rsample
    expanded = ours.expand((4, 2))
    assert isinstance(expanded, VectorizedGamma) and expanded.batch_shape == (4, 2)
    assert ours.rsample((3,)).shape == (3, 2) and ours.to_event(1).rsample().shape == (2,)
    value = torch.tensor([0.4, 5.0])
    torch.testing.assert_close(ours.log_prob(value), theirs.log_prob(value))
    torch.testing.assert_close(ours.mean, theirs.mean)
    prior = dist.Gamma(3.0, 12.0)
    torch.testing.assert_close(kl_divergence(expanded, prior.expand((4, 2))),
                               gamma_kl(alpha, rate, torch.tensor(3.0), torch.tensor(12.0)).expand(4, 2))


def test_an_explicit_generator_uses_torchs_sampler():
    d = VectorizedGamma(torch.tensor(2.0), torch.tensor(1.0))
    a = d.sample((5,), generator=torch.Generator().manual_seed(0))
    b = dist.Gamma(torch.tensor(2.0), torch.tensor(1.0)).sample((5,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [1e-6, 0.05, 1.0, 30.0, 1e6])
def test_rejected_proposals_redrawn_alone_or_with_every_variate_give_the_same_draws(alpha, dtype):
    """torch's sampler on the rejected proposals alone (the CPU path) and on every variate with
    α = 0 for the accepted ones (the path of other devices) draw the same numbers in the same
    order: the same variates bit for bit, broadcast parameters included."""
    from pyro_vsc.distributions.gamma import _sample

    concentration = (alpha * torch.exp(0.3 * torch.randn(50, 1, 8, generator=torch.Generator().manual_seed(0)))).to(dtype)
    rate = torch.linspace(0.5, 2.0, 3 * 8, dtype=dtype).reshape(3, 8)
    draws = []
    for select_rejected in (True, False):
        torch.manual_seed(3)
        draws.append(_sample(concentration, rate, [4, 50, 3, 8], select_rejected=select_rejected))
    assert torch.equal(*draws)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("alpha", [0.05, 1.0, 30.0])
def test_cuda_samples_and_gradients(alpha):
    torch.manual_seed(12)
    concentration = torch.full((40_000,), alpha, device="cuda", requires_grad=True)
    z = VectorizedGamma(concentration, torch.ones_like(concentration)).rsample()
    assert z.device.type == "cuda"
    pit = _randomized_pit(z.detach().cpu(), alpha, 1.0, torch.float32, torch.Generator().manual_seed(2))
    assert scipy.stats.kstest(pit, "uniform").pvalue > P_MIN
    z.sum().backward()
    cpu = relative_gradient(z.detach().cpu().double().log(), torch.tensor(alpha, dtype=torch.float64)) * z.detach().cpu()
    torch.testing.assert_close(concentration.grad.cpu().double(), cpu, rtol=1e-4, atol=1e-30)
