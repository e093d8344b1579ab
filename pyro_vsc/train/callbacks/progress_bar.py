"""The progress bar of an epoch (tqdm): steps done, the training loss and the % of non-zero codes."""

from tqdm.auto import tqdm

from . import Callback


class ProgressBar(Callback):
    """Updated at the progress interval (``log_every``), where the loop reads the host anyway."""

    def __init__(self):
        self.bar = None

    def on_train_epoch_start(self, trainer):
        self.bar = tqdm(total=len(trainer.batches), initial=trainer.position.batch, leave=False,
                        desc=f"epoch {trainer.position.epoch + 1}/{trainer.epochs}", dynamic_ncols=True)

    def on_log(self, trainer):
        position = trainer.position
        self.bar.update(position.batch - self.bar.n)
        if position.epoch_loss is not None:
            latent = trainer.objective.latent()
            nonzero = float(100.0 * (latent != 0).float().mean()) if latent is not None else float("nan")
            self.bar.set_postfix(loss=f"{float(position.epoch_loss) / position.epoch_applied:.4g}",
                                 nonzero=f"{nonzero:.1f}%")

    def on_train_epoch_end(self, trainer):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
