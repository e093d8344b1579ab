"""Trained runs you can load: ``pyro_vsc.load_run(run_dir)`` → model, guide and config, with
``encode``/``decode``/``reconstruct`` (README, "Use it on your own data").

A run folder (or its ``checkpoint.pt`` alone: the file holds the resolved config) is read with
``torch.load(weights_only=True)``, so loading a folder someone shared runs no code from it, and
model and guide are built from the config alone (:func:`pyro_vsc.build.build_model_and_guide`):
no data are read and no training objective is built.
"""

from pathlib import Path

import numpy as np
import pyro
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from pyro_vsc.build import build_model_and_guide
from pyro_vsc.devices import select_device
from pyro_vsc.resolvers import register_resolvers
from pyro_vsc.train.checkpoint import CHECKPOINT_NAME, CONFIG_NAME, load
from pyro_vsc.train.objective import Objective
from pyro_vsc.train.validation import select_codes


class TrainedModel:
    """The model and guide of a trained run, in eval mode, with the checkpoint's weights.

    :ivar config: the run's resolved config (an ``omegaconf.DictConfig``).
    :ivar model: the Pyro model module (its ``decoder``: the dictionary A of the linear model, or
        the decoder network of §4.2).
    :ivar guide: the trained guide.
    :ivar run_dir: the folder it was loaded from.
    :ivar int epochs_trained: epochs in the checkpoint.
    :ivar list history: the per-epoch metrics of the run.
    """

    def __init__(self, config, model, guide, run_dir=None, epochs_trained=0, history=()):
        self.config, self.model, self.guide = config, model, guide
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.epochs_trained, self.history = int(epochs_trained), list(history)

    @property
    def objective(self):
        """The run's :class:`~pyro_vsc.train.objective.Objective`: J particles and KL weights
        as trained, which choose the codes of :meth:`encode`."""
        return Objective.from_config(self.config, self.model, self.guide)

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def dictionary(self):
        """A (D, K) of the linear model, detached."""
        return self.model.dictionary.detach()

    def to(self, device):
        """Moves model and guide to ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``)."""
        device = select_device(device) if isinstance(device, str) else torch.device(device)
        self.model.to(device)
        self.guide.to(device)
        return self

    def _tensor(self, x):
        dtype = next(self.model.parameters()).dtype
        return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=dtype, device=self.device)

    @torch.no_grad()
    def encode(self, x, batch_size=1000):
        """Sparse codes of ``x`` (N, D) — or images (N, C, H, W) for the DNN generators — with
        exact zeros: for each data point the max-ELBO code of eq. (9) over the run's J samples
        (the codes validation scores). Random: seed torch (``pyro.set_rng_seed``) to repeat it.
        ``x`` must be prepared as the run's training data were (``load_data()``)."""
        with pyro.validation_enabled(bool(self.config.get("validate", False))):
            return select_codes(self.objective, self._tensor(x), batch_size=batch_size)["z"]

    @torch.no_grad()
    def decode(self, z):
        """The model's mean of x given codes ``z`` (N, K): A z for the linear model, the decoder's
        image for the DNN generators."""
        return self.model.decoder(self._tensor(z))

    def reconstruct(self, x, batch_size=1000):
        """``decode(encode(x))``."""
        return self.decode(self.encode(x, batch_size))

    def load_data(self):
        """The run's data as it trained on them (``instantiate(config.data)``): for the linear
        generator the train/validation splits (``.train``, ``.val``), for the DNN generators the
        ``(train, validation)`` datasets.

        :raises ValueError: a run its data are not stored for (saved by
            ``VariationalSparseCoder.save_run`` from vectors given in Python)."""
        if "_target_" not in self.config.data:
            raise ValueError(f"the run{'' if self.run_dir is None else ' in ' + str(self.run_dir)} was "
                             f"trained on {self.config.data.get('source', 'data given in Python')}; "
                             "its data are not stored with it")
        return instantiate(self.config.data)

    def __repr__(self):
        where = "" if self.run_dir is None else f" from {self.run_dir}"
        return (f"TrainedModel({type(self.model).__name__}, {type(self.guide).__name__}, "
                f"{self.epochs_trained} epoch(s){where})")


def resolve_checkpoint(path):
    """The ``checkpoint.pt`` of a run folder, or ``path`` itself if it is a file.

    :raises FileNotFoundError: neither (one line, naming the path)."""
    path = Path(path)
    checkpoint = path / CHECKPOINT_NAME if path.is_dir() else path
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{path} holds no trained run: no {CHECKPOINT_NAME} (train it with "
                                "python -m pyro_vsc.run, or let it finish its first epoch)")
    return checkpoint


def load_run(path, device="cpu"):
    """Loads a trained run: a run folder of ``python -m pyro_vsc.run``, or its ``checkpoint.pt``.

    :param path: the run folder or the checkpoint file.
    :param device: where to put model and guide (``auto``, ``cpu``, ``cuda``, ``cuda:N``).
    :rtype: TrainedModel
    :raises FileNotFoundError: no checkpoint there (one line, naming the path).
    :raises ValueError: a damaged checkpoint, or one that would run code when loaded.
    """
    checkpoint = resolve_checkpoint(path)
    register_resolvers()
    state = load(checkpoint)
    config = state.get("config")
    if config is None:  # checkpoints written before the config was stored in them
        saved = checkpoint.parent / CONFIG_NAME
        if not saved.is_file():
            raise FileNotFoundError(f"{checkpoint} holds no config and there is no {CONFIG_NAME} next to it")
        config = OmegaConf.to_container(OmegaConf.load(saved), resolve=True)
    config = OmegaConf.create(config)
    device = select_device(device) if isinstance(device, str) else torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model, guide = build_model_and_guide(config, device)  # initialisation draws: not the user's stream
    model.load_state_dict(state["model"])
    guide.load_state_dict(state["guide"])
    model.eval()
    guide.eval()
    return TrainedModel(config, model, guide, run_dir=checkpoint.parent,
                        epochs_trained=state["epoch"], history=state.get("history", ()))
