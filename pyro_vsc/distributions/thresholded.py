"""Base class of the thresholded laws of §3.2: a location-scale base sample passed through eq. (2)."""

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from .compact import broadcast_to_batch, compact_parameters
from .soft_threshold import shifted_soft_threshold, straight_through_threshold

#: The parameters of the thresholded laws, in the order their constructor takes them.
PARAMETER_NAMES = ("loc", "scale", "threshold")


class ThresholdedDistribution(TorchDistribution):
    r"""Law of :math:`z = T(s;\lambda,\mu)` with :math:`s \sim \mathrm{Base}(\mu, \sigma)` (eq. 2).

    The law is a mixture of a point mass at zero, with probability :math:`1-\gamma` where
    :math:`\gamma = P(|s-\mu| > \lambda)` (:attr:`nonzero_prob`), and a slab that is absolutely
    continuous with respect to Lebesgue measure. :meth:`log_prob` is the density with respect to
    the mixed dominating measure :math:`\delta_0 + \mathrm{Leb}`: ``log(1-γ)`` at ``z == 0`` and
    the slab density (which integrates to γ) elsewhere. Subclasses supply the base family's
    standard noise, :math:`\gamma` and the slab density.

    ``rsample`` reparameterizes :math:`s = \mu + \omega\sigma\epsilon` and returns the thresholded
    value with the straight-through estimator of eq. (4) (default) or, with
    ``straight_through=False``, with the subgradient of eq. (2) (Appendix C, Table 2 ablation).

    :param loc: shift μ of the base distribution.
    :param scale: scale of the base distribution (b for Laplace, σ for Normal).
    :param threshold: non-negative threshold λ; any broadcastable shape, e.g. per dimension or a
        per-sample tensor drawn from a Gamma posterior (§3.2).
    :param bool straight_through: eq. (4) if True, subgradient of eq. (2) if False.
    :param noise_factor: warm-up ω multiplying the reparameterized noise (Appendix B); the
        default 1 samples the exact law. ``log_prob``, the moments and the KL always describe the
        law with ω = 1, as the paper's published code does during warm-up.

    :attr:`compact_params` keeps ``loc``, ``scale`` and ``threshold`` (by name) as they were
    given, before broadcasting and before :meth:`expand` (e.g. the particle plate of vectorized
    particles): sampling, :meth:`log_prob` and the registered KLs compute on them
    (:func:`~pyro_vsc.distributions.compact.compact_parameters`) and broadcast once at the end,
    so the J-fold expansion costs no extra full-size arithmetic in the forward or backward pass.
    """

    arg_constraints = {
        "loc": constraints.real,
        "scale": constraints.positive,
        "threshold": constraints.nonnegative,
    }
    support = constraints.real
    has_rsample = True

    def __init__(self, loc, scale, threshold, *, straight_through=True, noise_factor=1.0,
                 validate_args=None):
        self.loc, self.scale, self.threshold = broadcast_all(loc, scale, threshold)
        self.compact_params = {
            name: given if isinstance(given, torch.Tensor) else self.loc.new_tensor(given)
            for name, given in zip(PARAMETER_NAMES, (loc, scale, threshold))}
        self.straight_through = straight_through
        self.noise_factor = noise_factor
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new.scale = self.scale.expand(batch_shape)
        new.threshold = self.threshold.expand(batch_shape)
        new.compact_params = self.compact_params
        new.straight_through = self.straight_through
        new.noise_factor = self.noise_factor
        super(ThresholdedDistribution, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    # --- family-specific pieces -------------------------------------------------------------
    # The formulas take the parameters explicitly: the properties below apply them to the
    # batch-shaped parameters, :meth:`log_prob` to :attr:`compact_params` (broadcast once).
    def standard_noise(self, shape):
        """Draws ε of the base family with location 0 and scale 1."""
        raise NotImplementedError

    @classmethod
    def log_nonzero_prob_of(cls, scale, threshold):
        """log γ = log P(|s - μ| > λ)."""
        raise NotImplementedError

    @classmethod
    def log_zero_prob_of(cls, scale, threshold):
        """log(1 - γ) = log P(|s - μ| ≤ λ), the mass of the spike at zero.

        It is -inf at λ = 0 (no spike), where its derivative is infinite. :meth:`log_prob`
        selects it with ``torch.where``, whose backward sends a zero gradient into the unselected
        branch, and 0·∞ is NaN: implementations must compute it from a finite stand-in where
        λ = 0, or every non-zero value's log_prob would get NaN gradients.
        """
        raise NotImplementedError

    @classmethod
    def slab_log_prob_of(cls, value, loc, scale, threshold):
        """Log-density of the non-zero part at ``value`` (it integrates to γ)."""
        raise NotImplementedError

    @property
    def log_nonzero_prob(self):
        """log γ (batch shape)."""
        return self.log_nonzero_prob_of(self.scale, self.threshold)

    @property
    def log_zero_prob(self):
        """log(1 - γ), the log-mass of the spike at zero (batch shape)."""
        return self.log_zero_prob_of(self.scale, self.threshold)

    def slab_log_prob(self, value):
        """Log-density of the non-zero part at ``value`` (it integrates to γ)."""
        return self.slab_log_prob_of(value, self.loc, self.scale, self.threshold)

    # --- shared behaviour --------------------------------------------------------------------
    @property
    def nonzero_prob(self):
        """γ, the probability that a sample is non-zero (eq. 3)."""
        return self.log_nonzero_prob.exp()

    def base_rsample(self, sample_shape=torch.Size()):
        """Reparameterized base sample s = μ + ω σ ε, before thresholding."""
        shape = self._extended_shape(sample_shape)
        loc, scale = compact_parameters(self, ("loc", "scale"))
        return loc + (self.noise_factor * scale) * self.standard_noise(shape)

    def rsample(self, sample_shape=torch.Size()):
        s = self.base_rsample(sample_shape)
        loc, threshold = compact_parameters(self, ("loc", "threshold"))
        if self.straight_through:
            return straight_through_threshold(s, threshold, loc)
        return shifted_soft_threshold(s, threshold, loc)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        loc, scale, threshold = compact_parameters(self, PARAMETER_NAMES)
        log_prob = torch.where(value == 0, self.log_zero_prob_of(scale, threshold),
                               self.slab_log_prob_of(value, loc, scale, threshold))
        return broadcast_to_batch(log_prob, self.batch_shape)
