"""The dictionary optimizer takes the paper's step on eq. (10)/(11) (Appendix D)."""

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyro_vsc.models.linear import LinearSparseCoding
from pyro_vsc.models.priors import ThresholdedLaplacePrior
from pyro_vsc.elbo import build_elbo
from pyro_vsc.train.optim import dictionary_sgd
from pyro_vsc.train.step import ObjectiveStep


@pytest.mark.parametrize("objective", ["max", "avg"])
@pytest.mark.parametrize("noise_variance", [1.0, 32.0, 128.0])
@pytest.mark.parametrize("kappa", [0.0, 1e-4, 1e-3])
def test_one_step_is_the_paper_update(objective, noise_variance, kappa):
    """A ← A + η[(1/B) Σ_k (x_k − A z_k) z_kᵀ − 2κA] for fixed codes, whatever σ² the likelihood uses."""
    data_dim, size, batch, lr = 16, 12, 7, 0.5
    model = LinearSparseCoding(ThresholdedLaplacePrior(size), data_dim, size, noise_variance)
    codes = torch.randn(batch, size) * (torch.rand(batch, size) < 0.3)
    x = torch.randn(batch, data_dim)

    def point_mass_guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Delta(codes).to_event(1))

    before = model.dictionary.detach().clone()
    step = ObjectiveStep(build_elbo(objective, 1), model, point_mass_guide, {"z": 1.0})
    optimizer = dictionary_sgd(model.parameters(), lr=lr, kappa=kappa, noise_variance=noise_variance)
    optimizer.zero_grad()
    step(x, list(model.parameters()))
    optimizer.step()
    expected = before + lr * ((x - codes @ before.T).T @ codes / batch - 2 * kappa * before)
    torch.testing.assert_close(model.dictionary.detach(), expected, rtol=1e-5, atol=1e-6)


def test_paper_values_give_the_documented_optimizer_settings():
    optimizer = dictionary_sgd([torch.nn.Parameter(torch.zeros(2))], lr=0.5, kappa=1e-4,
                               noise_variance=128.0)
    group = optimizer.param_groups[0]
    assert group["lr"] == pytest.approx(64.0) and group["weight_decay"] == pytest.approx(1.5625e-6)


@pytest.mark.parametrize("bad", [dict(lr=0.0), dict(kappa=-1.0), dict(noise_variance=0.0)])
def test_invalid_settings_are_refused(bad):
    settings = dict(lr=0.5, kappa=1e-4, noise_variance=128.0) | bad
    with pytest.raises(ValueError, match="need lr > 0"):
        dictionary_sgd([torch.nn.Parameter(torch.zeros(2))], **settings)
