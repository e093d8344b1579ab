r"""Active-set solver of the LASSO sparse-coding problem of §4.1 (eq. 10), batched and certified.

It solves what :func:`pyro_vsc.fista.fista` solves, for every row of ``x``,

.. math:: \hat{\mathbf z}=\arg\min_{\mathbf z}\ P(\mathbf z)=\tfrac12\|\mathbf x-\mathbf A\mathbf z\|_2^2
          +\lambda\|\mathbf z\|_1 ,

but uses the sparsity of the solution (on a trained 256-atom dictionary at λ = 20 a patch has
a handful of active atoms, most have none) instead of iterating every patch until the slowest
one has converged:

1. FISTA with adaptive restarts (O'Donoghue & Candès, 2015: the momentum is dropped where it
   points uphill), one (B × K)·(K × K) product per iteration as in :func:`~pyro_vsc.fista.fista`;
2. every ``check_every`` iterations each patch is *certified* by the duality gap of its iterate:
   with the residual correlations :math:`\boldsymbol\rho=\mathbf A^\top(\mathbf x-\mathbf A\mathbf z)`
   and the dual point :math:`\theta=s(\mathbf x-\mathbf A\mathbf z)`,
   :math:`s=\min(1,\min_k\lambda_k/|\rho_k|)`,

   .. math:: \mathrm{gap}=P(\mathbf z)-D(\theta)=\tfrac12(1-s)^2\|\mathbf x-\mathbf A\mathbf z\|^2+
             \sum_k\big(\lambda_k|z_k|-s\,z_k\rho_k\big)\ \ge\ P(\mathbf z)-P^\star,

   a sum of non-negative terms (no cancellation). A patch whose gap is at most ``tol``·P(z) is
   done, and leaves the batch: later iterations cost only what is left;
3. the others get a Newton step on their active set S (if it has at most ``newton_support``
   atoms): the minimiser with the signs σ of the iterate, :math:`G_{SS}\mathbf z_S=\mathbf c_S-\lambda\sigma`
   (:math:`G=\mathbf A^\top\mathbf A`, :math:`\mathbf c=\mathbf A^\top\mathbf x`), solved by a
   Cholesky factorisation vectorized over patches. Once FISTA has found the active set and
   signs this is the exact solution; the duality gap decides whether it is accepted.

Every returned row carries its duality gap (``gap``); ``converged`` says that all of them are at
most ``tol`` times their objective, i.e. every objective is within that relative distance of the
optimum. Host synchronisations: one per check, like :func:`~pyro_vsc.fista.fista`'s stopping rule.
"""

from dataclasses import dataclass

import torch

from .fista import lasso_inputs, lipschitz_constant

#: Default relative duality-gap tolerance: the objective is within 1e-5 of the optimum.
DEFAULT_TOL = 1e-5
#: Default iteration cap and number of iterations between two certifications.
DEFAULT_MAX_ITER, DEFAULT_CHECK_EVERY = 5000, 10
#: Largest active set that gets Newton steps (the factorisation costs m³/3 per patch).
DEFAULT_NEWTON_SUPPORT = 16


@dataclass(frozen=True)
class ActiveSetResult:
    """Output of :func:`active_set_lasso`.

    :ivar torch.Tensor codes: the sparse codes, shape ``(B, K)``, with exact zeros.
    :ivar torch.Tensor gap: ``(B,)`` duality gap of each row, an upper bound of its objective's
        distance to the optimum.
    :ivar bool converged: whether every row's gap is at most ``tol`` times its objective.
    :ivar int iterations: FISTA iterations run (by the rows that needed the most).
    :ivar float row_iterations: FISTA iterations per row, on average (the work done, in units of
        one iteration of the whole batch, is this times B).
    """

    codes: torch.Tensor
    gap: torch.Tensor
    converged: bool
    iterations: int
    row_iterations: float


@torch.no_grad()
def active_set_lasso(dictionary, x, lam, *, tol=DEFAULT_TOL, max_iter=DEFAULT_MAX_ITER,
                     check_every=DEFAULT_CHECK_EVERY, newton_support=DEFAULT_NEWTON_SUPPORT, init=None):
    r"""Solve the LASSO problem of §4.1 for every row of ``x``, each to a certified duality gap.

    :param torch.Tensor dictionary: ``A``, shape ``(D, K)``.
    :param torch.Tensor x: data, shape ``(B, D)``, same dtype and device as ``dictionary``.
    :param lam: the ℓ₁ weight λ > 0: a float or a tensor broadcastable to ``(B, K)``.
    :param float tol: relative duality-gap tolerance (default 1e-5); in float32 keep it well
        above the rounding of the objective (about 1e-6 relative).
    :param int max_iter: iteration cap.
    :param int check_every: FISTA iterations between two certifications (and Newton steps).
    :param int newton_support: largest active set that gets Newton steps (0: none).
    :param torch.Tensor init: optional warm start of shape ``(B, K)``.
    :rtype: ActiveSetResult
    """
    dictionary, x, lam, codes = lasso_inputs(dictionary, x, lam, init)
    for name, value in (("max_iter", max_iter), ("check_every", check_every)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not (isinstance(newton_support, int) and newton_support >= 0):
        raise ValueError(f"newton_support must be an integer >= 0, got {newton_support!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    if not bool(torch.all(lam > 0)):
        raise ValueError("lam must be > 0 everywhere (the duality-gap certificate divides by it)")
    batch, num_atoms = codes.shape
    gram = dictionary.T @ dictionary
    lipschitz = float(lipschitz_constant(dictionary))
    step_matrix = torch.eye(num_atoms, dtype=x.dtype, device=x.device) - gram / lipschitz
    correlations = x @ dictionary
    squared_norms = x.pow(2).sum(1)
    # λ as (1 or B, 1 or K): indexed by row only when it has one per row
    weights = lam.reshape((1,) * (2 - lam.dim()) + lam.shape) if lam.dim() < 2 else lam
    per_row = weights.shape[0] > 1
    scalar_threshold = float(lam) / lipschitz if lam.numel() == 1 else None
    gap = torch.empty(batch, dtype=x.dtype, device=x.device)

    # the rows not yet certified, and their FISTA state (z_k, y_k and t_k per row)
    rows = torch.arange(batch, device=x.device)
    current, momentum = codes.clone(), codes.clone()
    t = x.new_ones(batch, 1)
    finished = torch.zeros(batch, dtype=torch.bool, device=x.device)
    iteration, row_iterations = 0, 0
    while True:
        residual_correlations = correlations - current @ gram
        row_gap, objective = _duality_gap(current, residual_correlations, weights, squared_norms, correlations)
        done = (row_gap <= tol * objective) & ~finished
        if newton_support:
            candidates = (~done & ~finished & ((current != 0).sum(1) <= newton_support)).nonzero().squeeze(1)
            if candidates.numel():
                w = weights[candidates] if per_row else weights
                newton = _newton_step(gram, correlations[candidates], w, current[candidates])
                newton_gap, newton_objective = _duality_gap(newton, correlations[candidates] - newton @ gram, w,
                                                            squared_norms[candidates], correlations[candidates])
                certified = newton_gap <= tol * newton_objective
                accepted = candidates[certified]
                current[accepted] = newton[certified]
                row_gap[accepted] = newton_gap[certified]
                done[accepted] = True
        codes[rows[done]] = current[done]
        gap[rows[done]] = row_gap[done]
        finished |= done
        if bool(finished.all()) or iteration >= max_iter:
            codes[rows[~finished]] = current[~finished]
            gap[rows[~finished]] = row_gap[~finished]
            break
        if finished.sum() >= COMPACT_FRACTION * rows.numel():  # drop the finished rows
            keep = ~finished
            rows, current, momentum, t = rows[keep], current[keep], momentum[keep], t[keep]
            correlations, squared_norms = correlations[keep], squared_norms[keep]
            weights = weights[keep] if per_row else weights
            finished = finished[keep]
        offset = correlations / lipschitz
        threshold = scalar_threshold if scalar_threshold is not None else weights / lipschitz
        steps = min(check_every, max_iter - iteration)
        current, momentum, t = _fista_steps(current, momentum, t, step_matrix, offset, threshold, steps)
        iteration += steps
        row_iterations += steps * rows.numel()
    return ActiveSetResult(codes=codes, gap=gap, converged=bool(finished.all()), iterations=iteration,
                           row_iterations=row_iterations / batch)


#: Rows are dropped from the batch once this fraction of it is finished (dropping copies the state).
COMPACT_FRACTION = 0.25


def _fista_steps(current, momentum, t, step_matrix, offset, threshold, steps):
    """``steps`` FISTA iterations with the gradient-scheme adaptive restart, in four buffers."""
    proposal, new = torch.empty_like(current), torch.empty_like(current)
    difference = torch.empty_like(current)
    for _ in range(steps):
        torch.addmm(offset, momentum, step_matrix, out=proposal)  # y − ∇/L
        torch.clamp(proposal, -threshold, threshold, out=difference)
        torch.sub(proposal, difference, out=new)  # soft threshold
        # restart (t = 1) where the momentum points uphill: (y − z_new)·(z_new − z) > 0
        torch.sub(momentum, new, out=proposal)
        torch.sub(new, current, out=difference)
        uphill = torch.linalg.vecdot(proposal, difference).unsqueeze(1) > 0
        t = torch.where(uphill, torch.ones_like(t), t)
        t_next = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t))
        torch.addcmul(new, difference, (t - 1.0) / t_next, out=momentum)
        current, new, t = new, current, t_next
    return current, momentum, t



def _duality_gap(z, residual_correlations, lam, squared_norms, correlations):
    """Per-row duality gap and objective (module docstring) from ρ = c − Gz, with
    ‖x − Az‖² = ‖x‖² − 2cᵀz + zᵀGz and zᵀGz = cᵀz − ρᵀz."""
    residual_norm = (squared_norms - (correlations * z).sum(1) - (z * residual_correlations).sum(1)).clamp_min(0.0)
    scale = 1.0 / (residual_correlations.abs() / lam).amax(1).clamp_min(1.0)
    gap = 0.5 * (1.0 - scale).pow(2) * residual_norm + (lam * z.abs() - scale.unsqueeze(1) * z * residual_correlations).sum(1)
    return gap, 0.5 * residual_norm + (lam * z.abs()).sum(1)


def _newton_step(gram, correlations, lam, z):
    r"""The minimiser on each row's active set with its signs, :math:`G_{SS}\mathbf z_S=\mathbf c_S-\lambda_S\sigma_S`
    (zero elsewhere); rows without an active set stay zero."""
    size = max(1, int((z != 0).sum(1).max()))
    atoms = z.abs().topk(size, dim=1).indices  # the active set first
    signs = z.gather(1, atoms).sign()
    active = signs != 0
    both = active.unsqueeze(2) & active.unsqueeze(1)
    block = torch.where(both, gram[atoms.unsqueeze(2), atoms.unsqueeze(1)],
                        torch.eye(size, dtype=z.dtype, device=z.device))  # identity off the set
    rhs = torch.where(active, correlations.gather(1, atoms) - lam.expand_as(z).gather(1, atoms) * signs, 0.0)
    return torch.zeros_like(z).scatter_(1, atoms, _cholesky_solve(block, rhs))


def _cholesky_solve(block, rhs):
    """Solves block @ v = rhs for a batch of small SPD blocks (b, m, m), vectorized over the batch
    (b LAPACK calls of size m cost far more for small m); a non-positive pivot gives NaN."""
    size = block.shape[-1]
    factor = torch.zeros_like(block)
    for j in range(size):
        row = factor[:, j, :j]
        pivot = torch.sqrt(block[:, j, j] - (row * row).sum(1))
        factor[:, j, j] = pivot
        factor[:, j + 1:, j] = (block[:, j + 1:, j] - (factor[:, j + 1:, :j] * row.unsqueeze(1)).sum(2)) / pivot.unsqueeze(1)
    solution = torch.empty_like(rhs)
    for j in range(size):  # L y = rhs
        solution[:, j] = (rhs[:, j] - (factor[:, j, :j] * solution[:, :j]).sum(1)) / factor[:, j, j]
    for j in reversed(range(size)):  # Lᵀ v = y
        solution[:, j] = (solution[:, j] - (factor[:, j + 1:, j] * solution[:, j + 1:]).sum(1)) / factor[:, j, j]
    return solution
