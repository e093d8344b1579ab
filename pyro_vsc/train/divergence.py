"""Runs whose parameters become NaN or infinite are recorded as diverged (Table 2 "NaN")."""

import json
import math
from pathlib import Path

import torch

DIVERGENCE_NAME = "diverged.json"


def nonfinite_parameters(**modules):
    """Names (``<module>.<parameter>``) of the parameters holding a NaN or infinite value."""
    return [f"{label}.{name}" for label, module in modules.items()
            for name, parameter in module.named_parameters()
            if not bool(torch.isfinite(parameter).all())]


def record_divergence(run_dir, epochs_completed, step, parameters, error=None, history=()):
    """Writes ``diverged.json`` into the run folder: when (epochs completed, step, and the first
    epoch whose metrics record holds NaN/inf, if any), which parameters, and the error that stopped
    training, if one did (with distribution validation on, a distribution refusing NaN)."""
    first = next((record["epoch"] for record in history if nonfinite_metrics(record)), None)
    record = {"epochs_completed": int(epochs_completed), "step": int(step),
              "first_nonfinite_epoch": first, "nonfinite_parameters": list(parameters),
              "error": None if error is None else f"{type(error).__name__}: {error}"[:2000]}
    (Path(run_dir) / DIVERGENCE_NAME).write_text(json.dumps(record, indent=2) + "\n")
    return record


def read_divergence(run_dir):
    """The record written by :func:`record_divergence`, or ``None`` if the run did not diverge."""
    path = Path(run_dir) / DIVERGENCE_NAME
    return json.loads(path.read_text()) if path.exists() else None


def nonfinite_metrics(record):
    """Keys of a metrics record (one line of ``metrics.jsonl``) whose value is NaN or infinite."""
    return [key for key, value in record.items()
            if isinstance(value, float) and not math.isfinite(value)]
