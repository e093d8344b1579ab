"""Guide-level metrics with known answers: posterior KL and collapse, consistency of samples,
objective (10) against FISTA, and evaluation at the end of the warm-ups."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.nn import PyroModule

from pyro_vsc.guides.laplace import LaplaceGuide
from pyro_vsc.guides.mlp import MLPBackbone
from pyro_vsc.guides.spike_slab import SpikeSlabGuide
from pyro_vsc.distributions import ThresholdedLaplace
from pyro_vsc.distributions.kl import laplace_kl
from pyro_vsc.evaluation.consistency import guide_support_consistency
from pyro_vsc.evaluation.gradient_snr import gradient_snr
from pyro_vsc.evaluation.importance_sampling import importance_sampling_metrics
from pyro_vsc.evaluation.methods import METHOD_LABELS
from pyro_vsc.evaluation.objective import objective_metrics
from pyro_vsc.evaluation.posterior_kl import posterior_kl_per_dimension
from pyro_vsc.evaluation.warmups import finish_warmups
from pyro_vsc.fista import fista
from pyro_vsc.metrics import posterior_collapse
from pyro_vsc.run import build_run
from pyro_vsc.schedules import ExponentialDecay, LinearWarmup
from pyro_vsc.train.objective import Objective
from tests.helpers import compose_config

LATENT = 4
PRIOR_SCALE, PRIOR_THRESHOLD = 0.5, 0.25


class ThresholdedModel(PyroModule):
    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", ThresholdedLaplace(0.0, PRIOR_SCALE, PRIOR_THRESHOLD)
                        .expand([LATENT]).to_event(1))


class HalfCollapsedGuide(PyroModule):
    """Dimensions 0, 1 equal the prior's base law for every x; dimensions 2, 3 depend on x."""

    def loc(self, x):
        return torch.cat([torch.zeros_like(x[:, :2]), x[:, :2]], dim=1)

    def forward(self, x):
        scale = torch.tensor([PRIOR_SCALE, PRIOR_SCALE, 0.2, 0.2])
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", ThresholdedLaplace(self.loc(x), scale, 0.3).to_event(1))


class PointMassGuide(PyroModule):
    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Delta(x[:, :LATENT]).to_event(1))


def test_posterior_kl_is_the_base_kl_per_dimension_and_gives_the_collapse_percentage():
    x = 1.0 + torch.rand(300, LATENT)  # |loc| ≥ 1 on the informative dimensions
    kl = posterior_kl_per_dimension(ThresholdedModel(), HalfCollapsedGuide(), x, batch_size=128)
    assert kl.shape == (300, LATENT)
    scale = torch.tensor([PRIOR_SCALE, PRIOR_SCALE, 0.2, 0.2])
    expected = laplace_kl(HalfCollapsedGuide().loc(x), scale, torch.tensor(0.0), torch.tensor(PRIOR_SCALE))
    torch.testing.assert_close(kl, expected)
    assert torch.all(kl[:, :2] == 0) and torch.all(kl[:, 2:] > 1.0)
    assert posterior_collapse(kl) == 50.0


def test_posterior_kl_of_a_point_mass_guide_is_undefined():
    assert posterior_kl_per_dimension(ThresholdedModel(), PointMassGuide(), torch.randn(5, LATENT)) is None


class CoinGuide(PyroModule):
    """Each dimension is non-zero with probability γ = exp(-λ/b) = 1/2 (λ = b ln 2, μ = 0)."""

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", ThresholdedLaplace(torch.zeros(x.shape[0], 2), 1.0, math.log(2.0)).to_event(1))


def test_consistency_of_independent_samples_and_of_identical_ones():
    # One atom kept by the mask: two independent samples agree (both zero, or both non-zero)
    # with probability γ² + (1 - γ)² = 1/2, which is their Jaccard index's mean. The per-input
    # average lies in [0, 1], so its sd is at most 1/2 and the mean over 2000 inputs has standard
    # error at most 0.011; allow 5 of them.
    mask = torch.tensor([True, False])
    consistency = guide_support_consistency(CoinGuide(), torch.zeros(2000, 1), num_samples=10,
                                            atom_mask=mask, batch_size=700)
    assert consistency.shape == (2000,)
    assert consistency.mean().item() == pytest.approx(0.5, abs=0.056)
    # A point mass repeats its code: perfectly consistent.
    same = guide_support_consistency(PointMassGuide(), torch.randn(30, LATENT), num_samples=5)
    assert torch.all(same == 1.0)


def test_objective_of_fista_codes_is_the_reference_and_zero_codes_score_half_the_energy():
    generator = torch.Generator().manual_seed(0)
    dictionary = torch.randn(8, 6, generator=generator, dtype=torch.float64)
    x = 3.0 * torch.randn(50, 8, generator=generator, dtype=torch.float64)
    zero = objective_metrics(x, dictionary, torch.zeros(50, 6, dtype=torch.float64), lam=1.0)
    assert zero["validation_objective"] == pytest.approx(0.5 * x.pow(2).sum(-1).mean().item())
    assert zero["nonzero_pct"] == 0.0 and zero["l1"] == 0.0
    assert zero["fista_objective"] < zero["validation_objective"] and zero["fista_converged"]
    optimum = fista(dictionary, x, 1.0, tol=1e-12, max_iter=20000).codes
    at_optimum = objective_metrics(x, dictionary, optimum, lam=1.0, fista_tol=1e-4)
    # FISTA at tolerance 1e-4 is within 1e-6 (relative) of the optimum's objective.
    assert at_optimum["fista_objective"] == pytest.approx(at_optimum["validation_objective"], rel=1e-6)


def test_schedule_end_steps():
    warmup = LinearWarmup(start=0.1, increment=2e-4, maximum=1.0, delay=1500, time_scale=2.0)
    end = warmup.end_step()
    assert end == math.ceil((1500 + 0.9 / 2e-4) / 2.0)
    assert warmup(torch.tensor(end)).item() == pytest.approx(1.0)
    assert warmup(torch.tensor(end - 1)).item() < 1.0
    decay = ExponentialDecay(start=1.0, factor=0.9995, minimum=0.5)
    assert decay(torch.tensor(decay.end_step())).item() == 0.5
    assert decay(torch.tensor(decay.end_step() - 1)).item() > 0.5
    assert LinearWarmup(start=1.0, increment=0.0).end_step() == 0


def test_finish_warmups_moves_the_step_past_every_schedule_once():
    guide = SpikeSlabGuide(MLPBackbone(4, (3,)), 2)  # slab warm-up (delay 1500) and temperature
    expected = max(guide.slab_warmup.end_step(), guide.temperature.end_step())
    assert finish_warmups(guide) == (0, expected)
    assert guide.slab_warmup(guide.step).item() == 1.0
    assert guide.temperature(guide.step).item() == 0.5
    late = LaplaceGuide(MLPBackbone(4, (3,)), 2)
    late.step.fill_(10**6)  # a full run: nothing changes
    assert finish_warmups(late) == (10**6, 10**6)


SMALL_LINEAR = ["data.num_train=300", "data.num_val=100", "data.patch_size=4", "model.data_dim=16",
                "model.latent_dim=16", "model.backbone.hidden=[32,16]", "elbo.num_particles=3"]


@pytest.mark.parametrize("method", list(METHOD_LABELS))
def test_every_table1_guide_goes_through_the_evaluation(method):
    """Untrained models of every Table 1 row: the generic trace code handles each guide's laws
    (Normal, warm-up Laplace, spike-and-slab, thresholded with fixed or Gamma λ, FISTA's Delta)."""
    pyro.settings.set(module_local_params=True)
    built = build_run(compose_config([*SMALL_LINEAR, f"guide={method}"]), torch.device("cpu"))
    model, guide, x = built["model"], built["guide"], built["data"].val[:20]
    finish_warmups(guide)
    consistency = guide_support_consistency(guide, x, num_samples=4)
    if method == "fista":
        assert posterior_kl_per_dimension(model, guide, x) is None
        assert torch.all(consistency == 1.0)  # deterministic codes
        return
    assert torch.all(posterior_kl_per_dimension(model, guide, x) >= 0)
    sampling = importance_sampling_metrics(model, guide, x, num_samples=30)
    assert sampling["iwae_bound"] >= sampling["elbo"] and math.isfinite(sampling["iwae_bound"])
    snr = gradient_snr(Objective(model, guide, 3, built["objective"].kl_weights), x[:2], num_samples=5)
    assert all(bool(torch.all(values > 0)) for values in snr.values()) and set(snr) == {
        "encoder", "dictionary"}
    # Gaussian and Laplace codes are never exactly zero: every support is every (unit-norm, so
    # active) atom, and all samples agree. Sparse guides draw different supports.
    dense = method in ("gaussian", "laplace")
    assert bool(torch.all(consistency == 1.0)) == dense
