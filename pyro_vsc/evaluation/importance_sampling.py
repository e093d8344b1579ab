"""IWAE bound and PSIS diagnostic of a trained guide (Table 1 "IWAE loss", K = 200)."""

import numpy as np
import torch

from pyro_vsc.metrics import fraction_khat_above, iwae_bound, psis_khat

from .importance_weights import importance_log_weights

#: Table 1: the IWAE loss uses K = 200 importance samples.
PAPER_IWAE_SAMPLES = 200
#: PSIS: k̂ above 0.7 means importance-sampling estimates from these weights are unreliable.
KHAT_THRESHOLD = 0.7


def rounding_tolerance(log_weights):
    """Spread of log weights that rounding alone produces: 64 machine epsilons of their dtype
    times their magnitude (at least 1), per data point."""
    magnitude = log_weights.abs().amax(0).clamp(min=1.0)
    return 64 * torch.finfo(log_weights.dtype).eps * magnitude


def khat_per_point(log_weights):
    r"""PSIS :math:`\hat k` of each data point's K importance weights (``(K, N)`` → ``(N,)``).

    :func:`pyro_vsc.metrics.psis_khat` (ArviZ ``psislw``) with two cases settled first:

    * weights equal up to rounding (spread of :math:`\log w` within :func:`rounding_tolerance`),
      which a guide equal to the exact posterior produces: there is no tail to fit, and ArviZ would
      fit the rounding noise (reporting anything from about 0 to ``inf`` when the noise has ties).
      They get :math:`\hat k = -\infty`, the best case, like exactly equal weights;
    * a non-finite weight (a sample the model gives zero density): :math:`\hat k = +\infty`.
    """
    spread = log_weights.amax(0) - log_weights.amin(0)
    finite = torch.isfinite(log_weights).all(0)
    constant = finite & (spread <= rounding_tolerance(log_weights))
    khat = np.full(log_weights.shape[1], np.inf)
    khat[constant.cpu().numpy()] = -np.inf
    fitted = finite & ~constant
    if bool(fitted.any()):
        khat[fitted.cpu().numpy()] = psis_khat(log_weights[:, fitted])
    return khat


def summarize_log_weights(log_weights, khat_threshold=KHAT_THRESHOLD):
    r"""IWAE bound, ELBO and PSIS :math:`\hat k` summary of log importance weights (K, N).

    * ``iwae_bound``: mean over data points of :math:`\log\frac1K\sum_k w_k` (nats per data point;
      Burda et al., 2016), and ``iwae_loss`` its negative, the "IWAE loss" of Table 1.
    * ``elbo``: mean of :math:`\log w` over samples and points, the exact-density ELBO (K = 1);
      the bound is never below it.
    * ``khat_fraction_above``: fraction of data points whose Pareto-smoothed importance sampling
      :math:`\hat k` (Vehtari et al., 2024; :func:`khat_per_point`) exceeds ``khat_threshold``
      (0.7: estimates from these weights are unreliable), and ``khat_median``.

    :returns: dict of Python floats.
    """
    bound = iwae_bound(log_weights)
    khat = khat_per_point(log_weights)
    return {
        "iwae_bound": bound.mean().item(),
        "iwae_loss": -bound.mean().item(),
        "elbo": log_weights.mean().item(),
        "khat_fraction_above": fraction_khat_above(khat, khat_threshold),
        "khat_median": float(np.median(khat)),
    }


def importance_sampling_metrics(model, guide, x, num_samples=PAPER_IWAE_SAMPLES, batch_size=100,
                                khat_threshold=KHAT_THRESHOLD, progress=False):
    """:func:`summarize_log_weights` of :func:`importance_log_weights` on data ``x``."""
    log_weights = importance_log_weights(model, guide, x, num_samples, batch_size=batch_size,
                                         progress=progress)
    return summarize_log_weights(log_weights, khat_threshold)
