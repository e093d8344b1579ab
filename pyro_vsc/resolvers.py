"""OmegaConf resolvers used by the Hydra configs in ``pyro_vsc/conf``."""

from omegaconf import OmegaConf

from pyro_vsc.distributions import calibrated_threshold


def _div(a, b):
    return float(a) / float(b)


def _pow(a, b):
    return float(a) ** float(b)


def _first_set(value, default):
    return default if value is None else value


def _if_set(value, then, otherwise):
    return otherwise if value is None else then


def register_resolvers():
    """Registers ``div``, ``pow``, ``first_set``, ``if_set`` and ``calibrated_threshold``
    (idempotent).

    * ``${div:a,b}`` → a / b (e.g. β₂ = β₁/10, schedule compression); ``${pow:a,b}`` → a^b.
    * ``${first_set:${resume},default}`` → the first argument unless it is null.
    * ``${if_set:${resume},then,otherwise}`` → ``then`` unless the first argument is null.
    * ``${calibrated_threshold:laplace,0.1,0.1}`` → λ₀ for a base family, prior scale and
      target non-zero fraction (Prop. 3.1).
    """
    for name, fn in (("div", _div), ("pow", _pow), ("first_set", _first_set), ("if_set", _if_set),
                     ("calibrated_threshold", calibrated_threshold)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
