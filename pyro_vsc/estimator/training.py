"""A model/guide pair trained on vectors held in memory, with the training command's own pieces.

:class:`VectorTraining` is what :class:`~pyro_vsc.estimator.VariationalSparseCoder` trains: the
run of ``python -m pyro_vsc.run`` without its run folder. The same functions build it from a
composed config — model, guide, objective and step by :func:`pyro_vsc.run.build_run`, the
optimizers and their schedules by :func:`pyro_vsc.run.build_optimizers` in an
:class:`~pyro_vsc.train.optimizer_set.OptimizerSet`, minibatches by
:class:`~pyro_vsc.train.batches.TensorBatches`, the loop by
:class:`~pyro_vsc.train.trainer.Trainer` — and nothing is written to disk: no checkpoint,
``metrics.jsonl`` or figures, and no validation split (the epoch records hold the training loss).
"""

import contextlib

import pyro
import torch
from hydra.utils import instantiate

from pyro_vsc.run import build_run, build_optimizers, runtime_settings, wrap_networks
from pyro_vsc.train.batches import TensorBatches
from pyro_vsc.train.callbacks.epoch_log import EpochLog
from pyro_vsc.train.callbacks.progress_bar import ProgressBar
from pyro_vsc.train.checkpoint import rng_state, set_rng_state
from pyro_vsc.train.distributed import DistributedContext
from pyro_vsc.train.divergence_policy import divergence_policy
from pyro_vsc.train.optimizer_set import OptimizerSet
from pyro_vsc.train.precision import autocast_dtype, grad_scaler
from pyro_vsc.train.trainer import Trainer
from pyro_vsc.train.validation import select_codes


@contextlib.contextmanager
def _random_stream(state, seed):
    """Runs the block on the random stream ``state`` (python, numpy, torch, CUDA), or on a fresh
    one seeded with ``seed`` when ``state`` is None; yields a dict whose ``"state"`` is the
    stream's state after the block. The caller's stream is restored afterwards."""
    saved = rng_state()
    stream = {"state": None}
    try:
        if state is None:
            pyro.set_rng_seed(seed)
        else:
            set_rng_state(state)
        yield stream
        stream["state"] = rng_state()
    finally:
        set_rng_state(saved)


class VectorTraining:
    """The linear generator of §4.1 and a guide, trained on vectors ``(N, D)`` in memory.

    Training continues across calls of :meth:`train` (optimizer, schedules, warm-ups, data order
    and random stream go on where they were), so that ``train(x, 1)`` called E times equals
    ``train(x, E)``. Every call runs on this object's own random stream, seeded with ``seed`` at
    construction: results depend on the seed and on the calls made, not on what else the process
    draws, and the caller's random state is left as it was.

    :param cfg: a composed run config (:func:`pyro_vsc.config.compose_config`) of the linear
        model; ``cfg.epochs`` is the planned length the schedules are laid out for
        (``schedule_time_scale``), ``cfg.batch_size`` the minibatch size.
    :param torch.device device: where model, guide and data live.
    :param int seed: seed of the initial networks, the data order and the Monte Carlo noise.
    :param int steps_per_epoch: the steps of an epoch that the per-epoch schedules count (the
        dictionary's learning-rate decay), those of the first data trained on.
    """

    def __init__(self, cfg, device, seed, steps_per_epoch):
        self.cfg, self.device, self.seed = cfg, torch.device(device), int(seed)
        self.steps_per_epoch = int(steps_per_epoch)
        self._rng = None
        context = DistributedContext(device=self.device)
        with runtime_settings(cfg), _random_stream(None, self.seed) as stream:
            amp_dtype = autocast_dtype(cfg.amp, self.device)
            scaler = grad_scaler(amp_dtype, self.device)
            built = build_run(cfg, self.device, grad_scaler=scaler, data=())  # data come with train()
            self.model, self.guide = built["model"], built["guide"]
            self.objective, self.step = built["objective"], built["step"]
            weight = getattr(self.model.decoder, "weight", None)
            if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
                raise ValueError(f"the estimator learns a linear dictionary; the model "
                                 f"{type(self.model).__name__} has none (keep model=linear)")
            wrap_networks(self.model, self.guide, context, amp_dtype)
            optimizers = OptimizerSet(build_optimizers(cfg, self.model, self.guide, self.steps_per_epoch), scaler)
            callbacks = [EpochLog(), *([ProgressBar()] if cfg.progress else []),
                         instantiate(cfg.early_stopping),
                         *(instantiate(options) for options in cfg.callbacks.values())]
            self.trainer = Trainer(model=self.model, guide=self.guide, objective=self.step,
                                   optimizers=optimizers, batches=None, epochs=cfg.epochs,
                                   callbacks=callbacks,
                                   divergence=divergence_policy(cfg.on_divergence, cfg.max_skipped_steps),
                                   log_every=cfg.log_every, context=context)
        self._rng = stream["state"]

    @staticmethod
    def batch_size(cfg, num_vectors):
        """The minibatch size on ``num_vectors`` vectors: ``cfg.batch_size``, or all of them if
        they are fewer."""
        return min(int(cfg.batch_size), int(num_vectors))

    def _batches(self, x):
        return TensorBatches(x.to(self.device), self.batch_size(self.cfg, x.shape[0]), seed=self.seed)

    @property
    def dictionary(self):
        """A, shape ``(D, K)`` (detached)."""
        return self.model.decoder.weight.detach()

    @property
    def history(self):
        """One record per epoch trained: ``epoch``, ``step``, ``train_loss``, learning rates, …"""
        return self.trainer.history

    def train(self, x, epochs):
        """Trains ``epochs`` more epochs on ``x`` (float32 ``(N, D)``); returns the history.

        :raises TrainingDiverged: NaN/inf in the loss or gradients (``on_divergence``).
        :raises TrainingInterrupted: Ctrl-C or SIGTERM, after the step that was running (the
            training state is consistent and the next call continues from it).
        """
        trainer = self.trainer
        trainer.batches = self._batches(x)
        trainer.epochs = trainer.position.epoch + int(epochs)
        with runtime_settings(self.cfg), _random_stream(self._rng, self.seed) as stream:
            try:
                trainer.fit()
            finally:
                self.model.eval()
                self.guide.eval()
        self._rng = stream["state"]
        return trainer.history

    @torch.no_grad()
    def codes(self, x, seed):
        """:func:`~pyro_vsc.train.validation.select_codes` of ``x`` (max-ELBO sampling, eq. 9,
        with the J particles and KL weights of training), drawn from a stream seeded with
        ``seed``; the training stream is not touched."""
        with runtime_settings(self.cfg), _random_stream(None, seed):
            return select_codes(self.objective, x.to(self.device))

    def state_dict(self):
        """Everything needed to continue: networks, objective, optimizers, position, history and
        the random stream (tensors and plain data)."""
        trainer = self.trainer
        return {**trainer.position.state_dict(), "model": self.model.state_dict(),
                "guide": self.guide.state_dict(), "objective": self.step.state_dict(),
                **trainer.optimizers.state_dict(), "history": trainer.history,
                "callbacks": trainer.callbacks.state_dict(), "rng": self._rng}

    def load_state_dict(self, state):
        trainer = self.trainer
        self.model.load_state_dict(state["model"])
        self.guide.load_state_dict(state["guide"])
        self.step.load_state_dict(state["objective"])
        trainer.optimizers.load_state_dict(state)
        trainer.position.load_state_dict(state)
        trainer.history = list(state["history"])
        trainer.callbacks.load_state_dict(state["callbacks"])
        self._rng = state["rng"]
