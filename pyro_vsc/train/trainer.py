"""The training loop: SVI steps, per-epoch validation, metrics, checkpoints and resume."""

import json
import logging
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import CHECKPOINT_NAME, load, rng_state, save_atomic, set_rng_state
from .distributed import DistributedContext

log = logging.getLogger(__name__)

METRICS_NAME = "metrics.jsonl"


class Trainer:
    """Runs the optimisation of a model/guide pair epoch by epoch.

    Each step: zero gradients, backpropagate the per-data-point loss of one minibatch
    (:class:`~pyro_vsc.train.step.ObjectiveStep`), step every optimizer and its schedule, and
    advance the guide's warm-up counter. The loss stays on the device; the host reads it only
    every ``log_every`` steps for the progress bar and once per epoch for the metrics.

    After every epoch the trainer validates, appends a record to ``metrics.jsonl`` and writes
    ``checkpoint.pt`` atomically (model, guide, optimizers, schedules, gradient scaler, RNG states,
    history). If the run folder already holds a checkpoint, :meth:`fit` continues from it.

    Data-parallel training (``context.world_size`` > 1, networks wrapped by the caller): every
    process runs the steps on its shard; the epoch's training loss is averaged over processes;
    rank 0 alone validates, writes the run folder, logs, shows progress and calls
    ``on_epoch_end``, and sends the epoch's record to the others, so every process ends with the
    same history. The checkpoint holds every process's RNG state; all processes resume from it.

    :param model: the Pyro model module.
    :param guide: the guide module (with ``advance()``).
    :param objective: callable ``objective(x, params) -> loss`` that backpropagates.
    :param dict optimizers: name → (optimizer, scheduler stepped per step).
    :param batches: provides ``len(batches)`` and ``batches.epoch(e, start)``.
    :param validate: callable ``validate() -> dict`` of floats, run after every epoch (rank 0).
    :param run_dir: output folder.
    :param int epochs: number of epochs.
    :param int log_every: steps between progress-bar updates.
    :param bool progress: show a progress bar.
    :param on_epoch_end: optional callable ``(trainer, record)`` (e.g. figures), rank 0 only,
        run on a copy of the torch random state.
    :param session_epochs: train at most this many epochs in this call (e.g. to fit a cluster
        job's time limit), then return; the next call resumes.
    :param grad_scaler: the ``torch.amp.GradScaler`` the objective scales the loss with
        (float16 mixed precision), or ``None``.
    :param context: a :class:`~pyro_vsc.train.distributed.DistributedContext` (default: one process).
    """

    def __init__(self, *, model, guide, objective, optimizers, batches, validate, run_dir, epochs,
                 log_every=50, progress=True, on_epoch_end=None, session_epochs=None,
                 grad_scaler=None, context=None):
        self.model, self.guide, self.objective = model, guide, objective
        self.optimizers = optimizers
        self.batches, self.validate = batches, validate
        self.run_dir = Path(run_dir)
        self.epochs, self.log_every = int(epochs), int(log_every)
        self.context = context or DistributedContext()
        self.progress = progress and self.context.is_main
        self.on_epoch_end = on_epoch_end
        self.session_epochs = session_epochs
        self.grad_scaler = grad_scaler
        self.params = [p for module in (model, guide) for p in module.parameters() if p.requires_grad]
        self.epoch, self.step, self.history = 0, 0, []

    # --- state -------------------------------------------------------------------------------
    @property
    def checkpoint_path(self):
        return self.run_dir / CHECKPOINT_NAME

    def state_dict(self):
        """The checkpoint's content; a collective under data parallelism (RNG states are gathered)."""
        rng_states = self.context.gather(rng_state())
        return {
            "epoch": self.epoch,
            "step": self.step,
            "model": self.model.state_dict(),
            "guide": self.guide.state_dict(),
            "optimizers": {name: {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
                           for name, (opt, sched) in self.optimizers.items()},
            "grad_scaler": None if self.grad_scaler is None else self.grad_scaler.state_dict(),
            "rng": rng_states[0],
            "process_rng": rng_states,
            "history": self.history,
        }

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.guide.load_state_dict(state["guide"])
        for name, (opt, sched) in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name]["optimizer"])
            sched.load_state_dict(state["optimizers"][name]["scheduler"])
        if self.grad_scaler is not None and state.get("grad_scaler"):
            self.grad_scaler.load_state_dict(state["grad_scaler"])
        self._restore_rng(state.get("process_rng") or [state["rng"]])
        self.epoch, self.step, self.history = state["epoch"], state["step"], state["history"]

    def _restore_rng(self, states):
        """Each process continues its own RNG stream; with a different number of processes than
        the checkpoint's, rank 0 continues its stream and the others draw fresh seeds from it."""
        if len(states) == self.context.world_size:
            set_rng_state(states[self.context.rank])
            return
        set_rng_state(states[0])
        log.warning("the checkpoint was written by %d processes, this run has %d: the Monte Carlo "
                    "noise of the continued run differs from an uninterrupted one",
                    len(states), self.context.world_size)
        if self.context.rank > 0:
            self.context.seed(int(torch.randint(2**31, ())))

    def save_checkpoint(self):
        state = self.state_dict()
        if self.context.is_main:
            save_atomic(state, self.checkpoint_path)

    def resume_if_possible(self):
        """Loads ``checkpoint.pt`` from the run folder if there is one; returns whether it did.

        Rank 0 decides; every process then reads the same file (on several nodes the run folder
        must be on a shared filesystem).
        """
        if not self.context.broadcast(self.checkpoint_path.exists()):
            return False
        if not self.checkpoint_path.exists():
            raise FileNotFoundError(f"rank {self.context.rank} cannot read {self.checkpoint_path}, "
                                    "which rank 0 resumes from: put the run folder on a filesystem "
                                    "that every node shares")
        self.load_state_dict(load(self.checkpoint_path))
        log.info("resumed from %s at epoch %d (step %d)", self.checkpoint_path, self.epoch, self.step)
        return True

    def write_metrics(self):
        lines = "".join(json.dumps(record) + "\n" for record in self.history)
        tmp = self.run_dir / f".{METRICS_NAME}.tmp"
        tmp.write_text(lines)
        tmp.replace(self.run_dir / METRICS_NAME)

    # --- loop --------------------------------------------------------------------------------
    def train_step(self, x):
        for optimizer, _ in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        loss = self.objective(x, self.params)
        for optimizer, scheduler in self.optimizers.values():
            if self.grad_scaler is None:
                optimizer.step()
            else:
                self.grad_scaler.step(optimizer)  # unscales; skipped if the gradients overflowed
            scheduler.step()
        if self.grad_scaler is not None:
            self.grad_scaler.update()
        self.guide.advance()
        self.step += 1
        return loss

    def run_epoch(self):
        """Trains one epoch; returns (training loss averaged over steps and processes, seconds)."""
        steps = len(self.batches)
        total = None
        started = time.perf_counter()
        bar = tqdm(total=steps, desc=f"epoch {self.epoch + 1}/{self.epochs}",
                   disable=not self.progress, leave=False, dynamic_ncols=True)
        for index, x in enumerate(self.batches.epoch(self.epoch)):
            loss = self.train_step(x)
            total = loss if total is None else total + loss
            if (index + 1) % self.log_every == 0 or index + 1 == steps:
                bar.update((index + 1) - bar.n)
                bar.set_postfix(loss=f"{float(total) / (index + 1):.4g}",
                                nonzero=f"{self.latent_nonzero_pct():.1f}%")
        bar.close()
        return float(self.context.mean(total)) / steps, time.perf_counter() - started

    def latent_nonzero_pct(self):
        latent = self.objective.latent()
        return float(100.0 * (latent != 0).float().mean()) if latent is not None else float("nan")

    def epoch_record(self, train_loss, seconds):
        """The epoch's metrics record: built and validated on rank 0, sent to every process."""
        record = None
        if self.context.is_main:
            record = {"epoch": self.epoch + 1, "step": self.step, "train_loss": train_loss,
                      "seconds": seconds, "steps_per_second": len(self.batches) / seconds}
            record.update({f"val_{key}": value for key, value in self.validate().items()})
            record.update({f"lr_{name}": opt.param_groups[0]["lr"]
                           for name, (opt, _) in self.optimizers.items()})
        return self.context.broadcast(record)

    def fit(self):
        """Trains until ``epochs`` (continuing a checkpoint if present); returns the history."""
        if self.context.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.resume_if_possible()
        stop = self.epochs if self.session_epochs is None else min(
            self.epochs, self.epoch + int(self.session_epochs))
        while self.epoch < stop:
            self.model.train()
            self.guide.train()
            train_loss, seconds = self.run_epoch()
            self.model.eval()
            self.guide.eval()
            record = self.epoch_record(train_loss, seconds)
            self.history.append(record)
            self.epoch += 1
            if self.context.is_main:
                self.write_metrics()
            self.save_checkpoint()
            if self.context.is_main:
                log.info("epoch %d/%d: %s", self.epoch, self.epochs,
                         ", ".join(f"{k}={v:.4g}" for k, v in record.items() if isinstance(v, float)))
                if self.on_epoch_end is not None:
                    # figures may sample (codes for reconstructions); they must not shift the
                    # training's random stream, or a resumed run would differ from this one
                    cuda = [self.context.device] if self.context.device.type == "cuda" else []
                    with torch.random.fork_rng(devices=cuda):
                        self.on_epoch_end(self, record)
        self.context.barrier()
        return self.history
