"""Already prepared vectors (``data=arrays``): patches, spectrogram frames, other features.

The linear generator of §4.1 models any data vectors ``x ∈ R^D`` (eq. 1: ``x = A z + ε``), not
only image patches. :func:`load_vectors` reads an array ``(N, D)`` from a ``.npy`` file (or one
named array of an ``.npz``), holds out a seeded random subset for validation and, by default,
standardises every coordinate with the training vectors' mean and standard deviation, as the
patches are (Appendix D). The model takes D from the file (``model.data_dim`` follows the data).
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from .array_files import array_shape, check_real, read_array
from .standardization import StandardizedSplit, column_mean_std

_CHUNK_ROWS = 8192
_LISTED = 5


@dataclass(frozen=True, eq=False)
class VectorSplit(StandardizedSplit):
    """Training and validation vectors of a file, with the rows they come from.

    Besides the fields of :class:`~pyro_vsc.data.standardization.StandardizedSplit` (``train``,
    ``val``, ``mean``, ``std``, ``source``, ``standardized``):

    :ivar train_rows: int64 ``(num_train,)``, the file's rows of the training vectors, ascending.
    :ivar val_rows: int64 ``(num_val,)``, those of the validation vectors; disjoint from
        ``train_rows``, together all rows.
    """

    train_rows: torch.Tensor
    val_rows: torch.Tensor


def vector_file_shape(path, key=None):
    """``(N, D)`` of the vectors in ``path``, read from the file's header only.

    :raises FileNotFoundError: if there is no such file.
    :raises ValueError: if no path is given, or it is not a readable ``.npy``/``.npz`` file, or
        its array is not 2-D.
    """
    if path is None:
        raise ValueError("data=arrays needs the file of vectors: data.path=<file.npy|file.npz>")
    shape = array_shape(path, key)
    if len(shape) == 2:
        return tuple(shape)
    if len(shape) == 1:
        hint = f"for {shape[0]} one-dimensional values, save them as (N, 1): x.reshape(-1, 1)"
    elif len(shape) == 0:
        hint = "it holds a single number"
    else:
        hint = (f"flatten each to one vector, x.reshape(len(x), -1), or for images use "
                f"data=whitened_patches data.images={path} (whitened patches of them)")
    raise ValueError(f"{path} holds a {len(shape)}-D array of shape {tuple(shape)}; data=arrays "
                     f"needs vectors (N, D), one per row: {hint}")


def _validation_count(val_split, total, path):
    """How many of ``total`` vectors ``val_split`` (fraction or count) holds out."""
    if isinstance(val_split, float) and 0 < val_split < 1:
        return max(1, round(val_split * total))
    if isinstance(val_split, int) and not isinstance(val_split, bool) and val_split >= 1:
        if val_split >= total:
            raise ValueError(f"data.val_split={val_split} asks for {val_split} validation vectors "
                             f"but {path} holds only {total}; training needs the others")
        return val_split
    raise ValueError(f"data.val_split must be a fraction in (0, 1) or a count ≥ 1 of vectors held "
                     f"out for validation; got {val_split!r}")


def _nonfinite_rows(array):
    bad = [start + np.flatnonzero(~np.isfinite(array[start:start + _CHUNK_ROWS]).all(axis=1))
           for start in range(0, len(array), _CHUNK_ROWS)]
    return np.concatenate(bad) if bad else np.empty(0, dtype=np.int64)


def _standardized(array, rows, mean, std):
    """``(array[rows] - mean) / std`` as float32, computed in float64 chunk by chunk."""
    out = np.empty((len(rows), array.shape[1]), dtype=np.float32)
    for start in range(0, len(rows), _CHUNK_ROWS):
        chunk = np.asarray(array[rows[start:start + _CHUNK_ROWS]], dtype=np.float64)
        out[start:start + _CHUNK_ROWS] = (chunk - mean) / std
    return out


def load_vectors(path=None, key=None, val_split=0.1, standardize=True, seed=0, min_train=1):
    """Vectors ``(N, D)`` of a NumPy file split into training and validation sets.

    The validation rows are a uniformly random subset drawn with
    ``numpy.random.default_rng(seed).permutation(N)``; the others train. With ``standardize``,
    every coordinate of both sets is shifted and scaled by its mean and (population) standard
    deviation over the training vectors only, computed in float64; the vectors are then stored
    as float32.

    :param path: a ``.npy`` file, or an ``.npz`` archive, holding a real array ``(N, D)``.
    :param key: the array's name inside an ``.npz`` (None: the archive's only array).
    :param val_split: validation vectors, a fraction in (0, 1) of N (rounded, at least 1) or a
        count ≥ 1.
    :param bool standardize: standardise each coordinate with the training statistics.
    :param int seed: seed of the split.
    :param int min_train: the training set must hold at least this many vectors (the command
        passes its batch size).
    :rtype: VectorSplit
    :raises FileNotFoundError: if there is no such file.
    :raises ValueError: naming the file, for an array that is not 2-D, not real or empty, NaN or
        infinite values (with their rows), too few vectors for the split and a batch, and
        coordinates that are constant over the training vectors when standardising.
    """
    if not isinstance(standardize, bool):
        raise ValueError(f"data.standardize must be true or false; got {standardize!r}")
    for name, value, minimum in (("seed", seed, 0), ("min_train", min_train, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"data.{name} must be an integer ≥ {minimum}; got {value!r}")
    total, dim = vector_file_shape(path, key)
    if total < 2 or dim < 1:
        raise ValueError(f"{path} holds an array of shape ({total}, {dim}); data=arrays needs at "
                         f"least two vectors (training and validation) of at least one value")
    array = read_array(path, key)
    check_real(array, str(path))
    bad = _nonfinite_rows(array)
    if bad.size:
        raise ValueError(f"{path} contains NaN or infinite values in {bad.size} vector(s), rows "
                         f"{_listed_rows(bad)}; remove or repair them")

    num_val = _validation_count(val_split, total, path)
    num_train = total - num_val
    split = (f"{path} holds {total} vectors: {num_val} held out for validation (data.val_split="
             f"{val_split}) leave {num_train} for training")
    if num_train < min_train:
        raise ValueError(f"{split}, fewer than one batch (batch_size={min_train}); give more "
                         f"vectors, a smaller data.val_split or a smaller batch_size")
    if standardize and num_train < 2:
        raise ValueError(f"{split}, fewer than the two a standard deviation needs; give more "
                         f"vectors, a smaller data.val_split or pass data.standardize=false")
    order = np.random.default_rng(seed).permutation(total)
    val_rows, train_rows = np.sort(order[:num_val]), np.sort(order[num_val:])

    if standardize:
        mean, std = column_mean_std(array[train_rows])
        constant = np.flatnonzero(std == 0)
        if constant.size:
            raise ValueError(f"{constant.size} coordinate(s) of the vectors in {path} are constant "
                             f"over the {num_train} training vectors (columns "
                             f"{_listed_rows(constant)}); they cannot be standardised: drop them "
                             f"or pass data.standardize=false")
    else:
        mean, std = np.zeros(dim), np.ones(dim)
    what = f"array {key!r} of " if key is not None else ""
    source = (f"{num_train} + {num_val} vectors of dimension {dim} from {what}{path}"
              f"{', standardised per coordinate' if standardize else ''}")
    return VectorSplit(
        train=torch.from_numpy(_standardized(array, train_rows, mean, std)),
        val=torch.from_numpy(_standardized(array, val_rows, mean, std)),
        mean=torch.from_numpy(mean.astype(np.float32)), std=torch.from_numpy(std.astype(np.float32)),
        source=source, standardized=standardize,
        train_rows=torch.from_numpy(train_rows), val_rows=torch.from_numpy(val_rows))


def _listed_rows(indices):
    shown = ", ".join(str(int(index)) for index in indices[:_LISTED])
    return shown + (f" … ({len(indices) - _LISTED} more)" if len(indices) > _LISTED else "")
