"""The progress bar of an epoch (tqdm): steps done and what moves in the training loss."""

from tqdm.auto import tqdm

from . import Callback


class ProgressBar(Callback):
    """Updated at the progress interval (``log_every``), where the loop reads the host anyway.

    Shows the epoch's running averages of the loss *without* the likelihood's normalising
    constant (the exact loss of the linear model is ~857 nats per patch of constant plus a few
    that change), its reconstruction part ``recon`` (the per-pixel MSE with the default σ² = D/2)
    and its weighted KL part ``kl``, and the % of non-zero codes of the last batch; the exact
    loss is in ``metrics.jsonl`` (``train_loss``). Objectives that do not break their loss down
    (Pyro's stock ELBOs) show the exact loss.
    """

    def __init__(self):
        self.bar = None

    def on_train_epoch_start(self, trainer):
        self.bar = tqdm(total=len(trainer.batches), initial=trainer.position.batch, leave=False,
                        desc=f"epoch {trainer.position.epoch + 1}/{trainer.epochs}", dynamic_ncols=True)

    def on_log(self, trainer):
        position = trainer.position
        self.bar.update(position.batch - self.bar.n)
        if position.epoch_loss is None:
            return
        shown = {name: f"{value:.4g}" for name, value in trainer.training_metrics().items()}
        shown = ({"loss": shown["train_loss_without_constant"], "recon": shown["train_recon"],
                  "kl": shown["train_kl"]} if "train_recon" in shown else {"loss": shown["train_loss"]})
        latent = trainer.objective.latent()
        if latent is not None:
            shown["nonzero"] = f"{float(100.0 * (latent != 0).float().mean()):.1f}%"
        self.bar.set_postfix(shown)

    def on_train_epoch_end(self, trainer):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
