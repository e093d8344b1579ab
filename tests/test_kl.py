"""Registered KLs (Appendix B: the KL of the base distributions) and the exact thresholded-Laplace KL.

Monte-Carlo checks accept Z_TOL = 5 standard errors, sd(log-ratio)/sqrt(n), with fixed seeds.
"""

import json
import math
import os
import subprocess
import sys

import pyro
import pyro.distributions as dist
import pytest
import scipy.integrate
import scipy.stats
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch.distributions import kl_divergence, register_kl

from pyro_vsc.distributions import kl as kl_module
from pyro_vsc.run import _flushes_denormals
from pyro_vsc.distributions import (
    ConcreteSpikeSlab,
    ThresholdedLaplace,
    ThresholdedNormal,
    closed_form_kl,
    laplace_kl,
    normal_kl,
    thresholded_laplace_exact_kl,
)

N_SAMPLES = 100_000
Z_TOL = 5.0

FAMILIES = {
    "laplace": (ThresholdedLaplace, torch.distributions.Laplace),
    "normal": (ThresholdedNormal, torch.distributions.Normal),
}

#: (q_loc, q_scale, p_loc, p_scale): zero-mean prior as in Appendix B, and shifted priors.
PAIRS = [(0.5, 0.2, 0.0, 0.1), (-1.0, 1.5, 0.3, 0.7), (2.0, 0.4, 1.8, 0.5)]


def _pair(family, q_loc, q_scale, p_loc, p_scale, q_threshold=0.3, p_threshold=0.25):
    thresholded, _ = FAMILIES[family]
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    return (thresholded(t(q_loc), t(q_scale), t(q_threshold)),
            thresholded(t(p_loc), t(p_scale), t(p_threshold)))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("q_loc, q_scale, p_loc, p_scale", PAIRS)
def test_registered_kl_is_base_kl(family, q_loc, q_scale, p_loc, p_scale):
    """kl_divergence(q, p) = KL(base_q ‖ base_p): torch's closed form and a Monte-Carlo estimate
    E_q[log q_base(s) - log p_base(s)] over base samples s."""
    q, p = _pair(family, q_loc, q_scale, p_loc, p_scale)
    _, base = FAMILIES[family]
    base_q, base_p = base(q.loc, q.scale), base(p.loc, p.scale)
    kl = kl_divergence(q, p)
    torch.testing.assert_close(kl, kl_divergence(base_q, base_p))
    torch.manual_seed(0)
    s = q.base_rsample((N_SAMPLES,))
    log_ratio = base_q.log_prob(s) - base_p.log_prob(s)
    standard_error = log_ratio.std().item() / math.sqrt(N_SAMPLES)
    assert log_ratio.mean().item() == pytest.approx(kl.item(), abs=Z_TOL * standard_error)


def test_closed_forms_match_appendix_b_with_zero_mean_prior():
    """Appendix B with μ_p = 0: |μ|/b0 + b e^{-|μ|/b}/b0 + log(b0/b) - 1, and the Normal KL
    0.5(μ² + σ²)/σ0² + log(σ0/σ) - 1/2 (the paper prints (2σ0)^{-1}; σ0² is the correct factor)."""
    mu, b, b0 = torch.tensor([-0.7, 0.0, 1.3]), torch.tensor([0.2, 1.0, 0.5]), torch.tensor(0.1)
    expected = mu.abs() / b0 + b * torch.exp(-mu.abs() / b) / b0 + torch.log(b0 / b) - 1
    torch.testing.assert_close(laplace_kl(mu, b, torch.zeros(()), b0), expected)
    sigma, sigma0 = b, torch.tensor(0.1 ** 0.5)
    expected = 0.5 * (mu ** 2 + sigma ** 2) / sigma0 ** 2 + torch.log(sigma0 / sigma) - 0.5
    torch.testing.assert_close(normal_kl(mu, sigma, torch.zeros(()), sigma0), expected)


@pytest.mark.parametrize("log_scale", [-20.0, -46.0, -60.0, -80.0])
@pytest.mark.parametrize("formula", [laplace_kl, normal_kl])
def test_kls_and_their_gradients_stay_finite_for_tiny_scales(formula, log_scale):
    """An encoder whose log-scale drifts far down (the estimator's fits saw -50 and -88 before
    this was fixed) gets finite KLs and gradients in float32 with subnormals flushed to zero, as
    in training, where the square of the scale underflows (below about e^-44): the KL equals its
    float64 value, its gradient in the log-scale is -1 (d log(b_p/b_q) / d log b_q) up to
    terms of order b_q/b_p, and in the location sign(μ)/b_p (Laplace) or μ/σ_p² (Normal)."""
    flushing = _flushes_denormals()
    torch.set_flush_denormal(True)
    try:
        loc = torch.tensor([10.0, -3.0, 0.0], requires_grad=True)
        log_q = torch.full((3,), log_scale, requires_grad=True)
        kl = formula(loc, log_q.exp(), torch.zeros(()), torch.tensor(0.1))
        kl.sum().backward()
    finally:
        torch.set_flush_denormal(flushing)
    exact = formula(loc.detach().double(), torch.full((3,), log_scale, dtype=torch.float64).exp(),
                    torch.zeros((), dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64))
    torch.testing.assert_close(kl.double(), exact, rtol=1e-6, atol=0)
    torch.testing.assert_close(log_q.grad, torch.full((3,), -1.0))
    expected_loc = (loc.detach().sign() / 0.1 if formula is laplace_kl else loc.detach() / 0.01)
    torch.testing.assert_close(loc.grad, expected_loc)


@pytest.mark.parametrize("family", FAMILIES)
def test_kl_does_not_depend_on_thresholds(family):
    reference = kl_divergence(*_pair(family, 0.5, 0.3, 0.1, 0.2, q_threshold=0.0, p_threshold=0.0))
    for q_threshold, p_threshold in [(0.1, 0.9), (2.0, 0.25), (0.0, 5.0)]:
        kl = kl_divergence(*_pair(family, 0.5, 0.3, 0.1, 0.2, q_threshold, p_threshold))
        torch.testing.assert_close(kl, reference, rtol=0, atol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_kl_on_expanded_and_independent(family):
    thresholded, base = FAMILIES[family]
    q_loc, q_scale = torch.randn(4, 3), torch.rand(4, 3) + 0.1
    q = thresholded(q_loc, q_scale, torch.rand(3))
    p = thresholded(torch.zeros(3), torch.full((3,), 0.5), 0.2).expand((4, 3))
    elementwise = kl_divergence(base(q_loc, q_scale), base(torch.zeros(3), torch.full((3,), 0.5)))
    torch.testing.assert_close(kl_divergence(q, p), elementwise)
    torch.testing.assert_close(kl_divergence(q.expand((2, 4, 3)), p.expand((2, 4, 3))),
                               elementwise.expand(2, 4, 3))
    independent = kl_divergence(q.to_event(1), p.to_event(1))
    assert independent.shape == (4,)
    torch.testing.assert_close(independent, elementwise.sum(-1))
    torch.testing.assert_close(kl_divergence(q.to_event(2), p.to_event(2)), elementwise.sum())


@pytest.mark.parametrize("family", FAMILIES)
def test_trace_mean_field_elbo_uses_the_registered_kl(family):
    """One particle of TraceMeanField_ELBO = -log p(x | z) + Σ_d KL(base_q ‖ base_p) for the same
    z (same seed), and not the log-density-ratio estimate Trace_ELBO would use."""
    thresholded, base = FAMILIES[family]
    x = torch.tensor([0.3, -0.2, 0.0, 0.8, -1.0])
    q_loc, q_scale = torch.tensor([0.4, -0.1, 0.05, 0.9, -0.6]), torch.tensor([0.1, 0.2, 0.05, 0.3, 0.1])
    prior = thresholded(torch.zeros(5), torch.full((5,), 0.1), 0.25).to_event(1)
    posterior = thresholded(q_loc, q_scale, 0.25).to_event(1)

    def model():
        z = pyro.sample("z", prior)
        pyro.sample("x", dist.Normal(z, 0.5).to_event(1), obs=x)

    def guide():
        pyro.sample("z", posterior)

    torch.manual_seed(1)
    loss = TraceMeanField_ELBO(num_particles=1).loss(model, guide)
    torch.manual_seed(1)
    z = posterior.rsample()
    log_likelihood = dist.Normal(z, 0.5).log_prob(x).sum()
    base_kl = kl_divergence(base(q_loc, q_scale), base(torch.zeros(5), torch.full((5,), 0.1))).sum()
    assert loss == pytest.approx((-log_likelihood + base_kl).item(), rel=1e-5)
    torch.manual_seed(1)
    log_ratio_loss = Trace_ELBO(num_particles=1).loss(model, guide)
    log_ratio = posterior.log_prob(z) - prior.log_prob(z)
    assert log_ratio_loss == pytest.approx((-log_likelihood + log_ratio).item(), rel=1e-5)
    assert abs(log_ratio_loss - loss) > 1.0


# --- exact KL between thresholded Laplace laws ------------------------------------------------
#: (q_loc, q_scale, q_threshold, p_loc, p_scale, p_threshold)
EXACT_CASES = [
    (0.5, 0.2, 0.3, 0.0, 0.1, 0.25),
    (-1.0, 1.5, 0.1, 0.3, 0.7, 1.0),
    (2.0, 0.4, 0.6, 1.8, 0.5, 0.2),
]


def _exact_kl_by_quadrature(q_loc, q_scale, q_threshold, p_loc, p_scale, p_threshold):
    """(1-γq) log((1-γq)/(1-γp)) + ∫ γq Lq log(γq Lq / (γp Lp)) over the reals (scipy)."""
    gamma_q, gamma_p = math.exp(-q_threshold / q_scale), math.exp(-p_threshold / p_scale)

    def integrand(z):
        q = gamma_q * scipy.stats.laplace.pdf(z, q_loc, q_scale)
        log_q = math.log(gamma_q) + scipy.stats.laplace.logpdf(z, q_loc, q_scale)
        log_p = math.log(gamma_p) + scipy.stats.laplace.logpdf(z, p_loc, p_scale)
        return q * (log_q - log_p)

    lo = min(q_loc, p_loc) - 60 * q_scale
    hi = max(q_loc, p_loc) + 60 * q_scale
    slab = scipy.integrate.quad(integrand, lo, hi, points=sorted({q_loc, p_loc}), epsabs=1e-13,
                                limit=400)[0]
    return (1 - gamma_q) * math.log((1 - gamma_q) / (1 - gamma_p)) + slab


@pytest.mark.parametrize("q_loc, q_scale, q_threshold, p_loc, p_scale, p_threshold", EXACT_CASES)
def test_exact_thresholded_laplace_kl(q_loc, q_scale, q_threshold, p_loc, p_scale, p_threshold):
    q, p = _pair("laplace", q_loc, q_scale, p_loc, p_scale, q_threshold, p_threshold)
    exact = thresholded_laplace_exact_kl(q, p).item()
    assert exact == pytest.approx(
        _exact_kl_by_quadrature(q_loc, q_scale, q_threshold, p_loc, p_scale, p_threshold), abs=1e-9)
    # Monte Carlo of E_q[log q(z) - log p(z)] with the mixed-measure log_probs on thresholded z
    torch.manual_seed(2)
    z = q.sample((N_SAMPLES,))
    log_ratio = q.log_prob(z) - p.log_prob(z)
    standard_error = log_ratio.std().item() / math.sqrt(N_SAMPLES)
    assert log_ratio.mean().item() == pytest.approx(exact, abs=Z_TOL * standard_error)
    # ... which is not the paper's base KL
    assert abs(exact - kl_divergence(q, p).item()) > 10 * Z_TOL * standard_error


def test_exact_kl_reduces_to_base_kl_without_thresholds():
    """λ = 0 on both sides: no spike (γ = 1), so the exact KL is the base Laplace KL."""
    q, p = _pair("laplace", 0.4, 0.3, -0.2, 0.8, q_threshold=0.0, p_threshold=0.0)
    torch.testing.assert_close(thresholded_laplace_exact_kl(q, p), kl_divergence(q, p))


@pytest.mark.parametrize("family", FAMILIES)
def test_kl_float64(family):
    q, p = _pair(family, 0.5, 0.2, 0.0, 0.1)
    assert kl_divergence(q, p).dtype == torch.float64
    if family == "laplace":
        assert thresholded_laplace_exact_kl(q, p).dtype == torch.float64


# --- KLs evaluated once per distinct parameter value (particle-broadcast dims) ----------------

def test_gamma_kl_matches_torch():
    """Values, and the gradients in all four parameters (the derivative of log Γ(α_q) is the
    digamma of the first term, reused), against torch's formula."""
    leaves = [torch.rand(5, 3, dtype=torch.float64) * 4 + 0.1, torch.rand(5, 3, dtype=torch.float64) * 3 + 0.2,
              torch.rand(5, 3, dtype=torch.float64) * 4 + 0.1, torch.rand(5, 3, dtype=torch.float64) + 0.5]
    leaves = [leaf.requires_grad_() for leaf in leaves]
    ours = kl_module.gamma_kl(*leaves)
    q, p = torch.distributions.Gamma(*leaves[:2]), torch.distributions.Gamma(*leaves[2:])
    torchs = torch.distributions.kl._kl_gamma_gamma(q, p)
    torch.testing.assert_close(ours, torchs, rtol=0, atol=1e-13)
    weights = torch.rand(5, 3, dtype=torch.float64)
    for got, want in zip(torch.autograd.grad((weights * ours).sum(), leaves),
                         torch.autograd.grad((weights * torchs).sum(), leaves)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


PARTICLES, BATCH = 7, (4, 6)


def _particle_pairs(name, leaves):
    """(q of particle j, p) factories for one family; the threshold differs per particle."""
    loc, scale, logits = leaves
    threshold = torch.rand(PARTICLES, *BATCH) + 0.1
    families = {
        "thresholded_laplace": (lambda j: ThresholdedLaplace(loc, scale + 0.1, threshold[j]),
                                ThresholdedLaplace(0.0, 0.1, 0.25)),
        "thresholded_normal": (lambda j: ThresholdedNormal(loc, scale + 0.1, threshold[j]),
                               ThresholdedNormal(0.0, 0.3, 0.5)),
        "spike_slab": (lambda j: ConcreteSpikeSlab(logits, loc, scale + 0.1, 0.5),
                       ConcreteSpikeSlab(-2.0, 0.0, 0.3)),
        "gamma": (lambda j: dist.Gamma(scale + 0.5, loc.exp()), dist.Gamma(3.0, 12.0)),
        "normal": (lambda j: dist.Normal(loc, scale + 0.1), dist.Normal(0.0, 0.3)),
        "laplace": (lambda j: dist.Laplace(loc, scale + 0.1), dist.Laplace(0.0, 0.1)),
    }
    return families[name]


@pytest.mark.parametrize("kl_divergence", [kl_divergence, closed_form_kl])
@pytest.mark.parametrize("name", ["thresholded_laplace", "thresholded_normal", "spike_slab",
                                  "gamma", "normal", "laplace"])
def test_kl_of_particle_expanded_distributions_is_exact(name, kl_divergence):
    """As Pyro hands them over with vectorized particles (the particle dim broadcast, the
    threshold a per-particle sample), the KL equals a loop over particles, values and gradients:
    torch's ``kl_divergence`` and the objectives' :func:`closed_form_kl` alike."""
    leaves = (torch.randn(*BATCH, requires_grad=True), torch.rand(*BATCH, requires_grad=True),
              torch.randn(*BATCH, requires_grad=True))
    q_of, p = _particle_pairs(name, leaves)
    shape = (PARTICLES, *BATCH)
    if isinstance(q_of(0), (ThresholdedLaplace, ThresholdedNormal)):
        q = type(q_of(0))(leaves[0], leaves[1] + 0.1,
                          torch.stack([q_of(j).threshold for j in range(PARTICLES)]))
    else:
        q = q_of(0).expand(shape)
    expanded = kl_divergence(q, p.expand(shape))
    loop = torch.stack([kl_divergence(q_of(j), p.expand(BATCH)) for j in range(PARTICLES)])
    torch.testing.assert_close(expanded, loop)
    weights = torch.rand(shape)
    got = torch.autograd.grad((weights * expanded).sum(), leaves, allow_unused=True)
    want = torch.autograd.grad((weights * loop).sum(), leaves, allow_unused=True)
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if g is not None:
            torch.testing.assert_close(g, w)


def test_distinct_parameter_evaluation_narrows_broadcast_dims():
    seen = []

    def formula(*tensors):
        seen.append(tensors[0].shape)
        return kl_module.laplace_kl(*tensors)

    q = ThresholdedLaplace(torch.randn(*BATCH), torch.rand(*BATCH) + 0.1,
                           torch.rand(PARTICLES, *BATCH))
    p = ThresholdedLaplace(0.0, 0.1, 0.25).expand((PARTICLES, *BATCH))
    kl = kl_module._on_compact_parameters(formula, q, p, ("loc", "scale"))
    # thresholded laws give their parameters as constructed, before broadcasting and expansion
    assert seen == [torch.Size(BATCH)] and kl.shape == (PARTICLES, *BATCH)
    # other laws: the particle dim, broadcast in every parameter, is narrowed to size 1
    seen.clear()
    q = dist.Laplace(torch.randn(*BATCH), torch.rand(*BATCH) + 0.1).expand((PARTICLES, *BATCH))
    p = dist.Laplace(0.0, 0.1).expand((PARTICLES, *BATCH))
    kl = kl_module._on_compact_parameters(formula, q, p, ("loc", "scale"))
    assert seen == [torch.Size([1, *BATCH])] and kl.shape == (PARTICLES, *BATCH)


# --- what importing the library registers -----------------------------------------------------

_REGISTRY_PROBE = r"""
import importlib, json, pkgutil
import pyro.distributions as dist
import torch.distributions as td
from torch.distributions.kl import _KL_REGISTRY, _dispatch_kl

families = [(td.Normal, dist.Normal), (td.Laplace, dist.Laplace), (td.Gamma, dist.Gamma)]
pairs = [(a, b) for family in families for a in family for b in family]

def name(f):
    return None if f is None else f"{f.__module__}.{f.__qualname__}"

def snapshot():
    return {f"{name(a)}|{name(b)}": [name(_KL_REGISTRY.get((a, b))), name(_dispatch_kl(a, b))]
            for a, b in pairs}

before, keys = snapshot(), set(_KL_REGISTRY)
import pyro_vsc
for module in pkgutil.walk_packages(pyro_vsc.__path__, "pyro_vsc."):
    importlib.import_module(module.name)
for command in ("run", "evaluate", "report", "dnn_figures", "train.trainer"):
    importlib.import_module("pyro_vsc." + command)
added = sorted(f"{name(a)}|{name(b)}" for a, b in set(_KL_REGISTRY) - keys)
print(json.dumps({"before": before, "after": snapshot(), "added": added}))
"""


def test_importing_the_library_leaves_torch_and_pyro_kls_alone():
    """In a fresh process, importing every module of pyro_vsc changes no registered KL of
    torch's or Pyro's Normal, Laplace and Gamma classes (nor what ``kl_divergence`` dispatches
    them to), and registers KLs only for pairs of the library's own types."""
    result = subprocess.run([sys.executable, "-c", _REGISTRY_PROBE], capture_output=True, text=True,
                            check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    probe = json.loads(result.stdout.splitlines()[-1])
    assert len(probe["before"]) == 12 and probe["after"] == probe["before"]
    own = {"Normal": "_kl_normal_normal", "Laplace": "_kl_laplace_laplace", "Gamma": "_kl_gamma_gamma"}
    for pair, (_, dispatched) in probe["after"].items():
        assert dispatched == f"torch.distributions.kl.{own[pair.rsplit('.', 1)[-1]]}", pair
    assert probe["added"] == sorted([
        "pyro_vsc.distributions.spike_slab.ConcreteSpikeSlab|"
        "pyro_vsc.distributions.spike_slab.ConcreteSpikeSlab",
        "pyro_vsc.distributions.thresholded_laplace.ThresholdedLaplace|"
        "pyro_vsc.distributions.thresholded_laplace.ThresholdedLaplace",
        "pyro_vsc.distributions.thresholded_normal.ThresholdedNormal|"
        "pyro_vsc.distributions.thresholded_normal.ThresholdedNormal",
    ])


# --- the objectives' KL: torch's closed forms of Pyro's laws, evaluated compactly --------------

PYRO_FAMILIES = {
    "normal": (lambda loc, scale: dist.Normal(loc, scale), lambda: dist.Normal(0.0, 0.3)),
    "laplace": (lambda loc, scale: dist.Laplace(loc, scale), lambda: dist.Laplace(0.0, 0.1)),
    "gamma": (lambda loc, scale: dist.Gamma(scale, loc.exp()), lambda: dist.Gamma(3.0, 12.0)),
}


def _formula_shapes(monkeypatch):
    """Records the shape of the first argument of every closed form closed_form_kl evaluates."""
    seen = []

    def spy(formula):
        def recorded(*tensors):
            seen.append(tuple(tensors[0].shape))
            return formula(*tensors)
        return recorded

    monkeypatch.setattr(kl_module, "_COMPACT_FORMS", {
        rule: (spy(formula), names) for rule, (formula, names) in kl_module._COMPACT_FORMS.items()})
    return seen


@pytest.mark.parametrize("family", PYRO_FAMILIES)
def test_closed_form_kl_is_torchs_kl_on_the_distinct_parameters(family, monkeypatch):
    """Under the particle and data plates' expansion, .to_event(1) as the guides write it: the
    value and gradients of torch's own KL, with the formula evaluated at (1, B, d), not (J, B, d)."""
    seen = _formula_shapes(monkeypatch)
    q_of, p_of = PYRO_FAMILIES[family]
    loc = torch.randn(*BATCH, dtype=torch.float64, requires_grad=True)
    scale = (torch.rand(*BATCH, dtype=torch.float64) + 0.1).requires_grad_()
    shape = (PARTICLES, *BATCH)
    q = q_of(loc, scale).to_event(1).expand(shape[:-1])
    p = p_of().expand([BATCH[-1]]).to_event(1).expand(shape[:-1])
    ours, torchs = closed_form_kl(q, p), kl_divergence(q, p)
    assert ours.shape == torchs.shape == shape[:-1]
    assert seen == [(1, *BATCH)]
    torch.testing.assert_close(ours, torchs)
    weights = torch.rand(shape[:-1], dtype=torch.float64)
    for got, want in zip(torch.autograd.grad((weights * ours).sum(), (loc, scale), retain_graph=True),
                         torch.autograd.grad((weights * torchs).sum(), (loc, scale))):
        torch.testing.assert_close(got, want)


def test_closed_form_kl_covers_subclasses_and_respects_their_own_kls(monkeypatch):
    """A subclass that changes only the sampler (as ``WarmupLaplace``, or a Gamma with another
    reparameterization) gets the compact closed form without registering anything; a subclass
    with a KL registered for it gets that KL; pairs without a rule raise as kl_divergence does."""
    seen = _formula_shapes(monkeypatch)

    class ResampledGamma(dist.Gamma):
        pass

    concentration, rate = torch.rand(PARTICLES, 1, 3) + 0.5, torch.rand(PARTICLES, 1, 3) + 0.5
    q = ResampledGamma(concentration[:1], rate[:1]).expand((PARTICLES, 4, 3))
    p = dist.Gamma(3.0, 12.0).expand((PARTICLES, 4, 3))
    torch.testing.assert_close(closed_form_kl(q, p), kl_divergence(q, p))
    assert seen == [(1, 1, 3)]

    class OwnNormal(dist.Normal):
        pass

    own_kl = torch.full((2,), 42.0)
    register_kl(OwnNormal, dist.Normal)(lambda q, p: own_kl)
    assert closed_form_kl(OwnNormal(torch.zeros(2), 1.0), dist.Normal(0.0, 1.0)) is own_kl
    with pytest.raises(NotImplementedError):
        closed_form_kl(dist.Normal(0.0, 1.0), ConcreteSpikeSlab(0.0, 0.0, 1.0))


def test_closed_form_kl_of_independents_sums_the_compact_kl_like_pyro():
    """Equal event dims: Pyro's Independent rule (sum over the event dims) around the compact
    base KL, bit for bit; unequal event dims: Pyro's rule as it is (here: no KL)."""
    q = dist.Normal(torch.randn(4, 3, 2), torch.rand(4, 3, 2) + 0.1)
    p = dist.Normal(torch.zeros(3, 2), torch.ones(3, 2)).expand((4, 3, 2))
    expected = pyro.distributions.util.sum_rightmost(closed_form_kl(q, p), 2)
    assert torch.equal(closed_form_kl(q.to_event(2), p.to_event(2)), expected)
    with pytest.raises(NotImplementedError, match="Independent and q type Normal"):
        closed_form_kl(q.to_event(2), p.to_event(1))


def test_closed_form_kl_of_independents_sums_before_broadcasting_along_particles():
    """A thresholded posterior whose threshold is drawn per particle (the Gamma threshold of
    §3.2) has a (J, B, d) batch, but its KL depends on (μ, b) only: the event sum is taken on the
    (B, d) compact KL and the (J, B) result is a broadcast view (stride 0 along J), equal to
    Pyro's Independent rule on the full KL. A compact KL that repeats one value along an event
    dim still counts it once per coordinate."""
    loc = torch.randn(*BATCH, dtype=torch.float64, requires_grad=True)
    scale = (torch.rand(*BATCH, dtype=torch.float64) + 0.1).requires_grad_()
    threshold = torch.rand(PARTICLES, *BATCH, dtype=torch.float64)
    q = ThresholdedLaplace(loc, scale, threshold).to_event(1)
    p = ThresholdedLaplace(0.0, 0.1, 0.25).expand((PARTICLES, *BATCH)).to_event(1)
    ours, pyros = closed_form_kl(q, p), kl_divergence(q, p)
    assert ours.shape == pyros.shape == (PARTICLES, BATCH[0]) and ours.stride(0) == 0
    torch.testing.assert_close(ours, pyros)
    weights = torch.rand(PARTICLES, BATCH[0], dtype=torch.float64)
    for got, want in zip(torch.autograd.grad((weights * ours).sum(), (loc, scale), retain_graph=True),
                         torch.autograd.grad((weights * pyros).sum(), (loc, scale))):
        torch.testing.assert_close(got, want)
    shared = dist.Normal(torch.randn(BATCH[0], 1), 0.5).expand(BATCH).to_event(1)
    prior = dist.Normal(0.0, 1.0).expand(BATCH).to_event(1)
    torch.testing.assert_close(closed_form_kl(shared, prior), kl_divergence(shared, prior))
