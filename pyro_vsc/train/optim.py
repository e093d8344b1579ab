"""Optimizers and learning-rate schedules of Appendices D and E.

Every schedule here is a ``torch.optim.lr_scheduler`` stepped once per optimizer step, built by
a factory ``(optimizer, steps_per_epoch, epochs) -> scheduler``.
"""

import torch
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR


def dictionary_sgd(params, lr=0.5, kappa=1e-4, noise_variance=128.0):
    r"""SGD on the dictionary that takes the paper's step on eq. (10)/(11).

    The paper (and its published code) updates A by
    :math:`A \leftarrow A + \eta\,[\tfrac1B\sum_k (x^k - Az^k)z^{k\top} - 2\kappa A]`, a gradient
    step of size η = ``lr`` on :math:`\tfrac1B\sum_k \tfrac12\|x^k-Az^k\|^2 + \kappa\|A\|_F^2`.
    Our loss is the per-data-point negative ELBO with a Gaussian likelihood of variance σ²:
    :math:`\tfrac1B\sum_k \|x^k-Az^k\|^2/(2\sigma^2) + \dots`, whose gradient in A is
    :math:`1/\sigma^2` times the paper's data term. Hence plain SGD with learning rate
    :math:`\eta\sigma^2` and weight decay :math:`2\kappa/\sigma^2` (the Frobenius penalty as a
    Gaussian prior on A, MAP) takes exactly the paper's step:
    :math:`\eta\sigma^2\,(\tfrac{1}{\sigma^2}g + \tfrac{2\kappa}{\sigma^2}A) = \eta\,(g + 2\kappa A)`.

    With σ² = D/2 = 128 (per-pixel MSE): lr 0.5 → 64, κ = 1e-4 → weight decay 1.5625e-6.

    :param lr: the paper's dictionary learning rate η (Appendix D: 0.5).
    :param kappa: Frobenius penalty κ (Appendix D: 1e-4 variational, 1e-3 FISTA).
    :param noise_variance: σ² of the model's Gaussian likelihood.
    """
    if lr <= 0 or kappa < 0 or noise_variance <= 0:
        raise ValueError(f"need lr > 0, kappa ≥ 0, noise_variance > 0; got {lr}, {kappa}, {noise_variance}")
    return torch.optim.SGD(params, lr=lr * noise_variance, weight_decay=2 * kappa / noise_variance,
                           foreach=True)


def exponential_per_epoch(optimizer, steps_per_epoch, epochs, gamma=0.99):
    """lr × γ^epoch, stepped per step (Appendix D: dictionary decay 0.99 per epoch)."""
    if not 0 < gamma <= 1:
        raise ValueError(f"decay factor must lie in (0, 1], got {gamma}")
    return LambdaLR(optimizer, lambda step: gamma ** (step // steps_per_epoch))


def one_cycle(optimizer, steps_per_epoch, epochs, pct_start=0.05, div_factor=25.0,
              final_div_factor=1e4):
    """One-cycle schedule over the whole run (Appendix D's "CycleScheduler" for the encoder).

    Warm-up from lr/25 to lr over the first 5% of steps, then cosine annealing to lr/25/1e4, as
    in the paper's published scheduler (which warms up linearly; torch's warms up along a
    cosine). Momentum is not cycled.
    """
    max_lrs = [group["lr"] for group in optimizer.param_groups]
    total = steps_per_epoch * epochs
    if total < 3:
        raise ValueError(f"a one-cycle schedule needs at least 3 steps, got {total}")
    # torch divides by the warm-up length in steps minus one: keep it at least two steps
    pct_start = max(pct_start, 2.0 / total)
    return OneCycleLR(optimizer, max_lr=max_lrs, total_steps=total,
                      pct_start=pct_start, div_factor=div_factor,
                      final_div_factor=final_div_factor, cycle_momentum=False)


def constant(optimizer, steps_per_epoch, epochs):
    """No schedule."""
    return LambdaLR(optimizer, lambda step: 1.0)
