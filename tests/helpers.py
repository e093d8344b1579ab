"""Shared test helpers."""

from pyro_vsc.config import compose_config  # noqa: F401  (re-exported for the tests)

#: Overrides that shrink a linear run to seconds.
TINY_LINEAR = [
    "data.num_train=300",
    "data.num_val=100",
    "batch_size=50",
    "epochs=2",
    "progress=false",
]
