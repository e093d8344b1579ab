"""DNN generators of §4.2 as Pyro models: shapes of Tables 4-5, one SVI step with every guide family,
mixed precision confined to the networks."""

import logging

import pyro
import pytest
import torch
from hydra.utils import instantiate
from pyro import poutine

from pyro_vsc.metrics import multi_information
from pyro_vsc.build import build_guide
from pyro_vsc.run import build_optimizers, wrap_networks
from pyro_vsc.train.distributed import DistributedContext
from pyro_vsc.train.objective import Objective
from pyro_vsc.train.optimizer_set import OptimizerSet
from pyro_vsc.train.precision import autocast_dtype
from pyro_vsc.train.step import ObjectiveStep
from pyro_vsc.train.trainer import Trainer
from pyro_vsc.train.validation import image_validation
from tests.helpers import compose_config

IMAGE_SHAPES = {"fmnist": (1, 28, 28), "celeba": (3, 64, 64)}
GUIDE_FAMILIES = ["gaussian", "laplace", "spike_slab", "thresh_gauss", "thresh_gauss_gamma", "thresh",
                  "thresh_gamma"]
LATENT_DIM, BATCH, PARTICLES = 6, 3, 2


def _build(model_name, guide_name, overrides=()):
    """Model, guide, objective and optimizers from the command's config and builders (no data)."""
    cfg = compose_config([f"model={model_name}", f"guide={guide_name}", f"model.latent_dim={LATENT_DIM}",
                          f"elbo.num_particles={PARTICLES}", *overrides])
    model = instantiate(cfg.model.module, prior=instantiate(cfg.prior))
    guide = build_guide(cfg.guide, model)
    kl_weights = dict(cfg.kl_weights)
    objective = ObjectiveStep(instantiate(cfg.elbo), model, guide, kl_weights)
    return cfg, model, guide, objective, kl_weights


@pytest.mark.parametrize("model_name", ["fmnist", "celeba"])
def test_model_samples_codes_and_images_of_the_table_shapes(model_name):
    """Tables 4-5: codes (B, d) from the prior inside the data plate, images (B, C, H, W) from the
    decoder, Gaussian likelihood with variance D/2 over the 3 event dims."""
    _, model, guide, _, _ = _build(model_name, "thresh_gauss_gamma")
    shape = IMAGE_SHAPES[model_name]
    x = torch.rand(BATCH, *shape)
    trace = poutine.trace(model).get_trace(x)
    assert trace.nodes["z"]["value"].shape == (BATCH, LATENT_DIM)
    likelihood = trace.nodes["x"]["fn"]
    assert likelihood.batch_shape == (BATCH,) and likelihood.event_shape == shape
    data_dim = shape[0] * shape[1] * shape[2]
    torch.testing.assert_close(likelihood.scale, torch.tensor((data_dim / 2) ** 0.5))
    assert model.decoder(torch.zeros(PARTICLES, BATCH, LATENT_DIM)).shape == (PARTICLES, BATCH, *shape)
    assert guide(x).shape == (BATCH, LATENT_DIM)
    # -log p(x|z) is the per-pixel MSE plus the Gaussian normaliser: the paper's training loss
    mse = (x - likelihood.loc).pow(2).flatten(1).mean(1)
    constant = data_dim / 2 * torch.log(torch.tensor(torch.pi * data_dim))
    torch.testing.assert_close(-likelihood.log_prob(x), mse + constant)


def test_model_rejects_images_of_another_dataset():
    _, model, *_ = _build("fmnist", "gaussian")
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 1, 28, 28\)"):
        model(torch.rand(2, 3, 64, 64))


@pytest.mark.parametrize("model_name", ["fmnist", "celeba"])
@pytest.mark.parametrize("guide_name", GUIDE_FAMILIES)
def test_one_svi_step_with_every_guide_family(model_name, guide_name):
    """Each guide family of Table 1 trains the conv backbone of Tables 4-5 (J = 2, max-ELBO)."""
    cfg, model, guide, objective, _ = _build(model_name, guide_name)
    optimizers = build_optimizers(cfg, model, guide, steps_per_epoch=10)
    params = [p for module in (model, guide) for p in module.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    for optimizer, _ in optimizers.values():
        optimizer.zero_grad()
    loss = objective(torch.rand(BATCH, *IMAGE_SHAPES[model_name]), params)
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
    for optimizer, _ in optimizers.values():
        optimizer.step()
    assert sum(not torch.equal(p, b) for p, b in zip(params, before)) == len(params)


def test_fista_guide_needs_the_linear_dictionary():
    with pytest.raises(ValueError, match="guide=fista.*linear dictionary"):
        _build("fmnist", "fista")


def test_bf16_autocast_covers_the_networks_and_nothing_else():
    """amp=bf16 on a CPU: convolutions compute in bfloat16, while the guide's distribution
    parameters, the codes and the likelihood's mean are float32; training stays finite."""
    cfg, model, guide, objective, _ = _build("fmnist", "thresh_gauss_gamma")
    dtype = autocast_dtype("bf16", torch.device("cpu"))
    assert dtype == torch.bfloat16
    wrap_networks(model, guide, DistributedContext(), dtype)
    conv_dtypes = []
    for module in (model.decoder.upsample[0][0], guide.encoder.backbone.layers[0][0]):
        module.register_forward_hook(lambda _m, _i, out: conv_dtypes.append(out.dtype))
    x = torch.rand(BATCH, 1, 28, 28)
    guide_trace = poutine.trace(guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
    assert conv_dtypes == [torch.bfloat16, torch.bfloat16]  # encoder, then decoder
    assert guide_trace.nodes["z"]["fn"].base_dist.loc.dtype == torch.float32
    assert guide_trace.nodes["z"]["value"].dtype == torch.float32
    assert model_trace.nodes["x"]["fn"].loc.dtype == torch.float32
    # the networks' parameters and the state-dict keys are those of the unwrapped modules
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert "decoder.project.0.weight" in model.state_dict()
    params = [p for module in (model, guide) for p in module.parameters() if p.requires_grad]
    for _ in range(2):
        loss = objective(x, params)
        assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in params)


def test_amp_settings(caplog):
    cpu = torch.device("cpu")
    assert autocast_dtype(False, cpu) is None
    with caplog.at_level(logging.WARNING):
        assert autocast_dtype("fp16", cpu) is None
    assert "amp=fp16 is ignored on the CPU" in caplog.text
    with pytest.raises(ValueError, match="amp must be false, bf16 or fp16"):
        autocast_dtype("fp8", cpu)


def _one_step(grad_scaler):
    pyro.set_rng_seed(0)
    cfg, model, guide, _, kl_weights = _build("fmnist", "thresh_gauss", ["~model.optim.model.optimizer",
        "+model.optim.model.optimizer={_target_:torch.optim.SGD,_partial_:true,lr:0.1}"])
    objective = ObjectiveStep(instantiate(cfg.elbo), model, guide, kl_weights, grad_scaler=grad_scaler)
    trainer = Trainer(model=model, guide=guide, objective=objective,
                      optimizers=OptimizerSet(build_optimizers(cfg, model, guide, 10), grad_scaler),
                      batches=None, epochs=1)
    trainer.train_step(torch.rand(BATCH, 1, 28, 28, generator=torch.Generator().manual_seed(1)))
    return trainer


def test_gradient_scaler_scales_the_loss_and_unscales_before_the_step():
    """The float16 loss-scaling path, run in float32 on a CPU: a power-of-two scale multiplies and
    divides gradients exactly, so a training step with it equals one without it, bit for bit (the
    float16 arithmetic itself needs CUDA, see the next test)."""
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    scaled, plain = _one_step(scaler), _one_step(None)
    for module in ("model", "guide"):
        for (name, value), reference in zip(getattr(scaled, module).state_dict().items(),
                                            getattr(plain, module).state_dict().values()):
            torch.testing.assert_close(value, reference, rtol=0, atol=0, msg=name)
    assert scaled.state_dict()["grad_scaler"]["scale"] == 2.0 ** 10


def test_a_scaled_loss_needs_an_elbo_that_returns_it():
    cfg, model, guide, _, kl_weights = _build("fmnist", "thresh", ["elbo=iwae"])
    with pytest.raises(ValueError, match="use amp=bf16 or amp=false"):
        ObjectiveStep(instantiate(cfg.elbo), model, guide, kl_weights,
                      grad_scaler=torch.amp.GradScaler("cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="float16 autocast and its gradient scaler need CUDA")
def test_fp16_training_on_cuda_stays_finite():
    cfg, model, guide, _, kl_weights = _build("celeba", "thresh_gauss_gamma")
    device = torch.device("cuda")
    model, guide = model.to(device), guide.to(device)
    dtype = autocast_dtype("fp16", device)
    scaler = torch.amp.GradScaler("cuda")
    wrap_networks(model, guide, DistributedContext(device=device), dtype)
    objective = ObjectiveStep(instantiate(cfg.elbo), model, guide, kl_weights, grad_scaler=scaler)
    trainer = Trainer(model=model, guide=guide, objective=objective,
                      optimizers=OptimizerSet(build_optimizers(cfg, model, guide, 10), scaler),
                      batches=None, epochs=1)
    x = torch.rand(8, 3, 64, 64, device=device)
    losses = [trainer.train_step(x) for _ in range(3)]
    assert all(torch.isfinite(loss) for loss in losses)
    assert all(torch.isfinite(p).all() for p in trainer.optimizers.params)


def test_image_validation_scores_the_selected_codes():
    """With the Laplacian guide's noise factor held at 0 every particle is z = μ(x), so the
    validation numbers have closed forms: per-pixel MSE of decoder(μ(x)), 100% non-zero, and the
    multi-information of μ(x)."""
    _, model, guide, _, kl_weights = _build("fmnist", "laplace", [
        "guide.scale_warmup.start=0.0", "guide.scale_warmup.increment=0.0"])
    model.eval()
    guide.eval()
    x = torch.rand(7, 1, 28, 28)
    metrics = image_validation(Objective(model, guide, PARTICLES, kl_weights), [x[:4], x[4:]])
    with torch.no_grad():
        codes = guide.encoder(x)["loc"]
        mse = (x - model.decoder(codes)).pow(2).mean()
    assert metrics["mse"] == pytest.approx(float(mse), rel=1e-5)
    assert metrics["nonzero_pct"] == 100.0
    assert metrics["multi_information"] == pytest.approx(multi_information(codes))
    assert metrics["kl_z"] > 0
