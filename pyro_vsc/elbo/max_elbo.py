"""Max-over-particles ELBO (§3.3, eq. 9, Algorithm 1) and the particle tracing it shares with the
average ELBO (eq. 7, :mod:`~pyro_vsc.elbo.avg_elbo`)."""

import functools
import operator
from dataclasses import dataclass, field

import torch
from pyro import poutine
from pyro.distributions.util import is_identically_zero, scale_and_mask
from pyro.infer import ELBO
from pyro.infer.util import is_validation_enabled, torch_item
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from pyro.util import check_if_enumerated, check_model_guide_match

from pyro_vsc.distributions.kl import closed_form_kl

from .site_match import check_latent_sites

#: Name of the plate Pyro's ELBO uses to vectorize particles.
PARTICLE_PLATE = "num_particles_vectorized"
#: Trace-node key of a sample site's distribution as it was before the particle plate expanded it.
FN_BEFORE_PARTICLES = "fn_before_particle_plate"


class _KeepFnBeforeParticles(Messenger):
    """Notes each sample site's distribution before the particle plate broadcasts it.

    Entered inside the particle plate, it sees a site after the program's own plates and before
    the particle plate (Pyro applies the innermost handler first). The particle plate only
    repeats the distribution's parameters J times, so a KL evaluated on the noted distribution
    has the same values and gradients, computed once per data point instead of once per
    particle, and its backward pass needs no (J, N, ...) tensor (narrowing the expanded
    parameters instead would write one, the adjoint of the narrowing).
    """

    def _pyro_sample(self, msg):
        msg[FN_BEFORE_PARTICLES] = msg["fn"]


def _total(terms):
    """Sum of a non-empty list of tensors (no ``0 +`` in front, unlike ``sum``)."""
    return functools.reduce(operator.add, terms)


def _concatenated(parts):
    """``torch.cat(parts)``, without a copy when particles were drawn in one vectorized pass."""
    return parts[0] if len(parts) == 1 else torch.cat(parts)


@dataclass
class ParticleELBO:
    """Per-particle, per-data-point ELBO terms of one evaluation, and the max-ELBO selection.

    :ivar local: (J, N) ELBO of each particle j and data point n (eq. 6), with every site's
        ``poutine.scale`` and plate subsample scale applied.
    :ivar global_terms: (J,) contributions of sites outside the data plate.
    :ivar site_terms: per-site contributions ((J, N) or (J, 1)): log-likelihood for observed
        sites, minus the (analytic or sampled) KL for latent sites.
    :ivar best: (N,) index of the particle with the highest ELBO for each data point (eq. 9);
        ``None`` for the average ELBO, which selects none.
    :ivar loss: scalar loss to minimise: ``-(Σ_n local[best_n, n] + mean_j global_terms[j])``
        for :class:`MaxELBO`, ``-mean_j(Σ_n local[j, n] + global_terms[j])`` for the average.
    :ivar guide_traces: the guide trace(s) the particles came from.
    :ivar model_traces: the model trace(s), replayed on the guide's.
    """

    local: torch.Tensor
    global_terms: torch.Tensor
    site_terms: dict
    best: torch.Tensor
    loss: torch.Tensor
    guide_traces: list = field(repr=False)
    particle_dim: int = field(repr=False)
    model_traces: list = field(repr=False, default_factory=list)
    local_sites: tuple = field(repr=False, default=())

    def breakdown(self):
        r"""What moves in the loss, per data point, for the particles the loss keeps (the one
        eq. (9) selects; all of them for the average ELBO, eq. 7), averaged over data points and
        kept particles: ``recon``, the likelihood term without its normalising
        constant (:math:`\|x - f(z)\|^2/(2\sigma^2)` for the Gaussian likelihoods here, the
        per-pixel MSE when σ² = D/2, the default), and ``kl``, the weighted KL terms (β of
        eq. 5). With ``constant`` (the likelihood's normalising constant, about 857 for 16×16
        patches) they add up to the loss per data point (sites outside the data plate aside).
        The constant is known for likelihoods that define ``log_normalizer``
        (:class:`~pyro_vsc.distributions.IsotropicNormal`); for others it is 0 and ``recon`` is
        the whole negative log-likelihood.

        :returns: dict of 0-dim tensors ``recon``, ``kl``, ``constant``.
        """
        if self.best is None:
            kept = torch.mean
        else:
            points = torch.arange(self.local.shape[1], device=self.local.device)
            kept = lambda term: term[self.best, points].mean()  # noqa: E731
        data, latent, normalizer = [], [], 0.0
        observed = {name for name, site in self.model_traces[0].nodes.items()
                    if site["type"] == "sample" and site["is_observed"]}
        with torch.no_grad():  # reported, not differentiated
            for name in self.local_sites:
                term = kept(self.site_terms[name])
                if name in observed:
                    data.append(term)
                    site = self.model_traces[0].nodes[name]
                    normalizer = normalizer + getattr(site["fn"], "log_normalizer", 0.0) * site["scale"]
                else:
                    latent.append(term)
            data, latent = (_total(terms) if terms else self.local.new_zeros(()) for terms in (data, latent))
            normalizer = torch.as_tensor(normalizer, dtype=self.local.dtype, device=self.local.device)
            return {"recon": normalizer - data, "kl": -latent, "constant": -normalizer}

    def values(self, name):
        """The guide's values at site ``name`` with the particle dim first: (J, N, ...)."""
        if len(self.guide_traces) > 1:
            return torch.stack([trace.nodes[name]["value"] for trace in self.guide_traces])
        site = self.guide_traces[0].nodes[name]
        value = site["value"]
        if self.particle_dim is None:
            return value.unsqueeze(0)
        return value.movedim(value.dim() - site["fn"].event_dim + self.particle_dim, 0)

    def selected(self, name):
        """The value of the selected particle at site ``name`` for each data point: (N, ...)."""
        if self.best is None:
            raise ValueError("the average ELBO selects no particle; use MaxELBO to select codes")
        values = self.values(name)
        return values[self.best, torch.arange(values.shape[1], device=values.device)]


class ParticleTraceELBO(ELBO):
    r"""Per-particle, per-data-point ELBO terms from lean traces: what :class:`MaxELBO` (eq. 9) and
    :class:`~pyro_vsc.elbo.avg_elbo.AverageELBO` (eq. 7) share; subclasses reduce the particles.

    For J particles and data points n it evaluates (eq. 6)
    :math:`\mathcal L^{j,n} = \log p_\theta(x^n|z^{j,n}) - \beta\,\mathrm{KL}(q_\phi(z|x^n)\|p(z))`
    site by site. The data plate is found by name (``data_plate``); the data plate's dimension is
    kept, every other plate and event dimension is summed. Sites outside the data plate (global
    latents, ``pyro.factor`` terms) cannot be attributed to a data point: their contribution is
    kept per particle apart from the local terms.

    Latent sites use the KL registered for ``(guide fn, model fn)`` when ``analytic_kl`` is true
    (for the thresholded laws, the paper's base KL, Appendix B; for Pyro's ``Normal``,
    ``Laplace`` and ``Gamma``, torch's closed form, evaluated once per distinct parameter value:
    :func:`~pyro_vsc.distributions.kl.closed_form_kl`, on the distributions as model and guide
    gave them, before the particle plate repeats their parameters) and otherwise, or where no KL is
    registered, the single-sample estimate :math:`\log p(z) - \log q(z)` of the exact
    densities. Only what the objective needs is computed: with analytic KLs no latent
    ``log_prob`` is evaluated (Pyro's ``get_importance_trace`` computes them all), which is why
    tracing is done here rather than with ``get_importance_trace``.

    Model and guide must sample the same latent sites (a guide-only site must be marked
    ``infer={"is_auxiliary": True}``); a mismatch raises ``ValueError`` naming the sites, with or
    without validation (:mod:`pyro_vsc.elbo.site_match`).

    Works with :class:`pyro.infer.SVI` (``loss``, ``loss_and_grads``) and as a loss module:
    ``MaxELBO(...)(model, guide)(x)`` returns a differentiable scalar without any host
    synchronisation (unlike Pyro's stock ELBOs, it does not read the loss back to check for NaN
    at every step; the training loop checks at its logging interval), so a training step that
    uses it can be recorded and replayed (:mod:`pyro_vsc.train.capture`).

    :param int num_particles: J, the number of particles.
    :param max_plate_nesting: bound on nested plates in model and guide (guessed if omitted).
    :param bool vectorize_particles: draw the J particles in one vectorized pass (default).
    :param str data_plate: name of the plate over data points.
    :param bool analytic_kl: use registered KL divergences for latent sites.
    """

    def __init__(self, num_particles=1, max_plate_nesting=float("inf"), vectorize_particles=True,
                 data_plate="data", analytic_kl=True, retain_graph=None):
        super().__init__(num_particles=num_particles, max_plate_nesting=max_plate_nesting,
                         vectorize_particles=vectorize_particles, retain_graph=retain_graph)
        self.data_plate = data_plate
        self.analytic_kl = analytic_kl

    def _vectorized_num_particles(self, fn):
        """Pyro's particle plate around ``fn``, with the distributions before it noted inside
        (with one particle there is no plate, and nothing to note)."""
        if self.num_particles == 1:
            return fn
        return super()._vectorized_num_particles(_KeepFnBeforeParticles()(fn))

    def _get_trace(self, model, guide, args, kwargs):
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        check_latent_sites(model_trace, guide_trace)  # also without validation: a typo is not a model
        if is_validation_enabled():
            check_model_guide_match(model_trace, guide_trace, self.max_plate_nesting)
            check_if_enumerated(guide_trace)
        return model_trace, guide_trace

    # --- per-site contributions --------------------------------------------------------------
    def _latent_term(self, name, model_site, guide_site, scaled=True):
        """-KL(q‖p) of a latent site (analytic where registered), else log p(z) - log q(z), with
        the sites' scales (β, subsample scale) when ``scaled``."""
        if not guide_site["fn"].has_rsample:
            raise NotImplementedError(
                f"{type(self).__name__} needs reparameterized guide sites, but site '{name}' uses "
                f"{type(guide_site['fn']).__name__}, which has no rsample")
        model_scale, guide_scale = (model_site["scale"], guide_site["scale"]) if scaled else (1.0, 1.0)
        if self.analytic_kl:
            try:  # on the distributions before the particle plate: the same KL, once per data point
                kl = closed_form_kl(guide_site.get(FN_BEFORE_PARTICLES, guide_site["fn"]),
                                    model_site.get(FN_BEFORE_PARTICLES, model_site["fn"]))
            except NotImplementedError:
                pass
            else:
                return -scale_and_mask(kl, guide_scale, guide_site["mask"])
        value = guide_site["value"]
        log_p = scale_and_mask(model_site["fn"].log_prob(value), model_scale, model_site["mask"])
        log_q = scale_and_mask(guide_site["fn"].log_prob(value), guide_scale, guide_site["mask"])
        return log_p - log_q

    def _site_terms(self, model_trace, guide_trace):
        """Yields (name, site, batch-shaped ELBO contribution) for every site that counts."""
        for name, model_site in model_trace.nodes.items():
            if model_site["type"] != "sample" or site_is_subsample(model_site):
                continue
            if model_site["is_observed"]:
                log_lik = model_site["fn"].log_prob(model_site["value"])
                yield name, model_site, scale_and_mask(log_lik, model_site["scale"], model_site["mask"])
            elif name in guide_trace.nodes:
                yield name, model_site, self._latent_term(name, model_site, guide_trace.nodes[name])
        for name, guide_site in guide_trace.nodes.items():
            if (guide_site["type"] == "sample" and name not in model_trace.nodes
                    and not site_is_subsample(guide_site)):
                # auxiliary guide site (infer={"is_auxiliary": True}, checked when traced):
                # contributes its entropy term only
                log_q = guide_site["fn"].log_prob(guide_site["value"])
                yield name, guide_site, -scale_and_mask(log_q, guide_site["scale"], guide_site["mask"])

    def _particles_by_datapoints(self, term, site):
        """Sums a batch-shaped term over all but the particle and data-plate dims.

        Returns ``(term of shape (P, N), is_local)`` where P is the particle dim size (1 when
        particles are not vectorized) and N the data-plate size (1 for a global site). A term
        that is the same for every particle (a KL evaluated before the particle plate) may have
        size 1 there: it is summed at that size and expanded to P at the end.
        """
        nesting = self.max_plate_nesting
        if term.dim() > nesting:
            raise ValueError(
                f"site '{site['name']}' has batch shape {tuple(term.shape)} wider than "
                f"max_plate_nesting={nesting}; declare its dims in plates or with .to_event()")
        term = term.reshape((1,) * (nesting - term.dim()) + term.shape)
        frames = {frame.name: frame for frame in site["cond_indep_stack"] if frame.vectorized}
        dims = {name: nesting + frame.dim for name, frame in frames.items()}
        kept = [dims[n] for n in (PARTICLE_PLATE, self.data_plate) if n in dims]
        summed = [d for d in range(nesting) if d not in kept]
        if summed:
            term = term.sum(summed, keepdim=True)
        particles = term.shape[dims[PARTICLE_PLATE]] if PARTICLE_PLATE in dims else 1
        points = term.shape[dims[self.data_plate]] if self.data_plate in dims else 1
        term = term.reshape(particles, points)
        if PARTICLE_PLATE in frames and particles != frames[PARTICLE_PLATE].size:
            term = term.expand(frames[PARTICLE_PLATE].size, points)
        return term, self.data_plate in dims

    # --- the objective -----------------------------------------------------------------------
    def particle_terms(self, model, guide, *args, **kwargs):
        """Eq. (6) for every particle and data point, by site.

        :returns: ``(local, global_terms, site_terms, traces)`` with the first three as in
            :class:`ParticleELBO` (``global_terms`` is ``None`` without sites outside the data
            plate) and ``traces`` the keyword arguments ``guide_traces``, ``model_traces`` and
            ``local_sites`` of :class:`ParticleELBO`.
        """
        site_terms, guide_traces, model_traces, locals_, globals_, local_sites = {}, [], [], [], [], {}
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            guide_traces.append(guide_trace)
            model_traces.append(model_trace)
            local, global_ = [], []
            for name, site, term in self._site_terms(model_trace, guide_trace):
                if is_identically_zero(term):
                    continue
                term, is_local = self._particles_by_datapoints(term, site)
                site_terms.setdefault(name, []).append(term)
                (local if is_local else global_).append(term)
                if is_local:
                    local_sites[name] = None
            if not local:
                raise ValueError(f"no site of the model or guide lies in the data plate "
                                 f"'{self.data_plate}'; {type(self).__name__} needs per-data-point terms")
            locals_.append(_total(local))
            if global_:
                globals_.append(_total(global_).squeeze(1))
        local = _concatenated(locals_)
        site_terms = {name: _concatenated(terms) for name, terms in site_terms.items()}
        traces = {"guide_traces": guide_traces, "model_traces": model_traces, "local_sites": tuple(local_sites)}
        return local, _concatenated(globals_) if globals_ else None, site_terms, traces

    def particle_elbo(self, model, guide, *args, **kwargs):
        """The per-particle terms and the loss of this objective.

        :rtype: ParticleELBO
        """
        raise NotImplementedError

    def _result(self, local, global_terms, site_terms, traces, best, loss):
        vectorized = self.vectorize_particles and self.num_particles > 1
        return ParticleELBO(local=local, global_terms=global_terms, site_terms=site_terms,
                            best=best, loss=loss, particle_dim=-self.max_plate_nesting if vectorized else None,
                            **traces)

    def unweighted_latent_terms(self, particles):
        """The latent sites' terms of an evaluation without their scales (KL weights β,
        subsample scales): site name → (J, N) tensor of -KL(q‖p) (or log p - log q). Used to
        report KLs, which are then finite and meaningful for any β, β = 0 included."""
        terms = {}
        for model_trace, guide_trace in zip(particles.model_traces, particles.guide_traces):
            for name, model_site in model_trace.nodes.items():
                if (model_site["type"] != "sample" or model_site["is_observed"]
                        or site_is_subsample(model_site) or name not in guide_trace.nodes):
                    continue
                term = self._latent_term(name, model_site, guide_trace.nodes[name], scaled=False)
                terms.setdefault(name, []).append(self._particles_by_datapoints(term, model_site)[0])
        return {name: _concatenated(parts) for name, parts in terms.items()}

    def differentiable_loss(self, model, guide, *args, **kwargs):
        """Loss of eq. (9) as a differentiable scalar tensor (no host synchronisation)."""
        return self.particle_elbo(model, guide, *args, **kwargs).loss

    def loss(self, model, guide, *args, **kwargs):
        """:returns: the max-ELBO loss as a float."""
        with torch.no_grad():
            return torch_item(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model, guide, *args, **kwargs):
        """Computes the loss and backpropagates it; :returns: the loss as a float."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if loss.requires_grad:
            loss.backward(retain_graph=self.retain_graph)
        return torch_item(loss)


class MaxELBO(ParticleTraceELBO):
    r"""ELBO that keeps, for every data point, the particle with the highest ELBO (eq. 9).

    With J particles :math:`z^{j,k} \sim q_\phi(z|x^k)` the per-particle, per-data-point ELBO is
    (eq. 6) :math:`\mathcal L^{j,k} = \log p_\theta(x^k|z^{j,k}) - \beta\,\mathrm{KL}(q_\phi(z|x^k)\|p(z))`
    and the objective is :math:`\sum_k \max_j \mathcal L^{j,k}`. The argmax is not differentiated
    (Algorithm 1): gradients flow through the selected particle only, which is what
    ``torch.max`` does. With ``J = 1`` this is the usual single-sample ELBO, identical to
    ``TraceMeanField_ELBO`` (analytic KLs) or ``Trace_ELBO`` (``analytic_kl=False``).

    Contributions of sites outside the data plate are averaged over particles and added to the
    loss; they do not take part in the selection. Tracing and per-site terms:
    :class:`ParticleTraceELBO` (its parameters).
    """

    def particle_elbo(self, model, guide, *args, **kwargs):
        """Evaluates eq. (6) for every particle and data point and selects by eq. (9).

        :rtype: ParticleELBO
        """
        local, global_terms, site_terms, traces = self.particle_terms(model, guide, *args, **kwargs)
        best_values, best = local.max(dim=0)
        loss = -best_values.sum()
        if global_terms is None:
            global_terms = local.new_zeros(local.shape[0])
        else:
            loss = loss - global_terms.mean()
        return self._result(local, global_terms, site_terms, traces, best, loss)
