"""Figures of the DNN-generator experiment (§4.2, Appendix G): reconstructions (Fig. 19),
estimated dictionaries (Figs. 6, 20-23), attribute-correlated entries (Fig. 8) and the
latent-dimension and sparsity sweeps (Fig. 7)."""

import math

import numpy as np
import torch

from pyro_vsc.metrics import sort_by_norm
from pyro_vsc.metrics.attribute_features import top_feature_per_attribute
from pyro_vsc.plotting import plt, tile_images


def _show(ax, grid):
    """Draws a tile grid from :func:`~pyro_vsc.plotting.tile_images` (values in [-1, 1])."""
    if grid.ndim == 3 and grid.shape[-1] == 1:
        grid = grid[..., 0]
    if grid.ndim == 3:
        ax.imshow((grid + 1) / 2)
    else:
        ax.imshow(grid, cmap="gray", vmin=-1, vmax=1)
    ax.set_axis_off()


def _save(fig, path):
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _image_strip(images, pad=1):
    """Images ``(n, C, H, W)`` in [0, 1] side by side, unscaled, as an (H, W') or (H, W', 3) array."""
    images = torch.as_tensor(images).detach().cpu().float().clamp(0, 1)
    count, channels, height, width = images.shape
    strip = torch.ones(channels, height + 2 * pad, count * (width + pad) + pad)
    for index, image in enumerate(images):
        left = pad + index * (width + pad)
        strip[:, pad:pad + height, left:left + width] = image
    return strip[0].numpy() if channels == 1 else strip.permute(1, 2, 0).numpy()


def plot_image_rows(rows, path, labels=None, title=None):
    """Saves rows of images in [0, 1], e.g. ground truth above reconstructions (Fig. 19).

    :param rows: list of tensors ``(n, C, H, W)`` with values in [0, 1], one per row.
    :param labels: optional name of each row.
    """
    count = rows[0].shape[0]
    fig, axes = plt.subplots(len(rows), 1, figsize=(1.2 * count, 1.4 * len(rows)), squeeze=False)
    for index, (ax, images) in enumerate(zip(axes[:, 0], rows)):
        strip = _image_strip(images)
        ax.imshow(strip, cmap="gray" if strip.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_axis_off()
        if labels is not None:
            ax.set_title(labels[index], fontsize=9, loc="left")
    if title:
        fig.suptitle(title)
    _save(fig, path)


def dictionary_entries(dictionary, count=64):
    """Indices of ``count`` entries of a dictionary (D, K) taken at linearly spaced ranks of the
    norm order (all entries, largest first, when K ≤ count), as Figs. 20-23 show them."""
    order = sort_by_norm(torch.as_tensor(dictionary))
    if order.numel() <= count:
        return order
    ranks = torch.linspace(0, order.numel() - 1, count).round().long()
    return order[ranks]


def plot_image_dictionary(dictionary, image_shape, path, count=64, columns=8, title=None):
    """Saves entries of an estimated dictionary as images in descending order of norm
    (Figs. 6, 20-23), each scaled symmetrically by its own largest magnitude (zero is mid-grey).

    :param dictionary: (D, K) with D = C·H·W.
    :param image_shape: (C, H, W).
    :param int count: entries shown, at linearly spaced ranks of the norm order.
    """
    dictionary = torch.as_tensor(dictionary).detach().cpu()
    indices = dictionary_entries(dictionary, count)
    atoms = dictionary[:, indices].T.reshape(-1, *image_shape)
    grid = tile_images(atoms, columns=min(columns, len(indices)))
    fig, ax = plt.subplots(figsize=(8, 8 * grid.shape[0] / grid.shape[1]))
    _show(ax, grid)
    if title:
        ax.set_title(title)
    _save(fig, path)


def plot_attribute_entries(dictionary, correlations, attribute_names, image_shape, path,
                           attributes=None, columns=8):
    r"""Fig. 8: for each attribute, the estimated dictionary entry of the latent feature with the
    largest absolute point-biserial correlation with it.

    Each entry is multiplied by the sign of the correlation, so that it shows the direction the
    images move when the attribute is present.

    :param dictionary: (D, K) estimated dictionary.
    :param correlations: (M, K) point-biserial correlations (attributes × features).
    :param attribute_names: the M attribute names.
    :param attributes: names to show (default: all).
    """
    dictionary = torch.as_tensor(dictionary).detach().cpu()
    correlations = torch.as_tensor(correlations).detach().cpu()
    names = list(attribute_names)
    shown = list(attributes) if attributes is not None else names
    unknown = sorted(set(shown) - set(names))
    if unknown:
        raise ValueError(f"unknown attributes {unknown}; the data has {names}")
    rows = math.ceil(len(shown) / columns)
    fig, axes = plt.subplots(rows, min(columns, len(shown)), squeeze=False,
                             figsize=(1.6 * min(columns, len(shown)), 1.9 * rows))
    features, values = top_feature_per_attribute(correlations)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, name in zip(axes.ravel(), shown):
        feature, value = int(features[names.index(name)]), float(values[names.index(name)])
        atom = (dictionary[:, feature] * np.sign(value)).reshape(1, *image_shape)
        _show(ax, tile_images(atom, columns=1, pad=0))
        ax.set_title(f"{name}\nz{feature}, ρ={value:+.2f}", fontsize=7)
    _save(fig, path)


def _mean_and_spread(points):
    """x → (mean, standard deviation) of the y values over runs (seeds) sharing x."""
    by_x = {}
    for x, y in points:
        by_x.setdefault(x, []).append(y)
    xs = sorted(by_x)
    return xs, [float(np.mean(by_x[x])) for x in xs], [float(np.std(by_x[x])) for x in xs]


#: Fig. 7 panels: (title, x key, y key).
SWEEP_PANELS = (
    ("multi-information (bits)", "latent_dim", "multi_information"),
    ("FID", "latent_dim", "fid"),
    ("validation MSE", "latent_dim", "mse"),
    ("validation MSE", "nonzero_pct", "mse"),
)


def plot_sweep(runs, path, title=None):
    """Fig. 7 panels from a list of run summaries: multi-information, FID and validation MSE
    against the latent dimension (runs at the default sparsity), and validation MSE against the
    % of non-zero features set by the prior (runs of a sparsity sweep). One line per prior; the
    mean over seeds with their standard deviation as error bars. Panels without data are left out.

    :param runs: dicts with ``method``, ``latent_dim``, ``nonzero_pct`` (the prior's target, or
        ``None`` outside sparsity sweeps), ``mse``, ``multi_information`` and optionally ``fid``.
    """
    panels = []
    for name, x_key, y_key in SWEEP_PANELS:
        sparsity_sweep = x_key == "nonzero_pct"
        selected = [r for r in runs if (r.get("nonzero_pct") is not None) == sparsity_sweep
                    and r.get(y_key) is not None]
        if selected:
            panels.append((name, x_key, y_key, selected))
    if not panels:
        raise ValueError("no run has the metrics of any Fig. 7 panel")
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), squeeze=False)
    for ax, (name, x_key, y_key, selected) in zip(axes[0], panels):
        for method in sorted({r["method"] for r in selected}):
            xs, means, spreads = _mean_and_spread(
                [(r[x_key], r[y_key]) for r in selected if r["method"] == method])
            ax.errorbar(xs, means, yerr=spreads, marker="o", markersize=3, capsize=2, label=method)
        if x_key == "latent_dim":
            ax.set_xscale("log", base=2)
            ax.set_xlabel("latent dimension")
        else:
            ax.set_xlabel("% non-zero set by the prior")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
