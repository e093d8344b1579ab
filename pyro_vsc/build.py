"""Model and guide of a run, built from its config alone (no data, no training objective)."""

import torch
from hydra.utils import instantiate

from pyro_vsc.resolvers import register_resolvers

register_resolvers()


def build_guide(guide_cfg, model):
    """Instantiates the guide; guides that read the model (FISTA) receive its decoder."""
    factory = instantiate(guide_cfg, _partial_=True)
    if getattr(factory.func, "needs_decoder", False):
        if not isinstance(getattr(model.decoder, "weight", None), torch.Tensor):
            raise ValueError(f"guide=fista solves eq. (10) for a linear dictionary; the model "
                             f"{type(model).__name__} has none (use model=linear or another guide)")
        return factory(decoder=model.decoder)
    return factory()


def build_model_and_guide(cfg, device="cpu"):
    """The run's model (``cfg.model.module`` with ``cfg.prior``) and guide (``cfg.guide``) on
    ``device``, with freshly initialised parameters (from the global random generator)."""
    model = instantiate(cfg.model.module, prior=instantiate(cfg.prior)).to(device)
    return model, build_guide(cfg.guide, model).to(device)
