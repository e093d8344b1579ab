"""The figures a run folder holds, redrawn after every epoch."""

from pathlib import Path

import torch

from pyro_vsc.image_plots import plot_image_dictionary, plot_image_rows
from pyro_vsc.metrics import estimate_linear_dictionary
from pyro_vsc.plotting import plot_dictionary, plot_training_curves

from ..validation import encode_batches
from . import Callback

#: Images shown in the reconstructions figure (Fig. 19 style).
RECONSTRUCTIONS_SHOWN = 8


class LinearFigures(Callback):
    """``dictionary.png`` (atoms as tiles sorted by norm, Figs. 3, 10-18) and
    ``training_curves.png`` of the linear generator.

    :param model: the linear model (its ``dictionary``).
    :param run_dir: the run folder.
    """

    def __init__(self, model, run_dir):
        self.model, self.run_dir = model, Path(run_dir)

    def on_epoch_end(self, trainer, record):
        plot_dictionary(self.model.dictionary, self.run_dir / "dictionary.png",
                        title=f"epoch {record['epoch']}: objective {record['val_objective']:.4g}, "
                              f"{record['val_nonzero_pct']:.1f}% non-zero")
        plot_training_curves(trainer.history, self.run_dir / "training_curves.png")


class ImageFigures(Callback):
    """``reconstructions.png`` of the first validation images (Fig. 19) and
    ``training_curves.png`` after every epoch; after the last epoch ``dictionary.png``, the
    dictionary estimated from the validation codes (§4.2, Figs. 6, 20-23).

    :param objective: the run's :class:`~pyro_vsc.train.objective.Objective`.
    :param val: the validation batches.
    :param run_dir: the run folder.
    """

    def __init__(self, objective, val, run_dir):
        self.objective, self.val, self.run_dir = objective, val, Path(run_dir)

    def on_epoch_end(self, trainer, record):
        model = self.objective.model
        x, codes = next(encode_batches(self.objective, self.val))
        shown = x[:RECONSTRUCTIONS_SHOWN]
        with torch.no_grad():
            reconstructions = model.decoder(codes["z"][:RECONSTRUCTIONS_SHOWN])
        plot_image_rows([shown, reconstructions], self.run_dir / "reconstructions.png",
                        labels=["validation images", "reconstructions (max-ELBO codes)"],
                        title=f"epoch {record['epoch']}: MSE {record['val_mse']:.4g}, "
                              f"{record['val_nonzero_pct']:.1f}% non-zero")
        plot_training_curves(trainer.history, self.run_dir / "training_curves.png",
                             keys=(("train_loss_without_constant", "train_loss"), "train_kl", "val_mse",
                                   "val_nonzero_pct", "val_multi_information"))
        if trainer.position.epoch == trainer.epochs:
            images, latents = [], []
            for batch, chosen in encode_batches(self.objective, self.val):
                images.append(batch.flatten(1))  # on the training device, where the estimate runs
                latents.append(chosen["z"])
            dictionary = estimate_linear_dictionary(torch.cat(images), torch.cat(latents))
            plot_image_dictionary(dictionary, model.image_shape, self.run_dir / "dictionary.png",
                                  title=f"estimated dictionary, d = {dictionary.shape[1]} "
                                        "(entries in descending order of norm)")
