"""ConcreteSpikeSlab: the relaxed spike-and-slab of Tonolini et al. (2020), Table 1 / Appendix D.

Tolerances as in test_thresholded_distributions.py: Z_TOL = 5 standard errors (binomial
sqrt(p(1-p)/n) for proportions, sd/sqrt(n) for means), KS p-value floor P_MIN = 1e-3, fixed seeds.
"""

import math

import pytest
import scipy.integrate
import scipy.stats
import torch
from torch.distributions import constraints, kl_divergence

from pyro_vsc.distributions import ConcreteSpikeSlab

N_SAMPLES = 100_000
Z_TOL = 5.0
P_MIN = 1e-3


def make(logits, loc, scale, temperature=1.0, dtype=torch.float64, **kwargs):
    as_tensor = lambda x: torch.tensor(x, dtype=dtype)  # noqa: E731
    return ConcreteSpikeSlab(as_tensor(logits), as_tensor(loc), as_tensor(scale), as_tensor(temperature),
                             **kwargs)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("logits", [-2.2, 0.0, 1.3])
def test_nonzero_fraction_is_sigmoid_logits_at_every_temperature(logits, temperature):
    """h = 1 iff logistic noise L > -logit π, so P(z ≠ 0) = σ(logits) whatever τ."""
    torch.manual_seed(0)
    z = make(logits, 0.5, 1.0, temperature, dtype=torch.float32).rsample((N_SAMPLES,))
    p = 1.0 / (1.0 + math.exp(-logits))
    standard_error = math.sqrt(p * (1 - p) / N_SAMPLES)
    assert (z != 0).double().mean().item() == pytest.approx(p, abs=Z_TOL * standard_error)


@pytest.mark.parametrize("temperature", [0.5, 1.0])
@pytest.mark.parametrize("loc, scale", [(0.0, 1.0), (-1.5, 0.3)])
def test_nonzero_values_are_the_normal_slab(loc, scale, temperature):
    torch.manual_seed(1)
    z = make(0.4, loc, scale, temperature, dtype=torch.float32).rsample((N_SAMPLES,))
    nonzero = z[z != 0].double().numpy()
    assert scipy.stats.kstest(nonzero, scipy.stats.norm(loc, scale).cdf).pvalue > P_MIN


@pytest.mark.parametrize("warmup", [0.0, 0.36])
def test_warmup_slab(warmup):
    """Appendix D / Tonolini et al.: slab ~ N(ωμ, (ωσ + sqrt(1-ω))^2); log_prob describes ω = 1."""
    loc, scale = 1.2, 0.3
    d = make(0.0, loc, scale, warmup=warmup)
    torch.manual_seed(2)
    z = d.rsample((N_SAMPLES,))
    sd = warmup * scale + math.sqrt(1 - warmup)
    nonzero = z[z != 0].numpy()
    assert scipy.stats.kstest(nonzero, scipy.stats.norm(warmup * loc, sd).cdf).pvalue > P_MIN
    torch.testing.assert_close(d.log_prob(z[:20]), make(0.0, loc, scale).log_prob(z[:20]))
    assert d.expand((3,)).warmup == warmup


def test_zeros_are_exact_and_logits_gradient_flows_through_relaxed_sample():
    """Forward: z = h·s with h ∈ {0, 1} exactly. Backward: ∂z/∂logits = s·y(1-y)/τ with the
    relaxed y = σ((L + logits)/τ), non-zero on every entry (zeros included)."""
    n, temperature = 2000, 0.5
    logits = torch.full((n,), -0.3, dtype=torch.float64, requires_grad=True)
    loc = torch.full((n,), 0.7, dtype=torch.float64, requires_grad=True)
    scale = torch.full((n,), 1.1, dtype=torch.float64)
    d = ConcreteSpikeSlab(logits, loc, scale, torch.tensor(temperature, dtype=torch.float64))
    torch.manual_seed(3)
    z = d.rsample()
    z.sum().backward()
    # replay the noise in rsample's draw order: logistic uniforms, then the slab normals
    torch.manual_seed(3)
    u = torch.rand(n, dtype=torch.float64)
    slab = 0.7 + 1.1 * torch.randn(n, dtype=torch.float64)
    relaxed = torch.sigmoid((torch.log(u) - torch.log1p(-u) - 0.3) / temperature)
    hard = relaxed > 0.5
    assert hard.any() and (~hard).any()
    torch.testing.assert_close(z.detach(), torch.where(hard, slab, 0.0), rtol=0, atol=0)
    assert (z[~hard] == 0).all()
    torch.testing.assert_close(logits.grad, slab * relaxed * (1 - relaxed) / temperature)
    assert (logits.grad != 0).all()
    torch.testing.assert_close(loc.grad, hard.double(), rtol=0, atol=0)


@pytest.mark.parametrize("logits, loc, scale", [(0.0, 0.0, 1.0), (-2.0, 1.5, 0.2), (3.0, -0.4, 2.0)])
def test_log_prob_is_a_proper_density(logits, loc, scale):
    d = make(logits, loc, scale)
    spike = d.log_prob(torch.tensor(0.0, dtype=torch.float64)).exp().item()
    density = lambda x: d.log_prob(torch.tensor(x, dtype=torch.float64)).exp().item()  # noqa: E731
    slab = scipy.integrate.quad(density, loc - 40 * scale, loc + 40 * scale, points=[loc], epsabs=1e-13,
                                limit=200)[0]
    assert spike + slab == pytest.approx(1.0, abs=1e-9)
    p = 1.0 / (1.0 + math.exp(-logits))
    assert spike == pytest.approx(1 - p, rel=1e-12)
    x = torch.tensor([-1.0, 0.3, 2.0], dtype=torch.float64)
    expected = math.log(p) + scipy.stats.norm(loc, scale).logpdf(x.numpy())
    torch.testing.assert_close(d.log_prob(x), torch.from_numpy(expected))


def test_log_prob_depends_on_the_value_only():
    """Unlike RelaxedBernoulliStraightThrough, a cloned or re-created tensor scores the same."""
    d = make([0.2, -1.0, 0.5, 2.0], [0.1, 0.2, -0.3, 0.0], [1.0, 0.5, 0.7, 2.0], 0.5)
    torch.manual_seed(4)
    z = d.rsample((50,))
    reference = d.log_prob(z)
    for same_value in (z.clone(), z.detach(), z * 1.0, torch.tensor(z.tolist(), dtype=torch.float64)):
        torch.testing.assert_close(d.log_prob(same_value), reference, rtol=0, atol=0)
    torch.testing.assert_close(reference[z == 0], (-d.logits).sigmoid().log().expand(50, 4)[z == 0])


def test_mean_and_variance_match_monte_carlo():
    d = make([0.5, -1.5], [1.0, -2.0], [0.5, 1.5])
    torch.manual_seed(5)
    z = d.rsample((N_SAMPLES,))
    centred = z - z.mean(0)
    variance = centred.pow(2).mean(0)
    mean_error = (variance / N_SAMPLES).sqrt()
    variance_error = ((centred.pow(4).mean(0) - variance ** 2) / N_SAMPLES).sqrt()
    assert ((z.mean(0) - d.mean).abs() < Z_TOL * mean_error).all()
    assert ((variance - d.variance).abs() < Z_TOL * variance_error).all()


def test_registered_kl_is_bernoulli_plus_weighted_normal_kl():
    q = make([0.4, -1.0], [0.3, -1.2], [0.5, 2.0])
    p = make(-2.197, 0.0, 1.0).expand((2,))  # Appendix D: spike prior 0.1
    pi_q, pi_p = q.probs, p.probs
    bernoulli = pi_q * (pi_q / pi_p).log() + (1 - pi_q) * ((1 - pi_q) / (1 - pi_p)).log()
    normal = torch.distributions.kl_divergence(torch.distributions.Normal(q.loc, q.scale),
                                               torch.distributions.Normal(p.loc, p.scale))
    torch.testing.assert_close(kl_divergence(q, p), bernoulli + pi_q * normal)
    # Monte Carlo of E_q[log q(z) - log p(z)] with the mixed-measure log_probs
    torch.manual_seed(6)
    z = q.rsample((N_SAMPLES,))
    log_ratio = q.log_prob(z) - p.log_prob(z)
    standard_error = log_ratio.std(0) / math.sqrt(N_SAMPLES)
    assert ((log_ratio.mean(0) - kl_divergence(q, p)).abs() < Z_TOL * standard_error).all()
    # and summed over the event dim by Independent
    torch.testing.assert_close(kl_divergence(q.to_event(1), p.to_event(1)), kl_divergence(q, p).sum())


def test_shapes_constraints_and_float64():
    d = make([[0.0, 1.0]], [0.0, 0.5], 1.0, 0.5, warmup=0.5, validate_args=True)
    assert d.batch_shape == (1, 2) and d.has_rsample and d.support is constraints.real
    e = d.expand((3, 2))
    assert type(e) is ConcreteSpikeSlab and e.warmup == 0.5 and e.batch_shape == (3, 2)
    z = e.rsample((4,))
    assert z.shape == (4, 3, 2) and z.dtype == torch.float64
    assert e.log_prob(z).dtype == torch.float64 and kl_divergence(e, e).dtype == torch.float64
    for bad in ("scale", "temperature"):
        kwargs = dict(logits=0.0, loc=0.0, scale=1.0, temperature=1.0) | {bad: -1.0}
        with pytest.raises(ValueError, match=f"Expected parameter {bad} "):
            ConcreteSpikeSlab(**kwargs, validate_args=True)
