"""Relaxed spike-and-slab posterior (Tonolini et al., 2020): the 'Spike-and-slab' row of Table 1."""

import pyro

from pyro_vsc.distributions import ConcreteSpikeSlab
from pyro_vsc.schedules import ExponentialDecay, LinearWarmup

from .base import AmortizedGuide

#: Appendix D: ω starts at 0 and grows by 2e-4 per step after step 1500.
PAPER_SLAB_WARMUP = LinearWarmup(start=0.0, increment=2e-4, maximum=1.0, delay=1500)
#: Appendix D: τ starts at 1 and decays by a factor 0.9995 per step down to 0.5.
PAPER_TEMPERATURE = ExponentialDecay(start=1.0, factor=0.9995, minimum=0.5)


class SpikeSlabGuide(AmortizedGuide):
    """q(z|x) = (1-π(x)) δ₀ + π(x) N(μ(x), σ(x)²), straight-through Gumbel-softmax selection.

    Heads (μ, 2 log σ, logit π); the temperature τ and slab warm-up ω follow Appendix D.
    """

    heads = ("loc", "log_variance", "logits")

    def __init__(self, backbone, latent_dim, slab_warmup=PAPER_SLAB_WARMUP,
                 temperature=PAPER_TEMPERATURE):
        super().__init__(backbone, latent_dim)
        self.slab_warmup = slab_warmup
        self.temperature = temperature

    def sample_latents(self, params):
        return pyro.sample("z", ConcreteSpikeSlab(
            params["logits"], params["loc"], (0.5 * params["log_variance"]).exp(),
            self.temperature(self.step), warmup=self.slab_warmup(self.step)).to_event(1))
