"""The training step never reads a tensor back to the host (§ Performance)."""

import pytest
import torch

from pyro_vsc.config import compose_config
from pyro_vsc.run import build_optimizers, build_run, runtime_settings
from pyro_vsc.train.trainer import Trainer

#: Tensor methods that copy a value to the host (and synchronise with an accelerator).
HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")


@pytest.mark.parametrize("guide", ["thresh", "thresh_gamma", "gaussian", "laplace", "spike_slab",
                                   "thresh_gauss_gamma"])
@pytest.mark.parametrize("objective,num_particles", [("max", 1), ("max", 4), ("avg", 4)])
def test_training_step_reads_nothing_back(guide, objective, num_particles, monkeypatch):
    """With the max (eq. 9) and average (eq. 7) ELBOs."""
    cfg = compose_config([f"guide={guide}", f"elbo={objective}", f"elbo.num_particles={num_particles}",
                          "data.num_train=200", "data.num_val=20", "batch_size=20"])
    with runtime_settings(cfg):
        _check_training_steps(cfg, monkeypatch)


def _check_training_steps(cfg, monkeypatch):
    built = build_run(cfg, torch.device("cpu"))
    model, guide_module = built["model"], built["guide"]
    trainer = Trainer(model=model, guide=guide_module, objective=built["step"],
                      optimizers=build_optimizers(cfg, model, guide_module, 10), batches=None,
                      epochs=cfg.epochs)
    x = built["data"].train[:20]
    trainer.train_step(x)  # first call: lazy set-up is allowed to look at values
    reads = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _name=name, _original=original, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    for _ in range(3):
        loss = trainer.train_step(x)
    monkeypatch.undo()
    assert reads == []
    assert torch.isfinite(loss)
