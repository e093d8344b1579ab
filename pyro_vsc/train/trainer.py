"""The training loop: SVI steps, per-epoch validation, metrics, checkpoints, exact resume,
divergence handling and clean stops on signals."""

import json
import logging
import signal
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import (CHECKPOINT_NAME, load, prepare_run_folder, remove_stale_temporaries,
                         rng_state, save_atomic, set_rng_state, write_text_atomic)
from .distributed import DistributedContext
from .divergence import POLICIES, DivergenceMonitor, TrainingDiverged
from .interruption import StopSignals, TrainingInterrupted

log = logging.getLogger(__name__)

METRICS_NAME = "metrics.jsonl"


class RunFolderWriteError(RuntimeError):
    """A checkpoint or the metrics could not be written (full disk, lost mount, permissions);
    the previous checkpoint is intact and the run stopped."""


def _summary(names, shown=4):
    """The first ``shown`` names, then how many more."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _where(epoch, batch, step, steps):
    """A training position for messages: step k (epoch e, batch b of n), counted from 1."""
    if step == 0:
        return "step 0 (before training)"
    if batch == 0:
        return f"step {step} (the end of epoch {epoch})"
    return f"step {step} (epoch {epoch + 1}, batch {batch}{'' if steps is None else f' of {steps}'})"


class Trainer:
    """Runs the optimisation of a model/guide pair epoch by epoch.

    Each step: zero gradients, backpropagate the per-data-point loss of one minibatch
    (:class:`~pyro_vsc.train.step.ObjectiveStep`), check it for divergence, step every optimizer
    and its schedule, and advance the guide's warm-up counter. The loss stays on the device; the
    host reads it only every ``log_every`` steps (progress, divergence) and once per epoch.

    **Checkpoints** (``checkpoint.pt``, written atomically: temporary file, fsync, rename) hold
    model, guide, optimizers, schedules, gradient scaler, every process's RNG states, the
    position inside the epoch and the epoch's running loss, and the history. They are written
    after every epoch, every ``checkpoint_every`` steps and every ``checkpoint_every_seconds``,
    and when SIGTERM/SIGINT asks the run to stop. If the run folder holds a checkpoint,
    :meth:`fit` continues from it; the continued run equals an uninterrupted one (the data order
    is a function of seed and epoch, the RNG states are restored).

    **Divergence** (NaN or ±inf in the loss, an ELBO term or a gradient,
    :mod:`~pyro_vsc.train.divergence`): with ``on_divergence="stop"`` the first such step is
    recorded on the device and found at the next host read; the run then stops without writing
    any checkpoint after that step, appends a ``diverged`` record to ``metrics.jsonl`` and raises
    :class:`~pyro_vsc.train.divergence.TrainingDiverged`. With ``"skip"`` every step is checked
    at once (one host synchronisation per step) and an unhealthy batch changes nothing: no
    optimizer, schedule or warm-up step, and the buffers its forward pass changed (BatchNorm
    statistics) are restored; skips are counted (``skipped_steps``) and more than
    ``max_skipped_steps`` of them stop the run as diverged.

    Data-parallel training (``context.world_size`` > 1, networks wrapped by the caller): every
    process runs the steps on its shard; the epoch's training loss is averaged over processes;
    rank 0 alone validates, writes the run folder, logs, shows progress and calls
    ``on_epoch_end``, and sends the epoch's record to the others, so every process ends with the
    same history. Decisions that must be taken together (divergence, signals, the time-based
    checkpoint) are exchanged at the progress interval; the skip policy exchanges its verdict
    every step.

    :param model: the Pyro model module.
    :param guide: the guide module (with ``advance()``).
    :param objective: an :class:`~pyro_vsc.train.step.ObjectiveStep`: ``objective(x, params)``
        backpropagates and returns the loss, ``advance()`` moves its KL warm-up, its
        ``state_dict()`` is checkpointed, its ``site_terms`` name the ELBO terms of divergence
        messages.
    :param dict optimizers: name → (optimizer, scheduler stepped per step).
    :param batches: provides ``len(batches)`` and ``batches.epoch(e, start)``.
    :param validate: callable ``validate() -> dict`` of floats, run after every epoch (rank 0).
    :param run_dir: output folder.
    :param int epochs: number of epochs.
    :param int log_every: steps between progress-bar updates and divergence checks.
    :param bool progress: show a progress bar.
    :param on_epoch_end: optional callable ``(trainer, record)`` (e.g. figures), rank 0 only,
        run on a copy of the torch random state.
    :param session_epochs: train at most this many epochs in this call (e.g. to fit a cluster
        job's time limit), then return; the next call resumes.
    :param grad_scaler: the ``torch.amp.GradScaler`` the objective scales the loss with
        (float16 mixed precision), or ``None``. Its gradients overflow by design and it skips
        those steps itself, so only the loss and ELBO terms are checked for divergence.
    :param context: a :class:`~pyro_vsc.train.distributed.DistributedContext` (default: one process).
    :param checkpoint_every: also write a checkpoint every this many steps (``None``: only at the
        end of an epoch).
    :param checkpoint_every_seconds: also write a checkpoint when this many seconds have passed
        since the last one (``None``: no time limit).
    :param str on_divergence: ``"stop"`` or ``"skip"``.
    :param int max_skipped_steps: with ``"skip"``, the most batches a run may skip.
    """

    def __init__(self, *, model, guide, objective, optimizers, batches, validate, run_dir, epochs,
                 log_every=50, progress=True, on_epoch_end=None, session_epochs=None,
                 grad_scaler=None, context=None, checkpoint_every=None,
                 checkpoint_every_seconds=None, on_divergence="stop", max_skipped_steps=100):
        if on_divergence not in POLICIES:
            raise ValueError(f"on_divergence must be one of {', '.join(POLICIES)}, got {on_divergence!r}")
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
        self.checkpoint_every = checkpoint_every
        self.checkpoint_every_seconds = checkpoint_every_seconds
        self.on_divergence, self.max_skipped_steps = on_divergence, int(max_skipped_steps)
        named = [(f"{owner}.{name}", p) for owner, module in (("model", model), ("guide", guide))
                 for name, p in module.named_parameters() if p.requires_grad]
        self.params = [p for _, p in named]
        self.buffers = [b for module in (model, guide) for b in module.buffers()]
        self.monitor = DivergenceMonitor(named if grad_scaler is None else [])
        self.epoch, self.step, self.history = 0, 0, []
        self._reset_epoch_state()
        self.skipped_steps = 0
        self.signals = StopSignals()
        self.prepared = False
        self._last_save = time.monotonic()
        self._saved_at = None  # (epoch, batch, step) of the last checkpoint on disk

    def _reset_epoch_state(self):
        """The position inside the current epoch and the epoch's running sums."""
        self.batch = 0             # batches of the epoch done
        self.epoch_loss = None     # sum of the losses of the applied steps (device)
        self.epoch_applied = 0     # steps whose update was applied
        self.epoch_skipped = 0     # steps skipped (policy "skip")
        self.epoch_seconds = 0.0

    # --- state -------------------------------------------------------------------------------
    @property
    def checkpoint_path(self):
        return self.run_dir / CHECKPOINT_NAME

    def state_dict(self):
        """The checkpoint's content; a collective under data parallelism (the RNG states and
        running losses of every process are gathered)."""
        rng_states = self.context.gather(rng_state())
        epoch_losses = self.context.gather(None if self.epoch_loss is None else self.epoch_loss.cpu())
        return {
            "epoch": self.epoch,
            "step": self.step,
            "batch": self.batch,
            "model": self.model.state_dict(),
            "guide": self.guide.state_dict(),
            "objective": self.objective.state_dict(),
            "optimizers": {name: {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
                           for name, (opt, sched) in self.optimizers.items()},
            "grad_scaler": None if self.grad_scaler is None else self.grad_scaler.state_dict(),
            "rng": rng_states[0],
            "process_rng": rng_states,
            "process_epoch_loss": epoch_losses,
            "epoch_applied": self.epoch_applied,
            "epoch_skipped": self.epoch_skipped,
            "epoch_seconds": self.epoch_seconds,
            "skipped_steps": self.skipped_steps,
            "history": self.history,
        }

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.guide.load_state_dict(state["guide"])
        self.objective.load_state_dict(state.get("objective", {}))
        for name, (opt, sched) in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name]["optimizer"])
            sched.load_state_dict(state["optimizers"][name]["scheduler"])
        if self.grad_scaler is not None and state.get("grad_scaler"):
            self.grad_scaler.load_state_dict(state["grad_scaler"])
        same_processes = self._restore_rng(state.get("process_rng") or [state["rng"]])
        self.epoch, self.step, self.history = state["epoch"], state["step"], state["history"]
        self._reset_epoch_state()
        self.batch = state.get("batch", 0)
        self.skipped_steps = state.get("skipped_steps", 0)
        if self.batch:
            losses = state["process_epoch_loss"]
            loss = losses[self.context.rank if same_processes else 0]
            self.epoch_loss = None if loss is None else loss.to(self.context.device)
            self.epoch_applied = state["epoch_applied"]
            self.epoch_skipped = state["epoch_skipped"]
            self.epoch_seconds = state["epoch_seconds"]

    def _restore_rng(self, states):
        """Each process continues its own RNG stream; with a different number of processes than
        the checkpoint's, rank 0 continues its stream and the others draw fresh seeds from it.
        Returns whether the number of processes is the checkpoint's."""
        if len(states) == self.context.world_size:
            set_rng_state(states[self.context.rank])
            return True
        set_rng_state(states[0])
        log.warning("the checkpoint was written by %d processes, this run has %d: the Monte Carlo "
                    "noise of the continued run differs from an uninterrupted one",
                    len(states), self.context.world_size)
        if self.context.rank > 0:
            self.context.seed(int(torch.randint(2**31, ())))
        return False

    def _position(self, step=None, batch=None):
        """'step k (epoch e, batch b of n)' for messages; defaults to the current position."""
        step = self.step if step is None else step
        batch = self.batch if batch is None else batch
        steps = None if self.batches is None else len(self.batches)
        return _where(self.epoch, batch, step, steps)

    def _last_checkpoint(self):
        if self._saved_at is None:
            return "no checkpoint was written"
        epoch, batch, step = self._saved_at
        steps = None if self.batches is None else len(self.batches)
        where = _where(epoch, batch, step, steps)
        return f"the last checkpoint, {self.checkpoint_path} at {where}, is intact"

    def save_checkpoint(self):
        """Writes the checkpoint (rank 0); a failed write stops the run and keeps the previous
        checkpoint (a run that cannot save would otherwise lose all its work silently)."""
        state = self.state_dict()
        if self.context.is_main:
            try:
                save_atomic(state, self.checkpoint_path)
            except OSError as error:
                raise RunFolderWriteError(
                    f"cannot write the checkpoint at {self._position()}: {error}; "
                    f"{self._last_checkpoint()}: free space (or fix the folder) and continue "
                    f"with resume={self.run_dir}") from error
        self._saved_at = (self.epoch, self.batch, self.step)
        self._last_save = time.monotonic()

    def prepare(self):
        """Readies the run folder and resumes: checks that rank 0 can write the folder, removes
        temporary files of a killed checkpoint write, and loads ``checkpoint.pt`` if there is
        one, rewriting ``metrics.jsonl`` from its history (a run killed between the two writes
        of an epoch's end has a checkpoint one record ahead). :meth:`fit` calls it if the
        caller has not."""
        if self.context.is_main:
            prepare_run_folder(self.run_dir)
            for stale in remove_stale_temporaries(self.checkpoint_path):
                log.info("removed %s, left by an interrupted checkpoint write", stale)
        if self.resume_if_possible():
            self.write_metrics()
        self.prepared = True

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
        self._saved_at = (self.epoch, self.batch, self.step)
        log.info("resumed from %s at epoch %d, batch %d (step %d)", self.checkpoint_path,
                 self.epoch + 1, self.batch, self.step)
        return True

    def write_metrics(self, records=None):
        """Writes ``records`` (default: the history) to ``metrics.jsonl`` atomically (rank 0)."""
        if not self.context.is_main:
            return
        records = self.history if records is None else records
        try:
            write_text_atomic("".join(json.dumps(record) + "\n" for record in records),
                              self.run_dir / METRICS_NAME)
        except OSError as error:
            raise RunFolderWriteError(
                f"cannot write {self.run_dir / METRICS_NAME}: {error}; {self._last_checkpoint()}: "
                f"free space (or fix the folder) and continue with resume={self.run_dir}") from error

    # --- one step ----------------------------------------------------------------------------
    def train_step(self, x):
        """One step on batch ``x``: returns the detached loss, or ``None`` if the batch was
        skipped (policy ``skip``)."""
        for optimizer, _ in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        skipping = self.on_divergence == "skip"
        if skipping:  # the forward pass updates buffers (BatchNorm statistics): keep them
            buffers = [b.clone() for b in self.buffers]
        loss = self.objective(x, self.params)
        site_terms = getattr(self.objective, "site_terms", None)
        if skipping:
            nonfinite = self.monitor.nonfinite(loss, site_terms)
            if self.context.distributed:  # every process must skip the same steps
                nonfinite = sorted({name for names in self.context.gather(nonfinite) for name in names})
            if nonfinite:
                with torch.no_grad():
                    for buffer, saved in zip(self.buffers, buffers):
                        buffer.copy_(saved)
                self._skip(nonfinite)
                return None
        else:
            self.monitor.observe(self.step + 1, loss, site_terms)
        for optimizer, scheduler in self.optimizers.values():
            if self.grad_scaler is None:
                optimizer.step()
            else:
                self.grad_scaler.step(optimizer)  # unscales; skipped if the gradients overflowed
            scheduler.step()
        if self.grad_scaler is not None:
            self.grad_scaler.update()
        self.guide.advance()
        self.objective.advance()
        self.step += 1
        return loss

    def _skip(self, nonfinite):
        """Counts a skipped batch (the step counter moves on, the training state does not)."""
        self.step += 1
        self.skipped_steps += 1
        self.epoch_skipped += 1
        where = self._position(batch=self.batch + 1)
        if self.skipped_steps > self.max_skipped_steps:
            self._diverge(self.step, self.batch + 1, nonfinite,
                          f"more than max_skipped_steps={self.max_skipped_steps} batches had "
                          f"non-finite values, the last at {where}")
        if self.context.is_main:
            log.warning("skipped the batch of %s: non-finite %s (%d skipped so far)", where,
                        _summary(nonfinite), self.skipped_steps)

    # --- divergence --------------------------------------------------------------------------
    def check_divergence(self):
        """Stops the run if a step since the last check was unhealthy (policy ``stop``); reads
        the host, and under data parallelism is a collective."""
        if self.on_divergence != "stop":
            return
        found = self.monitor.first_divergence()
        if self.context.distributed:
            found = min((f for f in self.context.gather(found) if f is not None), default=None,
                        key=lambda f: f[0])
        if found is not None:
            step, nonfinite = found
            batch = step - (self.step - self.batch)
            self._diverge(step, batch, nonfinite, f"non-finite {_summary(nonfinite)} at "
                                                  f"{self._position(step, batch)}")

    def _diverge(self, step, batch, nonfinite, what):
        """Appends the ``diverged`` record to ``metrics.jsonl`` and raises."""
        message = (f"training diverged: {what}; {self._last_checkpoint()} (on_divergence=skip "
                   "skips such batches)")
        record = {"epoch": self.epoch + 1, "step": step, "batch": batch, "diverged": True,
                  "nonfinite": list(nonfinite), "skipped_steps": self.skipped_steps,
                  "message": message}
        self.write_metrics(self.history + [record])
        raise TrainingDiverged(message, record)

    # --- loop --------------------------------------------------------------------------------
    def _epoch_batches(self):
        """This epoch's batches from the current position; a batch that cannot be read after a
        stop was requested (DataLoader workers killed by the same signal) ends the epoch early."""
        iterator = iter(self.batches.epoch(self.epoch, self.batch))
        while True:
            try:
                x = next(iterator)
            except StopIteration:
                return
            except Exception:
                if self.signals.received is None:
                    raise
                return
            yield x

    def _pause_reasons(self, at_log):
        """Whether to stop on a signal and whether to checkpoint now (after a step)."""
        stop = self.signals.received
        timed = (self.checkpoint_every_seconds is not None
                 and time.monotonic() - self._last_save >= self.checkpoint_every_seconds)
        if self.context.distributed:  # taken together, where the processes exchange anyway
            if not at_log:
                stop, timed = None, False
            else:
                stop = next((s for s in self.context.gather(stop) if s is not None), None)
                timed = self.context.broadcast(timed)
        counted = self.checkpoint_every is not None and self.step % self.checkpoint_every == 0
        return stop, counted or timed

    def run_epoch(self):
        """Trains the rest of the current epoch; returns (training loss averaged over steps and
        processes, seconds)."""
        steps = len(self.batches)
        started = time.perf_counter()
        bar = tqdm(total=steps, initial=self.batch, desc=f"epoch {self.epoch + 1}/{self.epochs}",
                   disable=not self.progress, leave=False, dynamic_ncols=True)
        try:
            for x in self._epoch_batches():
                loss = self.train_step(x)
                self.batch += 1
                if loss is not None:
                    self.epoch_loss = loss if self.epoch_loss is None else self.epoch_loss + loss
                    self.epoch_applied += 1
                at_log = self.batch % self.log_every == 0 or self.batch == steps
                if at_log:
                    self.check_divergence()
                    bar.update(self.batch - bar.n)
                    if self.epoch_loss is not None:
                        bar.set_postfix(loss=f"{float(self.epoch_loss) / self.epoch_applied:.4g}",
                                        nonzero=f"{self.latent_nonzero_pct():.1f}%")
                if self.batch == steps:
                    break  # the epoch's end checkpoints and handles signals after validation
                stop, save = self._pause_reasons(at_log)
                if stop is not None or save:
                    self.check_divergence()
                    self.epoch_seconds += time.perf_counter() - started
                    started = time.perf_counter()
                    self.save_checkpoint()
                if stop is not None:
                    self._interrupted(stop)
        finally:
            bar.close()
        if self.batch < steps and self.signals.received is not None:  # batches ended early
            self.check_divergence()
            self.save_checkpoint()
            self._interrupted(self.signals.received)
        self.epoch_seconds += time.perf_counter() - started
        if self.epoch_loss is None:
            return float("nan"), self.epoch_seconds
        return float(self.context.mean(self.epoch_loss)) / self.epoch_applied, self.epoch_seconds

    def _interrupted(self, signum):
        """Raises after a stop on ``signum`` (received by this or another process)."""
        raise TrainingInterrupted(
            f"stopped by {signal.Signals(signum).name} after {self._position()}; the checkpoint "
            f"is saved: continue with resume={self.run_dir}", signum)

    def latent_nonzero_pct(self):
        latent = self.objective.latent()
        return float(100.0 * (latent != 0).float().mean()) if latent is not None else float("nan")

    def epoch_record(self, train_loss, seconds):
        """The epoch's metrics record: built and validated on rank 0, sent to every process."""
        record = None
        if self.context.is_main:
            record = {"epoch": self.epoch + 1, "step": self.step, "train_loss": train_loss,
                      "skipped_steps": self.epoch_skipped, "seconds": seconds,
                      "steps_per_second": len(self.batches) / seconds}
            record.update({f"val_{key}": value for key, value in self.validate().items()})
            record.update({f"lr_{name}": opt.param_groups[0]["lr"]
                           for name, (opt, _) in self.optimizers.items()})
        return self.context.broadcast(record)

    def fit(self):
        """Trains until ``epochs`` (continuing a checkpoint if present); returns the history.

        :raises TrainingDiverged: see the class description.
        :raises TrainingInterrupted: after SIGTERM/SIGINT, once the checkpoint is written.
        :raises RunFolderWriteError: when a checkpoint or the metrics cannot be written.
        """
        if not self.prepared:
            self.prepare()
        stop = self.epochs if self.session_epochs is None else min(
            self.epochs, self.epoch + int(self.session_epochs))
        self._last_save = time.monotonic()
        with self.signals:
            while self.epoch < stop:
                self.model.train()
                self.guide.train()
                train_loss, seconds = self.run_epoch()
                self.model.eval()
                self.guide.eval()
                record = self.epoch_record(train_loss, seconds)
                self.history.append(record)
                self.epoch += 1
                self._reset_epoch_state()
                self.save_checkpoint()
                self.write_metrics()
                if self.context.is_main:
                    log.info("epoch %d/%d: %s", self.epoch, self.epochs,
                             ", ".join(f"{k}={v:.4g}" for k, v in record.items() if isinstance(v, float)))
                    if self.on_epoch_end is not None:
                        # figures may sample (codes for reconstructions); they must not shift the
                        # training's random stream, or a resumed run would differ from this one
                        cuda = [self.context.device] if self.context.device.type == "cuda" else []
                        with torch.random.fork_rng(devices=cuda):
                            self.on_epoch_end(self, record)
                received = self._pause_reasons(at_log=True)[0]
                if received is not None and self.epoch < stop:
                    self._interrupted(received)
        self.context.barrier()
        return self.history
