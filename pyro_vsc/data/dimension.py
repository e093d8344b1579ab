"""The dimension D of the vectors a data config gives, known before the data are loaded.

The linear generator's ``model.data_dim`` follows it (``${data_dim:${data},256}`` in
``conf/model/linear.yaml``), so that 8×8 patches (``data.patch_size=8``), synthetic signals
(``data=synthetic``) or a file of vectors (``data=arrays``) need no ``model.data_dim``; and the
config checks compare a ``model.data_dim`` given by hand with it.
"""

from hydra.utils import get_method

from .synthetic import synthetic_split
from .vectors import load_vectors, vector_file_shape
from .whitened_patches import load_whitened_patches


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _patches(data):
    side = data.get("patch_size")
    if _is_count(side):
        return side * side, f"data.patch_size={side} gives {side * side}-dimensional patches"
    return None


def _synthetic(data):
    dim = data.get("dim")
    return (dim, f"data.dim={dim}") if _is_count(dim) else None


def _vectors(data):
    _count, dim = vector_file_shape(data.get("path"), data.get("key"))
    return dim, f"data.path={data.get('path')} holds {dim}-dimensional vectors"


#: Data loader → how its config determines D (None where it does not say).
_DIMENSIONS = {load_whitened_patches: _patches, synthetic_split: _synthetic,
               load_vectors: _vectors}


def data_dimension(data):
    """``(D, how the data config gives it)`` for the vector data of :data:`_DIMENSIONS`, or None
    (image data sets, other loaders, settings that are not counts: their checks report those).

    For ``data=arrays`` this reads the header of ``data.path`` (not the data).

    :param data: the data config (``cfg.data``, a mapping with ``_target_``).
    :raises FileNotFoundError, ValueError: for a ``data.path`` that is missing, unreadable or
        not (N, D).
    """
    try:
        loader = get_method(data.get("_target_"))
    except Exception:  # a target Hydra cannot import: instantiating the data reports it
        return None
    dimension = _DIMENSIONS.get(loader)
    return None if dimension is None else dimension(data)
