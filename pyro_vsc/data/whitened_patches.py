"""The data of the linear-generator experiment (§4.1, Appendix D): whitened 16×16 patches.

The paper trains on 80,000 and validates on 16,000 16×16 patches of Olshausen & Field's whitened
natural images, each pixel standardised (zero mean, unit variance) with the training patches'
statistics, as in the authors' published code. :func:`load_whitened_patches` prepares that split
from ``IMAGES.mat``, from your own images (a folder, an image file or a ``.npy``/``.npz``
stack, see :mod:`pyro_vsc.data.image_sources`) or, by default, from the scikit-image
photographs, and caches it on disk.
"""

import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from . import patches as patch_sampling
from .cache import cache_path, load_cached, save_atomically
from .image_sources import image_source
from .standardization import StandardizedSplit, column_mean_std

#: Bumped whenever a change of this module changes the arrays produced for the same parameters.
CACHE_FORMAT = 1


@dataclass(frozen=True, eq=False)
class PatchSplit(StandardizedSplit):
    """Training and validation patches, flattened row-major to ``patch_size**2`` pixels.

    Besides the fields of :class:`~pyro_vsc.data.standardization.StandardizedSplit` (``train``,
    ``val``, ``mean``, ``std``, ``source``, ``standardized``; a stored patch is
    ``(whitened_patch - mean) / std``):

    :ivar train_positions: int64 ``(num_train, 3)``, ``(image, row, col)`` of each patch's top-left
        pixel; disjoint from ``val_positions``.
    :ivar val_positions: int64 ``(num_val, 3)``.
    :ivar patch_size: side p.
    """

    train_positions: torch.Tensor
    val_positions: torch.Tensor
    patch_size: int


def _check_arguments(images, patch_size, num_train, num_val, seed, standardize):
    if not isinstance(images, (str, os.PathLike)):
        raise ValueError(f"images must be 'skimage' or the path of Olshausen's IMAGES.mat, of a "
                         f"folder of images, an image file or a .npy/.npz stack; got {images!r}")
    for name, value, minimum in (("patch_size", patch_size, 1),
                                 ("num_train", num_train, 2 if standardize else 1),
                                 ("num_val", num_val, 0), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            reason = " (the per-pixel std needs two patches)" if name == "num_train" else ""
            raise ValueError(f"{name} must be an integer >= {minimum}{reason}; got {value!r}")
    if not isinstance(standardize, bool):
        raise ValueError(f"standardize must be True or False; got {standardize!r}")


def _split(train, val, mean, std, train_positions, val_positions, patch_size, source,
           standardized):
    return PatchSplit(
        train=torch.from_numpy(train), val=torch.from_numpy(val),
        mean=torch.from_numpy(mean), std=torch.from_numpy(std),
        train_positions=torch.from_numpy(train_positions),
        val_positions=torch.from_numpy(val_positions),
        patch_size=int(patch_size), source=str(source), standardized=bool(standardized))


def _extract_one_image_at_a_time(whitened, positions, patch_size):
    """:func:`~pyro_vsc.data.patches.extract_patches` of ``positions`` (float32), reading the
    images of ``whitened`` (a :class:`~pyro_vsc.data.image_sources.WhitenedImages`) in turn."""
    patches = np.empty((len(positions), patch_size * patch_size), dtype=np.float32)
    order = np.argsort(positions[:, 0], kind="stable")
    bounds = np.searchsorted(positions[order, 0], np.arange(len(whitened.shapes) + 1))
    for index, image in enumerate(whitened.images()):
        rows = order[bounds[index]:bounds[index + 1]]
        in_image = positions[rows]
        in_image[:, 0] = 0
        patches[rows] = patch_sampling.extract_patches([image], in_image, patch_size)
    return patches


def load_whitened_patches(images="skimage", patch_size=16, num_train=80_000, num_val=16_000,
                          seed=0, cache_dir=None, standardize=True, layout=None, key=None):
    """Whitened image patches split into training and validation sets (§4.1, Appendix D).

    Draws ``num_train + num_val`` distinct patch positions uniformly over all images with
    ``numpy.random.default_rng(seed)``; the first ``num_train`` are the training set, the rest
    the validation set, so no patch (same image, same top-left pixel) is in both. Before
    standardisation the pixels have the whitened images' variance (0.1). With ``standardize``
    each pixel is then shifted and scaled by its mean and standard deviation over the training
    patches, for both sets, as in the authors' code.

    The result is cached in ``cache_dir`` (default ``$PYRO_VSC_CACHE`` or ``~/.cache/pyro_vsc``)
    under a hash of all arguments and of the source (for files: their paths, sizes and
    modification times); a second call with the same arguments reads the cache.

    :param images: ``"skimage"`` for the photographs shipped with scikit-image (see
        :data:`pyro_vsc.data.natural_images.SKIMAGE_PHOTOGRAPHS`), whitened here; the path of
        Olshausen's already whitened ``IMAGES.mat`` (paper's data); or your own images, whitened
        here as the photographs are: a folder of PNG/JPEG/TIFF/``.npy`` images of any sizes, one
        such file, or a ``.npy``/``.npz`` stack (see :mod:`pyro_vsc.data.image_sources`).
    :param int patch_size: side p of the square patches (paper: 16).
    :param int num_train: training patches (paper: 80,000).
    :param int num_val: validation patches (paper: 16,000).
    :param int seed: seed of the patch positions.
    :param cache_dir: cache folder (str or Path), see above.
    :param bool standardize: standardise each pixel with the training statistics.
    :param layout: for a 3-D stack, ``"NHW"`` (images along the first axis), ``"HWN"`` (along
        the last, Olshausen's) or None (the layout under which the images are square, see
        :func:`~pyro_vsc.data.image_sources.stack_layout`).
    :param key: the stack's array inside an ``.npz`` archive (None: its only array).
    :rtype: PatchSplit
    :raises FileNotFoundError: for a missing file or folder.
    :raises ValueError: for bad arguments and for images that cannot be used (unreadable files,
        NaN or infinite pixels, images smaller than a patch, constant images), naming them.
    """
    _check_arguments(images, patch_size, num_train, num_val, seed, standardize)
    source = image_source(images, patch_size, layout, key)
    description = source.description
    parameters = {"format": CACHE_FORMAT, "source": source.identity, "patch_size": int(patch_size),
                  "num_train": int(num_train), "num_val": int(num_val), "seed": int(seed),
                  "standardize": standardize}
    path = cache_path(cache_dir, "whitened_patches", parameters)
    cached = load_cached(path, parameters)
    if cached is not None:
        return _split(**cached, patch_size=patch_size, source=description,
                      standardized=standardize)

    whitened = source.read()
    positions = patch_sampling.sample_patch_positions(whitened.shapes, patch_size,
                                                      num_train + num_val, seed)
    patches = _extract_one_image_at_a_time(whitened, positions, patch_size)
    train, val = patches[:num_train], patches[num_train:]
    if standardize:
        mean, std = column_mean_std(train)
        if not (std > 0).all():
            raise ValueError(f"some pixels are constant over the {num_train} training patches; "
                             f"they cannot be standardised (use more patches or other images)")
        mean, std = mean.astype(np.float32), std.astype(np.float32)
        patches -= mean
        patches /= std
    else:
        mean = np.zeros(patch_size * patch_size, dtype=np.float32)
        std = np.ones(patch_size * patch_size, dtype=np.float32)
    arrays = {"train": train, "val": val, "mean": mean, "std": std,
              "train_positions": positions[:num_train], "val_positions": positions[num_train:]}
    try:
        save_atomically(path, parameters, arrays)
    except OSError as error:
        warnings.warn(f"could not write the patch cache {path} ({error}); continuing without it",
                      stacklevel=2)
    return _split(**arrays, patch_size=patch_size, source=description, standardized=standardize)
