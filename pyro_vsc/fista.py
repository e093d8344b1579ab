r"""Batched FISTA for the LASSO sparse-coding baseline of §4.1 (eq. 10) and Appendix D.

For a dictionary :math:`\mathbf A\in\mathbb R^{D\times K}` and patches :math:`\mathbf x^k` the
MAP codes of the FISTA baseline solve, patch by patch,

.. math:: \hat{\mathbf z}^k=\arg\min_{\mathbf z}\ \tfrac12\|\mathbf x^k-\mathbf A\mathbf z\|_2^2
          +\lambda\|\mathbf z\|_1 ,

the data and sparsity terms of eq. (10) in the scaling of the authors' solver, which makes
:math:`\lambda` the soft threshold of the proximal step (the paper uses :math:`\lambda=20`).
Eq. (10) as printed has no ½; its minimiser with weight :math:`\lambda` is this one with
:math:`\lambda/2`. The dictionary term :math:`\kappa\|\mathbf A\|_F^2` of eq. (10) does not
depend on the codes and belongs to the dictionary update, not here.

The solver is FISTA (Beck & Teboulle, 2009): a gradient step of length :math:`1/L` on the
quadratic term, the soft threshold :math:`\lambda/L` (the proximal map of the :math:`\ell_1`
term), and Nesterov momentum with :math:`t_{k+1}=(1+\sqrt{1+4t_k^2})/2`. All rows of ``x`` are
solved at once: with the Gram matrix :math:`G=\mathbf A^\top\mathbf A` and
:math:`\mathbf b=\mathbf A^\top\mathbf x` one iteration is a single matrix product
``y @ (I - G/L) + b/L`` followed by the soft threshold (a clamp and a subtraction) and the
momentum step (one ``lerp``), all written into preallocated buffers.
"""

from dataclasses import dataclass

import torch

#: Default iteration cap. FISTA's objective error decays as O(L‖z₀ − z*‖²/k²); on 256×256
#: dictionaries of whitened patches the default tolerance is met after a few hundred to about a
#: thousand iterations, well before this cap.
DEFAULT_MAX_ITER = 5000
#: Default number of iterations between two convergence checks (each check is one host sync).
DEFAULT_CHECK_EVERY = 10


@dataclass(frozen=True)
class FistaResult:
    """Output of :func:`fista`.

    :ivar torch.Tensor codes: the sparse codes, shape ``(B, K)``, with exact zeros.
    :ivar int iterations: the number of FISTA iterations run.
    :ivar bool converged: whether the stopping rule was met before ``max_iter``.
    """

    codes: torch.Tensor
    iterations: int
    converged: bool


def default_tolerance(dtype):
    r"""Default relative-change tolerance of :func:`fista`: ``max(1e-8, 10·eps(dtype))``.

    That is 1e-8 in float64 and about 1.2e-6 in float32. A tolerance much below ten machine
    epsilons would never be met, since rounding alone moves the iterates by a few epsilons
    relative. At these values the solutions met the LASSO optimality conditions to a few 1e-7·λ
    (float64) and a few 1e-5·λ (float32) on 256×256 dictionaries of whitened patches with
    λ giving 10-15% active atoms (see tests/test_fista.py for the checked bounds).
    """
    return max(1e-8, 10.0 * torch.finfo(dtype).eps)


def lasso_objective(dictionary, x, codes, lam):
    r"""Per-sample LASSO objective :math:`\tfrac12\|\mathbf x-\mathbf A\mathbf z\|_2^2+\lambda\|\mathbf z\|_1`.

    The code-dependent part of eq. (10), the validation loss of Table 1 for FISTA (§4.1).

    :param torch.Tensor dictionary: ``A``, shape ``(D, K)``.
    :param torch.Tensor x: data, shape ``(B, D)``.
    :param torch.Tensor codes: ``z``, shape ``(B, K)``.
    :param lam: the ℓ₁ weight λ ≥ 0: a float or a tensor broadcastable to ``codes``.
    :returns: tensor of shape ``(B,)``.
    """
    _check_shapes(dictionary, x)
    if codes.shape != (x.shape[0], dictionary.shape[1]):
        raise ValueError(
            f"codes must have shape (B, K) = {(x.shape[0], dictionary.shape[1])}, got {tuple(codes.shape)}"
        )
    residual = x - codes @ dictionary.T
    return 0.5 * residual.pow(2).sum(-1) + (lam * codes.abs()).sum(-1)


def lipschitz_constant(dictionary):
    r"""Lipschitz constant :math:`L=\lambda_{\max}(\mathbf A^\top\mathbf A)=\|\mathbf A\|_2^2` of the
    gradient :math:`\mathbf A^\top(\mathbf A\mathbf z-\mathbf x)` of the quadratic term.

    Computed from the singular values on the dictionary's own device; returns a 0-dim tensor.
    """
    if dictionary.dim() != 2:
        raise ValueError(f"dictionary must be a (D, K) matrix, got shape {tuple(dictionary.shape)}")
    return torch.linalg.matrix_norm(dictionary.detach(), ord=2).square()


@torch.no_grad()
def fista(
    dictionary,
    x,
    lam,
    *,
    max_iter=DEFAULT_MAX_ITER,
    tol=None,
    check_every=DEFAULT_CHECK_EVERY,
    lipschitz=None,
    init=None,
):
    r"""Solve the LASSO problem of §4.1 for every row of ``x`` with FISTA (Beck & Teboulle, 2009).

    Iterates, for all rows at once, with :math:`\mathbf y_1=\mathbf z_0` and :math:`t_1=1`:

    .. math::
        \mathbf z_k &= S_{\lambda/L}\big(\mathbf y_k-\tfrac1L\mathbf A^\top(\mathbf A\mathbf y_k-\mathbf x)\big),\\
        t_{k+1} &= \tfrac12\big(1+\sqrt{1+4t_k^2}\big),\qquad
        \mathbf y_{k+1}=\mathbf z_k+\tfrac{t_k-1}{t_{k+1}}(\mathbf z_k-\mathbf z_{k-1}),

    where :math:`S_\tau(v)=\mathrm{sign}(v)\max(|v|-\tau,0)` is the soft threshold.

    **Stopping rule.** Every ``check_every`` iterations the last step's change over the whole
    batch is compared with the previous iterate,
    :math:`\|\mathbf z_k-\mathbf z_{k-1}\|_F\le\mathrm{tol}\cdot\|\mathbf z_{k-1}\|_F` (Frobenius
    norms over all rows). This is the relative-change rule of the authors' solver written without
    a division, so an all-zero batch whose codes no longer move counts as converged instead of
    producing 0/0; a batch whose previous iterate is zero but whose codes still move does not.
    Checking only every few iterations keeps device-to-host synchronisations rare.

    FISTA's tail convergence is sublinear, so small λ (dense, ill-conditioned solutions) can need
    more than ``max_iter`` iterations to meet a tight tolerance; ``converged`` says whether it did.

    The codes are returned without gradient (the FISTA baseline treats them as constants in the
    dictionary update of eq. 10).

    :param torch.Tensor dictionary: ``A``, shape ``(D, K)``.
    :param torch.Tensor x: data, shape ``(B, D)``, same dtype and device as ``dictionary``.
    :param lam: the ℓ₁ weight λ ≥ 0: a float or a tensor broadcastable to ``(B, K)`` (e.g. the
        warmed-up λ·ω of Appendix D as a 0-dim tensor, or one λ per row as ``(B, 1)``).
    :param int max_iter: iteration cap (default :data:`DEFAULT_MAX_ITER` = 5000).
    :param float tol: relative-change tolerance ≥ 0; defaults to :func:`default_tolerance` of the
        dtype (1e-8 in float64, about 1.2e-6 in float32).
    :param int check_every: iterations between convergence checks (default 10).
    :param lipschitz: step-size constant ``L``; defaults to :func:`lipschitz_constant`. Passing
        it saves one SVD when the dictionary is reused. A value smaller than
        :math:`\|\mathbf A\|_2^2` can make the iteration diverge.
    :param torch.Tensor init: optional warm start ``z_0`` of shape ``(B, K)``; zeros by default.
    :rtype: FistaResult
    """
    dictionary, x, lam, codes = lasso_inputs(dictionary, x, lam, init)
    if not (isinstance(max_iter, int) and max_iter >= 1):
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if not (isinstance(check_every, int) and check_every >= 1):
        raise ValueError(f"check_every must be an integer >= 1, got {check_every!r}")
    if tol is None:
        tol = default_tolerance(x.dtype)
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    batch, num_atoms = codes.shape

    lipschitz = float(lipschitz_constant(dictionary) if lipschitz is None else lipschitz)
    if not lipschitz >= 0:
        raise ValueError(f"lipschitz must be >= 0 (the squared spectral norm of A), got {lipschitz!r}")
    if lipschitz == 0.0:
        # A = 0: the objective is ½‖x‖² + λ‖z‖₁, minimised by z = 0 (any z when λ = 0).
        return FistaResult(codes=torch.zeros_like(codes), iterations=0, converged=True)

    # y - ∇/L = y (I - AᵀA/L) + Aᵀx/L: one fused matrix product per iteration.
    step_matrix = torch.eye(num_atoms, dtype=x.dtype, device=x.device) - dictionary.T @ dictionary / lipschitz
    step_offset = x @ dictionary / lipschitz
    if lam.numel() == 1:
        threshold = float(lam) / lipschitz
    else:
        threshold = (lam / lipschitz).expand(batch, num_atoms)
    neg_threshold = -threshold

    # Preallocated buffers: every step writes in place, so no large tensor is allocated per iteration.
    momentum_point = codes.clone()
    proposal = torch.empty_like(codes)
    new_codes = torch.empty_like(codes)
    t = 1.0
    converged = False
    iteration = 0
    while iteration < max_iter and not converged:
        iteration += 1
        torch.addmm(step_offset, momentum_point, step_matrix, out=proposal)
        # Soft threshold v - clamp(v, -τ, τ): exactly zero whenever |v| <= τ.
        torch.clamp(proposal, neg_threshold, threshold, out=new_codes)
        torch.sub(proposal, new_codes, out=new_codes)
        t_next = 0.5 * (1.0 + (1.0 + 4.0 * t * t) ** 0.5)
        # y = z_k + β (z_k - z_{k-1}) = lerp(z_{k-1}, z_k, 1 + β) with β = (t_k - 1) / t_{k+1}.
        torch.lerp(codes, new_codes, 1.0 + (t - 1.0) / t_next, out=momentum_point)
        t = t_next
        if iteration % check_every == 0 or iteration == max_iter:
            torch.sub(new_codes, codes, out=proposal)
            converged = bool(torch.linalg.vector_norm(proposal) <= tol * torch.linalg.vector_norm(codes))
        codes, new_codes = new_codes, codes
    return FistaResult(codes=codes, iterations=iteration, converged=converged)


def lasso_inputs(dictionary, x, lam, init=None):
    """Checks the inputs of a LASSO solver (:func:`fista`, :func:`~pyro_vsc.active_set_lasso.active_set_lasso`).

    :returns: ``(dictionary, x, lam, codes)`` detached, ``lam`` as a tensor of x's dtype and
        device, ``codes`` a copy of ``init`` or zeros of shape (B, K).
    """
    _check_shapes(dictionary, x)
    if dictionary.dtype != x.dtype or dictionary.device != x.device:
        raise ValueError(
            "dictionary and x must share dtype and device, got "
            f"{dictionary.dtype}@{dictionary.device} and {x.dtype}@{x.device}"
        )
    if not dictionary.dtype.is_floating_point:
        raise ValueError(f"dictionary and x must be floating point, got {dictionary.dtype}")
    batch, num_atoms = x.shape[0], dictionary.shape[1]
    lam = torch.as_tensor(lam, dtype=x.dtype, device=x.device).detach()
    if not bool(torch.all(lam >= 0) & torch.all(torch.isfinite(lam))):
        raise ValueError("lam must be finite and >= 0 everywhere")
    try:
        torch.broadcast_shapes(lam.shape, (batch, num_atoms))
    except RuntimeError:
        raise ValueError(
            f"lam of shape {tuple(lam.shape)} does not broadcast to the codes' shape (B, K) = {(batch, num_atoms)}"
        ) from None
    if init is None:
        codes = x.new_zeros(batch, num_atoms)
    else:
        if init.shape != (batch, num_atoms):
            raise ValueError(f"init must have shape (B, K) = {(batch, num_atoms)}, got {tuple(init.shape)}")
        codes = init.detach().to(dtype=x.dtype, device=x.device, copy=True)
    return dictionary.detach(), x.detach(), lam, codes


def _check_shapes(dictionary, x):
    if dictionary.dim() != 2:
        raise ValueError(f"dictionary must be a (D, K) matrix, got shape {tuple(dictionary.shape)}")
    if x.dim() != 2 or x.shape[1] != dictionary.shape[0]:
        raise ValueError(
            f"x must have shape (B, D) with D = {dictionary.shape[0]} (the dictionary's rows), got {tuple(x.shape)}"
        )
