r"""Working-set solver of the LASSO sparse-coding problem of §4.1 (eq. 10), batched over patches.

It solves what :func:`pyro_vsc.fista.fista` solves, for every row of ``x``,

.. math:: \hat{\mathbf z}=\arg\min_{\mathbf z}\ \tfrac12\|\mathbf x-\mathbf A\mathbf z\|_2^2+\lambda\|\mathbf z\|_1 ,

but uses the sparsity of the solution (on a trained 256-atom dictionary at λ = 20 about 1.5
atoms per patch are active): plain FISTA's cost is one (B × K)·(K × K) product per iteration,
mostly products with zeros. Here (the working-set strategy of Blitz and Celer; Johnson &
Guestrin, 2015; Massias et al., 2018):

1. the Gram matrix :math:`G=\mathbf A^\top\mathbf A` and correlations
   :math:`\mathbf c=\mathbf A^\top\mathbf x` are computed once;
2. every patch gets a working set :math:`W` of m atoms: those of the current support and, after
   them, those with the largest violation :math:`|\rho_k|-\lambda` of the optimality conditions,
   :math:`\boldsymbol\rho=\mathbf c-G\mathbf z` the residual correlations;
3. the problems restricted to the working sets,
   :math:`\min_{\mathbf z_W}\tfrac12\mathbf z_W^\top G_{WW}\mathbf z_W-\mathbf c_W^\top\mathbf z_W
   +\lambda\|\mathbf z_W\|_1`, are solved together by FISTA with a step :math:`1/L_W` per patch
   (:math:`L_W` by power iteration on :math:`G_{WW}`), warm starts and adaptive restarts
   (O'Donoghue & Candès, 2015): batched (B, m, m) products;
4. the duality gap of the *full* problem certifies each patch: with the residual
   :math:`\mathbf r=\mathbf x-\mathbf A\mathbf z` and the dual point
   :math:`\theta=s\mathbf r`, :math:`s=\min(1,\min_k\lambda/|\rho_k|)`,

   .. math:: \mathrm{gap}=P(\mathbf z)-D(\theta)=\tfrac12(1-s)^2\|\mathbf r\|^2+
             \sum_k\big(\lambda|z_k|-s\,z_k\rho_k\big)\ \ge\ P(\mathbf z)-P^\star,

   a sum of non-negative terms (no cancellation). Patches whose gap exceeds ``tol``·P(z) go
   through 2-4 again with a working set twice as large; the others are done.

The result is certified: every returned row has a duality gap below ``tol`` times its objective
(``converged``), so its objective is within that relative distance of the optimum. Host
synchronisations happen once per check of the reduced problems (every ``check_every``
iterations) and once per round, like :func:`~pyro_vsc.fista.fista`'s stopping rule.
"""

from dataclasses import dataclass

import torch

from .fista import lasso_inputs

#: Default relative duality-gap tolerance: the objective is within 1e-5 of the optimum.
DEFAULT_TOL = 1e-5
#: Working-set size of the first round.
DEFAULT_WORKING_SET = 16
#: Cap on the iterations of each round's reduced problems.
DEFAULT_MAX_ITER = 5000
#: Iterations between checks of the reduced problems' duality gaps.
DEFAULT_CHECK_EVERY = 10
#: Power iterations for the step size, and the safety factor on their estimate of λ_max(G_WW).
POWER_ITERATIONS, STEP_MARGIN = 20, 1.05


@dataclass(frozen=True)
class WorkingSetResult:
    """Output of :func:`working_set_lasso`.

    :ivar torch.Tensor codes: the sparse codes, shape ``(B, K)``, with exact zeros.
    :ivar torch.Tensor gap: ``(B,)`` duality gap of each row, an upper bound of its objective's
        distance to the optimum.
    :ivar bool converged: whether every row's gap is at most ``tol`` times its objective.
    :ivar int rounds: working-set rounds run.
    :ivar int iterations: FISTA iterations of the reduced problems, summed over rounds.
    """

    codes: torch.Tensor
    gap: torch.Tensor
    converged: bool
    rounds: int
    iterations: int


@torch.no_grad()
def working_set_lasso(dictionary, x, lam, *, tol=DEFAULT_TOL, working_set=DEFAULT_WORKING_SET,
                      max_iter=DEFAULT_MAX_ITER, check_every=DEFAULT_CHECK_EVERY, init=None):
    r"""Solve the LASSO problem of §4.1 for every row of ``x`` with a certified working-set method.

    :param torch.Tensor dictionary: ``A``, shape ``(D, K)``.
    :param torch.Tensor x: data, shape ``(B, D)``, same dtype and device as ``dictionary``.
    :param lam: the ℓ₁ weight λ > 0: a float or a tensor broadcastable to ``(B, K)``.
    :param float tol: relative duality-gap tolerance (default 1e-5); in float32 it should stay
        well above the rounding of the objective, about 1e-6 relative.
    :param int working_set: atoms per patch in the first round (doubled in each further round).
    :param int max_iter: iteration cap of each round's reduced problems.
    :param int check_every: iterations between duality-gap checks of the reduced problems.
    :param torch.Tensor init: optional warm start of shape ``(B, K)``.
    :rtype: WorkingSetResult
    """
    dictionary, x, lam, codes = lasso_inputs(dictionary, x, lam, init)
    for name, value in (("working_set", working_set), ("max_iter", max_iter), ("check_every", check_every)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    if not bool(torch.all(lam > 0)):
        raise ValueError("lam must be > 0 everywhere (the duality-gap certificate divides by it)")
    batch, num_atoms = codes.shape
    gram = dictionary.T @ dictionary
    correlations = x @ dictionary
    squared_norms = x.pow(2).sum(1)
    lam = lam.expand(batch, num_atoms)
    gap = torch.empty(batch, dtype=x.dtype, device=x.device)
    pending = torch.arange(batch, device=x.device)
    size, rounds, iterations = min(working_set, num_atoms), 0, 0
    while True:
        z, c, weights = codes[pending], correlations[pending], lam[pending]
        residual_correlations = c - z @ gram
        gap[pending], objective = _duality_gap(z, residual_correlations, weights, squared_norms[pending], c)
        certified = gap[pending] <= tol * objective
        pending = pending[~certified]
        if pending.numel() == 0 or rounds == _max_rounds(working_set, num_atoms):
            break
        residual_correlations, z, weights = residual_correlations[~certified], z[~certified], weights[~certified]
        # the support first, then the largest violations of |ρ_k| ≤ λ_k
        score = torch.where(z != 0, torch.inf, residual_correlations.abs() - weights)
        atoms = score.topk(size, dim=1, sorted=False).indices
        reduced, count = _reduced_fista(gram[atoms.unsqueeze(2), atoms.unsqueeze(1)],
                                        correlations[pending].gather(1, atoms), weights.gather(1, atoms),
                                        z.gather(1, atoms), squared_norms[pending], tol / 2, max_iter,
                                        check_every)
        codes[pending] = torch.zeros_like(z).scatter_(1, atoms, reduced)
        rounds, iterations = rounds + 1, iterations + count
        size = min(2 * size, num_atoms)
    return WorkingSetResult(codes=codes, gap=gap, converged=pending.numel() == 0, rounds=rounds,
                            iterations=iterations)


def _max_rounds(working_set, num_atoms):
    """Rounds until the working set is every atom, and one more at full size."""
    rounds, size = 1, min(working_set, num_atoms)
    while size < num_atoms:
        rounds, size = rounds + 1, 2 * size
    return rounds + 1


def _duality_gap(z, residual_correlations, lam, squared_norms, correlations):
    """Per-row duality gap and objective (module docstring) from ρ = c − Gz, with
    ‖r‖² = ‖x‖² − 2cᵀz + zᵀGz and zᵀGz = cᵀz − ρᵀz."""
    cz = (correlations * z).sum(1)
    zr = (z * residual_correlations).sum(1)
    residual_norm = (squared_norms - cz - zr).clamp_min(0.0)  # ‖x‖² − 2cᵀz + zᵀGz
    l1 = (lam * z.abs()).sum(1)
    ratio = residual_correlations.abs() / lam
    scale = 1.0 / ratio.amax(1).clamp_min(1.0)
    gap = 0.5 * (1.0 - scale).pow(2) * residual_norm + (lam * z.abs() - scale.unsqueeze(1) * z * residual_correlations).sum(1)
    return gap, 0.5 * residual_norm + l1


def _largest_eigenvalue(gram):
    """λ_max of each (m, m) block by power iteration from a fixed generic start (no random draw)."""
    m = gram.shape[-1]
    vector = torch.cos(torch.arange(m, dtype=gram.dtype, device=gram.device) * 2.4 + 1.0)
    vector = vector.expand(gram.shape[0], m).unsqueeze(2)
    for _ in range(POWER_ITERATIONS):
        vector = gram @ vector
        vector = vector / vector.norm(dim=1, keepdim=True).clamp_min(torch.finfo(gram.dtype).tiny)
    return (vector * (gram @ vector)).sum(1)  # Rayleigh quotient, (b, 1)


def _reduced_fista(gram, correlations, lam, z, squared_norms, tol, max_iter, check_every):
    """FISTA on the working-set problems (b, m) with adaptive restarts, each row until its
    reduced duality gap is below ``tol`` times its objective; returns (z, iterations)."""
    step = 1.0 / (STEP_MARGIN * _largest_eigenvalue(gram)).clamp_min(torch.finfo(z.dtype).tiny)
    result = z.clone()
    active = torch.arange(z.shape[0], device=z.device)
    previous, momentum = z.clone(), z.clone()
    t = torch.ones_like(step)
    threshold = lam * step
    iteration = 0
    while active.numel() and iteration < max_iter:
        iteration += 1
        gradient = (gram @ momentum.unsqueeze(2)).squeeze(2) - correlations
        proposal = torch.addcmul(momentum, gradient, step, value=-1.0)
        current = proposal - proposal.clamp(-threshold, threshold)  # soft threshold
        # adaptive restart (gradient scheme): drop the momentum where it points uphill
        uphill = ((momentum - current) * (current - previous)).sum(1, keepdim=True) > 0
        t = torch.where(uphill, torch.ones_like(t), t)
        t_next = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t))
        momentum = current + ((t - 1.0) / t_next) * (current - previous)
        previous, t = current, t_next
        if iteration % check_every == 0 or iteration == max_iter:
            residual_correlations = correlations - (gram @ current.unsqueeze(2)).squeeze(2)
            gap, objective = _duality_gap(current, residual_correlations, lam, squared_norms, correlations)
            done = gap <= tol * objective
            result[active[done]] = current[done]
            keep = ~done
            active = active[keep]
            gram, correlations, lam, squared_norms = gram[keep], correlations[keep], lam[keep], squared_norms[keep]
            previous, momentum, t, step, threshold = previous[keep], momentum[keep], t[keep], step[keep], threshold[keep]
    result[active] = previous
    return result, iteration
