"""AverageELBO (eq. 7): the average over particles on MaxELBO's tracing equals Pyro's stock ELBOs."""

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from pyro_vsc.elbo import AverageELBO, MaxELBO, build_elbo
from tests.test_max_elbo import FAMILIES, TinyGuide, TinyModel, grads


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("num_particles", [1, 4])
@pytest.mark.parametrize("beta,factor", [(1.0, None), (0.1, 0.3)])
@pytest.mark.parametrize("analytic_kl,reference", [(True, TraceMeanField_ELBO), (False, Trace_ELBO)])
def test_equals_pyros_elbo_loss_and_gradients(family, num_particles, beta, factor, analytic_kl, reference):
    """On a fixed seed (the same random draws), the same loss and the same gradients as
    TraceMeanField_ELBO (analytic KLs) or Trace_ELBO (log-density ratios), with a global
    ``pyro.factor`` term outside the data plate or without."""
    num_data, batch = 20, 6
    model, guide = TinyModel(family, num_data, beta, factor), TinyGuide(family, num_data, beta)
    x, idx = torch.randn(batch, 4), torch.arange(batch)
    params = list(model.parameters()) + list(guide.parameters())
    pyro.set_rng_seed(3)
    ours = AverageELBO(num_particles=num_particles, max_plate_nesting=1, analytic_kl=analytic_kl)(model, guide)(x, idx)
    pyro.set_rng_seed(3)
    theirs = reference(num_particles=num_particles, max_plate_nesting=1,
                       vectorize_particles=True)(model, guide)(x, idx)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-5)
    for got, want in zip(grads(ours, params), grads(theirs, params)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_particle_terms_are_those_of_the_max_elbo_averaged():
    """The per-particle terms are MaxELBO's (same tracing, same draws); the loss averages them
    over particles and selects none."""
    num_data, batch, particles = 8, 8, 5
    model, guide = TinyModel("laplace", num_data), TinyGuide("laplace", num_data)
    x, idx = torch.randn(batch, 4), torch.arange(batch)
    pyro.set_rng_seed(4)
    average = AverageELBO(num_particles=particles, max_plate_nesting=1).particle_elbo(model, guide, x, idx)
    pyro.set_rng_seed(4)
    maximum = MaxELBO(num_particles=particles, max_plate_nesting=1).particle_elbo(model, guide, x, idx)
    assert torch.equal(average.local, maximum.local) and average.site_terms.keys() == {"x", "z"}
    assert all(torch.equal(average.site_terms[n], maximum.site_terms[n]) for n in average.site_terms)
    torch.testing.assert_close(average.loss, -average.local.sum(1).mean())
    assert average.best is None and average.values("z").shape == (particles, batch, 3)
    with pytest.raises(ValueError, match="selects no particle"):
        average.selected("z")


@pytest.mark.parametrize("analytic_kl,reference", [(True, TraceMeanField_ELBO), (False, Trace_ELBO)])
def test_objective_names(analytic_kl, reference):
    """``avg`` is the AverageELBO; ``avg_pyro`` keeps Pyro's stock ELBOs selectable."""
    assert isinstance(build_elbo("avg", 3, analytic_kl=analytic_kl), AverageELBO)
    stock = build_elbo("avg_pyro", 3, analytic_kl=analytic_kl)
    assert type(stock) is reference and stock.num_particles == 3 and stock.vectorize_particles
