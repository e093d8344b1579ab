r"""Linear generator of §4.1: sparse coding of whitened image patches (eqs. 10-12)."""

import pyro
import torch
from torch import nn

from pyro_vsc.distributions import IsotropicNormal

from .generator import Generator


class LinearDictionary(nn.Module):
    """The dictionary A ∈ R^{D×K} (θ of §4.1), initialised with random unit-norm columns.

    ``forward(z)`` returns A z for codes of any leading shape (particles × batch × K).
    """

    def __init__(self, data_dim=256, dict_size=256):
        super().__init__()
        for name, value in (("data dimension", data_dim), ("dictionary size", dict_size)):
            if int(value) != value or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        weight = torch.randn(data_dim, dict_size)
        self.weight = nn.Parameter(weight / weight.norm(dim=0, keepdim=True))

    def forward(self, z):
        return z @ self.weight.T


class LinearSparseCoding(Generator):
    r"""Generative model of §4.1:

    .. math:: z \sim p(z), \qquad x \mid z \sim \mathcal N(A z,\; \sigma^2 I_D).

    With the default noise variance :math:`\sigma^2 = D/2`,
    :math:`-\log p(x|z) = \|x - Az\|^2/D + \mathrm{const}`: the per-pixel mean squared error the
    paper's encoder is trained on, i.e. eq. (12) up to the paper's scaling.
    The Frobenius penalty κ‖A‖²_F of eq. (11) is a Gaussian prior on A and is applied as weight
    decay by the dictionary's optimizer (see :func:`pyro_vsc.train.optim.dictionary_sgd`), which
    keeps every site inside the data plate so that IWAE bounds stay per data point.

    :param prior: a :mod:`pyro_vsc.models.priors` module; its ``forward`` samples ``z`` (and λ).
    :param int data_dim: D, pixels per patch (16×16 = 256).
    :param int dict_size: K, dictionary entries (256).
    :param float noise_variance: σ²; ``None`` means D/2 (per-pixel MSE).
    """

    def __init__(self, prior, data_dim=256, dict_size=256, noise_variance=None):
        super().__init__(prior, LinearDictionary(data_dim, dict_size), dict_size, "dictionary size",
                         data_dim, noise_variance)

    @property
    def dictionary(self):
        """A, shape (D, K)."""
        return self.decoder.weight

    def check_data(self, x):
        if x.shape[-1] != self.data_dim:
            raise ValueError(f"expected data of dimension {self.data_dim}, got shape {tuple(x.shape)}")

    def forward(self, x, num_data=None, subsample=None):
        """:param x: patches (B, D); ``num_data`` and ``subsample`` index a minibatch of the data."""
        with self.data_plate(x, num_data, subsample):
            z = self.prior()
            pyro.sample("x", IsotropicNormal(self.decoder(z), self.noise_scale), obs=x)
        return z
