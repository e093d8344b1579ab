"""OmegaConf resolvers used by the Hydra configs in ``pyro_vsc/conf``."""

from omegaconf import OmegaConf

from pyro_vsc.data.dimension import data_dimension
from pyro_vsc.distributions import calibrated_threshold


def _div(a, b):
    return float(a) / float(b)


def _pow(a, b):
    return float(a) ** float(b)


def _first_set(value, default):
    return default if value is None else value


def _if_set(value, then, otherwise):
    return otherwise if value is None else then


def _data_dim(data, default):
    dimension = data_dimension(data)
    return default if dimension is None else dimension[0]


def register_resolvers():
    """Registers ``div``, ``pow``, ``first_set``, ``if_set``, ``calibrated_threshold`` and
    ``data_dim`` (idempotent).

    * ``${div:a,b}`` → a / b (e.g. β₂ = β₁/10, schedule compression); ``${pow:a,b}`` → a^b.
    * ``${first_set:${resume},default}`` → the first argument unless it is null.
    * ``${if_set:${resume},then,otherwise}`` → ``then`` unless the first argument is null.
    * ``${calibrated_threshold:laplace,0.1,0.1}`` → λ₀ for a base family, prior scale and
      target non-zero fraction (Prop. 3.1).
    * ``${data_dim:${data},256}`` → the dimension of the data's vectors
      (:func:`pyro_vsc.data.dimension.data_dimension`), or the default where the data config
      does not give it.
    """
    for name, fn in (("div", _div), ("pow", _pow), ("first_set", _first_set), ("if_set", _if_set),
                     ("calibrated_threshold", calibrated_threshold), ("data_dim", _data_dim)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
