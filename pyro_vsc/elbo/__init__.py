"""ELBO objectives: max-over-particles (eq. 9), average (eq. 7) and the name → ELBO map."""

from .avg_elbo import AverageELBO
from .max_elbo import PARTICLE_PLATE, MaxELBO, ParticleELBO, ParticleTraceELBO
from .objectives import OBJECTIVES, build_elbo

__all__ = ["AverageELBO", "MaxELBO", "OBJECTIVES", "PARTICLE_PLATE", "ParticleELBO", "ParticleTraceELBO",
           "build_elbo"]
