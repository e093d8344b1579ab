"""The benchmark's plain-PyTorch floor computes exactly the Pyro path's loss and gradients."""

import pyro
import pytest
import torch
from omegaconf import OmegaConf

from benchmarks.linear_floor import FAMILIES, LinearFloor, constants_from
from pyro_vsc.config import compose_config
from pyro_vsc.distributions import VectorizedGamma
from pyro_vsc.run import build_run


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("num_particles", [1, 5])
@pytest.mark.parametrize("objective", ["max", "avg"])
def test_floor_equals_pyro_path(family, num_particles, objective):
    pyro.settings.set(module_local_params=True)
    cfg = compose_config([f"guide={family}", f"elbo={objective}",
                          f"elbo.num_particles={num_particles}", "data.num_train=200",
                          "data.num_val=50"])
    built = build_run(cfg, torch.device("cpu"))
    model, guide = built["model"], built["guide"]
    guide.step.fill_(1234)  # mid warm-up: ω < 1
    x = built["data"].train[:40]
    params = list(model.parameters()) + list(guide.parameters())
    # the library's Gamma sampler (the benchmark's floor times torch's), for the same random draws
    floor = LinearFloor(guide.encoder, model.decoder.weight, family, num_particles, objective,
                        constants_from(model, guide, OmegaConf.to_container(cfg.kl_weights, resolve=True)),
                        gamma=VectorizedGamma)

    pyro.set_rng_seed(7)
    pyro_loss = built["step"](x, params)
    pyro_grads = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    pyro.set_rng_seed(7)
    floor_loss = floor.loss(x, step=1234)
    floor_loss.backward()
    torch.testing.assert_close(floor_loss.detach(), pyro_loss, rtol=1e-6, atol=1e-4)
    for got, want in zip([p.grad for p in params], pyro_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
