"""Image files of a user's own collection, read as grayscale arrays.

PNG and JPEG files are decoded by Pillow, TIFF files by tifffile (any bit depth, floating-point
samples), ``.npy`` files by NumPy (one 2-D image each). Every image becomes one 2-D float array
the way the default photographs do (:func:`pyro_vsc.data.natural_images.skimage_photographs`):
integers are scaled to [0, 1] by ``skimage.util.img_as_float`` (8- and 16-bit alike), colour
is converted to luminance by ``skimage.color.rgb2gray`` (ITU-R BT.709 weights), and an alpha
channel is composited over white first, so that transparent parts are a flat background rather
than whatever colour they hide. Camera JPEGs are turned upright by their EXIF orientation.
Palette images are expanded to their colours; CMYK, YCbCr and the other colour spaces Pillow
knows are converted to RGB first.
"""

from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps
import skimage.color
import skimage.util
import tifffile

from .array_files import check_real

#: Suffixes (lower case) of the files read as images: ``.npy`` files hold one 2-D image each.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy")
_TIFF_SUFFIXES = (".tif", ".tiff")
#: Pillow modes read as they are (one or several samples per pixel).
_PILLOW_DIRECT_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "RGB", "RGBA"}


class _NotOneImage(ValueError):
    """A file that was decoded but is not one 2-D image (its message names it)."""


def image_files(folder):
    """The image files directly inside ``folder`` (see :data:`IMAGE_SUFFIXES`), sorted by name.

    Hidden files (names starting with ``.``, such as macOS's ``._photo.jpg``) and files of other
    types are left out; sub-folders are not searched.

    :raises ValueError: if the folder holds no image file (the message says what it holds).
    """
    folder = Path(folder)
    entries = sorted(folder.iterdir(), key=lambda path: path.name)
    files = [path for path in entries if path.is_file() and not path.name.startswith(".")
             and path.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        others = [path.name for path in entries if not path.name.startswith(".")]
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        holds = f"it holds only other files: {shown}" if others else "it is empty"
        raise ValueError(f"no images in the folder {folder} ({holds}); it must hold PNG, JPEG, "
                         f"TIFF or .npy images")
    return files


def _composited_over_white(samples):
    """(H, W, C) colour or gray samples followed by alpha → the colour over a white background."""
    samples = skimage.util.img_as_float(samples)
    colour, alpha = samples[..., :-1], samples[..., -1:]
    return colour * alpha + (1.0 - alpha)


def to_grayscale(samples, name):
    """One 2-D float image from decoded ``samples``: (H, W) gray, or (H, W, C) with C = 2 (gray +
    alpha), 3 (RGB) or 4 (RGBA).

    :param str name: the image's name, for messages.
    :raises ValueError: for other shapes or non-real values.
    """
    samples = np.asarray(samples)
    check_real(samples, name)
    if samples.ndim == 2:
        return np.asarray(skimage.util.img_as_float(samples), dtype=np.float64)
    if samples.ndim == 3 and samples.shape[-1] in (2, 3, 4):
        if samples.shape[-1] in (2, 4):
            samples = _composited_over_white(samples)
        if samples.shape[-1] == 1:
            return np.asarray(samples[..., 0], dtype=np.float64)
        return np.asarray(skimage.color.rgb2gray(samples), dtype=np.float64)
    raise ValueError(f"{name} decodes to an array of shape {samples.shape}; an image must be "
                     f"(H, W) gray or (H, W, C) with 2 (gray + alpha), 3 (RGB) or 4 (RGBA) samples")


def _pillow_samples(path):
    with PIL.Image.open(path) as image:
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            raise _NotOneImage(f"{path} holds {frames} frames; give one image per file")
        image = PIL.ImageOps.exif_transpose(image)
        if image.mode not in _PILLOW_DIRECT_MODES:
            has_alpha = "A" in image.mode or "transparency" in image.info
            image = image.convert("RGBA" if has_alpha else "RGB")
        return np.asarray(image)


def _tiff_samples(path):
    with tifffile.TiffFile(path) as tiff:
        if len(tiff.pages) > 1:
            raise _NotOneImage(f"{path} holds {len(tiff.pages)} pages; give one image per file (or "
                             f"all of them as one .npy stack, data.images=<stack.npy>)")
        page = tiff.pages[0]
        samples = page.asarray()
        axes = page.axes
        if set(axes) - set("YXS"):
            raise _NotOneImage(f"{path} has axes {axes!r}; an image file must hold one 2-D image "
                             f"(axes YX, with samples S)")
        if "S" in axes:
            samples = np.moveaxis(samples, axes.index("S"), -1)
        photometric = page.photometric
        if photometric == tifffile.PHOTOMETRIC.PALETTE:
            samples = np.moveaxis(page.colormap[:, samples], 0, -1)
        elif photometric == tifffile.PHOTOMETRIC.MINISWHITE:
            samples = (np.iinfo(samples.dtype).max - samples if np.issubdtype(samples.dtype, np.integer)
                       else -samples)
        elif photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB):
            raise _NotOneImage(f"{path} stores its colours as {photometric.name}; save it as "
                             f"grayscale or RGB")
        return samples


def _npy_samples(path):
    samples = np.load(path, allow_pickle=False)
    if samples.ndim != 2:
        raise _NotOneImage(f"{path} holds an array of shape {samples.shape}; a .npy file in an image "
                         f"folder must hold one 2-D grayscale image (pass a stack of images as "
                         f"data.images=<stack.npy> instead)")
    return samples


def read_grayscale(path):
    """The image file ``path`` as a 2-D float64 grayscale array (see the module's description).

    :raises ValueError: naming the file, if it cannot be read or is not one 2-D image.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    reader = (_tiff_samples if suffix in _TIFF_SUFFIXES else _npy_samples if suffix == ".npy"
              else _pillow_samples)
    try:
        samples = reader(path)
    except _NotOneImage:
        raise
    except Exception as error:  # the decoders fail on foreign bytes with many types
        raise ValueError(f"{path} could not be read as an image ({error})") from error
    return to_grayscale(samples, str(path))
