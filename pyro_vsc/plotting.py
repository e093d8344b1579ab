"""Figures written into run folders: dictionaries (Figs. 3, 10-18) and training curves."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _as_numpy(array):
    return array.detach().cpu().numpy() if torch.is_tensor(array) else np.asarray(array)


def tile_images(images, columns=None, pad=1):
    """Arranges images (n, h, w) or (n, c, h, w) into one padded grid image (H, W[, c]).

    Each image is rescaled symmetrically to [-1, 1] by its own max |value| (so zero is mid-grey),
    as dictionary atoms are usually shown.
    """
    images = _as_numpy(images).astype(np.float64)
    if images.ndim == 4:
        images = np.moveaxis(images, 1, -1)
    count = images.shape[0]
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    height, width = images.shape[1:3]
    grid = np.zeros((rows * (height + pad) + pad, columns * (width + pad) + pad) + images.shape[3:])
    for index, image in enumerate(images):
        peak = np.abs(image).max()
        image = image / peak if peak > 0 else image
        r, c = divmod(index, columns)
        top, left = pad + r * (height + pad), pad + c * (width + pad)
        grid[top:top + height, left:left + width] = image
    return grid


def dictionary_order(dictionary):
    """Column indices of a dictionary (D, K) by descending Euclidean norm."""
    return torch.as_tensor(dictionary).norm(dim=0).argsort(descending=True)


def plot_dictionary(dictionary, path, patch_shape=None, title=None, columns=None, width=8.0, dpi=120):
    """Saves the columns of a dictionary (D, K) as tiles sorted by norm (Fig. 3, Figs. 10-17).

    :param patch_shape: shape of one atom, e.g. (16, 16) or (3, 64, 64); default: square gray
        tiles when D is a square, otherwise each atom is one column of D pixels, side by side
        (the sorted dictionary as a matrix, for vectors that are not square patches).
    :param float width: the figure's width in inches (× ``dpi`` pixels).
    """
    dictionary = torch.as_tensor(_as_numpy(dictionary))
    atoms = dictionary[:, dictionary_order(dictionary)].T
    if patch_shape is None:
        side = math.isqrt(dictionary.shape[0])
        if side * side == dictionary.shape[0]:
            patch_shape = (side, side)
        else:
            patch_shape, columns = (dictionary.shape[0], 1), columns or dictionary.shape[1]
    grid = tile_images(atoms.reshape(-1, *patch_shape), columns=columns)
    fig, ax = plt.subplots(figsize=(width, width * grid.shape[0] / grid.shape[1]))
    if grid.ndim == 3:
        ax.imshow((grid + 1) / 2)
    else:
        ax.imshow(grid, cmap="gray", vmin=-1, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=min(12, 2 * width))
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


#: What moves during training: the loss without the likelihood's constant (else the exact loss),
#: its reconstruction and KL parts, the validation objective (10) and the sparsity.
TRAINING_CURVES = (("train_loss_without_constant", "train_loss"), "train_recon", "train_kl",
                   "val_objective", "val_nonzero_pct")


def plot_training_curves(records, path, keys=TRAINING_CURVES):
    """Saves one panel per metric key against epoch from a list of per-epoch metric records; a
    tuple of keys is one panel showing the first key the records have."""
    keys = [next((k for k in key if any(k in record for record in records)), None)
            if isinstance(key, tuple) else key for key in keys]
    keys = [key for key in keys if key is not None and any(key in record for record in records)]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        points = [(r["epoch"], r[key]) for r in records if key in r and r[key] is not None]
        if points:
            ax.plot(*zip(*points), marker="o", markersize=3)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
