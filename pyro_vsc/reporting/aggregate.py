"""Mean ± standard deviation over seeds, with diverged (NaN) runs kept visible."""

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    """A metric over the runs of one table cell (usually the seeds of one configuration).

    :ivar count: runs in the cell that report the metric (NaN included).
    :ivar nan_count: how many of them are NaN (diverged runs).
    :ivar mean, std: over the finite values; std is the population standard deviation
        (``numpy.std``, ddof = 0), NaN when no value is finite.
    """

    count: int
    nan_count: int
    mean: float
    std: float

    @property
    def empty(self):
        return self.count == 0


def summarize(values):
    """:class:`Summary` of metric values; ``None`` (not applicable) values are ignored."""
    values = [float(value) for value in values if value is not None]
    finite = [value for value in values if math.isfinite(value)]
    return Summary(count=len(values), nan_count=len(values) - len(finite),
                   mean=float(np.mean(finite)) if finite else math.nan,
                   std=float(np.std(finite)) if finite else math.nan)


def format_summary(summary, with_std=False, percent=False):
    """Table text of a cell, in the paper's style.

    ``–`` for no run (or a metric that does not apply), ``NaN`` when every run diverged,
    ``1.35E+03`` (or ``4.17%``) for the mean, ``± std`` if asked, and ``(k/n NaN)`` when only
    some runs diverged (the mean is then over the others).
    """
    if summary.empty:
        return "–"
    if summary.nan_count == summary.count:
        return "NaN"

    def number(value):
        return f"{value:.2f}%" if percent else f"{value:.2E}"

    text = number(summary.mean)
    if with_std:
        text += f" ± {number(summary.std)}"
    if summary.nan_count:
        text += f" ({summary.nan_count}/{summary.count} NaN)"
    return text


def group_by(evaluations, *keys):
    """Evaluations grouped by the values of ``run[key]`` for ``keys``: dict tuple → list."""
    groups = {}
    for evaluation in evaluations:
        groups.setdefault(tuple(evaluation.run.get(key) for key in keys), []).append(evaluation)
    return groups
