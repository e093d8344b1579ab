"""IWAE bound and PSIS k̂ on a linear-Gaussian model, whose log p(x) and posterior are exact."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from pyro_vsc.metrics import fraction_khat_above, iwae_bound, psis_khat

LATENT_DIM, DATA_DIM, NOISE_SCALE = 2, 4, 0.5


class LinearGaussian:
    """z ~ N(0, I), x | z ~ N(W z, s² I): p(x) = N(0, W Wᵀ + s² I), posterior Gaussian."""

    def __init__(self, num_points):
        self.weight = torch.randn(DATA_DIM, LATENT_DIM, dtype=torch.float64)
        latent = torch.randn(num_points, LATENT_DIM, dtype=torch.float64)
        noise = NOISE_SCALE * torch.randn(num_points, DATA_DIM, dtype=torch.float64)
        self.x = latent @ self.weight.T + noise
        data_identity = torch.eye(DATA_DIM, dtype=torch.float64)
        marginal_cov = self.weight @ self.weight.T + NOISE_SCALE**2 * data_identity
        marginal = MultivariateNormal(torch.zeros(DATA_DIM, dtype=torch.float64), marginal_cov)
        self.log_evidence = marginal.log_prob(self.x)
        latent_identity = torch.eye(LATENT_DIM, dtype=torch.float64)
        precision = latent_identity + self.weight.T @ self.weight / NOISE_SCALE**2
        self.posterior_cov = torch.linalg.inv(precision)
        self.posterior_loc = self.x @ self.weight @ self.posterior_cov / NOISE_SCALE**2

    def proposal(self, shift=0.0, scale=1.0):
        """N(posterior mean + shift posterior sds along (1, 1), scale² posterior covariance).

        In coordinates whitened by the posterior, log w - log p(x) depends on neither W nor x, so
        every data point is an independent replicate of the same importance sampling problem.
        """
        cholesky = torch.linalg.cholesky(self.posterior_cov)
        offset = shift * cholesky @ torch.ones(LATENT_DIM, dtype=torch.float64)
        return MultivariateNormal(self.posterior_loc + offset, self.posterior_cov * scale**2)

    def log_weights(self, proposal, num_samples):
        latent = proposal.sample((num_samples,))  # (K, N, d)
        prior = Independent(Normal(torch.zeros(LATENT_DIM, dtype=torch.float64), 1.0), 1)
        likelihood = Independent(Normal(latent @ self.weight.T, NOISE_SCALE), 1)
        return prior.log_prob(latent) + likelihood.log_prob(self.x) - proposal.log_prob(latent)


def test_exact_posterior_gives_constant_weights_and_exact_bound():
    torch.manual_seed(0)
    model = LinearGaussian(50)
    log_weights = model.log_weights(model.proposal(), 30)
    assert torch.allclose(log_weights, model.log_evidence.expand(30, 50), atol=1e-10)
    assert torch.allclose(iwae_bound(log_weights), model.log_evidence, atol=1e-10)


def test_bound_tightens_with_more_samples():
    num_points = 2000
    torch.manual_seed(0)
    model = LinearGaussian(num_points)
    proposal = model.proposal(shift=2.0, scale=2.0)  # off-centre and too wide
    log_weights = model.log_weights(proposal, 1000)

    # ELBO (K = 1 averaged over the draws) = log p(x) - KL(q || posterior), exactly for Gaussians.
    # Its Monte Carlo standard error is sd(log w) / sqrt(K N); allow 5 of them.
    elbo = log_weights.mean()
    expected_elbo = (model.log_evidence - kl_divergence(proposal, model.proposal())).mean()
    standard_error = log_weights.std() / math.sqrt(log_weights.numel())
    assert elbo.item() == pytest.approx(expected_elbo.item(), abs=5 * standard_error.item())

    # logmeanexp >= mean for every data point (Jensen), so the bound is never below the ELBO.
    assert torch.all(iwae_bound(log_weights) >= log_weights.mean(0))

    # Bounds from nested subsets of the same draws: E[L_K] increases with K towards log p(x)
    # (Burda et al., Thm. 1). Each step must exceed 3 standard errors of the paired per-point
    # differences; with this proposal the expected steps (~5.1, 0.4, 0.03 nats) are 5-35 of them.
    bounds = [iwae_bound(log_weights[:k]) for k in (1, 10, 100, 1000)]
    for smaller, larger in zip(bounds, bounds[1:]):
        step = larger - smaller
        assert step.mean() > 3 * step.std() / math.sqrt(num_points)
    # Still a lower bound: the mean gap is not significantly negative (4 standard errors) ...
    gaps = [model.log_evidence - bound for bound in bounds]
    assert gaps[-1].mean() > -4 * gaps[-1].std() / math.sqrt(num_points)
    # ... and it has closed: asymptotically the gap is Var(w / p(x)) / 2K, here ~0.005 nats at
    # K = 1000 against the K = 1 gap, KL(q || posterior) ~ 5.5 nats.
    assert gaps[-1].mean() < gaps[0].mean() / 100


def test_psis_khat_small_for_wider_proposal_large_for_narrow():
    torch.manual_seed(0)
    model = LinearGaussian(100)
    # Proposal N(posterior mean, s² posterior cov). For s > 1 the weights are bounded (k <= 0).
    # For s < 1 the weights grow like exp(a |u|² / 2), a = 1/s² - 1, |u|²/s² ~ chi-square, whose
    # tail P(w > t) ~ t^(-1 / (a s²)) (up to log factors) has Pareto shape k = 1 - s².
    wide = psis_khat(model.log_weights(model.proposal(scale=1.2), 2000))
    assert wide.shape == (100,)
    assert np.all(wide < 0.5)
    assert fraction_khat_above(wide) == 0.0

    narrow_scale = 0.2
    narrow = psis_khat(model.log_weights(model.proposal(scale=narrow_scale), 2000))
    # With K = 2000 the tail holds ceil(3 sqrt(2000)) = 135 weights, so a single k̂ has sd about
    # (1 + k) / sqrt(135) ~ 0.17 and the median of 100 about 0.02; the fit to this only
    # asymptotically Pareto tail also runs slightly low, hence 0.1 around k = 0.96.
    assert np.median(narrow) == pytest.approx(1 - narrow_scale**2, abs=0.1)
    # With k̂ ~ 0.93 +- 0.17, P(k̂ <= 0.7) for one point is about P(N(0, 1) < -1.35) ~ 9%: expect
    # ~91 of 100 above 0.7, binomial sd 3; allow 0.8 (3.5 sd).
    assert fraction_khat_above(narrow) >= 0.8


def test_psis_khat_of_exactly_constant_weights_is_minus_infinity():
    log_weights = torch.full((100, 3), -4.2)
    log_weights[:, 2] = torch.linspace(-1.0, 0.0, 100) ** 3  # bounded, non-constant
    khat = psis_khat(log_weights)
    assert khat[0] == -np.inf and khat[1] == -np.inf and np.isfinite(khat[2])
    assert fraction_khat_above(khat) == 0.0


def test_psis_needs_enough_samples():
    with pytest.raises(ValueError, match="at least 25"):
        psis_khat(np.zeros((10, 4)))


def test_fraction_khat_above_counts_strictly_greater():
    assert fraction_khat_above(np.array([0.1, 0.7, 0.71, np.inf])) == 0.5
