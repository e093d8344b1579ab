r"""What the generative models of §4 share: a prior on codes, a decoder and a Gaussian likelihood,

.. math:: z \sim p(z), \qquad x \mid z \sim \mathcal N(f_\theta(z),\; \sigma^2 I_D),

with :math:`f_\theta` the dictionary A of the linear generator (§4.1) or a convolutional
decoder (§4.2). The model files (:mod:`~pyro_vsc.models.linear`,
:mod:`~pyro_vsc.models.image_generator`) write that program in their ``forward``; this module
holds its parts.
"""

import pyro
from torch import nn


def likelihood_variance(data_dim, noise_variance=None):
    """σ² of the Gaussian likelihood: ``noise_variance``, or D/2 when it is ``None``, which makes
    -log p(x|z) = ‖x - f(z)‖²/D + const, the per-pixel mean squared error of the paper's code."""
    variance = data_dim / 2 if noise_variance is None else float(noise_variance)
    if variance <= 0:
        raise ValueError(f"noise variance must be > 0, got {noise_variance}")
    return variance


class Generator(nn.Module):
    """Prior, decoder and likelihood variance of a generative model, and its data plate.

    The decoder is a plain ``nn.Module`` attribute ``decoder`` (so that the training loop can call
    it through ``DistributedDataParallel`` and autocast wrappers); the prior's ``forward`` samples
    ``z`` (and λ) and is called inside the data plate. Subclasses check the shape of a minibatch
    (:meth:`check_data`) and write the program in ``forward`` inside :meth:`data_plate`.

    :param prior: a :mod:`pyro_vsc.models.priors` module; its latent dimension must be the
        decoder's.
    :param decoder: module mapping codes ``(..., d)`` to the likelihood's mean.
    :param int latent_dim: d, the codes the decoder takes.
    :param str latent_name: what d is called in errors (e.g. "dictionary size").
    :param int data_dim: D, the size of one observation.
    :param float noise_variance: σ²; ``None`` means D/2 (per-pixel MSE).
    """

    def __init__(self, prior, decoder, latent_dim, latent_name, data_dim, noise_variance=None):
        super().__init__()
        if prior.latent_dim != latent_dim:
            raise ValueError(f"prior latent dimension {prior.latent_dim} does not match the "
                             f"{latent_name} {latent_dim}")
        self.prior = prior
        self.decoder = decoder
        self.data_dim = data_dim
        self.noise_variance = likelihood_variance(data_dim, noise_variance)

    @property
    def latent_dim(self):
        return self.prior.latent_dim

    @property
    def noise_scale(self):
        """σ, the likelihood's standard deviation."""
        return self.noise_variance ** 0.5

    def check_data(self, x):
        """Raises ``ValueError`` with one line unless ``x`` is a minibatch of this model's data."""
        raise NotImplementedError

    def data_plate(self, x, num_data=None, subsample=None):
        """``pyro.plate("data")`` over the minibatch ``x`` (checked first) of ``num_data`` data
        points (default: ``x`` is all of them), ``subsample`` its indices."""
        self.check_data(x)
        return pyro.plate("data", num_data or x.shape[0], subsample=subsample)
