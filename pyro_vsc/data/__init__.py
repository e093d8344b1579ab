"""Data of the linear-generator experiment (§4.1, Appendix D) and synthetic sparse data.

* :func:`load_whitened_patches`: train/validation 16×16 patches of whitened natural images
  (the scikit-image photographs, Olshausen's IMAGES.mat, or your own images: a folder, an image
  file or a ``.npy``/``.npz`` stack, :mod:`~pyro_vsc.data.image_sources`), standardised per
  pixel, cached on disk.
* :func:`load_vectors`: your own prepared vectors (N, D) from a ``.npy``/``.npz`` file, split
  and standardised with the training statistics (``data=arrays``).
* Olshausen & Field's whitening (:func:`olshausen_filter`, :func:`whiten_image`,
  :func:`whiten_images`) and the image sources (:func:`skimage_photographs`,
  :func:`whitened_skimage_images`, :func:`load_images_mat`, :func:`read_grayscale` for one
  image file).
* Patch positions and extraction (:func:`sample_patch_positions`, :func:`extract_patches`).
* Synthetic sparse signals from a known dictionary (:func:`random_dictionary`,
  :func:`sparse_synthetic`).
"""

from .image_files import read_grayscale
from .images import as_image_list
from .natural_images import (
    IMAGES_MAT_URL,
    SKIMAGE_PHOTOGRAPHS,
    load_images_mat,
    skimage_photographs,
    whitened_skimage_images,
)
from .patches import extract_patches, positions_per_image, sample_patch_positions
from .standardization import StandardizedSplit
from .synthetic import SyntheticSplit, random_dictionary, sparse_synthetic, synthetic_split
from .vectors import VectorSplit, load_vectors
from .whitened_patches import PatchSplit, load_whitened_patches
from .whitening import olshausen_filter, whiten_image, whiten_images

__all__ = [
    "IMAGES_MAT_URL",
    "PatchSplit",
    "SKIMAGE_PHOTOGRAPHS",
    "as_image_list",
    "extract_patches",
    "load_images_mat",
    "load_vectors",
    "load_whitened_patches",
    "olshausen_filter",
    "positions_per_image",
    "random_dictionary",
    "read_grayscale",
    "sample_patch_positions",
    "skimage_photographs",
    "sparse_synthetic",
    "StandardizedSplit",
    "synthetic_split",
    "SyntheticSplit",
    "VectorSplit",
    "whiten_image",
    "whiten_images",
    "whitened_skimage_images",
]
