"""Analytic KL divergences of the package's distributions (Appendix B), and the KLs the
objectives use: :func:`closed_form_kl`.

For the thresholded laws the registered KL is the paper's choice: the KL of the *base*
distributions, "we only penalize the base distribution with a KL divergence" (Appendix B). It
does not depend on the thresholds. The exact KL between the two spike-and-slab laws is a
different quantity; :func:`thresholded_laplace_exact_kl` gives it in closed form for the Laplace
family, and an ELBO that uses log-density ratios (``Trace_ELBO``, ``analytic_kl=False``)
estimates it for both families.

**What is registered, and why.** ``register_kl`` changes ``kl_divergence`` for the whole process,
so this module registers KLs only for pairs of types the library owns (the thresholded laws and
the relaxed spike-and-slab); importing it leaves torch's and Pyro's own registrations, e.g. of
``Normal``/``Laplace``/``Gamma`` pairs, as they are. Any code, Pyro's stock ELBOs included,
gets torch's formulas for those types, exactly as without this library.

**Compact evaluation.** With J vectorized particles Pyro hands the KL distributions expanded
along the particle dimension, with the same parameters for every particle. Every KL here is
evaluated on the compact parameters (:mod:`pyro_vsc.distributions.compact`) and broadcast
afterwards, after the sum over an ``Independent`` pair's event dims: the same values and
gradients, computed once per data point instead of once per particle. For Pyro's own ``Normal``, ``Laplace`` and ``Gamma`` pairs (the Gaussian and
Laplacian baselines, the Gamma threshold posterior of §3.2) the objectives choose the formula
themselves rather than registering it: :func:`closed_form_kl`, which :class:`~pyro_vsc.elbo.MaxELBO`
and the evaluation call, evaluates the same closed form compactly wherever torch's dispatch
would pick torch's own KL of that family, and defers to ``kl_divergence`` everywhere else. That
covers subclasses (``WarmupLaplace``, a library Gamma with another sampler) without any
registration, and keeps a KL someone registers for their own subclass in charge of it.
"""

import pyro.distributions  # noqa: F401  (Pyro's KLs of Independent, Delta, ...: registered first)
import torch
import torch.nn.functional as F
from pyro.distributions.util import sum_rightmost
from torch.distributions import Gamma, Independent, Laplace, Normal, kl_divergence, register_kl
from torch.distributions.kl import _KL_MEMOIZE, _KL_REGISTRY, _dispatch_kl

from .compact import broadcast_to_batch, compact_parameters
from .spike_slab import ConcreteSpikeSlab
from .thresholded_laplace import ThresholdedLaplace
from .thresholded_normal import ThresholdedNormal


#: Beyond |μq - μp| / bq = 100 the exponential term of :func:`laplace_kl` is taken as 0.
VANISHING_RATIO = 100.0


def laplace_kl(q_loc, q_scale, p_loc, p_scale):
    r"""KL(Laplace(μq, bq) ‖ Laplace(μp, bp)) (Meyer, 2021; Appendix B with μp = 0):

    .. math:: \log\frac{b_p}{b_q} + \frac{|\mu_q-\mu_p|}{b_p}
              + \frac{b_q}{b_p}\exp\Big(-\frac{|\mu_q-\mu_p|}{b_q}\Big) - 1.

    Written for encoders whose scale :math:`b_q` gets tiny (a log-scale below about -44 in
    float32, where :math:`b_q^2` underflows): the log-ratio is a difference of logarithms, whose
    gradient in :math:`b_q` is :math:`-1/b_q` (the quotient's backward pass divides by
    :math:`b_q^2`), and the term :math:`\frac{b_q}{b_p}e^{-|\mu_q-\mu_p|/b_q}` is 0 where
    :math:`|\mu_q-\mu_p| > 100\,b_q`. There it is below :math:`e^{-100}\,b_q/b_p`, under the
    float64 resolution of the KL (which exceeds :math:`\log 100 > 4.6` there), and evaluating it
    would make its gradient :math:`0\cdot\infty` = NaN.
    """
    distance = (q_loc - p_loc).abs()
    vanishes = distance > VANISHING_RATIO * q_scale
    safe_scale = torch.where(vanishes, torch.ones_like(q_scale), q_scale)
    peak = torch.where(vanishes, torch.zeros_like(q_scale),
                       (safe_scale / p_scale) * torch.exp(-distance / safe_scale))
    return torch.log(p_scale) - torch.log(q_scale) + distance / p_scale + peak - 1.0


def normal_kl(q_loc, q_scale, p_loc, p_scale):
    r"""KL(N(μq, σq²) ‖ N(μp, σp²)) (Kingma & Welling, 2014; Appendix B with μp = 0).

    The log of the variance ratio is :math:`2(\log\sigma_q - \log\sigma_p)`, finite with a
    finite gradient for scales whose square underflows (see :func:`laplace_kl`).
    """
    variance_ratio = (q_scale / p_scale) ** 2
    log_ratio = torch.log(q_scale) - torch.log(p_scale)
    return 0.5 * (variance_ratio + ((q_loc - p_loc) / p_scale) ** 2 - 1.0) - log_ratio


def gamma_kl(q_concentration, q_rate, p_concentration, p_rate):
    r"""KL(Γ(α_q, β_q) ‖ Γ(α_p, β_p)) (shape α, rate β):

    .. math:: (\alpha_q-\alpha_p)\psi(\alpha_q) - \log\Gamma(\alpha_q) + \log\Gamma(\alpha_p)
              + \alpha_p\log\frac{\beta_q}{\beta_p} + \alpha_q\frac{\beta_p-\beta_q}{\beta_q}.

    The derivative of :math:`\log\Gamma(\alpha_q)` is :math:`\psi(\alpha_q)`, which the first
    term computes anyway: it is reused through a term of value zero,
    :math:`\psi(\alpha_q)\,(\alpha_q - \alpha_q)` with ψ and the second α held fixed, instead
    of autograd evaluating the digamma function a second time (the KL's most expensive
    operation). Values and first derivatives are the formula's; a second derivative in
    :math:`\alpha_q` would miss the :math:`-\psi'(\alpha_q)` of :math:`-\log\Gamma(\alpha_q)`
    (nothing here takes one).
    """
    digamma = torch.digamma(q_concentration)
    fixed = q_concentration.detach()
    log_gamma = torch.lgamma(fixed) + digamma.detach() * (q_concentration - fixed)
    return ((q_concentration - p_concentration) * digamma
            - log_gamma + torch.lgamma(p_concentration)
            + p_concentration * torch.log(q_rate / p_rate)
            + q_concentration * (p_rate - q_rate) / q_rate)


def bernoulli_kl(q_logits, p_logits):
    r"""KL(Bernoulli(σ(q)) ‖ Bernoulli(σ(p))) from logits, stable at extreme probabilities."""
    q_probs = torch.sigmoid(q_logits)
    return (q_probs * (F.logsigmoid(q_logits) - F.logsigmoid(p_logits))
            + (1 - q_probs) * (F.logsigmoid(-q_logits) - F.logsigmoid(-p_logits)))


def _on_compact_parameters(formula, q, p, names):
    """``formula(q.a, q.b, ..., p.a, p.b, ...)`` on the compact parameters of ``q`` and ``p``
    (:func:`~pyro_vsc.distributions.compact.compact_parameters`), broadcast to their batch shape:
    the values and gradients of the formula on the full tensors, each distinct value once."""
    result = formula(*compact_parameters(q, names), *compact_parameters(p, names))
    return broadcast_to_batch(result, torch.broadcast_shapes(q.batch_shape, p.batch_shape))


@register_kl(ThresholdedLaplace, ThresholdedLaplace)
def _kl_thresholded_laplace(q, p):
    """Paper's KL (Appendix B): KL of the base Laplace distributions."""
    return _on_compact_parameters(laplace_kl, q, p, ("loc", "scale"))


@register_kl(ThresholdedNormal, ThresholdedNormal)
def _kl_thresholded_normal(q, p):
    """Paper's KL (Appendix B): KL of the base Normal distributions."""
    return _on_compact_parameters(normal_kl, q, p, ("loc", "scale"))


def _spike_slab_kl(q_logits, q_loc, q_scale, p_logits, p_loc, p_scale):
    return (bernoulli_kl(q_logits, p_logits)
            + torch.sigmoid(q_logits) * normal_kl(q_loc, q_scale, p_loc, p_scale))


@register_kl(ConcreteSpikeSlab, ConcreteSpikeSlab)
def _kl_spike_slab(q, p):
    r"""Exact KL between spike-and-slab laws sharing the spike at 0 (Tonolini et al., 2020):

    .. math:: \mathrm{KL}(\mathrm{Bern}(\pi_q)\|\mathrm{Bern}(\pi_p))
              + \pi_q\,\mathrm{KL}(\mathcal N(\mu_q,\sigma_q^2)\|\mathcal N(\mu_p,\sigma_p^2)).
    """
    return _on_compact_parameters(_spike_slab_kl, q, p, ("logits", "loc", "scale"))


#: The KL rules :func:`closed_form_kl` evaluates compactly → (the closed form, the parameters it
#: reads): torch's own KL of each family (the same formula here) and the library's registered KLs.
_COMPACT_FORMS = {
    _KL_REGISTRY[Normal, Normal]: (normal_kl, ("loc", "scale")),
    _KL_REGISTRY[Laplace, Laplace]: (laplace_kl, ("loc", "scale")),
    _KL_REGISTRY[Gamma, Gamma]: (gamma_kl, ("concentration", "rate")),
    _kl_thresholded_laplace: (laplace_kl, ("loc", "scale")),
    _kl_thresholded_normal: (normal_kl, ("loc", "scale")),
    _kl_spike_slab: (_spike_slab_kl, ("logits", "loc", "scale")),
}
#: Pyro's KL of two ``Independent`` distributions (sums the base KL over the event dims).
_INDEPENDENT_KL = _KL_REGISTRY[Independent, Independent]


def _dispatched(q, p):
    """The KL function ``kl_divergence(q, p)`` calls, looked up as it looks it up."""
    key = type(q), type(p)
    if key not in _KL_MEMOIZE:
        _KL_MEMOIZE[key] = _dispatch_kl(*key)
    return _KL_MEMOIZE[key]


def _compact_kl(q, p):
    """:func:`closed_form_kl` before its final broadcast: a tensor that broadcasts to the pair's
    batch shape, with the particle dimension (and any other that the parameters only repeat)
    of size 1 wherever the rule is evaluated compactly.

    ``Independent`` pairs sum the compact base KL over the event dims before broadcasting: a
    sum over (1, B, d) instead of (J, B, d), whose backward pass needs no (J, B, d) tensor
    either. A base KL that repeats one value along an event dim is expanded along it first, so
    that the value still counts once per coordinate.
    """
    rule = _dispatched(q, p)
    if rule is _INDEPENDENT_KL and q.reinterpreted_batch_ndims == p.reinterpreted_batch_ndims:
        ndims = q.reinterpreted_batch_ndims
        base = _compact_kl(q.base_dist, p.base_dist)
        full = torch.broadcast_shapes(q.base_dist.batch_shape, p.base_dist.batch_shape)
        event_shape = full[len(full) - ndims:]
        return sum_rightmost(base.expand(torch.broadcast_shapes(base.shape, event_shape)), ndims)
    if rule in _COMPACT_FORMS:
        formula, names = _COMPACT_FORMS[rule]
        return formula(*compact_parameters(q, names), *compact_parameters(p, names))
    return kl_divergence(q, p)


def closed_form_kl(q, p):
    r"""KL(q ‖ p) as the objectives compute it: ``kl_divergence(q, p)``, except that where it
    would use torch's own KL of two ``Normal``, ``Laplace`` or ``Gamma`` laws (Pyro's classes and
    their subclasses, inside ``Independent`` wrappers of equal event dims) the same closed form
    (:func:`normal_kl`, :func:`laplace_kl`, :func:`gamma_kl`) is evaluated once per distinct
    parameter value (see the module docstring); so are the library's registered KLs, and the sum
    over an ``Independent`` pair's event dims comes before the broadcast to the batch shape.

    :raises NotImplementedError: where no KL is registered for the pair (as ``kl_divergence``).
    """
    return broadcast_to_batch(_compact_kl(q, p), torch.broadcast_shapes(q.batch_shape, p.batch_shape))


def thresholded_laplace_exact_kl(q, p):
    r"""Exact KL between two thresholded Laplace laws (not the paper's objective).

    Both are spike-and-slab laws :math:`(1-\gamma)\delta_0 + \gamma\,\mathrm{Laplace}` (Prop. 3.1)
    with the spike at the same point, so

    .. math:: \mathrm{KL} = (1-\gamma_q)\log\frac{1-\gamma_q}{1-\gamma_p}
              + \gamma_q\log\frac{\gamma_q}{\gamma_p}
              + \gamma_q\,\mathrm{KL}(\mathrm{Laplace}_q\|\mathrm{Laplace}_p).
    """
    gamma_q = q.nonzero_prob
    # 0·log(0/·) = 0: without a spike in q (λq = 0) its term vanishes, whatever p's spike
    has_spike = q.threshold > 0
    spike = (1 - gamma_q) * torch.where(has_spike, q.log_zero_prob - p.log_zero_prob, 0.0)
    slab = gamma_q * (q.log_nonzero_prob - p.log_nonzero_prob
                      + laplace_kl(q.loc, q.scale, p.loc, p.scale))
    return spike + slab


__all__ = ["kl_divergence", "closed_form_kl", "laplace_kl", "normal_kl", "gamma_kl",
           "bernoulli_kl", "thresholded_laplace_exact_kl"]
