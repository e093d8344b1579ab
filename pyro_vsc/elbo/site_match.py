"""Model and guide must name the same latent sites, or every ELBO silently computes another one.

A guide that samples ``zz`` where the model samples ``z`` (a typo), or that forgets ``z``,
still gives a finite loss: Pyro replays the guide's values into the model by name, so the model
then draws ``z`` from its prior and the KL term of eq. (5) disappears, while ``zz`` adds a
stray entropy term. Pyro only warns about it with validation on (and validation costs host
reads at every step). :func:`check_latent_sites` refuses such a pair with one line
(:class:`ModelGuideMismatch`), whatever the validation setting; :class:`~pyro_vsc.elbo.MaxELBO`
applies it to every trace pair it builds, and the training step
(:class:`~pyro_vsc.train.step.ObjectiveStep`) applies it to the sites that its first step visits
(:class:`SiteRecorder`) for any ELBO (Pyro's ``TraceMeanField_ELBO``, ``Trace_ELBO``,
``RenyiELBO``), without running the program an extra time.

Guide-only *auxiliary* sites are supported, as in Pyro, when marked
``infer={"is_auxiliary": True}``: their density enters the ELBO as an entropy term
(``-log q``) and the model never sees them.
"""

from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample


class ModelGuideMismatch(ValueError):
    """Model and guide do not sample the same latent sites."""


def _nodes(sites):
    """Site name → site of a Pyro trace, or such a mapping itself."""
    return getattr(sites, "nodes", sites)


def _latent_sample_sites(trace, observed=False):
    return {name for name, site in _nodes(trace).items()
            if site["type"] == "sample" and not site_is_subsample(site)
            and (observed or not site["is_observed"])}


def latent_site_mismatch(model_trace, guide_trace):
    """The sentence that describes how the latent sites of a model/guide trace pair (traces, or
    :attr:`SiteRecorder.sites`) differ, or ``None`` when every model latent has a guide site and
    every guide site is a model latent or marked auxiliary."""
    model_latents = _latent_sample_sites(model_trace)
    guide_sites = _latent_sample_sites(guide_trace, observed=True)
    auxiliary = {name for name in guide_sites if _nodes(guide_trace)[name]["infer"].get("is_auxiliary")}
    observed_in_model = _latent_sample_sites(model_trace, observed=True) - model_latents
    problems = []
    stray = sorted(guide_sites - model_latents - auxiliary - observed_in_model)
    if stray:
        problems.append(f"guide samples {_names(stray)}, which the model does not have "
                        "(mark a guide-only auxiliary site infer={'is_auxiliary': True})")
    observed = sorted((guide_sites - auxiliary) & observed_in_model)
    if observed:
        problems.append(f"guide samples {_names(observed)}, which the model observes")
    missing = sorted(model_latents - guide_sites)
    if missing:
        verb = "has" if len(missing) == 1 else "have"
        problems.append(f"the model's latent {_names(missing)} {verb} no guide site")
    return "; ".join(problems) or None


def _names(names):
    return ", ".join(repr(name) for name in names)


def check_latent_sites(model_trace, guide_trace, cause=None):
    """Raises :class:`ModelGuideMismatch` with one line when the latent sites of model and guide
    differ (:func:`latent_site_mismatch`); ``cause``: the error this mismatch explains."""
    mismatch = latent_site_mismatch(model_trace, guide_trace)
    if mismatch is not None:
        raise ModelGuideMismatch(f"model and guide do not match: {mismatch}") from cause


class SiteRecorder(Messenger):
    """Notes the sample sites a program visits while :attr:`sites` is a dict (name → the site's
    ``type``, ``is_observed``, ``infer`` and ``fn``, as in a trace); does nothing once it is
    ``None``. Wraps a program the way any Pyro handler does: ``SiteRecorder()(model)``."""

    def __init__(self):
        super().__init__()
        self.sites = None

    def _postprocess_message(self, msg):
        if self.sites is not None and msg["type"] == "sample":
            self.sites[msg["name"]] = {key: msg[key] for key in ("type", "is_observed", "infer", "fn")}
