"""Trace-based importance weights: IWAE bound and PSIS k̂ on models whose log p(x) is known."""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.nn import PyroModule
from scipy import integrate, stats

from pyro_vsc.distributions import ThresholdedLaplace
from pyro_vsc.elbo.kl_weights import KLWeights
from pyro_vsc.evaluation.importance_sampling import khat_per_point, summarize_log_weights
from pyro_vsc.evaluation.importance_weights import importance_log_weights
from pyro_vsc.metrics import iwae_bound

LATENT_DIM, DATA_DIM, NOISE_SCALE = 2, 4, 0.5


class LinearGaussianModel(PyroModule):
    """z ~ N(0, I), x | z ~ N(W z, s² I): p(x) = N(0, W Wᵀ + s² I), Gaussian posterior."""

    def __init__(self, weight):
        super().__init__()
        self.weight = weight

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(LATENT_DIM, dtype=x.dtype), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ self.weight.T, NOISE_SCALE).to_event(1), obs=x)

    def log_evidence(self, x):
        covariance = self.weight @ self.weight.T + NOISE_SCALE**2 * torch.eye(DATA_DIM, dtype=x.dtype)
        return dist.MultivariateNormal(torch.zeros(DATA_DIM, dtype=x.dtype), covariance).log_prob(x)

    def posterior(self, x):
        precision = torch.eye(LATENT_DIM, dtype=x.dtype) + self.weight.T @ self.weight / NOISE_SCALE**2
        covariance = torch.linalg.inv(precision)
        return x @ self.weight @ covariance / NOISE_SCALE**2, covariance


class GaussianGuide(PyroModule):
    """q(z|x) = N(posterior mean + shift posterior sds along (1, 1), scale² posterior covariance);
    shift 0 and scale 1 is the exact posterior."""

    def __init__(self, model, shift=0.0, scale=1.0):
        super().__init__()
        self.model, self.shift, self.scale = model, shift, scale

    def forward(self, x):
        loc, covariance = self.model.posterior(x)
        offset = torch.linalg.cholesky(covariance) @ torch.ones(LATENT_DIM, dtype=x.dtype)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.MultivariateNormal(loc + self.shift * offset,
                                                     covariance * self.scale**2))


@pytest.fixture
def linear_gaussian():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(DATA_DIM, LATENT_DIM, generator=generator, dtype=torch.float64)
    model = LinearGaussianModel(weight)
    latent = torch.randn(2000, LATENT_DIM, generator=generator, dtype=torch.float64)
    x = latent @ weight.T + NOISE_SCALE * torch.randn(2000, DATA_DIM, generator=generator,
                                                       dtype=torch.float64)
    return model, x


def test_exact_posterior_weights_equal_the_evidence(linear_gaussian):
    model, x = linear_gaussian
    log_weights = importance_log_weights(model, GaussianGuide(model), x[:50], 40, batch_size=16)
    assert log_weights.shape == (40, 50)
    # p(x, z) / q(z | x) = p(x) for every z when q is the posterior: only rounding remains.
    torch.testing.assert_close(log_weights, model.log_evidence(x[:50]).expand(40, 50),
                               rtol=0, atol=1e-10)


def test_bound_increases_with_k_towards_log_evidence_and_exceeds_the_elbo(linear_gaussian):
    model, x = linear_gaussian
    num_points = x.shape[0]
    guide = GaussianGuide(model, shift=2.0, scale=2.0)  # off-centre and too wide
    log_weights = importance_log_weights(model, guide, x, 1000, batch_size=500)
    summary = summarize_log_weights(log_weights)
    # logmeanexp ≥ mean for every point (Jensen): the bound is never below the ELBO.
    assert torch.all(iwae_bound(log_weights) >= log_weights.mean(0))
    assert summary["iwae_bound"] >= summary["elbo"] and summary["iwae_loss"] == -summary["iwae_bound"]
    # Nested subsets of the same draws: E[L_K] increases with K (Burda et al., Thm. 1). The paired
    # per-point steps must exceed 3 standard errors of their mean over the 2000 points (expected
    # steps ~5.1, 0.4 and 0.03 nats are 5-35 standard errors).
    bounds = [iwae_bound(log_weights[:k]) for k in (1, 10, 100, 1000)]
    for smaller, larger in zip(bounds, bounds[1:]):
        step = larger - smaller
        assert step.mean() > 3 * step.std() / math.sqrt(num_points)
    gaps = [model.log_evidence(x) - bound for bound in bounds]
    # Still a lower bound (mean gap not significantly negative, 4 standard errors) that has closed:
    # the K = 1 gap is KL(q || posterior) = ½(2·4 + 8 - 2 - ln 16) ≈ 5.6 nats, the K = 1000 gap about
    # Var(w / p(x)) / 2K ≈ 0.005 nats (in posterior-whitened coordinates every point is the same
    # importance sampling problem, see tests/test_metrics_importance_sampling.py).
    assert gaps[-1].mean() > -4 * gaps[-1].std() / math.sqrt(num_points)
    assert gaps[-1].mean() < gaps[0].mean() / 100


def test_psis_khat_is_small_for_the_exact_posterior_and_large_for_a_narrow_guide(linear_gaussian):
    model, x = linear_gaussian
    # Exact posterior: the weights are equal up to rounding (~1e-15 relative), which leaves no
    # tail to fit; ArviZ alone would fit the rounding noise (and report inf where it has ties).
    exact = khat_per_point(importance_log_weights(model, GaussianGuide(model), x[:100], 200))
    assert np.all(exact == -np.inf)
    # A guide wider than the posterior has bounded weights (k ≤ 0). With ceil(3 sqrt(200)) = 43
    # tail weights one k̂ has sd ≈ (1 + k) / sqrt(43) ≈ 0.15, so k̂ > 0.7 is a 4.5 sd event for
    # each of the 100 points.
    wide = khat_per_point(importance_log_weights(model, GaussianGuide(model, scale=1.2), x[:100], 200))
    assert np.all(wide < 0.7) and np.median(wide) < 0.2
    # A guide with 0.3× the posterior's scale: weights with a Pareto tail of shape 1 - 0.3² = 0.91.
    narrow = khat_per_point(importance_log_weights(model, GaussianGuide(model, scale=0.3), x[:100], 200))
    assert np.median(narrow) > 0.7
    assert summarize_log_weights(importance_log_weights(
        model, GaussianGuide(model, scale=0.3), x[:100], 200))["khat_fraction_above"] > 0.5


class ThresholdedLaplaceModel(PyroModule):
    """z = T_λ(s), s ~ Laplace(0, b) (a spike at 0 plus a slab), x | z ~ N(a z, s²), scalar."""

    prior_scale, threshold, slope, noise = 1.0, 0.5, 2.0, 0.7

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", ThresholdedLaplace(0.0, self.prior_scale, self.threshold)
                            .expand([1]).to_event(1))
            pyro.sample("x", dist.Normal(self.slope * z, self.noise).to_event(1), obs=x)

    def evidence(self, x):
        """p(x) = P(z = 0) N(x; 0, s²) + ∫ slab(z) N(x; a z, s²) dz, the slab by quadrature."""
        spike = 1 - math.exp(-self.threshold / self.prior_scale)

        def slab(z):  # T_λ of a Laplace: the Laplace density shifted by λ towards 0
            return 0.5 / self.prior_scale * math.exp(-(abs(z) + self.threshold) / self.prior_scale)

        likelihood = stats.norm(scale=self.noise).pdf
        continuous = sum(integrate.quad(lambda z: slab(z) * likelihood(x - self.slope * z),
                                        low, high, limit=200)[0]
                         for low, high in ((-np.inf, 0.0), (0.0, np.inf)))
        return spike * likelihood(x) + continuous


class ThresholdedLaplaceGuide(PyroModule):
    """A deliberately imperfect thresholded posterior: spike and slab of its own."""

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", ThresholdedLaplace(0.4 * x, 0.6, 0.3).to_event(1))


def test_weights_of_spike_and_slab_laws_are_unbiased_for_the_evidence():
    """E_q[w] = p(x) holds only if log q and log p are densities on the same mixed measure
    (δ₀ + Lebesgue): the spike's log-probability at z = 0, the slab density elsewhere."""
    model = ThresholdedLaplaceModel()
    x = torch.tensor([[-2.0], [-0.3], [0.0], [0.8], [2.5]], dtype=torch.float64)
    num_samples = 20000
    log_weights = importance_log_weights(model, ThresholdedLaplaceGuide(), x, num_samples)
    assert bool(((log_weights - log_weights.max(0).values) > -1e3).all())  # finite, no NaN
    ratio = (log_weights - torch.tensor([math.log(model.evidence(v)) for v in x[:, 0].tolist()],
                                        dtype=torch.float64)).exp()  # w / p(x), mean 1
    # The Monte Carlo mean of w / p(x) has standard error sd / sqrt(K); allow 5 of them.
    standard_error = ratio.std(0) / math.sqrt(num_samples)
    assert torch.all((ratio.mean(0) - 1).abs() < 5 * standard_error)
    # The check has power: with the guide's spike probability off by a factor 2 the means of the
    # points -0.3, 0 and 0.8 move by 90-140 standard errors (checked by hand).
    assert torch.all(standard_error < 0.01)


def test_weighted_sites_are_refused(linear_gaussian):
    model, x = linear_gaussian
    with pytest.raises(ValueError, match="unweighted model"):
        importance_log_weights(KLWeights({"z": 0.1})(model), GaussianGuide(model), x[:4], 3)
    with pytest.raises(ValueError, match="positive integer"):
        importance_log_weights(model, GaussianGuide(model), x[:4], 0)
