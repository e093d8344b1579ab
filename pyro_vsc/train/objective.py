"""What a run optimises, as one value: model, guide, J particles and KL weights (eqs. 5, 9)."""

from dataclasses import dataclass, field

from omegaconf import OmegaConf

from pyro_vsc.elbo import MaxELBO
from pyro_vsc.elbo.kl_weights import KLWeights


@dataclass(frozen=True)
class Objective:
    r"""The model and guide of a run with the settings that define its max-ELBO codes.

    Validation, code selection, figures and the gradient-SNR evaluation all evaluate
    :math:`\max_j \mathcal L^{j,k}` (eq. 9) of the same pair under the same weights, so they take
    this one value instead of the four or five pieces that make it up.

    :param model: the Pyro model module.
    :param guide: the guide module.
    :param int num_particles: J of eq. (9).
    :param dict kl_weights: latent site → β of eq. (5).
    :param bool analytic_kl: registered (analytic) KLs, or sampled log-density ratios.
    """

    model: object
    guide: object
    num_particles: int = 1
    kl_weights: dict = field(default_factory=dict)
    analytic_kl: bool = True

    @classmethod
    def from_config(cls, cfg, model, guide):
        """The objective of a run config (``elbo.num_particles``, ``elbo.analytic_kl``,
        ``kl_weights``)."""
        return cls(model, guide, num_particles=int(cfg.elbo.num_particles),
                   kl_weights=OmegaConf.to_container(cfg.kl_weights, resolve=True),
                   analytic_kl=bool(OmegaConf.select(cfg, "elbo.analytic_kl", default=True)))

    def max_elbo(self):
        """The max-over-particles ELBO that selects this objective's codes."""
        return MaxELBO(num_particles=self.num_particles, max_plate_nesting=1, analytic_kl=self.analytic_kl)

    def weighted(self):
        """``(model, guide)`` wrapped in the KL weights."""
        weights = KLWeights(self.kl_weights)
        return weights(self.model), weights(self.guide)
