r"""Priors p(z) (and p(λ)) of Table 1, declared in plain sight.

Each prior is called inside the model's data plate and returns the latent code ``z``. To swap a
prior, edit its ``pyro.sample`` line: e.g. replace ``ThresholdedLaplace`` by ``ThresholdedNormal``
in :class:`ThresholdedLaplacePrior` to threshold a Gaussian base instead. The guide must sample
the same site names (``z`` and, for learned thresholds, ``threshold``).

Constants are buffers, so ``.to(device)`` moves them with the model. Defaults are Appendix D's:
Laplace scale b₀ = 0.1, Normal variance 0.1 (σ₀ = √0.1), λ₀ = 0.25 (Laplace) / 0.52 (Normal),
α₀ = 3, spike-and-slab prior non-zero probability 0.1.
"""

import math

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_vsc.distributions import ConcreteSpikeSlab, ThresholdedLaplace, ThresholdedNormal

NORMAL_SCALE = math.sqrt(0.1)  # prior variance 0.1 (Appendix D; gives λ₀ = 0.52 at 10% non-zero)
LAPLACE_SCALE = 0.1            # prior scale b₀ (Appendix D)


class Prior(nn.Module):
    """Base class: stores a latent dimension and named constants as buffers."""

    def __init__(self, latent_dim, **constants):
        super().__init__()
        if int(latent_dim) != latent_dim or latent_dim <= 0:
            raise ValueError(f"latent dimension must be a positive integer, got {latent_dim}")
        self.latent_dim = int(latent_dim)
        for name, value in constants.items():
            self.register_buffer(name, torch.as_tensor(float(value)))

    def _check_positive(self, **values):
        for name, value in values.items():
            if not value > 0:
                raise ValueError(f"{type(self).__name__}: {name} must be > 0, got {value}")


class GaussianPrior(Prior):
    """z ~ N(0, σ₀²) (Kingma & Welling, 2014): the 'Gaussian' row of Table 1."""

    def __init__(self, latent_dim, scale=NORMAL_SCALE):
        super().__init__(latent_dim, scale=scale)
        self._check_positive(scale=scale)

    def forward(self):
        return pyro.sample("z", dist.Normal(0.0, self.scale).expand([self.latent_dim]).to_event(1))


class LaplacePrior(Prior):
    """z ~ Laplace(0, b₀) (Barello et al., 2018): the 'Laplacian' row of Table 1."""

    def __init__(self, latent_dim, scale=LAPLACE_SCALE):
        super().__init__(latent_dim, scale=scale)
        self._check_positive(scale=scale)

    def forward(self):
        return pyro.sample("z", dist.Laplace(0.0, self.scale).expand([self.latent_dim]).to_event(1))


class SpikeSlabPrior(Prior):
    """z ~ (1-π₀) δ₀ + π₀ N(0, σ₀²) (Tonolini et al., 2020), π₀ = 0.1 (Appendix D)."""

    def __init__(self, latent_dim, nonzero_prob=0.1, scale=NORMAL_SCALE):
        if not 0.0 < nonzero_prob < 1.0:
            raise ValueError(f"SpikeSlabPrior: nonzero_prob must lie in (0, 1), got {nonzero_prob}")
        super().__init__(latent_dim, logits=math.log(nonzero_prob / (1 - nonzero_prob)), scale=scale)
        self._check_positive(scale=scale)

    def forward(self):
        return pyro.sample("z", ConcreteSpikeSlab(self.logits, 0.0, self.scale)
                           .expand([self.latent_dim]).to_event(1))


class ThresholdedNormalPrior(Prior):
    """z = T_λ₀(s), s ~ N(0, σ₀²): 'Thresholded Gaussian', fixed λ₀ = 0.52."""

    def __init__(self, latent_dim, scale=NORMAL_SCALE, threshold=0.52):
        super().__init__(latent_dim, scale=scale, threshold=threshold)
        self._check_positive(scale=scale, threshold=threshold)

    def forward(self):
        return pyro.sample("z", ThresholdedNormal(0.0, self.scale, self.threshold)
                           .expand([self.latent_dim]).to_event(1))


class ThresholdedLaplacePrior(Prior):
    """z = T_λ₀(s), s ~ Laplace(0, b₀): 'Thresholded Laplacian', fixed λ₀ = 0.25 (Prop. 3.1)."""

    def __init__(self, latent_dim, scale=LAPLACE_SCALE, threshold=0.25):
        super().__init__(latent_dim, scale=scale, threshold=threshold)
        self._check_positive(scale=scale, threshold=threshold)

    def forward(self):
        return pyro.sample("z", ThresholdedLaplace(0.0, self.scale, self.threshold)
                           .expand([self.latent_dim]).to_event(1))


class GammaThresholdPrior(Prior):
    """λ ~ Γ(α₀, α₀/λ₀) per dimension (§3.2), so E[λ] = λ₀; α₀ = 3 (Appendix B)."""

    def __init__(self, latent_dim, threshold, alpha0=3.0):
        super().__init__(latent_dim, alpha0=alpha0, rate0=alpha0 / threshold)
        self._check_positive(threshold=threshold, alpha0=alpha0)

    def forward(self):
        return pyro.sample("threshold", dist.Gamma(self.alpha0, self.rate0)
                           .expand([self.latent_dim]).to_event(1))


class ThresholdedNormalGammaPrior(ThresholdedNormalPrior):
    """λ ~ Γ(α₀, α₀/λ₀), z = T_λ(s), s ~ N(0, σ₀²): 'Thresholded Gaussian+Gamma'."""

    def __init__(self, latent_dim, scale=NORMAL_SCALE, threshold=0.52, alpha0=3.0):
        super().__init__(latent_dim, scale=scale, threshold=threshold)
        self.threshold_prior = GammaThresholdPrior(latent_dim, threshold, alpha0)

    def forward(self):
        threshold = self.threshold_prior()
        return pyro.sample("z", ThresholdedNormal(0.0, self.scale, threshold).to_event(1))


class ThresholdedLaplaceGammaPrior(ThresholdedLaplacePrior):
    """λ ~ Γ(α₀, α₀/λ₀), z = T_λ(s), s ~ Laplace(0, b₀): 'Thresholded Laplacian+Gamma'."""

    def __init__(self, latent_dim, scale=LAPLACE_SCALE, threshold=0.25, alpha0=3.0):
        super().__init__(latent_dim, scale=scale, threshold=threshold)
        self.threshold_prior = GammaThresholdPrior(latent_dim, threshold, alpha0)

    def forward(self):
        threshold = self.threshold_prior()
        return pyro.sample("z", ThresholdedLaplace(0.0, self.scale, threshold).to_event(1))
