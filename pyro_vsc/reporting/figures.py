"""Figures of the report: gradient SNR bars (Figures 4 and 9) and Jaccard histograms (Figure 5)."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pyro_vsc.evaluation.figures import JACCARD_BIN_EDGES  # noqa: E402
from .aggregate import group_by, summarize  # noqa: E402
from .tables import method_labels, method_order, table1_runs  # noqa: E402

SNR_ROLES = {"snr_encoder": "(a) inference network", "snr_dictionary": "(b) linear generator"}


def plot_snr(evaluations, path):
    """Figures 4/9: mean gradient SNR per method, one bar per J, error bars = std over seeds.

    Uses the Table 1 runs (max-ELBO, straight-through). A cell whose runs all diverged is marked
    NaN. :returns: whether a figure was written (there must be SNR values).
    """
    runs = [e for e in table1_runs(evaluations)
            if any(e.metrics.get(key) is not None for key in SNR_ROLES)]
    if not runs:
        return False
    groups = group_by(runs, "method", "num_particles")
    methods, labels = method_order({key[0] for key in groups}), method_labels(runs)
    particles = sorted({key[1] for key in groups})
    width = 0.8 / len(particles)
    fig, axes = plt.subplots(1, len(SNR_ROLES), figsize=(6 + 1.2 * len(methods), 4), squeeze=False)
    for ax, (metric, title) in zip(axes[0], SNR_ROLES.items()):
        for index, j in enumerate(particles):
            positions = np.arange(len(methods)) + (index - (len(particles) - 1) / 2) * width
            summaries = [summarize(e.metrics.get(metric) for e in groups.get((m, j), []))
                         for m in methods]
            heights = [0.0 if math.isnan(s.mean) else s.mean for s in summaries]
            errors = [0.0 if math.isnan(s.std) else s.std for s in summaries]
            ax.bar(positions, heights, width, yerr=errors, capsize=3, label=f"J = {j}")
            for x, summary in zip(positions, summaries):
                if not summary.empty and summary.nan_count == summary.count:
                    ax.text(x, 0, "NaN", ha="center", va="bottom", rotation=90, fontsize=8)
        ax.set_xticks(np.arange(len(methods)))
        ax.set_xticklabels([labels[m] for m in methods], rotation=35, ha="right")
        ax.set_ylabel("gradient SNR (mean over parameters)")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_jaccard(evaluations, path):
    """Figure 5: histogram of the average pairwise Jaccard index per patch, max vs avg sampling.

    One panel per (method, J) evaluated under more than one training objective; the per-patch
    histograms of the seeds are pooled and shown as densities. :returns: whether a figure was
    written (there must be such a pair of objectives).
    """
    histograms = [e for e in evaluations if e.per_point.get("jaccard_histogram")]
    groups, labels = group_by(histograms, "method", "num_particles"), method_labels(histograms)
    panels = {}
    for key, runs in sorted(groups.items(), key=lambda item: str(item[0])):
        by_objective = group_by(runs, "objective")
        if len(by_objective) > 1:
            panels[key] = by_objective
    if not panels:
        return False
    centers = 0.5 * (JACCARD_BIN_EDGES[1:] + JACCARD_BIN_EDGES[:-1])
    bin_width = JACCARD_BIN_EDGES[1] - JACCARD_BIN_EDGES[0]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, ((method, j), by_objective) in zip(axes[0], panels.items()):
        for (objective,), runs in sorted(by_objective.items()):
            counts = np.sum([run.per_point["jaccard_histogram"] for run in runs], axis=0)
            density = counts / max(counts.sum(), 1) / bin_width
            ax.bar(centers, density, bin_width, alpha=0.5, label=f"{objective} ({len(runs)} runs)")
        ax.set_xlim(0, 1)
        ax.set_xlabel("average pairwise Jaccard index")
        ax.set_ylabel("density")
        ax.set_title(f"{labels[method]}, J = {j}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
