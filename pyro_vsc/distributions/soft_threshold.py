"""The shifted soft-threshold of eq. (2) and the straight-through estimator of eq. (4)."""

import torch


def shifted_soft_threshold(s, threshold, loc):
    r"""Eq. (2): :math:`T(s;\lambda,\mu)=\mathrm{sign}(s-\mu)\max(|s-\mu|-\lambda,0)+\mathbb{I}[|s-\mu|>\lambda]\mu`.

    Points within ``threshold`` of ``loc`` go to exactly zero; the others shrink towards ``loc``
    by ``threshold``. With ``loc = 0`` this is the ordinary soft threshold.

    Written as ``where(|s-μ| > λ, s - λ·sign(s-μ), 0)`` so that autograd gives the analytic
    partial derivatives on the active set: ∂T/∂s = 1, ∂T/∂λ = -sign(s-μ), ∂T/∂μ = 0
    (the shift towards μ and the add-back of μ cancel), and zero on the inactive set.

    :param torch.Tensor s: base sample(s).
    :param threshold: non-negative threshold λ, broadcastable against ``s``.
    :param loc: shift μ, broadcastable against ``s``.
    """
    centred = s - loc
    active = centred.abs() > threshold
    return torch.where(active, s - threshold * centred.sign(), torch.zeros_like(centred))


def straight_through_threshold(s, threshold, loc):
    r"""Eq. (4): :math:`\tilde z = s + T_\lambda(\mathrm{sg}[s]) - \mathrm{sg}[s]`.

    The forward value is exactly :math:`T_\lambda(s)` (computed as ``T(sg[s]) + (s - sg[s])`` so
    that no rounding error disturbs the exact zeros or the active values). The gradient with
    respect to ``s`` is the identity; only ``s`` is stopped inside :math:`T`, so ``threshold``
    (possibly a sampled latent, §3.2) still receives ∂z/∂λ = -sign(s-μ) on the active set, and
    ``loc`` receives nothing through :math:`T` (its gradient comes through ``s``).
    """
    s_stopped = s.detach()
    return shifted_soft_threshold(s_stopped, threshold, loc) + (s - s_stopped)
