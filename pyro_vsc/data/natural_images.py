"""Natural images for the linear-generator experiment (§4.1, Appendix D).

Two sources:

* Olshausen's own ten whitened 512×512 images, ``IMAGES.mat`` (the data of the paper), read by
  :func:`load_images_mat`. The file must be downloaded by hand from :data:`IMAGES_MAT_URL`.
* By default, natural photographs shipped inside scikit-image (no download), whitened here by
  Olshausen's recipe (:mod:`pyro_vsc.data.whitening`); see :data:`SKIMAGE_PHOTOGRAPHS`.
"""

from pathlib import Path

import numpy as np
import scipy.io
import skimage
import skimage.color
import skimage.data
import skimage.util

from .whitening import DEFAULT_F0_FRACTION, DEFAULT_VARIANCE, whiten_images

#: Where Olshausen distributes his whitened images.
IMAGES_MAT_URL = "http://www.rctn.org/bruno/sparsenet/IMAGES.mat"
#: The variable of ``IMAGES.mat`` holding the (512, 512, 10) stack.
IMAGES_MAT_KEY = "IMAGES"

#: Real photographs bundled with scikit-image, used (as their largest centred square) instead of
#: Olshausen's images when those are not at hand. Like Olshausen's ten images they are
#: photographs of scenes, objects and textures with natural 1/f-like spectra; ten images
#: 300-512 pixels wide give about 2 million distinct 16×16 patch positions. Left out on purpose:
#: synthetic images (checkerboard, binary_blobs, shepp_logan_phantom, colorwheel, logo, horse),
#: text (page, text), microscopy and medical images (cell, immunohistochemistry, retina,
#: microaneurysms), hubble_deep_field (mostly dark sky with point sources), coins (repeated
#: objects on a flat background), clock (motion-blurred on purpose), cat (the same photograph as
#: chelsea), lfw_subset (25×25 faces), brick (a man-made periodic texture: its whitened
#: spectrum holds five times more energy in vertical than in horizontal edges, and its patches
#: taught the dictionary vertical stripes), and every image that scikit-image must download first.
SKIMAGE_PHOTOGRAPHS = (
    "camera", "astronaut", "coffee", "chelsea", "rocket",
    "grass", "gravel", "moon", "motorcycle_left",
)


def _load_skimage_photograph(name):
    if name == "motorcycle_left":
        return skimage.data.stereo_motorcycle()[0]
    return getattr(skimage.data, name)()


def largest_centred_square(image):
    """The largest square of ``image`` centred on its centre (rows/columns cut evenly)."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top:top + side, left:left + side]


def skimage_photographs():
    """The :data:`SKIMAGE_PHOTOGRAPHS` as square grayscale float64 images with values in [0, 1].

    Colour photographs are converted to luminance (``skimage.color.rgb2gray``), then each image is
    cut to its largest centred square so that the N×N whitening filter applies.

    :returns: list of 2-D arrays, in the order of :data:`SKIMAGE_PHOTOGRAPHS`.
    """
    photographs = []
    for name in SKIMAGE_PHOTOGRAPHS:
        image = _load_skimage_photograph(name)
        if image.ndim == 3:
            gray = skimage.color.rgb2gray(image)
        else:
            gray = skimage.util.img_as_float(image)
        photographs.append(largest_centred_square(np.asarray(gray, dtype=np.float64)))
    return photographs


def whitened_skimage_images(variance=DEFAULT_VARIANCE, f0_fraction=DEFAULT_F0_FRACTION):
    """The scikit-image photographs whitened by Olshausen's recipe, each scaled to ``variance``.

    Each image is scaled on its own (``per_image=True`` of :func:`whiten_images`): these
    photographs mix scenes with close-up textures whose whitened variances differ up to 15-fold
    (grass 0.31 vs coffee 0.02 under a joint factor), and jointly scaled, two texture images
    would dominate the patch statistics.

    :returns: list of square float64 images of mean 0 (sides 300-512 pixels).
    """
    return whiten_images(skimage_photographs(), variance=variance, f0_fraction=f0_fraction,
                         per_image=True)


def skimage_source_identity():
    """What determines :func:`whitened_skimage_images` besides its arguments (for cache keys)."""
    return {"source": "skimage", "skimage_version": skimage.__version__,
            "photographs": list(SKIMAGE_PHOTOGRAPHS), "crop": "largest_centred_square",
            "scaling": "per_image"}


def _existing_images_mat(path):
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Olshausen's whitened images were not found at {path}. Download {IMAGES_MAT_URL} "
            f"(about 20 MB) and save it as {path}, or pass the path where you saved it.")
    return path


def images_mat_identity(path):
    """What identifies the contents of an ``IMAGES.mat`` file without reading it (for cache keys):
    its absolute path, modification time and size.

    :raises FileNotFoundError: as :func:`load_images_mat`.
    """
    path = _existing_images_mat(path).resolve()
    stat = path.stat()
    return {"source": "IMAGES.mat", "path": str(path), "mtime_ns": stat.st_mtime_ns,
            "size": stat.st_size}


def load_images_mat(path):
    """Read Olshausen's already whitened images from ``IMAGES.mat``.

    :param path: the file, downloaded from :data:`IMAGES_MAT_URL`.
    :returns: float array ``(N, N, M)``, M square images along the last axis (the original file
        holds ``(512, 512, 10)`` float64 images of variance 0.1), returned as stored; a single
        ``(N, N)`` image (as MATLAB saves a stack of one) comes back as ``(N, N, 1)``.
    :raises FileNotFoundError: if there is no file at ``path`` (the message says where to get it).
    :raises ValueError: if the file is not a readable MATLAB file, has no ``IMAGES`` variable, or
        that variable is not a 3-D float stack of square images free of NaN and infinity.
    """
    path = _existing_images_mat(path)
    try:
        contents = scipy.io.loadmat(path)
    except NotImplementedError as error:
        raise ValueError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; re-save it in MATLAB "
            f"with save('IMAGES.mat', 'IMAGES', '-v7') or download {IMAGES_MAT_URL} again"
        ) from error
    except Exception as error:  # scipy fails on foreign bytes with many types (IndexError, ...)
        raise ValueError(
            f"{path} could not be read as a MATLAB .mat file ({error}); download {IMAGES_MAT_URL} "
            f"again") from error
    if IMAGES_MAT_KEY not in contents:
        found = sorted(key for key in contents if not key.startswith("__"))
        raise ValueError(
            f"{path} has no variable {IMAGES_MAT_KEY!r} (it holds {found or 'no variables'}); "
            f"Olshausen's file stores its images as {IMAGES_MAT_KEY!r} with shape (512, 512, 10)")
    images = np.asarray(contents[IMAGES_MAT_KEY])
    if images.ndim == 2:  # MATLAB drops the trailing singleton axis of a single image
        images = images[:, :, None]
    if images.ndim != 3 or images.shape[0] != images.shape[1] or 0 in images.shape:
        raise ValueError(
            f"{IMAGES_MAT_KEY!r} in {path} must be a stack (N, N, M) of M >= 1 square images along "
            f"the last axis, like Olshausen's (512, 512, 10); got shape "
            f"{contents[IMAGES_MAT_KEY].shape}")
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"{IMAGES_MAT_KEY!r} in {path} must hold floating-point (whitened) pixels; got dtype "
            f"{images.dtype}. Whiten raw images with pyro_vsc.data.whiten_images first.")
    finite = np.isfinite(images).all(axis=(0, 1))
    if not finite.all():
        bad = np.flatnonzero(~finite).tolist()
        raise ValueError(
            f"{IMAGES_MAT_KEY!r} in {path} contains NaN or infinite pixels in image(s) {bad} "
            f"(0-based, last axis); the file is damaged, download {IMAGES_MAT_URL} again")
    return images
