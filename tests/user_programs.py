"""Model and guide programs as users write them: edited priors and guides, some of which keep
state in plain Python (the cases a recorded objective must not get wrong). Hydra targets of
``tests/test_user_edits.py`` (``prior._target_=tests.user_programs.…``)."""

import pyro
import torch
from torch import nn

from pyro_vsc.distributions import ThresholdedLaplace, ThresholdedNormal
from pyro_vsc.guides.thresholded import ThresholdedLaplaceGuide
from pyro_vsc.models.priors import GammaThresholdPrior, Prior, ThresholdedLaplacePrior


class PythonAnnealedPrior(Prior):
    """A thresholded Laplace prior whose scale anneals *in Python* at every call (`self.scale_now
    *= decay`): the eager program sees a new scale at every step."""

    def __init__(self, latent_dim, scale=0.1, threshold=0.25, decay=0.5):
        super().__init__(latent_dim, threshold=threshold)
        self.scale_now, self.decay = float(scale), float(decay)

    def forward(self):
        self.scale_now *= self.decay
        return pyro.sample("z", ThresholdedLaplace(0.0, self.scale_now, self.threshold)
                           .expand([self.latent_dim]).to_event(1))


class CountingPrior(ThresholdedLaplacePrior):
    """Counts its calls in a Python int and widens the prior for the first few of them."""

    def __init__(self, latent_dim, scale=0.1, threshold=0.25):
        super().__init__(latent_dim, scale=scale, threshold=threshold)
        self.calls = 0

    def forward(self):
        self.calls += 1
        widening = 1.0 + 0.5 * max(0, 5 - self.calls)
        return pyro.sample("z", ThresholdedLaplace(0.0, self.scale * widening, self.threshold)
                           .expand([self.latent_dim]).to_event(1))


class BufferAnnealedPrior(ThresholdedLaplacePrior):
    """The same schedule kept in a buffer, as the README recommends: recordable."""

    def __init__(self, latent_dim, scale=0.1, threshold=0.25):
        super().__init__(latent_dim, scale=scale, threshold=threshold)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self):
        self.calls += 1
        widening = 1.0 + 0.5 * (5 - self.calls).clamp(min=0)
        return pyro.sample("z", ThresholdedLaplace(0.0, self.scale * widening, self.threshold)
                           .expand([self.latent_dim]).to_event(1))


class TemperedGuide(ThresholdedLaplaceGuide):
    """Multiplies the posterior scale by ``temperature``, a plain float the training loop sets."""

    temperature = 1.0

    def base_scale(self, params):
        return super().base_scale(params) * self.temperature


class DropoutBackbone(nn.Sequential):
    """An MLP backbone with dropout, so that ``eval()`` on it changes the numbers."""

    def __init__(self, input_dim, hidden=(32,), p=0.5):
        super().__init__(nn.Linear(input_dim, hidden[-1]), nn.ReLU(), nn.Dropout(p))
        self.feature_dim = hidden[-1]


class MisspeltGuide(ThresholdedLaplaceGuide):
    """Samples ``zz`` where the model samples ``z``."""

    def sample_latents(self, params):
        return pyro.sample("zz", self.family(params["loc"], self.base_scale(params), self.threshold(params))
                           .to_event(1))


class ForgetfulGuide(ThresholdedLaplaceGuide):
    """Samples no ``z`` at all (the model would draw it from its prior)."""

    def sample_latents(self, params):
        return params["loc"]


class AuxiliaryGuide(ThresholdedLaplaceGuide):
    """Draws an auxiliary site the model does not have, marked as Pyro asks."""

    def sample_latents(self, params):
        pyro.sample("noise", pyro.distributions.Normal(0.0, 1.0).expand(params["loc"].shape).to_event(1),
                    infer={"is_auxiliary": True})
        return super().sample_latents(params)


class NumpyNoisePrior(ThresholdedLaplacePrior):
    """Draws its scale from NumPy's global generator at every call."""

    def forward(self):
        import numpy as np

        scale = float(0.1 + 0.01 * np.random.rand())
        return pyro.sample("z", ThresholdedLaplace(0.0, scale, self.threshold)
                           .expand([self.latent_dim]).to_event(1))


class NormalBaseLaplaceGammaPrior(ThresholdedLaplacePrior):
    """The README's prior swap: ``ThresholdedLaplaceGammaPrior`` with ``ThresholdedNormal`` in its
    ``pyro.sample("z", ...)`` line (a Gaussian base under the Laplace guide's Gamma threshold)."""

    def __init__(self, latent_dim, scale=0.1, threshold=0.25, alpha0=3.0):
        super().__init__(latent_dim, scale=scale, threshold=threshold)
        self.threshold_prior = GammaThresholdPrior(latent_dim, threshold, alpha0)

    def forward(self):
        threshold = self.threshold_prior()
        return pyro.sample("z", ThresholdedNormal(0.0, self.scale, threshold).to_event(1))
