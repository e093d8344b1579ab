"""Laplace posterior (Barello et al., 2018): the 'Laplacian' row of Table 1."""

import pyro

from pyro_vsc.distributions import WarmupLaplace
from pyro_vsc.schedules import LinearWarmup

from .base import AmortizedGuide

#: Appendix B: ω starts at 0.1 and grows by 2e-4 per step up to 1.
PAPER_SCALE_WARMUP = LinearWarmup(start=0.1, increment=2e-4, maximum=1.0)


class LaplaceGuide(AmortizedGuide):
    """q(z|x) = Laplace(μ(x), b(x)) with heads (μ, log b) and the scale warm-up ω (Appendix B)."""

    heads = ("loc", "log_scale")

    def __init__(self, backbone, latent_dim, scale_warmup=PAPER_SCALE_WARMUP):
        super().__init__(backbone, latent_dim)
        self.scale_warmup = scale_warmup

    def sample_latents(self, params):
        return pyro.sample("z", WarmupLaplace(params["loc"], params["log_scale"].exp(),
                                              noise_factor=self.scale_warmup(self.step)).to_event(1))
