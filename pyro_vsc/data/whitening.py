r"""Olshausen & Field's whitening of natural images (§4.1, Appendix D of the paper).

The paper trains its linear generator on "the whitened image patches used in (Olshausen & Field,
1996)". Those images were prepared by Olshausen's recipe (sparsenet, "make your own images"):

1. rescale each N×N image to zero mean and unit variance;
2. multiply its 2-D Fourier transform by the zero-phase filter

   .. math:: R(f) = f\,e^{-(f/f_0)^4}, \qquad f = \sqrt{f_x^2 + f_y^2}, \qquad f_0 = 0.4\,N

   with frequencies in cycles/picture on the grid :math:`-N/2, \dots, N/2-1`;
3. keep the real part of the inverse transform;
4. scale all images together to variance 0.1.

The ramp :math:`f` flattens the roughly :math:`1/f` amplitude spectrum of natural images; the
:math:`e^{-(f/f_0)^4}` factor rolls off the highest frequencies, where noise and the
anisotropy of the square sampling lattice dominate. Since :math:`f_0` is proportional to N the
cut-off is the same 0.4 cycles/pixel for every image size.
"""

import math

import numpy as np

from .images import as_image_list

#: Olshausen's roll-off frequency as a fraction of the image side, f0 = 0.4 N cycles/picture.
DEFAULT_F0_FRACTION = 0.4
#: Olshausen's common variance of the whitened images.
DEFAULT_VARIANCE = 0.1


def _check_positive(name, value):
    if not (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")


def olshausen_filter(n, f0_fraction=DEFAULT_F0_FRACTION):
    r"""The whitening filter :math:`R(f) = f e^{-(f/f_0)^4}` on an n×n grid, in FFT order.

    Entry ``[k, l]`` multiplies the coefficient ``numpy.fft.fft2(image)[k, l]``, whose frequency
    is ``(fftfreq(n)[k] * n, fftfreq(n)[l] * n)`` cycles/picture; so ``R[0, 0] = 0`` removes the
    mean. For even n this is exactly Olshausen's ``fftshift(filt)`` built on the grid
    ``-N/2:N/2-1``; for odd n it uses the symmetric integer grid, so the filtered image stays real.

    :param int n: image side in pixels (≥ 1).
    :param float f0_fraction: roll-off :math:`f_0` as a fraction of n (Olshausen: 0.4).
    :returns: float64 array of shape ``(n, n)``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the image side n must be an integer >= 1; got {n!r}")
    _check_positive("f0_fraction", f0_fraction)
    frequencies = np.fft.fftfreq(n, d=1.0 / n)
    rho = np.hypot(frequencies[:, None], frequencies[None, :])
    return rho * np.exp(-((rho / (f0_fraction * n)) ** 4))


def whiten_image(image, f0_fraction=DEFAULT_F0_FRACTION):
    """Steps 1-3 of Olshausen's recipe for one square image (no common rescaling yet).

    :param image: a square 2-D array (any real dtype).
    :param float f0_fraction: roll-off as a fraction of the side, see :func:`olshausen_filter`.
    :returns: the whitened float64 image, same shape, mean exactly 0 (R(0) = 0).
    :raises ValueError: for a non-square, constant or non-finite image.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or image.shape[0] != image.shape[1]:
        raise ValueError(
            f"whitening needs a square 2-D image (the filter is defined on an N×N grid); got shape "
            f"{image.shape}. Crop it to a square first.")
    if not np.isfinite(image).all():
        raise ValueError("the image contains NaN or infinite pixels; it cannot be whitened")
    std = image.std()
    if std == 0:
        raise ValueError("the image is constant (zero variance); it cannot be whitened")
    standardized = (image - image.mean()) / std
    spectrum = np.fft.fft2(standardized) * olshausen_filter(image.shape[0], f0_fraction)
    return np.fft.ifft2(spectrum).real


def whiten_images(images, variance=DEFAULT_VARIANCE, f0_fraction=DEFAULT_F0_FRACTION,
                  per_image=False):
    """Olshausen's full recipe: whiten each square image, then scale all to a common variance.

    Step 4 divides every image by one common factor so that the pixel variance over the whole
    collection equals ``variance``. For images of equal size this is Olshausen's
    ``sqrt(0.1) * IMAGES / sqrt(mean(var(IMAGES)))`` (up to var's N²-1 normaliser); for mixed sizes
    every pixel counts equally, so that uniformly drawn patch pixels have variance ``variance``.

    With ``per_image=True`` each image is scaled to ``variance`` on its own instead. Olshausen's
    ten images are alike and the joint factor suits them; a mixed collection (scenes and
    close-up textures) can differ tenfold in whitened variance, and jointly scaled the few
    high-contrast textures would supply most of the patch energy.

    :param images: square images, see :func:`pyro_vsc.data.images.as_image_list` (sizes may differ).
    :param float variance: common pixel variance after scaling (Olshausen: 0.1).
    :param float f0_fraction: roll-off as a fraction of each image's side.
    :param bool per_image: scale every image to ``variance`` separately.
    :returns: list of whitened float64 images, in input order.
    """
    _check_positive("variance", variance)
    whitened = [whiten_image(image, f0_fraction) for image in as_image_list(images)]
    groups = [[image] for image in whitened] if per_image else [whitened]
    scaled = []
    for group in groups:
        squared_deviation = sum(float(np.sum((image - image.mean()) ** 2)) for image in group)
        pooled_variance = squared_deviation / sum(image.size for image in group)
        if pooled_variance == 0:
            raise ValueError(
                f"the whitened images are all zero: f0_fraction={f0_fraction} rolls off every "
                f"frequency present; use a larger f0_fraction (Olshausen: {DEFAULT_F0_FRACTION})")
        scale = math.sqrt(variance / pooled_variance)
        scaled.extend(image * scale for image in group)
    return scaled
