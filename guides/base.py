"""Base class of the amortized guides q_φ(z | x) of Table 1."""

import pyro
import torch
from torch import nn

from .encoder import AmortizedEncoder


class AmortizedGuide(nn.Module):
    r"""Mean-field amortized guide :math:`q_\phi(z|x) = \prod_i q_\phi(z_i|x)` (§3.1).

    Subclasses name their encoder heads (:attr:`heads`) and implement :meth:`sample_latents`,
    which turns head outputs into ``pyro.sample`` statements inside the data plate. A step
    counter buffer drives the warm-up schedules (Appendices B and D); the training loop calls
    :meth:`advance` after each optimizer step, and the counter is saved with the guide.

    :param backbone: feature network (e.g. :class:`pyro_vsc.guides.mlp.MLPBackbone`).
    :param int latent_dim: d.
    """

    heads = ()

    def __init__(self, backbone, latent_dim, extra_heads=()):
        super().__init__()
        self.latent_dim = int(latent_dim)
        if self.latent_dim <= 0:
            raise ValueError(f"latent dimension must be positive, got {latent_dim}")
        self.encoder = AmortizedEncoder(backbone, self.latent_dim, (*self.heads, *extra_heads))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def advance(self):
        """Moves the warm-up schedules one training step forward (no host synchronisation)."""
        self.step += 1

    def sample_latents(self, params):
        raise NotImplementedError

    def forward(self, x, num_data=None, subsample=None):
        params = self.encoder(x)
        with pyro.plate("data", num_data or x.shape[0], subsample=subsample):
            return self.sample_latents(params)
