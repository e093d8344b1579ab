"""The data of the linear-generator experiment (§4.1, Appendix D): whitened 16×16 patches.

The paper trains on 80,000 and validates on 16,000 16×16 patches of Olshausen & Field's whitened
natural images, each pixel standardised (zero mean, unit variance) with the training patches'
statistics, as in the authors' published code. :func:`load_whitened_patches` prepares that split
from ``IMAGES.mat`` or, by default, from the scikit-image photographs, and caches it on disk.
"""

import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from . import patches as patch_sampling
from .cache import cache_path, load_cached, save_atomically
from .images import as_image_list
from .natural_images import (
    SKIMAGE_PHOTOGRAPHS,
    images_mat_identity,
    load_images_mat,
    skimage_source_identity,
    whitened_skimage_images,
)
from .whitening import DEFAULT_F0_FRACTION, DEFAULT_VARIANCE

#: Bumped whenever a change of this module changes the arrays produced for the same parameters.
CACHE_FORMAT = 1
_STANDARDIZE_CHUNK_ROWS = 8192


@dataclass(frozen=True, eq=False)
class PatchSplit:
    """Training and validation patches, flattened row-major to ``patch_size**2`` pixels.

    :ivar train: float32 ``(num_train, p*p)``.
    :ivar val: float32 ``(num_val, p*p)``.
    :ivar mean: float32 ``(p*p,)``, per-pixel mean subtracted from both sets (zeros if not
        standardised).
    :ivar std: float32 ``(p*p,)``, per-pixel scale divided out (ones if not standardised); a
        stored patch is ``(whitened_patch - mean) / std``.
    :ivar train_positions: int64 ``(num_train, 3)``, ``(image, row, col)`` of each patch's top-left
        pixel; disjoint from ``val_positions``.
    :ivar val_positions: int64 ``(num_val, 3)``.
    :ivar patch_size: side p.
    :ivar source: which images the patches come from.
    :ivar standardized: whether the train statistics were applied.
    """

    train: torch.Tensor
    val: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    train_positions: torch.Tensor
    val_positions: torch.Tensor
    patch_size: int
    source: str
    standardized: bool

    def unstandardize(self, patches):
        """Undo the standardisation: ``patches * std + mean`` on the patches' device and dtype."""
        return patches * self.std.to(patches) + self.mean.to(patches)


def _pixel_mean_std(patches):
    """Per-pixel mean and (population) standard deviation in float64, two passes in chunks so that
    no float64 copy of all patches is made."""
    chunks = range(0, len(patches), _STANDARDIZE_CHUNK_ROWS)
    total = sum(patches[start:start + _STANDARDIZE_CHUNK_ROWS].sum(0, dtype=np.float64)
                for start in chunks)
    mean = total / len(patches)
    squares = sum(((patches[start:start + _STANDARDIZE_CHUNK_ROWS] - mean) ** 2).sum(0)
                  for start in chunks)
    return mean, np.sqrt(squares / len(patches))


def _check_arguments(images, patch_size, num_train, num_val, seed, standardize):
    if not isinstance(images, (str, os.PathLike)):
        raise ValueError(f"images must be 'skimage' or the path of Olshausen's IMAGES.mat; got "
                         f"{images!r}")
    for name, value, minimum in (("patch_size", patch_size, 1),
                                 ("num_train", num_train, 2 if standardize else 1),
                                 ("num_val", num_val, 0), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            reason = " (the per-pixel std needs two patches)" if name == "num_train" else ""
            raise ValueError(f"{name} must be an integer >= {minimum}{reason}; got {value!r}")
    if not isinstance(standardize, bool):
        raise ValueError(f"standardize must be True or False; got {standardize!r}")


def _source(images):
    """(cache identity, description, loader) of the requested images."""
    if isinstance(images, str) and images == "skimage":
        identity = {**skimage_source_identity(), "variance": DEFAULT_VARIANCE,
                    "f0_fraction": DEFAULT_F0_FRACTION}
        description = (f"scikit-image photographs {', '.join(SKIMAGE_PHOTOGRAPHS)} (largest "
                       f"centred squares), Olshausen-Field whitened, variance {DEFAULT_VARIANCE}")
        return identity, description, whitened_skimage_images
    identity = images_mat_identity(images)
    description = f"Olshausen's whitened IMAGES.mat at {identity['path']}"
    return identity, description, lambda: load_images_mat(images)


def _split(train, val, mean, std, train_positions, val_positions, patch_size, source,
           standardized):
    return PatchSplit(
        train=torch.from_numpy(train), val=torch.from_numpy(val),
        mean=torch.from_numpy(mean), std=torch.from_numpy(std),
        train_positions=torch.from_numpy(train_positions),
        val_positions=torch.from_numpy(val_positions),
        patch_size=int(patch_size), source=str(source), standardized=bool(standardized))


def load_whitened_patches(images="skimage", patch_size=16, num_train=80_000, num_val=16_000,
                          seed=0, cache_dir=None, standardize=True):
    """Whitened image patches split into training and validation sets (§4.1, Appendix D).

    Draws ``num_train + num_val`` distinct patch positions uniformly over all images with
    ``numpy.random.default_rng(seed)``; the first ``num_train`` are the training set, the rest
    the validation set, so no patch (same image, same top-left pixel) is in both. Before
    standardisation the pixels have the whitened images' variance (0.1). With ``standardize``
    each pixel is then shifted and scaled by its mean and standard deviation over the training
    patches, for both sets, as in the authors' code.

    The result is cached in ``cache_dir`` (default ``$PYRO_VSC_CACHE`` or ``~/.cache/pyro_vsc``)
    under a hash of all arguments and of the source (for a file: its path, size and modification
    time); a second call with the same arguments reads the cache.

    :param images: ``"skimage"`` for the photographs shipped with scikit-image (see
        :data:`pyro_vsc.data.natural_images.SKIMAGE_PHOTOGRAPHS`), whitened here; or the path of
        Olshausen's already whitened ``IMAGES.mat`` (paper's data).
    :param int patch_size: side p of the square patches (paper: 16).
    :param int num_train: training patches (paper: 80,000).
    :param int num_val: validation patches (paper: 16,000).
    :param int seed: seed of the patch positions.
    :param cache_dir: cache folder (str or Path), see above.
    :param bool standardize: standardise each pixel with the training statistics.
    :rtype: PatchSplit
    """
    _check_arguments(images, patch_size, num_train, num_val, seed, standardize)
    identity, description, load_source = _source(images)
    parameters = {"format": CACHE_FORMAT, "source": identity, "patch_size": int(patch_size),
                  "num_train": int(num_train), "num_val": int(num_val), "seed": int(seed),
                  "standardize": standardize}
    path = cache_path(cache_dir, "whitened_patches", parameters)
    cached = load_cached(path, parameters)
    if cached is not None:
        return _split(**cached, patch_size=patch_size, source=description,
                      standardized=standardize)

    image_list = as_image_list(load_source())
    positions = patch_sampling.sample_patch_positions(
        [image.shape for image in image_list], patch_size, num_train + num_val, seed)
    patches = patch_sampling.extract_patches(image_list, positions, patch_size)
    train, val = patches[:num_train], patches[num_train:]
    if standardize:
        mean, std = _pixel_mean_std(train)
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
