"""Shared test helpers: composing the CLI's Hydra config without a subprocess."""

from hydra import compose, initialize_config_module

from pyro_vsc.resolvers import register_resolvers

#: Overrides that shrink a linear run to seconds.
TINY_LINEAR = [
    "data.num_train=300",
    "data.num_val=100",
    "batch_size=50",
    "epochs=2",
    "progress=false",
]


def compose_config(overrides=()):
    """The CLI's config with ``overrides``, as ``python -m pyro_vsc.run`` would compose it."""
    register_resolvers()
    with initialize_config_module(config_module="pyro_vsc.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))
