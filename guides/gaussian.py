"""Gaussian posterior (Kingma & Welling, 2014): the 'Gaussian' row of Table 1."""

import pyro
import pyro.distributions as dist

from .base import AmortizedGuide


class GaussianGuide(AmortizedGuide):
    """q(z|x) = N(μ(x), σ(x)²) with heads (μ, 2 log σ) (Appendix B)."""

    heads = ("loc", "log_variance")

    def sample_latents(self, params):
        scale = (0.5 * params["log_variance"]).exp()
        return pyro.sample("z", dist.Normal(params["loc"], scale).to_event(1))
