"""Where the whitened images of the patch data come from (``data.images``).

* ``skimage`` (default): the photographs shipped with scikit-image, whitened here
  (:func:`pyro_vsc.data.natural_images.whitened_skimage_images`).
* A ``.mat`` file: Olshausen's already whitened ``IMAGES.mat`` (the paper's data), as stored.
* A folder: every PNG, JPEG, TIFF or ``.npy`` image directly inside it (:mod:`.image_files`),
  any sizes; a single such file is a collection of one.
* A ``.npy`` or ``.npz`` file: a stack of 2-D images, ``(N, H, W)`` or Olshausen's ``(H, W, N)``
  (``layout``), or one ``(H, W)`` image.

Your own images (folders, files, stacks) are prepared exactly as the default photographs are:
converted to grayscale floats, cut to their largest centred square, whitened with Olshausen &
Field's filter and scaled to variance 0.1 each on its own (``per_image=True`` of
:func:`~pyro_vsc.data.whitening.whiten_images`): a square grayscale image gives the same pixels
whichever way it arrives. They are checked and measured first and then read and whitened one at
a time while their patches are copied, so that memory holds one image, not the collection.

Each source has a cache identity that changes when its images can have changed: for files,
their absolute paths, sizes and modification times (a file added, removed, replaced or edited
changes it), the reader versions and the preparation recipe.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import PIL
import tifffile

from .array_files import ARRAY_SUFFIXES, array_shape, check_real, read_array
from .image_files import IMAGE_SUFFIXES, image_files, read_grayscale, to_grayscale
from .images import as_image_list
from .natural_images import (
    SKIMAGE_PHOTOGRAPHS,
    images_mat_identity,
    largest_centred_square,
    load_images_mat,
    skimage_source_identity,
    whitened_skimage_images,
)
from .whitening import DEFAULT_F0_FRACTION, DEFAULT_VARIANCE, whiten_images

#: Layouts of a 3-D image stack: images along the first axis, or along the last (Olshausen's).
LAYOUTS = ("NHW", "HWN")
#: Bumped whenever the preparation of a user's images changes for the same files.
OWN_IMAGES_FORMAT = 1
#: How a user's images are prepared (part of their cache identity).
OWN_IMAGES_RECIPE = {
    "format": OWN_IMAGES_FORMAT, "grayscale": "img_as_float, alpha over white, rgb2gray",
    "crop": "largest_centred_square", "scaling": "per_image", "variance": DEFAULT_VARIANCE,
    "f0_fraction": DEFAULT_F0_FRACTION, "pillow": PIL.__version__, "tifffile": tifffile.__version__,
}
_LISTED = 5


@dataclass(frozen=True)
class WhitenedImages:
    """Whitened square images, measured before any is whitened.

    :ivar shapes: ``(N, N)`` of every image, in order.
    :ivar images: returns an iterator over the whitened float64 images, in order, each read
        when it is reached.
    """

    shapes: list
    images: Callable[[], Iterator[np.ndarray]]


@dataclass(frozen=True)
class ImageSource:
    """A collection of images named by ``data.images``.

    :ivar identity: JSON-able description of everything the images depend on (cache key).
    :ivar description: one line for the run's record.
    :ivar read: reads and checks the images: ``() -> WhitenedImages``.
    """

    identity: dict
    description: str
    read: Callable[[], WhitenedImages]


def _in_memory(images):
    image_list = as_image_list(images)
    return WhitenedImages([image.shape for image in image_list], lambda: iter(image_list))


def _whitened(gray):
    """The default photographs' recipe for one grayscale image: largest centred square, whitened,
    scaled to variance 0.1 on its own."""
    return whiten_images([largest_centred_square(gray)], per_image=True)[0]


def _listed(items):
    shown = ", ".join(items[:_LISTED])
    return shown + (f" and {len(items) - _LISTED} more" if len(items) > _LISTED else "")


def _own_images(names, load, patch_size):
    """Checks and measures images ``load(k)`` (2-D grayscale floats) named ``names[k]``, then
    whitens them one at a time.

    :raises ValueError: naming the images with NaN or infinite pixels, those smaller than a
        patch (with their sizes) and those that are constant on their square.
    """
    shapes, nonfinite, small, constant = [], [], [], []
    for index, name in enumerate(names):
        gray = load(index)
        height, width = gray.shape
        if not np.isfinite(gray).all():
            nonfinite.append(name)
        elif min(height, width) < patch_size:
            small.append(f"{name} ({height}×{width})")
        elif np.ptp(largest_centred_square(gray)) == 0:
            constant.append(name)
        side = min(height, width)
        shapes.append((side, side))
    if nonfinite:
        raise ValueError(f"NaN or infinite pixels in {_listed(nonfinite)}; remove or repair "
                         f"{'it' if len(nonfinite) == 1 else 'them'}")
    if small:
        raise ValueError(f"images smaller than a {patch_size}×{patch_size} patch "
                         f"(data.patch_size={patch_size}): {_listed(small)}; remove them or use "
                         f"a smaller data.patch_size")
    if constant:
        raise ValueError(f"constant images (one value on their largest centred square, nothing to "
                         f"whiten): {_listed(constant)}; remove them")
    return WhitenedImages(shapes, lambda: (_whitened(load(index)) for index in range(len(names))))


def _file_identity(path):
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _image_files_source(path, patch_size):
    files = image_files(path) if path.is_dir() else [path]
    identity = {"source": "image files", **OWN_IMAGES_RECIPE,
                "files": [_file_identity(file) for file in files]}
    where = f"the folder {path}" if path.is_dir() else str(path)
    description = (f"{len(files)} image(s) from {where}, grayscale, largest centred squares, "
                   f"Olshausen-Field whitened, each scaled to variance {DEFAULT_VARIANCE}")
    return ImageSource(identity, description, lambda: _own_images(
        [str(file) for file in files], lambda index: read_grayscale(files[index]), patch_size))


def stack_layout(shape, layout, path):
    """Which axis of a 3-D stack counts the images: ``"NHW"`` (first) or ``"HWN"`` (last).

    Without a ``layout`` (None) the images are taken to be square, as whitening needs them (and
    as Olshausen's and most prepared stacks are): ``(N, H, H)`` with ``N ≠ H`` is NHW,
    ``(H, H, N)`` with ``N ≠ H`` is HWN. Other shapes, ``(H, H, H)`` or non-square images, need
    ``layout``.

    :raises ValueError: for an unknown layout, or an ambiguous shape without one.
    """
    if layout is not None:
        if layout not in LAYOUTS:
            raise ValueError(f"data.layout must be {' or '.join(LAYOUTS)} (or null: from the "
                             f"shape); got {layout!r}")
        return layout
    first, second, third = shape
    square_nhw, square_hwn = second == third, first == second
    if square_nhw != square_hwn:
        return "NHW" if square_nhw else "HWN"
    raise ValueError(
        f"cannot tell how the stack {path} of shape {tuple(shape)} is laid out: set "
        f"data.layout=NHW ({first} images of {second}×{third}) or data.layout=HWN "
        f"({third} images of {first}×{second}, Olshausen's layout)")


def _stack_source(path, key, layout, patch_size):
    shape = array_shape(path, key, setting="data.images")
    if len(shape) not in (2, 3):
        raise ValueError(f"data.images={path} holds an array of shape {tuple(shape)}; an image "
                         f"stack must be (N, H, W) or (H, W, N) of grayscale images, or one "
                         f"(H, W) image")
    layout = "NHW" if len(shape) == 2 else stack_layout(shape, layout, path)
    identity = {"source": "image stack", **OWN_IMAGES_RECIPE, **_file_identity(path.resolve()),
                "key": key, "layout": layout}
    count = 1 if len(shape) == 2 else shape[0] if layout == "NHW" else shape[2]
    description = (f"{count} image(s) of the stack {path} ({layout}), largest centred squares, "
                   f"Olshausen-Field whitened, each scaled to variance {DEFAULT_VARIANCE}")

    def read():
        stack = read_array(path, key, setting="data.images")
        check_real(stack, str(path))
        if stack.ndim == 2:
            stack = stack[None]
        elif layout == "HWN":
            stack = np.moveaxis(stack, 2, 0)
        names = [f"image {index} of {path}" for index in range(len(stack))]
        return _own_images(names, lambda index: to_grayscale(stack[index], names[index]),
                           patch_size)

    return ImageSource(identity, description, read)


def image_source(images, patch_size, layout=None, key=None):
    """The :class:`ImageSource` named by ``images`` (see the module's description).

    :param images: ``"skimage"``, or the path of a ``.mat`` file, a folder, an image file or a
        ``.npy``/``.npz`` stack.
    :param int patch_size: side of the patches that will be drawn (images must hold one).
    :param layout: ``"NHW"``, ``"HWN"`` or None (from the shape), for 3-D stacks.
    :param key: the array of an ``.npz`` stack (None: its only array).
    :raises FileNotFoundError: for a path that does not exist.
    :raises ValueError: for a path of another type.
    """
    if images == "skimage":
        identity = {**skimage_source_identity(), "variance": DEFAULT_VARIANCE,
                    "f0_fraction": DEFAULT_F0_FRACTION}
        description = (f"scikit-image photographs {', '.join(SKIMAGE_PHOTOGRAPHS)} (largest "
                       f"centred squares), Olshausen-Field whitened, variance {DEFAULT_VARIANCE}")
        return ImageSource(identity, description, lambda: _in_memory(whitened_skimage_images()))
    path = Path(images).expanduser()
    suffix = path.suffix.lower()
    if suffix == ".mat":
        identity = images_mat_identity(path)
        return ImageSource(identity, f"Olshausen's whitened IMAGES.mat at {identity['path']}",
                           lambda: _in_memory(load_images_mat(path)))
    if not path.exists():
        raise FileNotFoundError(f"data.images={path}: no such file or folder")
    if suffix in ARRAY_SUFFIXES:
        return _stack_source(path, key, layout, patch_size)
    if path.is_dir() or suffix in IMAGE_SUFFIXES:
        return _image_files_source(path.resolve(), patch_size)
    raise ValueError(f"data.images={path} is neither a folder of images, an image file "
                     f"({', '.join(IMAGE_SUFFIXES)}), a .npy/.npz stack, Olshausen's IMAGES.mat "
                     f"nor 'skimage'")
