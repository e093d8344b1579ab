"""Image collections: a list of 2-D grayscale images, or Olshausen's (H, W, M) stack.

Olshausen's ``IMAGES.mat`` stores its M images MATLAB-style along the last axis, while the
scikit-image photographs come as separate arrays of different sizes. Every function of
:mod:`pyro_vsc.data` accepts both and works on the list form returned here.
"""

import numpy as np


def as_image_list(images):
    """Return ``images`` as a list of 2-D real arrays (views where possible, no copies).

    :param images: an ``(H, W, M)`` array (M images along the last axis, as in ``IMAGES.mat``),
        a single ``(H, W)`` array, or a sequence of 2-D arrays (sizes may differ).
    :raises ValueError: if an image is not 2-D, is empty or is not real-valued.
    """
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            image_list = [images[:, :, m] for m in range(images.shape[2])]
        elif images.ndim == 2:
            image_list = [images]
        else:
            raise ValueError(
                f"an image array must be (H, W) or (H, W, M) with M images on the last axis; "
                f"got shape {images.shape}")
    else:
        image_list = [np.asarray(image) for image in images]
    if not image_list:
        raise ValueError("the image collection is empty; give at least one 2-D image")
    for index, image in enumerate(image_list):
        if image.ndim != 2 or image.size == 0:
            raise ValueError(
                f"image {index} must be a non-empty 2-D grayscale array; got shape {image.shape}")
        if not (np.issubdtype(image.dtype, np.floating) or np.issubdtype(image.dtype, np.integer)):
            raise ValueError(f"image {index} must hold real numbers; got dtype {image.dtype}")
    return image_list
