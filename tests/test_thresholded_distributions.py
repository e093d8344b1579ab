"""ThresholdedLaplace / ThresholdedNormal (§3.2, Prop. 3.1, Appendices A-C) and WarmupLaplace (App. B).

Statistical tolerances. With n i.i.d. draws an empirical proportion has standard error
sqrt(p(1-p)/n) and an empirical mean has standard error sd/sqrt(n); we accept deviations of
``Z_TOL = 5`` standard errors (two-sided normal tail ≈ 6e-7 per check). Distribution shapes are
checked by Kolmogorov-Smirnov / Pyro's density goodness of fit at p-value ``P_MIN = 1e-3``. All
draws use fixed seeds, so every check is deterministic; the tolerances say how far a correct
implementation can be from the truth, so a failure is a real discrepancy, not bad luck.
"""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch
from pyro.distributions import Laplace
from pyro.distributions.testing.gof import density_goodness_of_fit
from torch.distributions import constraints, kl_divergence

from pyro_vsc.distributions import (
    ThresholdedLaplace,
    ThresholdedNormal,
    WarmupLaplace,
    laplace_noise,
    shifted_soft_threshold,
)
from pyro_vsc.distributions.thresholded_laplace import LAPLACE_LOG_CLAMP

N_SAMPLES = 100_000
Z_TOL = 5.0
P_MIN = 1e-3

FAMILIES = {"laplace": ThresholdedLaplace, "normal": ThresholdedNormal}

#: (loc, scale, threshold): centred, |loc| < threshold, |loc| > threshold (both signs).
CASES = [(0.0, 1.0, 0.5), (0.3, 0.5, 0.8), (-2.0, 0.7, 0.4), (1.5, 0.1, 0.25)]

FAMILY_CASES = [(family, *case) for family in FAMILIES for case in CASES]


# --- reference laws, written independently of the implementation with scipy -----------------
def reference_nonzero_prob(family, scale, threshold):
    """γ = P(|s-μ| > λ): exp(-λ/b) for Laplace (eq. 3), 2 Q(λ/σ) for Normal (numpy-vectorized)."""
    if family == "laplace":
        return np.exp(-np.divide(threshold, scale))
    return 2.0 * scipy.stats.norm.sf(np.divide(threshold, scale))


def reference_slab_density(family, z, loc, scale, threshold):
    """Slab density (mass γ) at z ≠ 0: γ Laplace(z; μ, b) (Prop. 3.1) or N(|z-μ|+λ; 0, σ)."""
    if family == "laplace":
        return reference_nonzero_prob(family, scale, threshold) * scipy.stats.laplace.pdf(z, loc, scale)
    return scipy.stats.norm.pdf(np.abs(z - loc) + threshold, 0.0, scale)


def reference_slab_cdf(family, z, loc, scale, threshold):
    """CDF of z given z ≠ 0.

    Laplace: the full base CDF (Prop. 3.1, eq. 14). Normal: for z < μ,
    (1/γ)∫_{-∞}^z N(μ-t+λ; 0, σ) dt = Φ((z-μ-λ)/σ)/γ, and by symmetry about μ,
    1 - Φ((μ-z-λ)/σ)/γ for z ≥ μ.
    """
    if family == "laplace":
        return scipy.stats.laplace.cdf(z, loc, scale)
    gamma = reference_nonzero_prob(family, scale, threshold)
    below = scipy.stats.norm.cdf((z - loc - threshold) / scale) / gamma
    above = 1.0 - scipy.stats.norm.cdf((loc - z - threshold) / scale) / gamma
    return np.where(z < loc, below, above)


def integrate_around(fn, loc, scale):
    """∫ fn over the reals, split at the cusp μ; beyond 60 scales both slabs are below e^-50."""
    options = dict(epsabs=1e-13, epsrel=1e-11, limit=200)
    left = scipy.integrate.quad(fn, loc - 60 * scale, loc, **options)[0]
    right = scipy.integrate.quad(fn, loc, loc + 60 * scale, **options)[0]
    return left + right


def make(family, loc, scale, threshold, dtype=torch.float64, **kwargs):
    as_tensor = lambda x: torch.tensor(x, dtype=dtype)  # noqa: E731
    return FAMILIES[family](as_tensor(loc), as_tensor(scale), as_tensor(threshold), **kwargs)


def draw(dist, n=N_SAMPLES, seed=0):
    torch.manual_seed(seed)
    return dist.sample((n,))


# --- the law of the samples (Prop. 3.1 and its Normal counterpart) ----------------------------
@pytest.mark.parametrize("family, loc, scale, threshold", FAMILY_CASES)
def test_nonzero_prob_matches_reference(family, loc, scale, threshold):
    d = make(family, loc, scale, threshold)
    expected = reference_nonzero_prob(family, scale, threshold)
    assert d.nonzero_prob.item() == pytest.approx(expected, rel=1e-12)
    assert d.log_zero_prob.exp().item() == pytest.approx(1.0 - expected, rel=1e-12)


@pytest.mark.parametrize("family, loc, scale, threshold", FAMILY_CASES)
def test_fraction_of_exact_zeros(family, loc, scale, threshold):
    """Eq. (3): P(z = 0) = 1 - γ, within Z_TOL binomial standard errors sqrt(p(1-p)/n)."""
    z = draw(make(family, loc, scale, threshold, dtype=torch.float32))
    p_zero = 1.0 - reference_nonzero_prob(family, scale, threshold)
    standard_error = math.sqrt(p_zero * (1 - p_zero) / N_SAMPLES)
    assert (z == 0).double().mean().item() == pytest.approx(p_zero, abs=Z_TOL * standard_error)


@pytest.mark.parametrize("family, loc, scale, threshold", FAMILY_CASES)
def test_nonzero_values_follow_slab_law(family, loc, scale, threshold):
    """KS test of the non-zero samples against the slab CDF: the full base Laplace(μ, b) CDF for
    the Laplace family (Prop. 3.1), the folded-and-shifted Normal slab for the Normal family."""
    z = draw(make(family, loc, scale, threshold, dtype=torch.float32), seed=1)
    nonzero = z[z != 0].double().numpy()
    result = scipy.stats.kstest(nonzero, lambda x: reference_slab_cdf(family, x, loc, scale, threshold))
    assert result.pvalue > P_MIN


@pytest.mark.parametrize("family, loc, scale, threshold", FAMILY_CASES)
def test_slab_samples_agree_with_slab_log_prob(family, loc, scale, threshold):
    """Pyro's density goodness of fit of the non-zero samples against exp(slab_log_prob)/γ: ties
    the sampler to the implementation's own density (STYLE.md: gof on the slab part)."""
    d = make(family, loc, scale, threshold)
    # about 5000 non-zero draws (the chi^2 binning needs > 343), at most N_SAMPLES in all
    z = draw(d, n=min(N_SAMPLES, int(5000 / reference_nonzero_prob(family, scale, threshold))), seed=2)
    nonzero = z[z != 0]
    probs = (d.slab_log_prob(nonzero) - d.log_nonzero_prob).exp()
    assert density_goodness_of_fit(nonzero, probs) > P_MIN


# --- log_prob is a density w.r.t. δ0 + Lebesgue ----------------------------------------------
@pytest.mark.parametrize("family, loc, scale, threshold", FAMILY_CASES)
def test_log_prob_is_a_proper_density(family, loc, scale, threshold):
    """exp(log_prob(0)) + ∫ exp(slab_log_prob) = 1, and log_prob is the slab density off zero."""
    d = make(family, loc, scale, threshold)
    spike = d.log_prob(torch.tensor(0.0, dtype=torch.float64)).exp().item()
    slab = integrate_around(lambda x: d.slab_log_prob(torch.tensor(x, dtype=torch.float64)).exp().item(),
                            loc, scale)
    assert spike + slab == pytest.approx(1.0, abs=1e-9)
    grid = torch.linspace(loc - 5 * scale, loc + 5 * scale, 101, dtype=torch.float64)
    grid = grid[grid != 0]
    torch.testing.assert_close(d.log_prob(grid), d.slab_log_prob(grid), rtol=0, atol=0)
    reference = reference_slab_density(family, grid.numpy(), loc, scale, threshold)
    np.testing.assert_allclose(d.log_prob(grid).exp().numpy(), reference, rtol=1e-10)


@pytest.mark.parametrize("family, loc, scale, threshold", FAMILY_CASES)
def test_slab_density_integrates_to_reference_cdf(family, loc, scale, threshold):
    """∫_{-∞}^x exp(slab_log_prob) = γ F_slab(x) at points on both sides of μ."""
    d = make(family, loc, scale, threshold)
    gamma = reference_nonzero_prob(family, scale, threshold)
    density = lambda t: d.slab_log_prob(torch.tensor(t, dtype=torch.float64)).exp().item()  # noqa: E731
    for x in (loc - 1.5 * scale, loc - 0.2 * scale, loc + 0.7 * scale, loc + 3 * scale):
        pieces = [(loc - 60 * scale, min(x, loc))] + ([(loc, x)] if x > loc else [])
        mass = sum(scipy.integrate.quad(density, a, b, epsabs=1e-13)[0] for a, b in pieces)
        assert mass == pytest.approx(gamma * reference_slab_cdf(family, x, loc, scale, threshold),
                                     abs=1e-9)


@pytest.mark.parametrize("family, loc, scale, threshold", FAMILY_CASES)
def test_mean_log_prob_of_own_samples_is_minus_entropy(family, loc, scale, threshold):
    """E_z[log p(z)] = -H, H = -(1-γ)log(1-γ) - ∫ p_slab log p_slab (mixed-measure entropy).

    This checks sampler and log_prob jointly, spike mass included (a wrong log(1-γ) or a slab
    density off by a constant factor both shift the mean), which a slab-only goodness of fit
    cannot see. H comes from scipy quadrature of the reference slab density; the Monte-Carlo
    mean has standard error sd(log p)/sqrt(n).
    """
    d = make(family, loc, scale, threshold)
    gamma = reference_nonzero_prob(family, scale, threshold)

    def slab_neg_p_log_p(x):
        p = reference_slab_density(family, x, loc, scale, threshold)
        return -p * math.log(p) if p > 0 else 0.0

    entropy = -(1 - gamma) * math.log(1 - gamma) + integrate_around(slab_neg_p_log_p, loc, scale)
    log_p = d.log_prob(draw(d, seed=3))
    standard_error = log_p.std().item() / math.sqrt(N_SAMPLES)
    assert log_p.mean().item() == pytest.approx(-entropy, abs=Z_TOL * standard_error)


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_threshold_is_the_base_law_with_finite_gradients(family):
    """λ = 0 (allowed: the constraint is non-negative) leaves no spike: log_prob(0) = -inf and
    off zero log_prob is the base log-density, with the base gradients (not NaN: the spike's
    log(1-γ) = -inf must not leak 0·∞ through the torch.where of log_prob)."""
    base = {"laplace": torch.distributions.Laplace, "normal": torch.distributions.Normal}[family]
    value = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    grads = []
    for build in (lambda loc, scale: FAMILIES[family](loc, scale, torch.zeros((), dtype=torch.float64)),
                  base):
        loc = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
        scale = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
        log_p = build(loc, scale).log_prob(value)
        log_p.sum().backward()
        grads.append((log_p.detach(), loc.grad, scale.grad))
    for thresholded, reference in zip(*grads):
        torch.testing.assert_close(thresholded, reference)
    assert make(family, 0.2, 0.7, 0.0).log_prob(torch.zeros((), dtype=torch.float64)).item() == -math.inf


# --- moments ----------------------------------------------------------------------------------
@pytest.mark.parametrize("family, loc, scale, threshold", FAMILY_CASES)
def test_mean_and_variance_match_quadrature(family, loc, scale, threshold):
    d = make(family, loc, scale, threshold)
    density = lambda x: reference_slab_density(family, x, loc, scale, threshold)  # noqa: E731
    first = integrate_around(lambda x: x * density(x), loc, scale)
    second = integrate_around(lambda x: x * x * density(x), loc, scale)
    assert d.mean.item() == pytest.approx(first, abs=1e-9)
    assert d.variance.item() == pytest.approx(second - first ** 2, abs=1e-9)


@pytest.mark.parametrize("family, loc, scale, threshold", FAMILY_CASES)
def test_mean_and_variance_match_monte_carlo(family, loc, scale, threshold):
    """Standard errors: sd/sqrt(n) for the mean, sqrt((m4 - var^2)/n) for the variance."""
    d = make(family, loc, scale, threshold)
    z = draw(d, seed=4)
    centred = z - z.mean()
    sample_variance = centred.pow(2).mean()
    fourth_moment = centred.pow(4).mean()
    mean_error = math.sqrt(sample_variance.item() / N_SAMPLES)
    variance_error = math.sqrt((fourth_moment - sample_variance ** 2).item() / N_SAMPLES)
    assert z.mean().item() == pytest.approx(d.mean.item(), abs=Z_TOL * mean_error)
    assert sample_variance.item() == pytest.approx(d.variance.item(), abs=Z_TOL * variance_error)


# --- gradients: straight-through (eq. 4) and subgradient (eq. 2, Appendix C) ------------------
def _leaves(family, n, noise_factor, straight_through, seed=0):
    generator = torch.Generator().manual_seed(seed)
    loc = torch.randn(n, generator=generator, dtype=torch.float64).requires_grad_()
    scale = (0.2 + torch.rand(n, generator=generator, dtype=torch.float64)).requires_grad_()
    threshold = (0.6 * torch.rand(n, generator=generator, dtype=torch.float64)).requires_grad_()
    dist = FAMILIES[family](loc, scale, threshold, straight_through=straight_through,
                            noise_factor=noise_factor)
    return dist, loc, scale, threshold


def _grads_of(sample_fn, family, noise_factor, straight_through, seed):
    dist, loc, scale, threshold = _leaves(family, 500, noise_factor, straight_through)
    torch.manual_seed(seed)
    value = sample_fn(dist)
    value.sum().backward()
    grads = [x.grad if x.grad is not None else torch.zeros_like(x) for x in (loc, scale, threshold)]
    return value.detach(), grads, loc.detach()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("noise_factor", [1.0, 0.3])
@pytest.mark.parametrize("straight_through", [True, False])
def test_rsample_gradients(family, noise_factor, straight_through):
    """Same seed ⇒ same noise: compare ∂z/∂θ with ∂s/∂θ of the base sample s = μ + ωσε.

    Straight-through: ∂z/∂μ = ∂s/∂μ = 1 and ∂z/∂σ = ∂s/∂σ = ωε everywhere, zeros included.
    Subgradient: the same where z ≠ 0 and 0 where z = 0. Both: ∂z/∂λ = -sign(s-μ) where z ≠ 0
    and 0 where z = 0 (the threshold is not detached).
    """
    z, (dz_dloc, dz_dscale, dz_dthreshold), loc = _grads_of(
        lambda d: d.rsample(), family, noise_factor, straight_through, seed=5)
    s, (ds_dloc, ds_dscale, ds_dthreshold), _ = _grads_of(
        lambda d: d.base_rsample(), family, noise_factor, straight_through, seed=5)
    dist, *_ = _leaves(family, 500, noise_factor, straight_through)
    active = z != 0
    assert active.any() and (~active).any()
    threshold = dist.threshold.detach()
    torch.testing.assert_close(z, shifted_soft_threshold(s, threshold, loc), rtol=0, atol=0)
    # the base sample is the location-scale reparameterization s = μ + ωσε
    torch.testing.assert_close(ds_dloc, torch.ones_like(s), rtol=0, atol=0)
    torch.testing.assert_close(ds_dscale, (s - loc) / dist.scale.detach(), rtol=1e-12, atol=1e-12)
    assert (ds_dthreshold == 0).all()

    mask = torch.ones_like(s) if straight_through else active.double()
    torch.testing.assert_close(dz_dloc, ds_dloc * mask, rtol=0, atol=0)
    torch.testing.assert_close(dz_dscale, ds_dscale * mask, rtol=0, atol=0)
    expected_dz_dthreshold = torch.where(active, -(s - loc).sign(), 0.0)
    torch.testing.assert_close(dz_dthreshold, expected_dz_dthreshold, rtol=0, atol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_sampled_threshold_receives_gradient(family):
    """A per-sample threshold tensor (J, B, D), e.g. drawn from a Gamma posterior (§3.2)."""
    loc = torch.randn(3, 4, dtype=torch.float64)
    scale = torch.full((3, 4), 0.5, dtype=torch.float64)
    threshold = torch.rand(6, 3, 4, dtype=torch.float64).requires_grad_()
    torch.manual_seed(6)
    z = FAMILIES[family](loc, scale, threshold).rsample()
    z.sum().backward()
    assert z.shape == (6, 3, 4)
    torch.testing.assert_close(threshold.grad, torch.where(z != 0, -(z - loc).sign(), 0.0))


# --- shapes, expand, constraints --------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("sampled_threshold", [False, True])
def test_particle_expanded_law_computes_like_materialised_parameters(family, sampled_threshold):
    """Sampling and log_prob use the parameters as given (``compact_params``), not the J-fold
    expanded views: values and gradients equal those of the same law built from materialised
    (J, B, K) parameters, and log_prob keeps the batch shape for a smaller value."""
    J, B, K = 4, 3, 5
    loc = torch.randn(B, K, dtype=torch.float64, requires_grad=True)
    scale = (torch.rand(B, K, dtype=torch.float64) + 0.3).requires_grad_()
    threshold = (torch.rand(J, B, K, dtype=torch.float64) + 0.2 if sampled_threshold
                 else torch.tensor(0.4, dtype=torch.float64)).requires_grad_()
    expanded = FAMILIES[family](loc, scale, threshold).expand((J, B, K))
    materialised = FAMILIES[family](*(t.expand(J, B, K).clone() for t in (loc, scale, threshold)))
    torch.manual_seed(3)
    z = expanded.rsample()
    torch.manual_seed(3)
    z_reference = materialised.rsample()
    torch.testing.assert_close(z, z_reference, rtol=0, atol=1e-15)
    assert (z == 0).any() and (z != 0).any()
    value = z.detach()
    results = []
    for law, sample in ((expanded, z), (materialised, z_reference)):
        log_prob = law.log_prob(value)
        loss = log_prob.sum() + sample.square().sum()
        results.append((log_prob, torch.autograd.grad(loss, (loc, scale, threshold))))
    torch.testing.assert_close(results[0], results[1])
    assert expanded.log_prob(torch.zeros(K, dtype=torch.float64)).shape == (J, B, K)


@pytest.mark.parametrize("family", FAMILIES)
def test_per_dimension_threshold_broadcasts(family):
    loc, scale = torch.randn(5, 3), torch.rand(5, 3) + 0.5
    threshold = torch.tensor([0.0, 0.5, 2.0])
    d = FAMILIES[family](loc, scale, threshold)
    assert d.batch_shape == (5, 3) and d.event_shape == ()
    torch.manual_seed(7)
    z = d.rsample((4,))
    torch.manual_seed(7)
    s = d.base_rsample((4,))
    assert z.shape == (4, 5, 3) and d.log_prob(z).shape == (4, 5, 3)
    torch.testing.assert_close(z, shifted_soft_threshold(s, threshold, loc), rtol=0, atol=0)
    assert (z[..., 0] != 0).all() and (z[..., 2] == 0).float().mean() > (z[..., 1] == 0).float().mean()


@pytest.mark.parametrize("family", FAMILIES)
def test_per_sample_threshold_broadcasts(family):
    loc, scale = torch.randn(2, 3), torch.rand(2, 3) + 0.5
    threshold = torch.rand(4, 2, 3)
    d = FAMILIES[family](loc, scale, threshold)
    assert d.batch_shape == (4, 2, 3)
    torch.manual_seed(8)
    z = d.rsample()
    torch.manual_seed(8)
    s = d.base_rsample()
    torch.testing.assert_close(z, shifted_soft_threshold(s, threshold, loc), rtol=0, atol=0)
    assert d.log_prob(z).shape == (4, 2, 3)
    gamma = reference_nonzero_prob(family, scale.double().numpy(), threshold.double().numpy())
    torch.testing.assert_close(d.nonzero_prob, torch.from_numpy(gamma).float())


@pytest.mark.parametrize("family", FAMILIES)
def test_expand_keeps_type_parameters_and_options(family):
    d = FAMILIES[family](torch.randn(3), torch.rand(3) + 0.1, torch.rand(3), straight_through=False,
                         noise_factor=0.25, validate_args=True)
    e = d.expand((2, 3))
    assert type(e) is type(d) and e.batch_shape == (2, 3)
    assert e.straight_through is False and e.noise_factor == 0.25 and e._validate_args
    for name in ("loc", "scale", "threshold"):
        torch.testing.assert_close(getattr(e, name), getattr(d, name).expand(2, 3))
    assert e.rsample().shape == (2, 3)


@pytest.mark.parametrize("family", FAMILIES)
def test_to_event_sums_log_prob_over_event_dim(family):
    d = FAMILIES[family](torch.randn(4, 3), torch.rand(4, 3) + 0.1, 0.3)
    independent = d.to_event(1)
    assert independent.batch_shape == (4,) and independent.event_shape == (3,)
    assert independent.has_rsample and d.has_rsample
    z = independent.rsample((2,))
    assert z.shape == (2, 4, 3) and (z == 0).any()
    torch.testing.assert_close(independent.log_prob(z), d.log_prob(z).sum(-1))


@pytest.mark.parametrize("family", FAMILIES)
def test_support_is_real_and_validation(family):
    cls = FAMILIES[family]
    assert cls.support is constraints.real
    d = cls(0.0, 1.0, 0.0, validate_args=True)  # a zero threshold is allowed
    assert torch.isfinite(d.log_prob(torch.tensor([-3.0, 2.0]))).all()
    for bad in [dict(scale=-1.0), dict(scale=0.0), dict(threshold=-0.1)]:
        kwargs = dict(loc=0.0, scale=1.0, threshold=0.5) | bad
        with pytest.raises(ValueError, match=f"Expected parameter {next(iter(bad))} "):
            cls(**kwargs, validate_args=True)
    with pytest.raises(ValueError):
        cls(0.0, 1.0, 0.5, validate_args=True).log_prob(torch.tensor(float("nan")))


# --- warm-up ω (Appendix B) -------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("noise_factor", [0.1, 0.5])
def test_noise_factor_scales_base_deviation_only(family, noise_factor):
    loc, scale, threshold = torch.tensor([0.4, -1.0]), torch.tensor([0.3, 2.0]), torch.tensor([0.2, 0.1])
    n = 20_000
    warm = FAMILIES[family](loc, scale, threshold, noise_factor=noise_factor)
    plain = FAMILIES[family](loc, scale, threshold)
    torch.manual_seed(9)
    s_warm = warm.base_rsample((n,))
    torch.manual_seed(9)
    s_plain = plain.base_rsample((n,))
    # same noise ε: s_ω - μ = ω (s_1 - μ) draw by draw
    torch.testing.assert_close(s_warm - loc, noise_factor * (s_plain - loc))
    torch.manual_seed(9)
    torch.testing.assert_close(warm.rsample((n,)), shifted_soft_threshold(s_warm, threshold, loc))
    # statistically: sd(s - μ) = ω · sd_base (√2 b or σ); SE(sd) = sd sqrt((kurtosis - 1)/(4n))
    base_sd, kurtosis = (math.sqrt(2) * scale, 6.0) if family == "laplace" else (scale, 3.0)
    relative_error = math.sqrt((kurtosis - 1) / (4 * n))
    torch.testing.assert_close((s_warm - loc).std(0), noise_factor * base_sd,
                               rtol=Z_TOL * relative_error, atol=0)
    # log_prob, moments and KL describe the ω = 1 law
    z = plain.sample((10,))
    torch.testing.assert_close(warm.log_prob(z), plain.log_prob(z))
    torch.testing.assert_close(warm.mean, plain.mean)
    torch.testing.assert_close(warm.variance, plain.variance)
    prior = FAMILIES[family](torch.zeros(2), torch.ones(2), 0.5)
    torch.testing.assert_close(kl_divergence(warm, prior), kl_divergence(plain, prior))


@pytest.mark.parametrize("noise_factor", [0.1, 1.0])
def test_warmup_laplace(noise_factor):
    loc, scale = torch.tensor([0.3, -1.2]), torch.tensor([0.5, 0.1])
    warm = WarmupLaplace(loc, scale, noise_factor=noise_factor)
    torch.manual_seed(10)
    s = warm.rsample((N_SAMPLES,))
    torch.manual_seed(10)
    eps = laplace_noise((N_SAMPLES, 2), loc)
    torch.testing.assert_close(s, loc + noise_factor * scale * eps)
    for j in range(2):
        cdf = scipy.stats.laplace(loc[j].item(), noise_factor * scale[j].item()).cdf
        assert scipy.stats.kstest(s[:, j].double().numpy(), cdf).pvalue > P_MIN
    reference = Laplace(loc, scale)
    torch.testing.assert_close(warm.log_prob(s[:10]), reference.log_prob(s[:10]))
    prior = Laplace(torch.tensor(0.2), torch.tensor(0.1)).expand((2,))
    torch.testing.assert_close(kl_divergence(warm, prior), kl_divergence(reference, prior))
    expanded = warm.expand((3, 2))
    assert type(expanded) is WarmupLaplace and expanded.noise_factor == noise_factor
    assert expanded.rsample().shape == (3, 2)


# --- Appendix B's Laplace noise ---------------------------------------------------------------
def test_laplace_noise_is_standard_laplace_and_bounded():
    torch.manual_seed(11)
    eps = laplace_noise((N_SAMPLES,), torch.zeros(()))
    bound = -math.log(LAPLACE_LOG_CLAMP)
    assert eps.abs().max().item() <= bound
    assert scipy.stats.kstest(eps.double().numpy(), scipy.stats.laplace.cdf).pvalue > P_MIN


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("uniform", [0.0, "just below 1"])
def test_laplace_noise_clamp_engages_at_the_extremes(monkeypatch, dtype, uniform):
    """u = U - 1/2 at ±1/2 makes 1 - 2|u| zero or below 1e-6; the clamp keeps |ε| = -log(1e-6)."""
    value = 0.0 if uniform == 0.0 else 1.0 - torch.finfo(dtype).eps / 2
    real_full = torch.full
    monkeypatch.setattr(torch, "rand", lambda shape, dtype, device: real_full(shape, value, dtype=dtype,
                                                                              device=device))
    eps = laplace_noise((3,), torch.zeros((), dtype=dtype))
    expected = -math.log(LAPLACE_LOG_CLAMP) * (1.0 if value > 0.5 else -1.0)
    torch.testing.assert_close(eps, torch.full((3,), expected, dtype=dtype))


# --- dtype / device ---------------------------------------------------------------------------
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family", FAMILIES)
def test_float64_end_to_end(family, device):
    loc = torch.randn(4, dtype=torch.float64, device=device).requires_grad_()
    scale = torch.full((4,), 0.5, dtype=torch.float64, device=device)
    d = FAMILIES[family](loc, scale, 0.3)
    prior = FAMILIES[family](torch.zeros(4, dtype=torch.float64, device=device), scale, 0.3)
    z = d.rsample((2,))
    log_p = d.log_prob(z)
    kl = kl_divergence(d, prior)
    (log_p.sum() + kl.sum()).backward()
    for tensor in (z, log_p, kl, loc.grad, d.nonzero_prob, d.mean, d.variance):
        assert tensor.dtype == torch.float64 and tensor.device.type == device
    # float64 sampling puts exact zeros at the rate 1 - γ (binomial tolerance as above)
    centred = FAMILIES[family](torch.tensor(0.3, dtype=torch.float64, device=device), 0.5, 0.4)
    torch.manual_seed(12)
    zeros = (centred.sample((N_SAMPLES,)) == 0).double().mean().item()
    p_zero = 1.0 - reference_nonzero_prob(family, 0.5, 0.4)
    assert zeros == pytest.approx(p_zero, abs=Z_TOL * math.sqrt(p_zero * (1 - p_zero) / N_SAMPLES))

