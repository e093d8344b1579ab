"""ELBO objectives: max-over-particles (eq. 9) and the name → ELBO map."""

from .max_elbo import PARTICLE_PLATE, MaxELBO, ParticleELBO
from .objectives import OBJECTIVES, build_elbo

__all__ = ["MaxELBO", "OBJECTIVES", "PARTICLE_PLATE", "ParticleELBO", "build_elbo"]
