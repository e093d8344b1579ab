"""Laplace posterior with the scale warm-up of Appendix B (the 'Laplacian' row of Table 1)."""

import torch
from pyro.distributions import Laplace

from .thresholded_laplace import laplace_noise


class WarmupLaplace(Laplace):
    r"""``Laplace(loc, scale)`` whose reparameterized noise is multiplied by a warm-up ω.

    Appendix B: "we multiply a warm-up variable ω to the inferred scale variable b", starting at
    0.1 and growing to 1. Sampling uses :math:`s = \mu + \omega b\,\epsilon` with Appendix B's
    clamped Laplace noise; :meth:`log_prob` and the KL (inherited, registered for ``Laplace``)
    describe ``Laplace(loc, scale)``, as in the paper's published code. With ω = 1 this is exactly
    ``Laplace(loc, scale)``.
    """

    def __init__(self, loc, scale, *, noise_factor=1.0, validate_args=None):
        super().__init__(loc, scale, validate_args=validate_args)
        self.noise_factor = noise_factor

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(WarmupLaplace, _instance)
        new = super().expand(batch_shape, _instance=new)
        new.noise_factor = self.noise_factor
        return new

    def rsample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        return self.loc + (self.noise_factor * self.scale) * laplace_noise(shape, self.loc)
