"""One training step of an ELBO objective, normalised per data point."""

import torch
from pyro.poutine.messenger import Messenger
from torch import nn

from pyro_vsc.elbo.kl_weights import KLWarmup, KLWeights
from pyro_vsc.elbo.site_match import SiteRecorder, check_latent_sites

from .capture import CapturedProgram


def _device_of(modules):
    tensors = [t for module in modules for t in (*module.parameters(), *module.buffers())]
    return tensors[0].device if tensors else torch.device("cpu")


class LatentRecorder(Messenger):
    """Keeps a detached reference to the latest value of one guide site (for progress logs)."""

    def __init__(self, site="z"):
        super().__init__()
        self.site = site
        self.value = None

    def _postprocess_message(self, msg):
        if msg["name"] == self.site:
            self.value = msg["value"].detach()


class ObjectiveStep:
    r"""Computes the gradient of the per-data-point loss of one minibatch.

    The data plate is the minibatch itself (scale 1) and the loss is divided by the batch size
    B. Pyro's subsample scale N/B is deliberately not used here: ``RenyiELBO`` applies site
    scales *inside* its log-mean-exp over particles, which would temper the importance weights
    instead of scaling the bound. With scale 1 every objective is exact per data point.

    Model and guide are wrapped in the same :class:`~pyro_vsc.elbo.kl_weights.KLWeights`
    (β₁, β₂ of eq. 5; with ``kl_warmup_steps`` a :class:`~pyro_vsc.elbo.kl_weights.KLWarmup`
    ramps them up from 0, advanced by :meth:`advance`) and the guide in a
    :class:`LatentRecorder` for the progress bar.

    The latent sites that model and guide visit in the first step are compared, whatever the
    ELBO and the validation setting (:mod:`pyro_vsc.elbo.site_match`): a misspelt or missing
    site raises :class:`~pyro_vsc.elbo.site_match.ModelGuideMismatch` (one line) before any
    update, instead of training another model.

    With an ELBO that exposes its per-site terms (:meth:`~pyro_vsc.elbo.MaxELBO.particle_elbo`),
    :attr:`site_terms` holds the last step's terms, detached (site name → (J, N) tensor: the
    log-likelihood of ``x``, minus the KLs of ``z`` and ``threshold``), so that a divergence can
    be traced to the term that became non-finite; with other ELBOs it stays empty.

    :param elbo: a Pyro ELBO from :func:`pyro_vsc.elbo.build_elbo`.
    :param model: model module ``model(x)``.
    :param guide: guide module ``guide(x)``.
    :param dict kl_weights: latent site → KL weight.
    :param grad_scaler: optional ``torch.amp.GradScaler`` (float16 mixed precision): the loss is
        multiplied by its scale before backpropagation; the optimizer step unscales.
    :param bool capture: evaluate the objective by replaying its recorded tensor operations
        (:class:`~pyro_vsc.train.capture.CapturedProgram`; identical numbers, less Python per
        step) when model and guide are modules; programs that cannot be recorded run eagerly.
    :param int kl_warmup_steps: ramp the KL weights linearly from 0 to ``kl_weights`` over this
        many steps (0: no warm-up).
    """

    def __init__(self, elbo, model, guide, kl_weights, grad_scaler=None, capture=True,
                 kl_warmup_steps=0):
        self.elbo = elbo
        self.parts = [part for part in (model, guide) if isinstance(part, nn.Module)]
        self.kl_warmup = None
        if kl_warmup_steps:
            self.kl_warmup = KLWarmup(kl_weights, kl_warmup_steps).to(_device_of(self.parts))
        self.weights = KLWeights(self.kl_warmup if self.kl_warmup is not None else kl_weights)
        self.recorder = LatentRecorder("z")
        self.model_sites, self.guide_sites = SiteRecorder(), SiteRecorder()
        self.model = self.model_sites(self.weights(model))
        self.guide = self.guide_sites(self.recorder(self.weights(guide)))
        self.grad_scaler = grad_scaler
        self.site_terms, self.breakdown = {}, {}
        self._sites_checked = False
        self._latent = None
        # ELBOs without a differentiable loss (RenyiELBO) backpropagate inside loss_and_grads.
        if hasattr(elbo, "differentiable_loss"):
            self._backward = self._differentiable
            # only modules declare everything they read (parameters and buffers)
            modules = len(self.parts) == 2
            self._terms = self.terms
            if capture and modules:
                recorded = self.parts + ([self.kl_warmup] if self.kl_warmup is not None else [])
                self._terms = CapturedProgram(self.terms, recorded, state=(elbo, self.weights))
        elif grad_scaler is None:
            self._backward = self._loss_and_grads
        else:
            raise ValueError(f"{type(elbo).__name__} backpropagates internally, so its loss cannot "
                             "be scaled for float16 training; use amp=bf16 or amp=false with it")

    def advance(self):
        """Moves the KL warm-up one training step forward."""
        if self.kl_warmup is not None:
            self.kl_warmup.advance()

    def state_dict(self):
        """The objective's own training state (the KL warm-up's step), for checkpoints."""
        return {} if self.kl_warmup is None else {"kl_warmup": self.kl_warmup.state_dict()}

    def load_state_dict(self, state):
        if self.kl_warmup is not None and "kl_warmup" in state:
            self.kl_warmup.load_state_dict(state["kl_warmup"])

    def __call__(self, x, params):
        """Backpropagates the loss of batch ``x`` into ``params``; returns the detached loss.

        ``params`` are the trainable parameters (needed to rescale gradients for ELBOs that
        call ``backward`` themselves).
        """
        if self._sites_checked:
            return self._backward(x, params)
        self.model_sites.sites, self.guide_sites.sites = {}, {}  # note the sites of this step
        try:
            try:
                loss = self._backward(x, params)
            except Exception as error:  # e.g. Pyro's KeyError for a missing guide site: say why
                check_latent_sites(self.model_sites.sites, self.guide_sites.sites, cause=error)
                raise
            check_latent_sites(self.model_sites.sites, self.guide_sites.sites)
        finally:
            self.model_sites.sites = self.guide_sites.sites = None
        self._sites_checked = True
        return loss

    def terms(self, x):
        """``(loss, site_terms, latent, breakdown)`` of batch ``x``, evaluated by the Pyro
        program: the per-data-point loss (differentiable), the detached ELBO terms per site, the
        detached latent codes, and what moves in the loss (``recon``, ``kl``, ``constant`` per
        data point, :meth:`~pyro_vsc.elbo.max_elbo.ParticleELBO.breakdown`); site terms and
        breakdown are empty for ELBOs without :meth:`~pyro_vsc.elbo.MaxELBO.particle_elbo`."""
        if hasattr(self.elbo, "particle_elbo"):
            particles = self.elbo.particle_elbo(self.model, self.guide, x)
            site_terms = {name: term.detach() for name, term in particles.site_terms.items()}
            breakdown = {name: value.detach() for name, value in particles.breakdown().items()}
            loss = particles.loss
        else:
            site_terms, breakdown, loss = {}, {}, self.elbo.differentiable_loss(self.model, self.guide, x)
        return loss / x.shape[0], site_terms, self.recorder.value, breakdown

    def _differentiable(self, x, params):
        loss, self.site_terms, self._latent, self.breakdown = self._terms(x)
        (loss if self.grad_scaler is None else self.grad_scaler.scale(loss)).backward()
        return loss.detach()

    def _loss_and_grads(self, x, params):
        batch = x.shape[0]
        loss = self.elbo.loss_and_grads(self.model, self.guide, x)
        self._latent = self.recorder.value
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    p.grad.div_(batch)
        return torch.tensor(loss / batch, device=x.device)

    def latent(self):
        """The last minibatch's latent codes z (all particles), detached."""
        return self._latent
