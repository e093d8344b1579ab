"""Objective (10) of inferred codes and of FISTA's codes on the same dictionary (§4.1, Table 1)."""

import torch

from pyro_vsc.fista import fista, lasso_objective
from pyro_vsc.metrics import sparse_coding_objective

#: λ of objective (10) in the validation loss of Table 1.
PAPER_LAMBDA = 20.0


@torch.no_grad()
def objective_metrics(x, dictionary, codes, lam=PAPER_LAMBDA, fista_tol=None, fista_max_iter=5000):
    r"""Validation loss of Table 1 for inferred codes, with FISTA's optimum as a reference.

    * ``validation_objective``: mean over data points of
      :math:`\tfrac12\|x - Az\|^2 + \lambda\|z\|_1` (eq. 10 as the published validation computes
      it, λ = 20) for the given codes (the max-ELBO selection of the guide);
    * ``fista_objective``: the same objective at FISTA's codes for the *same* dictionary, solved to
      the precise default tolerance of :func:`pyro_vsc.fista.fista` (not the training guide's
      1e-3): the best any inference could do on this dictionary, so the difference measures the
      inference network's amortization and sampling gap;
    * ``nonzero_pct``, ``recon`` (mean :math:`\tfrac12\|x-Az\|^2`) and ``l1`` of the given codes.

    :returns: dict of Python floats and the FISTA result's ``fista_iterations``/``fista_converged``.
    """
    per_point = sparse_coding_objective(x, dictionary, codes, lam)
    residual = x - codes @ dictionary.T
    reference = fista(dictionary.detach(), x, lam, tol=fista_tol, max_iter=fista_max_iter)
    return {
        "validation_objective": per_point.mean().item(),
        "recon": (0.5 * residual.pow(2).sum(-1)).mean().item(),
        "l1": codes.abs().sum(-1).mean().item(),
        "nonzero_pct": 100.0 * (codes != 0).double().mean().item(),
        "fista_objective": lasso_objective(dictionary, x, reference.codes, lam).mean().item(),
        "fista_iterations": reference.iterations,
        "fista_converged": reference.converged,
    }
