"""Gaussian likelihood with one shared variance, N(loc, σ² I) (eq. 12)."""

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

from .constants import HALF_LOG_2PI


class IsotropicNormal(TorchDistribution):
    r""":math:`\mathcal N(\mathrm{loc}, \sigma^2 I)` over the last ``event_dims`` dims of ``loc``.

    The observation model of the linear generator, :math:`x \mid z \sim \mathcal N(Az, \sigma^2 I)`
    (eq. 12 with the paper's scaling for σ² = D/2), and of the DNN generators. It equals
    ``Normal(loc, scale).to_event(event_dims)`` but keeps σ a scalar, so ``log_prob`` is one pass
    over the residual, :math:`-\|x-\mathrm{loc}\|^2/(2\sigma^2) - n(\log\sigma + \tfrac12\log 2\pi)`,
    instead of broadcasting σ to the data's size (J particles × batch × pixels) and taking its
    log there.

    :param torch.Tensor loc: mean, with the event dimensions last.
    :param scale: the shared standard deviation σ > 0 (a float or a 0-dim tensor).
    :param int event_dims: how many trailing dims of ``loc`` form one observation.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = True

    def __init__(self, loc, scale, event_dims=1, *, validate_args=None):
        if loc.dim() < event_dims:
            raise ValueError(f"loc of shape {tuple(loc.shape)} has fewer than event_dims={event_dims} dims")
        self.loc = loc
        self.scale = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
        if self.scale.dim() != 0:
            raise ValueError(f"scale must be a scalar, got shape {tuple(self.scale.shape)}")
        self.event_dims = event_dims
        split = loc.dim() - event_dims
        super().__init__(loc.shape[:split], loc.shape[split:], validate_args=validate_args)

    @constraints.dependent_property
    def support(self):
        return constraints.independent(constraints.real, self.event_dims)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(IsotropicNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape + self.event_shape)
        new.scale = self.scale
        new.event_dims = self.event_dims
        super(IsotropicNormal, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return (self.scale ** 2).expand(self.loc.shape)

    def rsample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        return self.loc + self.scale * torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)

    @property
    def log_normalizer(self):
        r"""The part of :meth:`log_prob` that does not depend on the value,
        :math:`-n(\log\sigma + \tfrac12\log 2\pi)` (0-dim): what the training display
        subtracts to show what moves in the loss."""
        return -self.event_shape.numel() * (torch.log(self.scale) + HALF_LOG_2PI)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        dims = tuple(range(-self.event_dims, 0))
        squared = (value - self.loc).pow(2).sum(dims)
        return -0.5 * squared / self.scale ** 2 + self.log_normalizer
