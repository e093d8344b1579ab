"""FISTA baseline (§4.1, Appendix D) as a guide: MAP codes of eq. (10) as point masses."""

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_vsc.fista import fista, lipschitz_constant
from pyro_vsc.schedules import LinearWarmup

#: Appendix D: λ is multiplied by ω, starting at 0.1 and growing by 1e-4 per step up to 1.
PAPER_LAMBDA_WARMUP = LinearWarmup(start=0.1, increment=1e-4, maximum=1.0)


class FistaGuide(nn.Module):
    r"""q(z|x) = δ(z - ẑ(x)) with ẑ(x) = argmin_z ½‖x − Az‖² + λω‖z‖₁ solved by batched FISTA.

    The codes are constants for the optimiser, so the ELBO's gradient in A is that of the data
    term of eq. (10) at the MAP codes: training the model with this guide is the classic
    alternating sparse-coding scheme of Olshausen & Field with FISTA inference (the paper's
    baseline, λ = 20, κ = 1e-3 on the dictionary, λ warm-up ω of Appendix D).

    The guide reads the model's dictionary (it is handed the model's decoder) but does not own
    it: the dictionary is not among the guide's parameters.

    :param decoder: the model's :class:`~pyro_vsc.models.linear.LinearDictionary`.
    :param float lam: λ of eq. (10).
    :param lam_warmup: schedule of ω multiplying λ.
    :param int max_iter: FISTA iteration cap per batch (the published solver: 500).
    :param float tol: FISTA relative-change tolerance (the published solver: 1e-3).
    """

    needs_decoder = True

    def __init__(self, decoder, lam=20.0, lam_warmup=PAPER_LAMBDA_WARMUP, max_iter=500, tol=1e-3):
        super().__init__()
        if not lam > 0:
            raise ValueError(f"FISTA λ must be > 0, got {lam}")
        self.dictionary = lambda: decoder.weight  # a reference, not a registered submodule
        self.lam, self.lam_warmup = float(lam), lam_warmup
        self.max_iter, self.tol = int(max_iter), float(tol)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def advance(self):
        self.step += 1

    def codes(self, x):
        """MAP codes of ``x`` (B, D) under the current dictionary and warmed-up λ."""
        dictionary = self.dictionary().detach()
        lam = self.lam * self.lam_warmup(self.step)
        return fista(dictionary, x.detach(), lam, max_iter=self.max_iter, tol=self.tol,
                     lipschitz=lipschitz_constant(dictionary)).codes

    def forward(self, x, num_data=None, subsample=None):
        codes = self.codes(x)
        with pyro.plate("data", num_data or x.shape[0], subsample=subsample):
            return pyro.sample("z", dist.Delta(codes).to_event(1))
