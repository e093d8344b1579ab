"""Pareto-smoothed importance sampling diagnostic k̂ of the importance weights behind Table 1."""

import arviz as az
import numpy as np

from ._arrays import as_numpy

#: Fewest samples for which PSIS fits its tail: ArviZ fits the largest ceil(min(K/5, 3√K))
#: weights and needs at least 5 of them.
MIN_PSIS_SAMPLES = 25


def psis_khat(log_weights):
    r"""Pareto shape estimate :math:`\hat k` of the importance weights of each data point.

    PSIS (Vehtari et al., 2024) fits a generalised Pareto law to the largest weights
    :math:`w_k = p(x,z_k)/q(z_k\mid x)`; :math:`\hat k` estimates how heavy their tail is, i.e.
    how far the proposal q is from the posterior in the sense that matters for importance
    sampling and for the IWAE bound of Table 1: :math:`\hat k < 0.5` the weights have finite
    variance, :math:`\hat k > 0.7` estimates from them are unreliable. Uses ``arviz.psislw``
    (samples along its last axis, relative efficiency 1 as the draws are independent).

    Weights that are all exactly equal (q proportional to the posterior on the draws) have no tail
    to fit; ArviZ reports ``inf`` for them, which would read as the worst case, so they get
    :math:`\hat k = -\infty` (the best case) here. ArviZ's ``inf`` remains for the other failure
    of the fit, fewer than 5 weights strictly above the tail cut-off (heavy ties).

    :param log_weights: array or tensor :math:`\log w`, shape ``(K, N)``: K >= 25 samples per data
        point (the layout of :func:`iwae_bound`).
    :returns: float64 NumPy array of shape ``(N,)``.
    """
    log_weights = np.array(as_numpy(log_weights), dtype=np.float64)
    if log_weights.ndim != 2:
        raise ValueError(f"log_weights must have shape (K, N), got {log_weights.shape}")
    if log_weights.shape[0] < MIN_PSIS_SAMPLES:
        raise ValueError(
            f"PSIS needs at least {MIN_PSIS_SAMPLES} samples per data point to fit the tail, "
            f"got K = {log_weights.shape[0]}"
        )
    if not np.all(np.isfinite(log_weights)):
        raise ValueError("log_weights contain NaN or infinite values")
    per_point = np.ascontiguousarray(log_weights.T)  # (N, K): ArviZ smooths along the last axis
    _, khat = az.psislw(per_point, reff=1.0)
    khat = np.asarray(khat, dtype=np.float64)
    constant = per_point.max(axis=1) == per_point.min(axis=1)
    khat[constant] = -np.inf
    return khat


def fraction_khat_above(khat, threshold=0.7):
    r"""Fraction of data points whose :math:`\hat k` exceeds ``threshold`` (0.7: unreliable)."""
    khat = as_numpy(khat)
    if khat.ndim != 1 or khat.size == 0 or np.any(np.isnan(khat)):
        raise ValueError(f"khat must be a non-empty 1-D array without NaN, got shape {khat.shape}")
    return float(np.mean(khat > threshold))
