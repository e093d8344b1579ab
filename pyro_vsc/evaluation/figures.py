"""Figures that ``python -m pyro_vsc.evaluate`` writes into a run folder."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

#: Bin edges of the Jaccard histograms (Figure 5): 40 bins over [0, 1].
JACCARD_BIN_EDGES = np.linspace(0.0, 1.0, 41)


def jaccard_histogram_counts(values):
    """Counts of per-input average Jaccard indices in :data:`JACCARD_BIN_EDGES` (1 in the last bin)."""
    counts, _ = np.histogram(np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0),
                             bins=JACCARD_BIN_EDGES)
    return counts


def plot_jaccard_histogram(values, path, title=None):
    """Histogram of the average pairwise Jaccard index per input (one run's Figure 5 curve)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(np.asarray(values, dtype=np.float64), bins=JACCARD_BIN_EDGES, color="tab:blue")
    ax.set_xlabel("average pairwise Jaccard index")
    ax.set_ylabel("inputs")
    ax.set_xlim(0, 1)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_snr_bars(snr, path, title=None):
    """Bars of the mean gradient SNR per role (encoder, dictionary), ± its spread over data points.

    :param dict snr: role → 1-D array of per-data-point SNRs.
    """
    roles = list(snr)
    means = [np.nanmean(snr[role]) for role in roles]
    spreads = [np.nanstd(snr[role]) for role in roles]
    fig, ax = plt.subplots(figsize=(4, 3.5))
    ax.bar(roles, means, yerr=spreads, capsize=4, color=["tab:orange", "tab:green"][:len(roles)])
    ax.set_ylabel("gradient SNR (mean over parameters)")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
