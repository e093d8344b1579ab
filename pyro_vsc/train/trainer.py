"""The training loop: epochs of SVI steps, validation after each, and the objects it delegates to.

The loop itself is short (:meth:`Trainer.fit`, :meth:`Trainer.train_step`); each concern around
it is one object with one job, as in Pyro's ``examples/svi_torch.py`` wrapped the way PyTorch
Lightning splits its ``Trainer``:

* the training step of the ELBO: :class:`~pyro_vsc.train.step.ObjectiveStep`;
* the optimizers, their schedules and the float16 gradient scaler:
  :class:`~pyro_vsc.train.optimizer_set.OptimizerSet`;
* where the run is: :class:`~pyro_vsc.train.position.TrainingPosition`;
* when and where checkpoints are written, and resuming:
  :class:`~pyro_vsc.train.checkpointing.Checkpointer`;
* what a NaN does: a :class:`~pyro_vsc.train.divergence_policy.DivergencePolicy`;
* everything a user watches or adds — progress bar, ``metrics.jsonl``, CSV/TensorBoard logs,
  figures, early stopping — callbacks (:mod:`pyro_vsc.train.callbacks`).
"""

import logging
import signal
import time

import torch

from .callbacks import CallbackList
from .checkpoint import rng_state, set_rng_state
from .distributed import DistributedContext
from .divergence import TrainingDiverged
from .divergence_policy import StopOnDivergence
from .interruption import StopSignals, TrainingInterrupted
from .optimizer_set import OptimizerSet
from .position import TrainingPosition

log = logging.getLogger(__name__)


class Trainer:
    """Runs the optimisation of a model/guide pair epoch by epoch.

    Each step (:meth:`train_step`): zero gradients, backpropagate the per-data-point loss of one
    minibatch, let the divergence policy look at it, step every optimizer and schedule, advance
    the warm-up counters. The loss stays on the device; the host reads it only at the progress
    interval (``log_every`` steps) and once per epoch. After each epoch: validation (rank 0),
    the epoch's record, a checkpoint, and the callbacks.

    If the run folder holds a checkpoint, :meth:`fit` continues from it; the continued run equals
    an uninterrupted one (the data order is a function of seed and epoch, the RNG states of
    every process are restored).

    Data-parallel training (``context.world_size`` > 1, networks wrapped by the caller): every
    process runs the steps on its shard; the epoch's training loss is averaged over processes;
    rank 0 alone validates and runs the callbacks that write or show something, and sends the
    epoch's record to the others, so every process ends with the same history. Decisions taken
    together (divergence, signals, the time-based checkpoint) are exchanged at the progress
    interval.

    :param model: the Pyro model module.
    :param guide: the guide module (with ``advance()``).
    :param objective: the :class:`~pyro_vsc.train.step.ObjectiveStep` of the ELBO.
    :param optimizers: an :class:`~pyro_vsc.train.optimizer_set.OptimizerSet` (or a dict
        name → (optimizer, scheduler) without gradient scaler).
    :param batches: provides ``len(batches)`` and ``batches.epoch(e, start)``.
    :param int epochs: number of epochs.
    :param validate: callable ``validate() -> dict`` of floats, run after every epoch (rank 0).
    :param callbacks: :class:`~pyro_vsc.train.callbacks.Callback`\\ s.
    :param checkpoints: a :class:`~pyro_vsc.train.checkpointing.Checkpointer`, or ``None`` for a
        run without a folder.
    :param divergence: a :class:`~pyro_vsc.train.divergence_policy.DivergencePolicy` (default:
        stop at the first non-finite step).
    :param int log_every: steps between progress updates and divergence checks.
    :param session_epochs: train at most this many epochs in this call (e.g. to fit a cluster
        job's time limit), then return; the next call resumes.
    :param context: a :class:`~pyro_vsc.train.distributed.DistributedContext` (default: one process).
    """

    def __init__(self, *, model, guide, objective, optimizers, batches, epochs, validate=None,
                 callbacks=(), checkpoints=None, divergence=None, log_every=50, session_epochs=None,
                 context=None):
        self.model, self.guide, self.objective = model, guide, objective
        self.optimizers = optimizers if isinstance(optimizers, OptimizerSet) else OptimizerSet(optimizers)
        self.batches, self.validate = batches, validate
        self.epochs, self.log_every, self.session_epochs = int(epochs), int(log_every), session_epochs
        self.context = context or DistributedContext()
        self.callbacks = CallbackList(callbacks, self.context.is_main)
        self.checkpoints = checkpoints
        self.divergence = divergence or StopOnDivergence()
        self.divergence.start(self)
        self.position, self.history = TrainingPosition(), []
        self.signals = StopSignals()
        self.stop_reason = None  # set by request_stop (early stopping)
        self.prepared = False

    # --- what callbacks and policies use ------------------------------------------------------
    @property
    def run_dir(self):
        """The run folder (``None`` for a run without checkpoints)."""
        return None if self.checkpoints is None else self.checkpoints.run_dir

    def named_parameters(self):
        """``(model.<name> | guide.<name>, parameter)`` of every trainable parameter."""
        return [(f"{owner}.{name}", p) for owner, module in (("model", self.model), ("guide", self.guide))
                for name, p in module.named_parameters() if p.requires_grad]

    def describe_position(self, step=None, batch=None):
        """'step k (epoch e, batch b of n)' for messages; defaults to the current position."""
        return self.position.describe(step, batch, None if self.batches is None else len(self.batches))

    def request_stop(self, reason):
        """Ends training after the current epoch (its checkpoint and callbacks included)."""
        self.stop_reason = reason

    def diverged(self, step, batch, nonfinite, what):
        """Stops the run as diverged: the callbacks get the ``diverged`` record (``metrics.jsonl``
        ends with it), then :class:`~pyro_vsc.train.divergence.TrainingDiverged` is raised."""
        last = "no checkpoint was written" if self.checkpoints is None else self.checkpoints.describe_last(
            None if self.batches is None else len(self.batches))
        message = f"training diverged: {what}; {last} (on_divergence=skip skips such batches)"
        record = {"epoch": self.position.epoch + 1, "step": step, "batch": batch, "diverged": True,
                  "nonfinite": list(nonfinite), "skipped_steps": self.position.skipped_steps,
                  "message": message}
        self.callbacks.on_divergence(self, record)
        raise TrainingDiverged(message, record)

    # --- state --------------------------------------------------------------------------------
    def state_dict(self):
        """The checkpoint's content; a collective under data parallelism (the RNG states and
        running losses of every process are gathered)."""
        loss = self.position.epoch_loss
        return {**self.position.state_dict(),
                "model": self.model.state_dict(),
                "guide": self.guide.state_dict(),
                "objective": self.objective.state_dict(),
                **self.optimizers.state_dict(),
                "process_rng": self.context.gather(rng_state()),
                "process_epoch_loss": self.context.gather(None if loss is None else loss.cpu()),
                "process_epoch_breakdown": self.context.gather(
                    {name: value.cpu() for name, value in self.position.epoch_breakdown.items()}),
                "history": self.history,
                "callbacks": self.callbacks.state_dict()}

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.guide.load_state_dict(state["guide"])
        self.objective.load_state_dict(state.get("objective", {}))
        self.optimizers.load_state_dict(state)
        same_processes = self._restore_rng(state.get("process_rng") or [state["rng"]])
        loss, breakdown = None, {}
        if state.get("batch"):
            process = self.context.rank if same_processes else 0
            loss = state["process_epoch_loss"][process]
            loss = None if loss is None else loss.to(self.context.device)
            breakdown = (state.get("process_epoch_breakdown") or [{}] * (process + 1))[process]
            breakdown = {name: value.to(self.context.device) for name, value in breakdown.items()}
        self.position.load_state_dict(state, epoch_loss=loss, epoch_breakdown=breakdown)
        self.history = state["history"]
        self.callbacks.load_state_dict(state.get("callbacks", {}))

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

    def prepare(self):
        """Readies the run folder and continues its checkpoint if there is one. :meth:`fit`
        calls it if the caller has not."""
        if self.checkpoints is not None:
            self.checkpoints.prepare()
            state = self.checkpoints.load()
            if state is not None:
                self.load_state_dict(state)
                self.checkpoints.saved_at = (self.position.epoch, self.position.batch, self.position.step)
                log.info("resumed from %s at epoch %d, batch %d (step %d)", self.checkpoints.path,
                         self.position.epoch + 1, self.position.batch, self.position.step)
        self.prepared = True

    def save_checkpoint(self):
        if self.checkpoints is not None:
            self.checkpoints.save(self.state_dict(), self.position, len(self.batches))

    # --- one step -----------------------------------------------------------------------------
    def train_step(self, x):
        """One step on batch ``x``: returns the detached loss, or ``None`` if the divergence
        policy skipped the batch."""
        self.optimizers.zero_grad()
        self.divergence.before_step(self)
        loss = self.objective(x, self.optimizers.params)
        if not self.divergence.after_backward(self, loss, self.objective.site_terms):
            return None
        self.optimizers.step()
        self.guide.advance()
        self.objective.advance()
        self.position.step += 1
        return loss

    # --- the loop -----------------------------------------------------------------------------
    def _epoch_batches(self):
        """This epoch's batches from the current position; a batch that cannot be read after a
        stop was requested (DataLoader workers killed by the same signal) ends the epoch early."""
        iterator = iter(self.batches.epoch(self.position.epoch, self.position.batch))
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

    def _signal_received(self, at_log):
        """The stop signal this process or (at the progress interval) any process received."""
        received = self.signals.received
        if self.context.distributed:  # taken together, where the processes exchange anyway
            received = next((s for s in self.context.gather(received) if s is not None), None) if at_log else None
        return received

    def _interrupted(self, signum):
        """Raises after a stop on ``signum`` (received by this or another process)."""
        raise TrainingInterrupted(
            f"stopped by {signal.Signals(signum).name} after {self.describe_position()}; the "
            f"checkpoint is saved: continue with resume={self.checkpoints.run_dir}", signum)

    def _pause(self, started):
        """Checks divergence and writes a checkpoint inside the epoch; returns the new start time."""
        self.divergence.check(self)
        self.position.epoch_seconds += time.perf_counter() - started
        self.save_checkpoint()
        return time.perf_counter()

    def run_epoch(self):
        """Trains the rest of the current epoch; returns its :meth:`training_metrics`."""
        steps, position = len(self.batches), self.position
        started = time.perf_counter()
        self.callbacks.on_train_epoch_start(self)
        try:
            for x in self._epoch_batches():
                loss = self.train_step(x)
                position.batch += 1
                if loss is not None:
                    position.add_loss(loss, self.objective.breakdown)
                at_log = position.batch % self.log_every == 0 or position.batch == steps
                if at_log:
                    self.divergence.check(self)
                    self.callbacks.on_log(self)
                if position.batch == steps:
                    break  # the epoch's end checkpoints and handles signals after validation
                received = self._signal_received(at_log)
                due = self.checkpoints is not None and self.checkpoints.due(position.step, at_log)
                if received is not None or due:
                    started = self._pause(started)
                if received is not None:
                    self._interrupted(received)
        finally:
            self.callbacks.on_train_epoch_end(self)
        if position.batch < steps and self.signals.received is not None:  # batches ended early
            self._pause(started)
            self._interrupted(self.signals.received)
        position.epoch_seconds += time.perf_counter() - started
        return self.training_metrics()

    def training_metrics(self):
        """The epoch's training loss (exact: the negative ELBO per data point) and, where the
        objective breaks it down, what moves in it: ``train_loss_without_constant`` (the loss
        without the likelihood's normalising constant), ``train_recon`` and ``train_kl`` (see
        :meth:`~pyro_vsc.elbo.max_elbo.ParticleELBO.breakdown`); averages over the epoch's
        applied steps and processes (NaN if every step was skipped)."""
        position = self.position
        if position.epoch_loss is None:
            return {"train_loss": float("nan")}
        applied = position.epoch_applied
        metrics = {"train_loss": float(self.context.mean(position.epoch_loss)) / applied}
        parts = {name: float(self.context.mean(total)) / applied
                 for name, total in sorted(position.epoch_breakdown.items())}
        if parts:
            metrics["train_loss_without_constant"] = parts["recon"] + parts["kl"]
            metrics.update(train_recon=parts["recon"], train_kl=parts["kl"])
        return metrics

    def epoch_record(self, training_metrics):
        """The epoch's metrics record: validated on rank 0, sent to every process."""
        record = None
        if self.context.is_main:
            seconds = self.position.epoch_seconds
            record = {"epoch": self.position.epoch + 1, "step": self.position.step, **training_metrics,
                      "skipped_steps": self.position.epoch_skipped, "seconds": seconds,
                      "steps_per_second": len(self.batches) / seconds}
            if self.validate is not None:
                record.update({f"val_{key}": value for key, value in self.validate().items()})
            record.update(self.optimizers.learning_rates())
        return self.context.broadcast(record)

    def fit(self):
        """Trains until ``epochs`` (continuing a checkpoint if present), ``session_epochs`` or a
        callback's :meth:`request_stop`; returns the history.

        :raises TrainingDiverged: see :mod:`~pyro_vsc.train.divergence_policy`.
        :raises TrainingInterrupted: after SIGTERM/SIGINT, once the checkpoint is written.
        :raises RunFolderWriteError: when a checkpoint or the metrics cannot be written.
        """
        if not self.prepared:
            self.prepare()
        stop = self.epochs if self.session_epochs is None else min(
            self.epochs, self.position.epoch + int(self.session_epochs))
        if self.checkpoints is not None:
            self.checkpoints.restart_clock()
        cuda = [self.context.device] if self.context.device.type == "cuda" else []
        try:
            with self.signals:
                self.callbacks.on_fit_start(self)
                while self.position.epoch < stop and self.stop_reason is None:
                    self.model.train()
                    self.guide.train()
                    training_metrics = self.run_epoch()
                    self.model.eval()
                    self.guide.eval()
                    record = self.epoch_record(training_metrics)
                    self.callbacks.on_validation_end(self, record)
                    self.history.append(record)
                    self.position.next_epoch()
                    self.save_checkpoint()
                    # callbacks may sample (codes for figures); they must not shift the
                    # training's random stream, or a resumed run would differ from this one
                    with torch.random.fork_rng(devices=cuda):
                        self.callbacks.on_epoch_end(self, record)
                    received = self._signal_received(at_log=True)
                    if received is not None and self.position.epoch < stop and self.stop_reason is None:
                        self._interrupted(received)
        finally:
            self.callbacks.on_fit_end(self)
        if self.stop_reason is not None:
            log.info("%s", self.stop_reason)
        self.context.barrier()
        return self.history
