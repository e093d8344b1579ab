r"""DNN generator of §4.2: a prior on codes and a convolutional decoder in place of the dictionary."""

import math

import pyro

from pyro_vsc.distributions import IsotropicNormal

from .generator import Generator


class ImageGenerator(Generator):
    r"""Generative model of §4.2 (Appendix E):

    .. math:: z \sim p(z), \qquad x \mid z \sim \mathcal N(f_\theta(z),\; \sigma^2 I_D),

    with :math:`f_\theta` a convolutional decoder (Tables 4-5) and images ``x`` of shape
    ``(C, H, W)`` in [0, 1]. As in the linear model, the default noise variance
    :math:`\sigma^2 = D/2` with :math:`D = C\cdot H\cdot W` makes
    :math:`-\log p(x|z) = \|x - f_\theta(z)\|^2/D + \mathrm{const}`, the per-pixel mean squared
    error the paper's code trains on (``F.mse_loss`` plus the β-weighted KL).

    The decoder is the attribute ``decoder`` and the prior is called inside the data plate
    exactly as in :class:`pyro_vsc.models.linear.LinearSparseCoding`
    (:class:`~pyro_vsc.models.generator.Generator`).

    Subclasses build the decoder of their dataset.

    :param prior: a :mod:`pyro_vsc.models.priors` module; its ``forward`` samples ``z`` (and λ).
    :param decoder: module mapping codes ``(..., d)`` to images ``(..., C, H, W)``; it must have
        the attributes ``latent_dim`` and ``output_shape``.
    :param float noise_variance: σ²; ``None`` means D/2 (per-pixel MSE).
    """

    def __init__(self, prior, decoder, noise_variance=None):
        image_shape = tuple(decoder.output_shape)
        super().__init__(prior, decoder, decoder.latent_dim, "decoder's latent dimension",
                         math.prod(image_shape), noise_variance)
        self.image_shape = image_shape

    def check_data(self, x):
        if tuple(x.shape[-3:]) != self.image_shape or x.dim() != 4:
            raise ValueError(f"expected images of shape (B, {', '.join(map(str, self.image_shape))}), "
                             f"got {tuple(x.shape)}")

    def forward(self, x, num_data=None, subsample=None):
        """:param x: images (B, C, H, W); ``num_data`` and ``subsample`` index a minibatch."""
        with self.data_plate(x, num_data, subsample):
            z = self.prior()
            pyro.sample("x", IsotropicNormal(self.decoder(z), self.noise_scale, event_dims=3), obs=x)
        return z
