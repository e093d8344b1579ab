"""Square image patches at randomly drawn, distinct positions (§4.1: 16×16 patches).

A patch position is ``(image, row, col)``, the image index and the top-left pixel of the patch.
Positions are drawn as distinct flat indices into the list of all positions of all images, and
only the drawn ones are ever created: the memory used grows with the number of patches asked
for, never with the number of positions available (10 images of 512×512 hold 2.5 million
16×16 positions, 5 GB as float64 patches).
"""

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .images import as_image_list


def _check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")


def positions_per_image(image_shapes, patch_size):
    """Number of ``patch_size``×``patch_size`` positions in each image: ``(H-p+1)(W-p+1)``.

    :param image_shapes: sequence of ``(H, W)``.
    :raises ValueError: if the patch does not fit in some image.
    """
    _check_count("patch_size", patch_size, 1)
    counts = []
    for index, (height, width) in enumerate(image_shapes):
        if patch_size > min(height, width):
            raise ValueError(
                f"patch_size={patch_size} does not fit in image {index} of shape "
                f"({height}, {width}); use patches at most {min(height, width)} pixels wide")
        counts.append((height - patch_size + 1) * (width - patch_size + 1))
    if not counts:
        raise ValueError("no images given; patches need at least one image")
    return counts


def _distinct_flat_indices(total, num, rng):
    """``num`` distinct integers of ``[0, total)`` drawn uniformly without replacement, in the
    order drawn (so any prefix is itself such a sample).

    Rejection sampling in vectorised rounds: each round draws enough candidates to fill the gap
    at the current acceptance rate ``(total - taken) / total`` and keeps the first occurrence of
    each new value. Memory is O(num) unless num is close to total.
    """
    chosen = np.empty(0, dtype=np.int64)
    while chosen.size < num:
        missing = num - chosen.size
        draws = math.ceil(1.1 * missing * total / (total - chosen.size)) + 16
        merged = np.concatenate([chosen, rng.integers(0, total, size=draws, dtype=np.int64)])
        _, first_occurrence = np.unique(merged, return_index=True)
        chosen = merged[np.sort(first_occurrence)][:num]
    return chosen


def sample_patch_positions(image_shapes, patch_size, num_positions, rng):
    """Draw ``num_positions`` distinct patch positions uniformly over all positions of all images.

    :param image_shapes: sequence of ``(H, W)`` image shapes.
    :param int patch_size: side p of the square patches.
    :param int num_positions: how many distinct positions to draw.
    :param rng: a ``numpy.random.Generator`` or an integer seed.
    :returns: int64 array ``(num_positions, 3)`` of ``(image, row, col)`` in random order; its
        first k rows are a uniform sample of k positions, so consecutive slices are disjoint
        random subsets (e.g. train, then validation).
    :raises ValueError: if the patch does not fit or fewer distinct positions exist than asked.
    """
    image_shapes = [tuple(shape) for shape in image_shapes]
    counts = positions_per_image(image_shapes, patch_size)
    _check_count("num_positions", num_positions, 0)
    total = sum(counts)
    if num_positions > total:
        raise ValueError(
            f"asked for {num_positions} distinct patch positions but the images hold only {total} "
            f"of size {patch_size}×{patch_size}; ask for fewer patches or give more images")
    flat = _distinct_flat_indices(total, num_positions, np.random.default_rng(rng))
    offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
    widths = np.array([width - patch_size + 1 for _, width in image_shapes], dtype=np.int64)
    image = np.searchsorted(offsets, flat, side="right") - 1
    row, col = np.divmod(flat - offsets[image], widths[image])
    return np.stack([image, row, col], axis=1)


def extract_patches(images, positions, patch_size, dtype=np.float32):
    """Copy the patches at ``positions`` out of ``images``, flattened row-major.

    :param images: see :func:`pyro_vsc.data.images.as_image_list`.
    :param positions: int array ``(n, 3)`` of ``(image, row, col)`` top-left corners, as from
        :func:`sample_patch_positions`.
    :param int patch_size: side p.
    :param dtype: dtype of the result.
    :returns: array ``(n, p*p)``; entry ``[k, i*p + j]`` is pixel ``(row_k + i, col_k + j)``.
    :raises ValueError: for positions outside the images.
    """
    image_list = as_image_list(images)
    shapes = [image.shape for image in image_list]
    positions_per_image(shapes, patch_size)
    positions = np.asarray(positions)
    if positions.ndim != 2 or positions.shape[1] != 3 or not np.issubdtype(positions.dtype,
                                                                           np.integer):
        raise ValueError(f"positions must be an integer array (n, 3) of (image, row, col); got "
                         f"{positions.dtype} array of shape {positions.shape}")
    image_index = positions[:, 0]
    if image_index.size and (image_index.min() < 0 or image_index.max() >= len(image_list)):
        raise ValueError(f"image indices must lie in [0, {len(image_list) - 1}]")
    last_row = np.array([height - patch_size for height, _ in shapes])[image_index]
    last_col = np.array([width - patch_size for _, width in shapes])[image_index]
    outside = ((positions[:, 1] < 0) | (positions[:, 1] > last_row)
               | (positions[:, 2] < 0) | (positions[:, 2] > last_col))
    if outside.any():
        raise ValueError(f"{int(outside.sum())} patch(es) reach outside their image, first at "
                         f"(image, row, col) = {tuple(positions[np.argmax(outside)].tolist())}")
    patches = np.empty((len(positions), patch_size, patch_size), dtype=dtype)
    for index in np.unique(image_index):
        selected = np.flatnonzero(image_index == index)
        windows = sliding_window_view(image_list[index], (patch_size, patch_size))
        patches[selected] = windows[positions[selected, 1], positions[selected, 2]]
    return patches.reshape(len(positions), patch_size * patch_size)
