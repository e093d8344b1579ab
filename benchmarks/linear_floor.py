"""Plain-PyTorch implementation of the linear model's training loss: the benchmark's floor.

The same objective and gradients as the Pyro path (``LinearSparseCoding`` + the Table 1 guides +
``MaxELBO``/``TraceMeanField_ELBO`` through ``ObjectiveStep``), written as straight tensor code
with no Pyro: the encoder network (the same ``AmortizedEncoder`` module), the reparameterized
samples drawn with the same random calls in the same order (so a fixed seed gives identical
numbers, which ``tests/test_benchmark_floor.py`` checks), the Gaussian log-likelihood, the
analytic KLs and the max or mean over particles.

The floor draws the Gamma threshold with torch's own ``torch.distributions.Gamma`` (serial
scalar kernels on a CPU), the implementation the library used before
:class:`~pyro_vsc.distributions.VectorizedGamma`, so that the benchmark's ratio shows the gain;
``gamma=VectorizedGamma`` gives the library's sampler (the test of equal numbers uses it).

The branches over guide families below are benchmark code, not the library's hot path.
"""

import math

import torch
from torch.distributions import Gamma, Normal, kl_divergence

from pyro_vsc.distributions import laplace_kl, laplace_noise, normal_kl
from pyro_vsc.distributions.soft_threshold import straight_through_threshold

#: Guide families the floor implements (config names of ``guide=``).
FAMILIES = ("thresh", "thresh_gamma", "gaussian")


class LinearFloor:
    """Per-data-point loss of one minibatch, as ``ObjectiveStep`` computes it through Pyro.

    :param encoder: the guide's ``AmortizedEncoder`` (x ↦ head outputs).
    :param dictionary: A, a (D, K) parameter.
    :param str family: one of :data:`FAMILIES`.
    :param int num_particles: J.
    :param str objective: ``max`` (eq. 9) or ``avg`` (eq. 7).
    :param dict constants: prior and guide constants read from the Pyro modules
        (see :func:`constants_from`).
    :param gamma: the Gamma distribution class that draws the threshold of ``thresh_gamma``.
    """

    def __init__(self, encoder, dictionary, family, num_particles, objective, constants, gamma=Gamma):
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
        self.encoder, self.dictionary = encoder, dictionary
        self.family, self.num_particles, self.objective = family, num_particles, objective
        self.c = constants
        self.gamma = gamma

    def _shape(self, loc):
        return loc.shape if self.num_particles == 1 else (self.num_particles, *loc.shape)

    def elbo_terms(self, x, step):
        """(J, B) ELBO of every particle and data point, β-weighted as in training."""
        params = self.encoder(x)
        c = self.c
        loc = params["loc"]
        shape = self._shape(loc)
        if self.family == "gaussian":
            scale = (0.5 * params["log_variance"]).exp()
            z = Normal(loc.expand(shape), scale.expand(shape)).rsample()
            kl = normal_kl(loc, scale, torch.zeros(()), c["prior_scale"]).sum(-1)
            weighted_kl = c["kl_weight"] * kl
        else:
            if self.family == "thresh_gamma":
                alpha = params["log_alpha"].exp().clamp(*c["gamma_clamp"])
                rate = params["log_beta"].exp().clamp(*c["gamma_clamp"])
                threshold = self.gamma(alpha, rate).expand(shape).rsample()
                kl_threshold = kl_divergence(Gamma(alpha, rate), Gamma(c["alpha0"], c["rate0"])).sum(-1)
            else:
                threshold, kl_threshold = c["threshold"], 0.0
            scale = params["log_scale"].exp()
            omega = min(c["warmup_start"] + c["warmup_increment"] * c["time_scale"] * step, 1.0)
            s = loc + (omega * scale) * laplace_noise(shape, loc)
            z = straight_through_threshold(s, threshold, loc)
            kl = laplace_kl(loc, scale, torch.zeros(()), c["prior_scale"]).sum(-1)
            weighted_kl = c["kl_weight"] * kl + c["threshold_kl_weight"] * kl_threshold
        residual = x - z @ self.dictionary.T
        log_lik = (-0.5 * residual.pow(2).sum(-1) / c["noise_variance"]
                   - 0.5 * x.shape[-1] * math.log(2 * math.pi * c["noise_variance"]))
        return (log_lik - weighted_kl).reshape(self.num_particles, x.shape[0])

    def loss(self, x, step=0):
        elbo = self.elbo_terms(x, step)
        per_point = elbo.max(0).values if self.objective == "max" else elbo.mean(0)
        return -per_point.sum() / x.shape[0]


def constants_from(model, guide, kl_weights):
    """Reads the floor's constants from built Pyro modules so both paths use the same values."""
    prior = model.prior
    constants = {
        "noise_variance": model.noise_variance,
        "prior_scale": prior.scale,
        "kl_weight": kl_weights["z"],
        "threshold_kl_weight": kl_weights.get("threshold", 0.0),
    }
    if hasattr(guide, "scale_warmup"):
        warmup = guide.scale_warmup
        constants.update(warmup_start=warmup.start, warmup_increment=warmup.increment,
                         time_scale=warmup.time_scale)
    threshold = getattr(guide, "threshold", None)
    if threshold is not None and hasattr(threshold, "clamp"):
        constants.update(gamma_clamp=threshold.clamp, alpha0=prior.threshold_prior.alpha0,
                         rate0=prior.threshold_prior.rate0)
    elif threshold is not None:
        constants.update(threshold=threshold.threshold)
    return constants
