"""KL weights β of eq. (5), applied to named latent sites of both model and guide."""

from pyro.poutine.messenger import Messenger


class KLWeights(Messenger):
    r"""Multiplies the scale of named latent sites, like ``poutine.scale`` restricted to them.

    Eq. (5) weights the KL of the base distribution by β₁ and the KL of the threshold posterior
    by β₂ (Appendix D: β₂ = β₁/10). Wrapping *both* the model and the guide with the same
    weights keeps every ELBO consistent: ``TraceMeanField_ELBO`` and :class:`MaxELBO` scale an
    analytic KL by the guide site's scale, ``Trace_ELBO`` and ``RenyiELBO`` scale log p by the
    model site's and log q by the guide site's. Observed sites are never touched.

    :param dict weights: latent site name → weight, e.g. ``{"z": 1e-2, "threshold": 1e-3}``.
    """

    def __init__(self, weights):
        super().__init__()
        self.weights = dict(weights)

    def _process_message(self, msg):
        weight = self.weights.get(msg["name"])
        if weight is not None and msg["type"] == "sample" and not msg["is_observed"]:
            msg["scale"] = weight * msg["scale"]
