"""Finding run folders and reading their ``evaluation.json`` for the report."""

import json
import math
from dataclasses import dataclass
from pathlib import Path

CONFIG_NAME = "config.yaml"
EVALUATION_NAME = "evaluation.json"


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


def find_run_folders(root):
    """Folders under ``root`` (``root`` included) that hold a run's ``config.yaml``.

    Works for single runs (``runs/<date>_...``) and Hydra multiruns
    (``runs/multirun/<date>/<n>_.../``); Hydra's own ``.hydra/config.yaml`` copies are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of runs")
    found = []
    for path in root.rglob(CONFIG_NAME):
        if any(part.startswith(".") for part in path.relative_to(root).parts[:-1]):
            continue
        found.append(path.parent)
    return sorted(found)


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
