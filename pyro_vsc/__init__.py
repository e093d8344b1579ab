"""pyro_vsc: Variational Sparse Coding with Learned Thresholding (Fallah & Rozell, 2022) in Pyro.

The library's entry points for Python users (README, "Use it on your own data"):
:func:`load_run` (a trained run folder → model, guide, ``encode``/``decode``). They are
imported on first use, so that ``import pyro_vsc.distributions`` stays light.
"""

__version__ = "0.1.0"

#: Public name → the module that defines it.
_PUBLIC = {"load_run": "pyro_vsc.trained", "TrainedModel": "pyro_vsc.trained"}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'pyro_vsc' has no attribute {name!r}")
