"""Finding run folders and reading their ``evaluation.json`` for the report."""

import json
import math
from dataclasses import dataclass
from pathlib import Path

from pyro_vsc.evaluation.trained_run import EVALUATION_NAME, find_run_folders


@dataclass(frozen=True)
class RunEvaluation:
    """One evaluated run.

    :ivar run: identity written by the evaluation (method, label, objective, num_particles,
        straight_through, seed, ...).
    :ivar metrics: metric name → float; NaN for a diverged run or a metric that came out NaN,
        ``None`` where the metric does not apply (e.g. IWAE for FISTA).
    :ivar per_point: per-data-point summaries (``jaccard_histogram`` counts).
    :ivar settings: the evaluation's settings (K of the IWAE bound, SNR subset, ...).
    """

    run_dir: Path
    run: dict
    status: str
    metrics: dict
    per_point: dict
    settings: dict


def read_evaluation(run_dir):
    """The :class:`RunEvaluation` of a run folder's ``evaluation.json``."""
    record = json.loads((Path(run_dir) / EVALUATION_NAME).read_text())
    nan_metrics = set(record.get("nan_metrics", []))
    metrics = {name: (math.nan if value is None and name in nan_metrics else value)
               for name, value in record["metrics"].items()}
    return RunEvaluation(run_dir=Path(run_dir), run=record["run"], status=record["status"],
                         metrics=metrics, per_point=record.get("per_point", {}),
                         settings=record.get("settings", {}))


def collect_evaluations(root):
    """Evaluations of every run folder under ``root``, and the run folders that have none yet.

    :returns: ``(evaluations, unevaluated_run_dirs)``.
    """
    evaluations, missing = [], []
    for run_dir in find_run_folders(root):
        if (run_dir / EVALUATION_NAME).exists():
            evaluations.append(read_evaluation(run_dir))
        else:
            missing.append(run_dir)
    return evaluations, missing
