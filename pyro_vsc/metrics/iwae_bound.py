"""The importance weighted bound of Burda et al. (2016), reported as "IWAE loss" in Table 1."""

import math

import torch


def iwae_bound(log_weights):
    r"""Importance weighted lower bound on :math:`\log p(x)` for every data point.

    .. math:: \mathcal L_K(x) = \log\frac1K\sum_{k=1}^K w_k,\qquad
              w_k = \frac{p(x, z_k)}{q(z_k\mid x)},\quad z_k \sim q(z\mid x),

    computed stably as ``logsumexp - log K``. Its expectation is at most :math:`\log p(x)`, does
    not decrease with K and tends to :math:`\log p(x)`; K = 1 is the ELBO (Burda et al., 2016).
    Table 1 reports it with K = 200 (as a loss, i.e. with the opposite sign).

    :param torch.Tensor log_weights: :math:`\log w`, shape ``(K, N)``: K samples per data point.
    :returns: tensor of shape ``(N,)``.
    """
    if log_weights.dim() != 2 or log_weights.shape[0] == 0:
        raise ValueError(
            "log_weights must have shape (K, N) with K >= 1 samples, "
            f"got {tuple(log_weights.shape)}"
        )
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])
