"""Composing the command line's Hydra config from Python (tests, benchmarks, notebooks)."""

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from pyro_vsc.resolvers import register_resolvers


def compose_config(overrides=()):
    """The config ``python -m pyro_vsc.run <overrides>`` would use, without starting a run.

    Interpolations that need a running Hydra app (``${hydra:...}``, e.g. the default
    ``run_dir``) stay unresolved; pass ``run_dir=...`` when training with it.
    """
    register_resolvers()
    if GlobalHydra.instance().is_initialized():  # inside the command (a Hydra app): its config module
        return compose(config_name="config", overrides=list(overrides))
    with initialize_config_module(config_module="pyro_vsc.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))
