"""MaxELBO (eq. 9): per-data-point particle selection, checked against brute force."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO

from pyro_vsc.distributions import ThresholdedLaplace, ThresholdedNormal, laplace_kl, normal_kl
from pyro_vsc.elbo import MaxELBO, build_elbo

D, K = 4, 3
FAMILIES = {
    "laplace": (ThresholdedLaplace, laplace_kl, 0.5, 0.3),
    "normal": (ThresholdedNormal, normal_kl, 0.6, 0.4),
}


class TinyModel(torch.nn.Module):
    """x = A z + N(0, σ²) noise with a thresholded prior on z; KL weight β on z."""

    def __init__(self, family, num_data, beta=1.0, factor=None):
        super().__init__()
        self.family, _, self.prior_scale, self.threshold = FAMILIES[family]
        self.dictionary = torch.nn.Parameter(torch.randn(D, K))
        self.num_data, self.beta, self.factor = num_data, beta, factor

    def forward(self, x, idx):
        if self.factor is not None:  # a global term outside the data plate
            pyro.factor("penalty", -self.factor * self.dictionary.pow(2).sum())
        with pyro.plate("data", self.num_data, subsample=idx):
            with poutine.scale(scale=self.beta):
                z = pyro.sample("z", self.family(0.0, self.prior_scale, self.threshold)
                                .expand([K]).to_event(1))
            pyro.sample("x", dist.Normal(z @ self.dictionary.T, 0.7).to_event(1), obs=x)


class TinyGuide(torch.nn.Module):
    def __init__(self, family, num_data, beta=1.0):
        super().__init__()
        self.family, _, _, self.threshold = FAMILIES[family]
        self.loc = torch.nn.Linear(D, K)
        self.log_scale = torch.nn.Linear(D, K)
        self.num_data, self.beta = num_data, beta

    def forward(self, x, idx):
        with pyro.plate("data", self.num_data, subsample=idx):
            with poutine.scale(scale=self.beta):
                pyro.sample("z", self.family(self.loc(x), self.log_scale(x).exp(), self.threshold)
                            .to_event(1))


def brute_force_loss(model, guide, family, x, z, num_data):
    """Loops over particles j and data points n: Σ_n max_j [log p(x_n|z_jn) - β KL_n]·N/B."""
    _, kl_fn, prior_scale, _ = FAMILIES[family]
    batch = x.shape[0]
    scale = num_data / batch
    total = 0.0
    for n in range(batch):
        loc = guide.loc(x[n])
        q_scale = guide.log_scale(x[n]).exp()
        kl = kl_fn(loc, q_scale, torch.tensor(0.0), torch.tensor(prior_scale)).sum()
        elbos = []
        for j in range(z.shape[0]):
            log_lik = dist.Normal(model.dictionary @ z[j, n], 0.7).log_prob(x[n]).sum()
            elbos.append(scale * (log_lik - model.beta * kl))
        total = total + max(elbos, key=lambda e: e.item())
    if model.factor is not None:
        total = total - model.factor * model.dictionary.pow(2).sum()
    return -total


def grads(loss, params):
    return torch.autograd.grad(loss, params, retain_graph=True)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("num_particles", [1, 2, 7])
@pytest.mark.parametrize("beta,factor", [(1.0, None), (0.01, 0.3)])
def test_max_elbo_equals_brute_force(family, num_particles, beta, factor):
    num_data, batch = 50, 6
    model, guide = TinyModel(family, num_data, beta, factor), TinyGuide(family, num_data, beta)
    x = torch.randn(batch, D)
    idx = torch.arange(10, 10 + batch)
    elbo = MaxELBO(num_particles=num_particles, max_plate_nesting=1)
    result = elbo.particle_elbo(model, guide, x, idx)
    z = result.values("z")
    assert z.shape == (num_particles, batch, K)
    expected = brute_force_loss(model, guide, family, x, z, num_data)
    params = list(model.parameters()) + list(guide.parameters())
    assert torch.allclose(result.loss, expected, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads(result.loss, params), grads(expected, params)):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("analytic_kl,reference", [(True, TraceMeanField_ELBO), (False, Trace_ELBO)])
def test_single_particle_equals_averaging_elbo(family, analytic_kl, reference):
    """With J = 1 the max over particles is the usual single-sample ELBO."""
    num_data, batch = 20, 5
    model, guide = TinyModel(family, num_data, beta=0.1), TinyGuide(family, num_data, beta=0.1)
    x, idx = torch.randn(batch, D), torch.arange(batch)
    params = list(model.parameters()) + list(guide.parameters())
    pyro.set_rng_seed(3)
    ours = MaxELBO(num_particles=1, max_plate_nesting=1, analytic_kl=analytic_kl)(model, guide)(x, idx)
    pyro.set_rng_seed(3)
    theirs = reference(num_particles=1, max_plate_nesting=1)(model, guide)(x, idx)
    assert torch.allclose(ours, theirs, rtol=1e-6)
    for got, want in zip(grads(ours, params), grads(theirs, params)):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)


def _particle_elbo(family, batch, particles):
    """MaxELBO's evaluation of the tiny model and guide on a full batch of random data."""
    model, guide = TinyModel(family, batch), TinyGuide(family, batch)
    x = torch.randn(batch, D)
    return MaxELBO(num_particles=particles, max_plate_nesting=1).particle_elbo(
        model, guide, x, torch.arange(batch))


def test_selection_picks_highest_elbo_particle_per_data_point():
    batch, particles = 8, 5
    result = _particle_elbo("laplace", batch, particles)
    assert result.local.shape == (particles, batch)
    assert torch.equal(result.best, result.local.argmax(0))
    assert torch.allclose(result.loss, -result.local.max(0).values.sum())
    selected = result.selected("z")
    assert selected.shape == (batch, K)
    z = result.values("z")
    for n in range(batch):
        assert torch.equal(selected[n], z[result.best[n], n])
    # per-site terms add up to the per-particle ELBO
    assert torch.allclose(result.site_terms["x"] + result.site_terms["z"], result.local)


def test_gradient_flows_only_through_selected_particle():
    batch, particles = 4, 6
    result = _particle_elbo("normal", batch, particles)
    z = result.guide_traces[0].nodes["z"]["value"]
    (dz,) = torch.autograd.grad(result.loss, z, retain_graph=True)
    chosen = torch.zeros(particles, batch, dtype=torch.bool)
    chosen[result.best, torch.arange(batch)] = True
    assert torch.all(dz[~chosen] == 0)
    assert torch.all(dz[chosen].abs().sum(-1) > 0)


def test_works_under_svi_and_sequential_particles_agree():
    num_data, batch = 30, 10
    pyro.settings.set(module_local_params=True)
    model, guide = TinyModel("laplace", num_data), TinyGuide("laplace", num_data)
    x, idx = torch.randn(batch, D), torch.arange(batch)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}),
              MaxELBO(num_particles=3, max_plate_nesting=1))
    losses = [svi.step(x, idx) for _ in range(3)]
    assert all(isinstance(v, float) for v in losses)
    sequential = MaxELBO(num_particles=3, max_plate_nesting=1, vectorize_particles=False)
    result = sequential.particle_elbo(model, guide, x, idx)
    assert result.local.shape == (3, batch) and result.values("z").shape == (3, batch, K)
    expected = brute_force_loss(model, guide, "laplace", x, result.values("z"), num_data)
    assert torch.allclose(result.loss, expected, rtol=1e-5)


def test_non_reparameterized_site_is_refused():
    def model(x):
        with pyro.plate("data", x.shape[0]):
            k = pyro.sample("k", dist.Bernoulli(0.5))
            pyro.sample("x", dist.Normal(k, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("k", dist.Bernoulli(0.3))

    with pytest.raises(NotImplementedError, match="reparameterized"):
        MaxELBO(max_plate_nesting=1).differentiable_loss(model, guide, torch.zeros(3))


@pytest.mark.parametrize("objective", ["max", "avg", "avg_pyro", "iwae"])
@pytest.mark.parametrize("num_particles", [1, 4])
def test_build_elbo_maps_names(objective, num_particles):
    elbo = build_elbo(objective, num_particles=num_particles)
    assert elbo.num_particles == num_particles and elbo.vectorize_particles
    model, guide = TinyModel("laplace", 12), TinyGuide("laplace", 12)
    loss = elbo.loss(model, guide, torch.randn(12, D), torch.arange(12))
    assert isinstance(loss, float) and loss == loss


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_build_elbo_rejects_bad_particle_counts(bad):
    with pytest.raises(ValueError, match="num_particles"):
        build_elbo("max", num_particles=bad)


def test_build_elbo_rejects_unknown_names():
    with pytest.raises(ValueError, match="expected one of"):
        build_elbo("mean")


class PyroLawsModel(torch.nn.Module):
    """Pyro's own laws, as the Gaussian baseline and the Gamma threshold posterior use them: a
    Normal code z and a Gamma-distributed positive w, both in the data plate."""

    def __init__(self):
        super().__init__()
        self.dictionary = torch.nn.Parameter(torch.randn(D, K))

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([K]).to_event(1))
            w = pyro.sample("w", dist.Gamma(3.0, 12.0).expand([K]).to_event(1))
            pyro.sample("x", dist.Normal((z * w) @ self.dictionary.T, 0.7).to_event(1), obs=x)


class PyroLawsGuide(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.heads = torch.nn.Linear(D, 4 * K)

    def forward(self, x):
        loc, log_scale, log_alpha, log_rate = self.heads(x).split(K, -1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))
            pyro.sample("w", dist.Gamma(log_alpha.exp(), log_rate.exp()).to_event(1))


def _backward_nodes(tensor):
    """Names of every node of ``tensor``'s autograd graph."""
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return {type(node).__name__ for node in seen}


@pytest.mark.parametrize("objective", ["max", "avg"])
def test_kls_are_evaluated_once_per_data_point_before_the_particle_plate(objective):
    """With J vectorized particles the analytic KLs of Pyro's Normal and Gamma laws take the
    distributions as the guide and model gave them, before the particle plate repeats their
    parameters: each site's KL term is torch's KL of the expanded laws (the same for every
    particle), loss and gradients are those of Pyro's TraceMeanField_ELBO on the same draws
    (average) or of the selection by eq. (9) on torch's KLs (max), and the backward pass narrows
    no expanded parameter (no SliceBackward0, whose adjoint writes a (J, N, K) tensor)."""
    batch, particles = 6, 5
    model, guide = PyroLawsModel(), PyroLawsGuide()
    x = torch.randn(batch, D)
    params = list(model.parameters()) + list(guide.parameters())
    pyro.set_rng_seed(5)
    result = build_elbo(objective, num_particles=particles, max_plate_nesting=1).particle_elbo(model, guide, x)
    model_trace, guide_trace = result.model_traces[0], result.guide_traces[0]
    local = 0.0
    for name in ("z", "w"):
        kl = torch.distributions.kl_divergence(guide_trace.nodes[name]["fn"], model_trace.nodes[name]["fn"])
        assert kl.shape == (particles, batch)
        torch.testing.assert_close(result.site_terms[name], -kl)
        local = local - kl
    log_lik = model_trace.nodes["x"]["fn"].log_prob(x)
    local = local + log_lik
    expected = -(local.max(0).values.sum() if objective == "max" else local.sum(1).mean())
    torch.testing.assert_close(result.loss, expected)
    for got, want in zip(grads(result.loss, params), grads(expected, params)):
        torch.testing.assert_close(got, want)
    assert "SliceBackward0" not in _backward_nodes(result.loss)
    if objective == "avg":
        pyro.set_rng_seed(5)
        theirs = TraceMeanField_ELBO(num_particles=particles, max_plate_nesting=1,
                                     vectorize_particles=True)(model, guide)(x)
        torch.testing.assert_close(result.loss, theirs)
        for got, want in zip(grads(result.loss, params), grads(theirs, params)):
            torch.testing.assert_close(got, want)
