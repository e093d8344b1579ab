"""Relaxed spike-and-slab of Tonolini et al. (2020), the 'Spike-and-slab' row of Table 1."""

import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all, lazy_property

from .constants import HALF_LOG_2PI


class ConcreteSpikeSlab(TorchDistribution):
    r"""Spike-and-slab :math:`z = h\cdot s` with a straight-through Gumbel-softmax selection.

    ``rsample`` (§4.1: "we approximate each Bernoulli random variable with a straight-through
    estimator of a Gumbel-Softmax sample"): with logistic noise :math:`L`,

    * relaxed selection :math:`y = \sigma((L + \mathrm{logit}\,\pi)/\tau)` (binary Concrete),
    * hard selection :math:`h = \mathbb I[y > 1/2]`, returned as :math:`h + y - \mathrm{sg}[y]`
      so that the forward value is exactly 0 or 1 and the gradient is that of :math:`y`,
    * slab :math:`s = \omega\mu + (\omega\sigma + \sqrt{1-\omega})\,\epsilon`,
      :math:`\epsilon\sim\mathcal N(0,1)`, where ω is the warm-up of Tonolini et al. used in
      Appendix D (ω = 1 gives :math:`s\sim\mathcal N(\mu,\sigma^2)`).

    Because :math:`h = 1` exactly when :math:`L > -\mathrm{logit}\,\pi`, :math:`P(h=1) = \pi` for every
    temperature, so the law of the hard sample is exactly
    :math:`(1-\pi)\delta_0 + \pi\,\mathcal N(\mu,\sigma^2)` (at ω = 1). :meth:`log_prob` is that
    density with respect to :math:`\delta_0 + \mathrm{Leb}`, computed from the value alone (it
    does not look at how the sample was produced, unlike Pyro's
    ``RelaxedBernoulliStraightThrough.log_prob``, which is wrong for a cloned or transformed
    sample). The temperature only shapes the gradient.

    :param logits: logit of the probability π that a component is non-zero (the "slab" probability).
    :param loc: slab mean μ.
    :param scale: slab standard deviation σ.
    :param temperature: Gumbel-softmax temperature τ > 0.
    :param warmup: slab warm-up ω ∈ [0, 1]; ``log_prob`` and the KL describe ω = 1.
    """

    arg_constraints = {
        "logits": constraints.real,
        "loc": constraints.real,
        "scale": constraints.positive,
        "temperature": constraints.positive,
    }
    support = constraints.real
    has_rsample = True

    def __init__(self, logits, loc, scale, temperature=1.0, *, warmup=1.0, validate_args=None):
        self.logits, self.loc, self.scale, self.temperature = broadcast_all(
            logits, loc, scale, temperature)
        self.warmup = warmup
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(ConcreteSpikeSlab, _instance)
        batch_shape = torch.Size(batch_shape)
        for name in ("logits", "loc", "scale", "temperature"):
            setattr(new, name, getattr(self, name).expand(batch_shape))
        new.warmup = self.warmup
        super(ConcreteSpikeSlab, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @lazy_property
    def probs(self):
        """π, the probability that a sample is non-zero."""
        return torch.sigmoid(self.logits)

    @property
    def nonzero_prob(self):
        """Alias of :attr:`probs`, named as for the thresholded laws."""
        return self.probs

    def rsample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)
        eps = torch.finfo(u.dtype).eps
        u = u.clamp(eps, 1 - eps)
        logistic = torch.log(u) - torch.log1p(-u)
        relaxed = torch.sigmoid((logistic + self.logits) / self.temperature)
        hard = (relaxed > 0.5).to(relaxed.dtype)
        selection = hard + (relaxed - relaxed.detach())
        w = self.warmup
        slab = w * self.loc + (w * self.scale + (1.0 - w) ** 0.5) * torch.randn_like(relaxed)
        return selection * slab

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        slab = (F.logsigmoid(self.logits) - 0.5 * ((value - self.loc) / self.scale) ** 2
                - torch.log(self.scale) - HALF_LOG_2PI)
        return torch.where(value == 0, F.logsigmoid(-self.logits), slab)

    @property
    def mean(self):
        return self.probs * self.loc

    @property
    def variance(self):
        return self.probs * (self.scale ** 2 + self.loc ** 2) - (self.probs * self.loc) ** 2
