r"""Gamma law of the threshold posterior (§3.2) with a vectorized exact sampler and pathwise gradient.

:class:`VectorizedGamma` is Pyro's :class:`~pyro.distributions.Gamma` (same law, ``log_prob``,
moments and registered KL) with another ``rsample``: torch draws Gamma variates and their
reparameterized gradient with scalar kernels that run serially on a CPU, which made them most of
a ``thresh_gamma`` training step. Here both are written as a fixed sequence of tensor
operations, and the parameters are used once per distinct value: Pyro's vectorized particles
expand α and β along the particle dimension, and every quantity that depends on the parameters
alone is computed before that expansion.

**Sampling** (exact). With :math:`\alpha' = \alpha+1`,
:math:`z = z'\,U^{1/\alpha}/\beta` where :math:`z'\sim\Gamma(\alpha',1)` and :math:`U\sim U(0,1)`
are independent (the shape boost of Marsaglia & Tsang, 2000, used for every α; it also raises
the acceptance rate). :math:`z'` is one round of Marsaglia & Tsang's rejection sampler,
:math:`d=\alpha'-\tfrac13`, :math:`c=1/\sqrt{9d}`, :math:`x\sim N(0,1)`, :math:`v=(1+cx)^3`,
accept when :math:`\log u < x^2/2 + d - dv + d\log v` (acceptance ≥ 95%); given acceptance,
:math:`U = u\,e^{-(x^2/2+d-dv+d\log v)}` is uniform and independent of :math:`x`, so the boost
costs no further random number. On a CPU, float32 arrays of at least ``PACKED_DRAWS_FROM``
variates take x and u from one 64-bit word of torch's generator (u from 24 of its bits, on
torch's own grid :math:`k\,2^{-24}`; x by Box-Muller, as torch's ``randn``), about half the time
of ``randn`` plus ``rand``. Proposals that are rejected get a draw of torch's own sampler
(``torch._standard_gamma``, exact, with its own retries): on a CPU with many variates on the
rejected proposals alone (found with ``nonzero``, which synchronises nothing there), else on
every variate with α = 0 for the accepted ones, which returns at once without random numbers
and needs no host synchronisation on any device. Both draw the same numbers, and every variate
follows :math:`\Gamma(\alpha,\beta)` exactly. Variates are clamped below at (just above) the
dtype's smallest normal number, as torch's are.

**Gradient** (unbiased). The pathwise gradient of a one-dimensional variate is unique:
:math:`dz/d\alpha = -\partial_\alpha F(z;\alpha)/f(z;\alpha)` for the CDF :math:`F` and density
:math:`f` (implicit reparameterization; Figurnov et al., 2018; Jankowiak & Obermeyer, 2018), and
:math:`dz/d\beta = -z/\beta`. It depends on the variate only, not on how it was drawn: it is
the function torch's ``_standard_gamma_grad`` approximates, so the gradients have torch's law.
For :math:`\alpha\ge1` its relative form :math:`R = z^{-1}dz/d\alpha` of a standard variate is
evaluated from a fitted table (:mod:`~pyro_vsc.distributions.gamma_gradient_fit`: a polynomial
in Marsaglia & Tsang's normal deviate and in :math:`\log y` whose coefficients are Chebyshev
series in :math:`(\alpha-\tfrac13)^{-1/2}`), and for :math:`\alpha<1` from the exact recurrence
:math:`R(z;\alpha) = [z\,R(z;\alpha+1) - \log z + \psi(\alpha+1)]/\alpha`, which follows from
:math:`F(z;\alpha) = F(z;\alpha+1) + f(z;\alpha+1)`. Where no particles share the parameters (J = 1, as many
variates as parameter values) the table's per-value work is not amortized and torch's
``_standard_gamma_grad`` of the same derivative is used instead (faster there). Relative error of the table (``tests/test_gamma.py``):
below 5e-5 in float64 on the quantiles :math:`10^{-12}\ldots1-10^{-12}` (8e-6 for α ≥ 1), and in
float32 below 2e-4, except for α < 1 above the :math:`1-10^{-4}` quantile, where the two terms of
the recurrence (both ≈ log z) cancel and the error grows to 1e-2 at :math:`1-10^{-12}`. Torch's
kernel is off by up to 1e-3 (α = 0.05) and 3e-4 (α ≥ 0.5) against the same reference.

Sampling and gradient are one registered operator, ``pyro_vsc::gamma_rsample``, so that a
recorded training step (:mod:`pyro_vsc.train.capture`) replays both.
"""

import math
from typing import Sequence

import pyro.distributions as dist
import torch

from . import gamma_gradient_table as _table
from .compact import compact


class VectorizedGamma(dist.Gamma):
    r"""Γ(α, β) (shape α, rate β) whose ``rsample`` is the vectorized exact sampler and pathwise
    gradient of this module; everything else is Pyro's :class:`~pyro.distributions.Gamma`.

    :param concentration: shape α > 0.
    :param rate: rate β > 0.

    With an explicit ``generator`` (which a registered operator cannot take) ``rsample`` is
    torch's own.
    """

    def rsample(self, sample_shape=torch.Size(), generator=None):
        if generator is not None:
            return super().rsample(sample_shape, generator=generator)
        return gamma_rsample(self.concentration, self.rate, list(self._extended_shape(sample_shape)))


@torch.library.custom_op("pyro_vsc::gamma_rsample", mutates_args=())
def gamma_rsample(concentration: torch.Tensor, rate: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Γ(α, β) variates of ``shape`` (α and β broadcast to it) with the pathwise gradient. The
    parameters are used once per distinct value (:func:`~pyro_vsc.distributions.compact.compact`)."""
    with torch.no_grad():
        return _sample(compact(concentration), compact(rate), shape)


@gamma_rsample.register_fake
def _(concentration, rate, shape):
    return concentration.new_empty(shape)


#: Variates from which, on a CPU, torch's sampler runs on the rejected proposals alone: finding
#: them (``nonzero``) and gathering costs more than it saves below (sampler forward and backward,
#: 2 threads: 3% slower at 25,600 variates, even at 131,072, 4-6% faster at 256,000-512,000).
SELECT_REJECTED_FROM = 2**17

#: float32 variates from which, on a CPU, both random numbers of a variate come from one 64-bit
#: word of torch's generator (:func:`_normal_and_uniform`) instead of ``randn`` and ``rand``:
#: a word costs about what one float does, but unpacking it is a dozen operations more (sampler
#: forward, 2 threads, paired in one process: 1.17x the time at 25,600 variates, 0.83x at 512,000).
PACKED_DRAWS_FROM = 2**17

#: The 24 bits of a float32 uniform (torch's ``rand`` draws k·2⁻²⁴, k < 2²⁴, as these are).
_UNIFORM_BITS = (1 << 24) - 1


def _sample(concentration, rate, shape, select_rejected=None):
    # Inside the operator nothing is recorded or differentiated: the full-size work is done in
    # place. ``select_rejected``: run torch's sampler on the rejected proposals alone rather
    # than on every variate (both draw the same numbers); by default on a CPU from
    # SELECT_REJECTED_FROM variates on.
    dtype, device = concentration.dtype, concentration.device
    count = math.prod(shape)
    if dtype == torch.float32 and device.type == "cpu" and count >= PACKED_DRAWS_FROM:
        normal, uniform = _normal_and_uniform(shape, device)
    else:
        normal = torch.randn(shape, dtype=dtype, device=device)
        uniform = torch.rand(shape, dtype=dtype, device=device)
    log_z, accepted = _proposal(normal, uniform.clamp_min_(torch.finfo(dtype).tiny).log_(), concentration, rate)
    # rejected: torch's draw (in the order of the variates, so both branches draw the same)
    if select_rejected is None:
        select_rejected = device.type == "cpu" and count >= SELECT_REJECTED_FROM
    if select_rejected:
        # on a CPU, where finding the rejected proposals needs no device synchronisation, torch's
        # serial sampler runs on them alone (a few percent) instead of on every variate
        rejected = torch.nonzero(accepted.logical_not(), as_tuple=True)  # 2x faster than == 0
        redrawn = torch._standard_gamma(concentration.expand(shape)[rejected])
        log_z[rejected] = redrawn.log_().sub_(rate.expand(shape)[rejected].log())
    else:
        # every variate, with α = 0 (accepted), which returns at once without a draw
        redrawn = torch._standard_gamma(torch.addcmul(concentration, concentration, accepted, value=-1.0))
        log_z = torch.lerp(redrawn.log_().sub_(rate.log()), log_z, accepted, out=redrawn)
    # clamped in the log domain (exp is slow where it underflows), 1e-5 above the smallest normal
    return log_z.clamp_min_(math.log(torch.finfo(dtype).tiny) + 1e-5).exp_()


def _normal_and_uniform(shape, device):
    r"""Per variate of ``shape`` (float32): a standard normal deviate and a uniform
    :math:`u = k\,2^{-24}`, :math:`k < 2^{24}` (as torch's ``rand``), from one 64-bit word of
    torch's generator: u from its low 24 bits, the normal by
    Box-Muller (as torch's ``randn``) from bits 32-55 of this word and of the word half the
    array away."""
    count = math.prod(shape)
    half = (count + 1) // 2
    # the 64-bit words as (low, high) pairs of 32-bit ones, masked to their low 24 bits
    bits = torch.empty(2 * half, dtype=torch.int64, device=device).random_(-2**63, None)
    words = bits.view(torch.int32).bitwise_and_(_UNIFORM_BITS).to(torch.float32).view(2 * half, 2)
    uniform = words[:count, 0].mul(2.0**-24)
    radius = words[:half, 1].mul(-2.0**-24).log1p_().mul_(-2.0).sqrt_()  # √(−2 log(1 − w)), 1 − w ∈ (0, 1]
    angle = words[half:, 1].mul(2.0 * math.pi * 2.0**-24)
    normal = torch.empty(2 * half, dtype=torch.float32, device=device)
    torch.mul(radius, torch.cos(angle), out=normal[:half])
    torch.mul(radius, angle.sin_(), out=normal[half:])
    return normal[:count].reshape(shape), uniform.reshape(shape)


def _proposal(x, log_u, concentration, rate):
    r"""One round of Marsaglia & Tsang's sampler for :math:`\alpha' = \alpha + 1` from the normal
    deviate x and the log of the uniform u (both overwritten), boosted to α (module docstring):
    the log of the variates :math:`z = z'\,U^{1/\alpha}/\beta` where accepted (1.0 in
    ``accepted``)."""
    tiny = torch.finfo(x.dtype).tiny
    d = concentration + (1.0 - 1.0 / 3.0)  # Marsaglia & Tsang's d for α' = α + 1
    c = torch.rsqrt(9.0 * d)
    y = torch.addcmul(c.new_ones(()), c, x).clamp_min_(tiny)  # 1 + cx; y ≤ 0 is rejected below
    log_y = y.log()
    log_ratio = torch.addcmul(d, 3.0 * d, log_y)  # x²/2 + d − dv + d log v ≤ 0, v = y³
    log_ratio.addcmul_(d, y.pow_(3), value=-1.0).addcmul_(x, x, value=0.5)
    accepted = torch.lt(log_u, log_ratio, out=x)  # 1.0 where accepted
    # accepted: log(z'/β) + log(U)/α with z' = d·v and U = u / exp(log_ratio), uniform given x
    log_z = torch.add(d.log() - rate.log(), log_y, alpha=3.0, out=log_y)
    log_z.addcmul_(log_u.sub_(log_ratio), concentration.reciprocal())
    return log_z, accepted


def _setup_context(ctx, inputs, output):
    concentration, rate, _ = inputs
    ctx.save_for_backward(concentration, rate, output)


def _backward(ctx, grad):
    # per-variate gradients, summed to the inputs' shapes (autograd sums the broadcast copies of
    # expanded inputs); the parameter-only factors are computed on the distinct values
    given_concentration, given_rate, sample = ctx.saved_tensors
    concentration, rate = compact(given_concentration), compact(given_rate)
    grad_sample = grad * sample
    grad_concentration = grad_rate = None
    if ctx.needs_input_grad[0]:
        # log z from the logs: sample·rate can underflow where the sample is clamped
        log_standard = sample.log().add_(rate.log())
        if 2 * concentration.numel() > sample.numel():
            # no particles share the parameter-only factors (J = 1): there torch's per-variate
            # kernel of the same derivative is the faster (benchmarks.gamma_sampler)
            standard = log_standard.exp_()
            grad_concentration = torch._standard_gamma_grad(concentration.expand_as(standard), standard)
            grad_concentration = grad_concentration.mul_(grad).div_(rate).sum_to_size(given_concentration.shape)
        else:
            relative = relative_gradient(log_standard, concentration)
            grad_concentration = relative.mul_(grad_sample).sum_to_size(given_concentration.shape)
    if ctx.needs_input_grad[1]:
        grad_rate = grad_sample.mul_(-rate.reciprocal()).sum_to_size(given_rate.shape)
    return grad_concentration, grad_rate, None


gamma_rsample.register_autograd(_backward, setup_context=_setup_context)


def relative_gradient(log_z, concentration):
    r""":math:`z^{-1}\,dz/d\alpha` of standard Gamma variates :math:`z` of shape α, given
    :math:`\log z` (the pathwise gradient of the module docstring); ``concentration`` broadcasts
    to ``log_z``. Returns a new tensor of ``log_z``'s shape and dtype."""
    dtype = log_z.dtype
    lo, hi = _table.E_RANGE
    shift, neg_k, k, coefficients, offset, slope, keep, weight = _factors(concentration, dtype)
    t = torch.add(shift, log_z, alpha=1.0 / 3.0)  # log y = log(z/d)/3
    e = t.exp()
    e = torch.addcmul(neg_k, e, k, out=e).clamp_(lo, hi)  # e = 3(y − 1)/(8s)
    relative = _horner(coefficients[: _table.NP + 1], e)
    log_part = _horner(coefficients[_table.NP + 1:], e)
    relative.addcmul_(t, log_part)  # R(z; α'), α' = α + [α < 1]
    # α < 1: R(z; α) = [z R(z; α+1) − log z + ψ(α+1)] / α
    #                 = R(z; α+1)·z/α + (ψ(α+1) − log d)/α − 3t/α
    recurrence = torch.addcmul(offset, t, slope, out=log_part)
    return recurrence.addcmul_(relative, torch.addcmul(keep, torch.exp(log_z, out=t), weight, out=t))


def _horner(coefficients, e):
    """Σ_n coefficients[n]·eⁿ (rows of ``coefficients``) in one new buffer."""
    value = torch.addcmul(coefficients[-2], coefficients[-1], e)
    for n in range(len(coefficients) - 3, -1, -1):
        torch.addcmul(coefficients[n], value, e, out=value)
    return value


_TABLES = {}


def _factors(concentration, dtype):
    r"""The factors of the parameters alone, computed in float64 on their distinct values and
    returned in ``dtype``: −log(d)/3, −k, k (e = k(y − 1)), the coefficients of
    :math:`R = \sum_n A_n e^n + t\sum_m B_m e^m` (the fitted form
    :math:`s^2[1 - 4se - s^2(P_s(e) + tL_s(e))]`, from the table's Chebyshev series in σ) and those
    of the recurrence of α < 1 (zero weight for α ≥ 1). Written into one buffer: at J = 1 these
    small operations are a good part of the gradient's cost."""
    tables = _TABLES.get(concentration.device)
    if tables is None:
        tables = _TABLES[concentration.device] = (
            torch.tensor(_table.TABLE, dtype=torch.float64, device=concentration.device),
            torch.tensor(_table.DIGAMMA, dtype=torch.float64, device=concentration.device))
    table, digamma = tables
    degree, count = _table.K, _table.NP + _table.NL + 2
    alpha = concentration.double().reshape(-1)
    below_one = (alpha < 1).double()
    d = alpha + below_one - 1.0 / 3.0  # of α' = α + [α < 1] ≥ 1, where the table applies
    s = torch.rsqrt(d)
    # Chebyshev polynomials T_k(σ), σ = 2s/s_max − 1, by their recurrence
    chebyshev = alpha.new_empty(degree + 1, alpha.numel())
    chebyshev[0] = 1.0
    torch.mul(s, 2.0 / _table.S_MAX, out=chebyshev[1]).sub_(1.0).clamp_(-1.0, 1.0)
    twice = 2.0 * chebyshev[1]
    for k in range(2, degree + 1):
        torch.mul(twice, chebyshev[k - 1], out=chebyshev[k]).sub_(chebyshev[k - 2])
    factors = alpha.new_empty(count + 7, alpha.numel())
    weight = torch.div(below_one, alpha, out=factors[-1])
    torch.mul(digamma @ chebyshev, weight, out=factors[3 + count])  # (ψ(α') − log d)·[α < 1]/α
    s2 = s * s
    torch.mm(table, chebyshev.mul_(-(s2 * s2)), out=factors[3:3 + count])  # −s⁴ (P_s, L_s)
    factors[3] += s2
    factors[4] -= 4.0 * s2 * s
    torch.mul(d.log(), -1.0 / 3.0, out=factors[0])
    torch.mul(s.reciprocal(), 0.375, out=factors[2])
    torch.neg(factors[2], out=factors[1])
    torch.mul(weight, -3.0, out=factors[4 + count])
    torch.sub(1.0, below_one, out=factors[5 + count])
    factors = factors.to(dtype).reshape(-1, *concentration.shape)
    return (*factors[:3], factors[3:3 + count], *factors[3 + count:])
