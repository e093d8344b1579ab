"""Listeners of the training loop (as PyTorch Lightning's callbacks): everything around the
optimisation itself — progress display, metrics files, loggers, figures, early stopping — is a
:class:`Callback`, and so is a user's own.

A new callback is one file with a :class:`Callback` subclass and one config entry,
``callbacks.<name>: {_target_: your_module.YourCallback, ...}`` (README, "Training loop"). The
hooks, in the order the trainer calls them:

``on_fit_start`` (after a checkpoint was resumed) → per epoch: ``on_train_epoch_start``,
``on_log`` every ``log_every`` steps and at the epoch's last step (the place to read values on
the host), ``on_train_epoch_end`` (also when the epoch ends early) → the epoch's validation →
``on_validation_end`` (may add entries to the epoch's record) → the checkpoint →
``on_epoch_end`` (the record is final; run on a copy of the random state, so that sampling here
does not shift training) → ``on_fit_end`` (always, also after an error). ``on_divergence`` is
called with the ``diverged`` record before the run stops.

Callbacks run on rank 0 only unless ``main_process_only`` is false (then on every process, e.g.
:class:`~pyro_vsc.train.callbacks.early_stopping.EarlyStopping`, whose decision every process
must take). A callback with state (``state_dict``/``load_state_dict``) has it saved in the
checkpoint under its ``state_key``, so that it resumes where it was; such state is updated in
``on_validation_end``, which comes before the epoch's checkpoint, while ``on_epoch_end`` is for
what the checkpoint need not know (files, figures).
"""


class Callback:
    """Base class: every hook does nothing."""

    #: Run on rank 0 only (figures, files, progress) or on every process (decisions).
    main_process_only = True

    @property
    def state_key(self):
        """The key of this callback's state in checkpoints."""
        return type(self).__name__

    def on_fit_start(self, trainer):
        """Training starts or continues (``trainer.history`` holds the epochs done)."""

    def on_train_epoch_start(self, trainer):
        """The epoch's steps start (at ``trainer.position.batch`` when it resumed inside it)."""

    def on_log(self, trainer):
        """Every ``log_every`` steps and at the epoch's last step."""

    def on_train_epoch_end(self, trainer):
        """The epoch's steps ended (all of them, or early on a stop)."""

    def on_validation_end(self, trainer, record):
        """The epoch's record (training loss, validation metrics, learning rates) before it is
        appended to the history and checkpointed; entries may be added to it."""

    def on_epoch_end(self, trainer, record):
        """The epoch is done, in the history and in the checkpoint."""

    def on_divergence(self, trainer, record):
        """The run diverged; ``record`` is its ``diverged`` record."""

    def on_fit_end(self, trainer):
        """Training ended, normally or not."""

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class CallbackList:
    """Calls a hook on every callback that runs on this process, in order."""

    def __init__(self, callbacks, is_main=True):
        self.callbacks = [c for c in callbacks if is_main or not c.main_process_only]

    def __iter__(self):
        return iter(self.callbacks)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args):
            for callback in self.callbacks:
                getattr(callback, hook)(*args)

        return call

    def state_dict(self):
        return {c.state_key: state for c in self.callbacks if (state := c.state_dict())}

    def load_state_dict(self, states):
        for callback in self.callbacks:
            if callback.state_key in states:
                callback.load_state_dict(states[callback.state_key])


__all__ = ["Callback", "CallbackList"]
