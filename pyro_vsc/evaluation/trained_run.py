"""A trained run folder (``config.yaml`` + ``checkpoint.pt``) rebuilt for evaluation."""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pyro
import torch
from omegaconf import OmegaConf

from pyro_vsc.resolvers import register_resolvers
from pyro_vsc.trained import load_run
from pyro_vsc.train.checkpoint import CHECKPOINT_NAME, CONFIG_NAME
from pyro_vsc.train.objective import Objective
from pyro_vsc.train.callbacks.metrics_file import METRICS_NAME

#: Written by ``python -m pyro_vsc.evaluate``, read by ``python -m pyro_vsc.report``.
EVALUATION_NAME = "evaluation.json"


@dataclass
class TrainedRun:
    """Model, guide and validation data of a run, with its trained parameters loaded.

    :ivar cfg: the run's saved (resolved) config.
    :ivar epochs_trained: epochs in the checkpoint.
    :ivar objective: the run's :class:`~pyro_vsc.train.objective.Objective` (model, guide, J, β).
    """

    run_dir: Path
    cfg: object
    model: torch.nn.Module
    guide: torch.nn.Module
    val: torch.Tensor
    objective: Objective
    epochs_trained: int


def read_config(run_dir):
    """The run's ``config.yaml``; a clear error if the folder is not a run folder."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder: it has no {CONFIG_NAME} "
                                "(run folders are written by python -m pyro_vsc.run)")
    register_resolvers()
    return OmegaConf.load(path)


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


def load_trained_run(run_dir, device):
    """The trained run (:func:`pyro_vsc.load_run`) with its validation patches, for evaluation
    of the linear generator."""
    run_dir = Path(run_dir)
    read_config(run_dir)  # a clear error for a folder that is not a run folder
    if not (run_dir / CHECKPOINT_NAME).exists():
        raise FileNotFoundError(f"{run_dir} has no {CHECKPOINT_NAME}: train the run (or let it "
                                "finish its first epoch) before evaluating it")
    trained = load_run(run_dir, device)
    pyro.settings.set(module_local_params=True)
    pyro.enable_validation(bool(OmegaConf.select(trained.config, "validate", default=False)))  # as in training
    data = trained.load_data()
    if not hasattr(data, "val"):
        raise NotImplementedError(f"{run_dir}: evaluate covers the linear generator (§4.1), whose "
                                  "data are in-memory patches; this run's model is "
                                  f"{type(trained.model).__name__} (python -m pyro_vsc.dnn_figures run)")
    return TrainedRun(run_dir=run_dir, cfg=trained.config, model=trained.model, guide=trained.guide,
                      val=data.val.to(trained.device), objective=trained.objective,
                      epochs_trained=trained.epochs_trained)


def read_history(run_dir):
    """Records of ``metrics.jsonl`` (Python's json reads the NaN a diverged epoch may hold)."""
    path = Path(run_dir) / METRICS_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def nonfinite_parameters(**modules):
    """Names (``<module>.<parameter>``) of the parameters holding a NaN or infinite value."""
    return [f"{label}.{name}" for label, module in modules.items()
            for name, parameter in module.named_parameters()
            if not bool(torch.isfinite(parameter).all())]


def nonfinite_metrics(record):
    """Keys of a metrics record (one line of ``metrics.jsonl``) whose value is NaN or infinite."""
    return [key for key, value in record.items()
            if isinstance(value, float) and not math.isfinite(value)]


def divergence_record(run_dir):
    """The ``diverged`` record training appended to ``metrics.jsonl``, or ``None``."""
    history = read_history(run_dir)
    return history[-1] if history and history[-1].get("diverged") else None


def divergence_reason(run_dir, run=None):
    """Why a run counts as diverged (NaN), or ``None``.

    A run diverged if training recorded it (a final ``diverged`` record in ``metrics.jsonl``,
    written when the loss, an ELBO term or a gradient became NaN/inf), if the loaded parameters
    hold NaN/inf, or if its last metrics record holds NaN/inf.
    """
    record = divergence_record(run_dir)
    if record is not None:
        return record.get("message") or (f"training diverged at step {record['step']}: non-finite "
                                         f"{', '.join(record.get('nonfinite', [])[:3])}")
    if run is not None:
        broken = nonfinite_parameters(model=run.model, guide=run.guide)
        if broken:
            return f"the checkpoint holds non-finite parameters: {', '.join(broken[:3])}"
    history = read_history(run_dir)
    if history and nonfinite_metrics(history[-1]):
        return f"the last epoch's metrics are not finite: {', '.join(nonfinite_metrics(history[-1]))}"
    return None
