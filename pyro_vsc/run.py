"""Command line: ``python -m pyro_vsc.run model=linear guide=thresh_gamma [elbo=max] [...]``.

Composes the Hydra config (``pyro_vsc/conf``), builds data, model, guide, objective and
optimizers, and trains into a run folder under ``runs/`` (resolved config, ``metrics.jsonl``,
``checkpoint.pt``, figures). Re-running with ``resume=<run folder>`` continues that run.
"""

import logging
from pathlib import Path

import hydra
import pyro
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pyro_vsc.plotting import plot_dictionary, plot_training_curves
from pyro_vsc.resolvers import register_resolvers
from pyro_vsc.train.divergence import DIVERGENCE_NAME, nonfinite_parameters, record_divergence
from pyro_vsc.train.step import ObjectiveStep
from pyro_vsc.train.trainer import Trainer

log = logging.getLogger("pyro_vsc")
register_resolvers()

CONFIG_NAME = "config.yaml"


def select_device(name):
    """``auto`` picks CUDA when available; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name} requested but CUDA is not available; use device=cpu or auto")
    return device


def seed_everything(seed):
    pyro.set_rng_seed(seed)  # python, numpy and torch (all devices)


def build_guide(guide_cfg, model):
    """Instantiates the guide; guides that read the model (FISTA) receive its decoder."""
    factory = instantiate(guide_cfg, _partial_=True)
    if getattr(factory.func, "needs_decoder", False):
        return factory(decoder=model.decoder)
    return factory()


def build_run(cfg, device):
    """Builds everything a training run needs from a composed config.

    :returns: dict with ``data``, ``model``, ``guide``, ``elbo``, ``objective``, ``optimizers``.
    """
    data = instantiate(cfg.data)
    model = instantiate(cfg.model.module, prior=instantiate(cfg.prior)).to(device)
    guide = build_guide(cfg.guide, model).to(device)
    elbo = instantiate(cfg.elbo)
    kl_weights = OmegaConf.to_container(cfg.kl_weights, resolve=True)
    objective = ObjectiveStep(elbo, model, guide, kl_weights)
    return {"data": data, "model": model, "guide": guide, "elbo": elbo, "objective": objective,
            "kl_weights": kl_weights}


def build_optimizers(cfg, model, guide, steps_per_epoch):
    """One optimizer and per-step schedule for the model's and one for the guide's parameters."""
    optimizers = {}
    for name, module in (("model", model), ("guide", guide)):
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            continue
        optimizer = instantiate(cfg.model.optim[name].optimizer)(params)
        scheduler = instantiate(cfg.model.optim[name].scheduler)(optimizer, steps_per_epoch, cfg.epochs)
        optimizers[name] = (optimizer, scheduler)
    return optimizers


def check_config(cfg):
    """Fails before any training with one clear line per invalid value."""
    checks = [
        (cfg.epochs >= 1, f"epochs must be ≥ 1, got {cfg.epochs}"),
        (cfg.batch_size >= 1, f"batch_size must be ≥ 1, got {cfg.batch_size}"),
        (cfg.elbo.num_particles >= 1, f"elbo.num_particles (J) must be ≥ 1, got {cfg.elbo.num_particles}"),
        (cfg.kl_weight >= 0, f"kl_weight must be ≥ 0, got {cfg.kl_weight}"),
        (cfg.model.latent_dim >= 1, f"model.latent_dim must be ≥ 1, got {cfg.model.latent_dim}"),
        (cfg.log_every >= 1, f"log_every must be ≥ 1, got {cfg.log_every}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


#: Settings that may change when a run is resumed: they do not affect its numbers.
RESUMABLE_CHANGES = {"resume", "run_dir", "progress", "log_every", "session_epochs", "device"}


def _flatten(node, prefix=""):
    if isinstance(node, dict):
        return {k: v for key, value in node.items()
                for k, v in _flatten(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def save_config(cfg, run_dir):
    """Writes the resolved config into the run folder, or checks it against the saved one.

    A resumed run must describe the same experiment: any difference outside
    :data:`RESUMABLE_CHANGES` stops the run before training, naming the changed keys.
    """
    path = Path(run_dir) / CONFIG_NAME
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if path.exists():
        saved = _flatten(OmegaConf.to_container(OmegaConf.load(path), resolve=True))
        current = _flatten(resolved)
        changed = sorted(key for key in saved.keys() | current.keys()
                         if key.split(".")[0] not in RESUMABLE_CHANGES
                         and saved.get(key) != current.get(key))
        if changed:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
            raise ValueError(f"cannot resume {run_dir}: the config differs from the one the run "
                             f"was started with ({details}); start a new run folder instead")
        return
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(resolved)))


def train(cfg: DictConfig):
    """Trains one run described by ``cfg``; returns the metrics history."""
    check_config(cfg)
    max_particles = OmegaConf.select(cfg, "max_particles")
    if max_particles is not None and cfg.elbo.num_particles > max_particles:
        # e.g. FISTA in a J sweep: more particles repeat the same deterministic code (Table 1 "–")
        log.warning("skipped: this guide takes at most J = %d particle(s), got elbo.num_particles=%d",
                    max_particles, cfg.elbo.num_particles)
        return []
    pyro.settings.set(module_local_params=True)
    run_dir = Path(cfg.resume if cfg.resume else cfg.run_dir)
    if cfg.resume and not (run_dir / "checkpoint.pt").exists():
        raise FileNotFoundError(f"resume={cfg.resume}: no checkpoint.pt in that folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.run_dir = str(run_dir)  # the saved config names the folder it lives in
    cfg.resume = None
    device = select_device(cfg.device)
    seed_everything(cfg.seed)
    built = build_run(cfg, device)
    data, model, guide = built["data"], built["model"], built["guide"]
    train_data, val_data = data.train.to(device), data.val.to(device)
    if train_data.shape[-1] != cfg.model.data_dim:
        raise ValueError(f"data has dimension {train_data.shape[-1]} but model.data_dim is "
                         f"{cfg.model.data_dim}")
    save_config(cfg, run_dir)
    from pyro_vsc.train.batches import TensorBatches

    batches = TensorBatches(train_data, cfg.batch_size, seed=cfg.seed)
    optimizers = build_optimizers(cfg, model, guide, len(batches))
    validation = instantiate(cfg.model.validation)

    def validate():
        return validation(model, guide, val_data, kl_weights=built["kl_weights"])

    side = int(round(cfg.model.data_dim ** 0.5))

    def figures(trainer, record):
        plot_dictionary(model.dictionary, run_dir / "dictionary.png", patch_shape=(side, side),
                        title=f"epoch {record['epoch']}: objective {record['val_objective']:.4g}, "
                              f"{record['val_nonzero_pct']:.1f}% non-zero")
        plot_training_curves(trainer.history, run_dir / "training_curves.png")

    trainer = Trainer(model=model, guide=guide, objective=built["objective"], optimizers=optimizers,
                      batches=batches, validate=validate, run_dir=run_dir, epochs=cfg.epochs,
                      log_every=cfg.log_every, progress=cfg.progress, on_epoch_end=figures,
                      session_epochs=cfg.session_epochs)
    log.info("run folder: %s (device %s, %d steps per epoch)", run_dir, device, len(batches))
    try:
        history = trainer.fit()
    except Exception as error:  # a diverged run is recorded, not lost (Table 2 "NaN")
        if not _record_if_diverged(run_dir, trainer, model, guide, error):
            raise
        return trainer.history
    if _record_if_diverged(run_dir, trainer, model, guide):
        return history
    if len(history) == cfg.epochs:
        last = history[-1]
        log.info("done: validation objective %.4g, %.2f%% non-zero, %.1f s/epoch",
                 last["val_objective"], last["val_nonzero_pct"], last["seconds"])
    return history


def _record_if_diverged(run_dir, trainer, model, guide, error=None):
    """Writes ``diverged.json`` when model or guide parameters hold NaN/inf; returns whether."""
    broken = nonfinite_parameters(model=model, guide=guide)
    if broken:
        record_divergence(run_dir, trainer.epoch, trainer.step, broken, error)
        log.error("run diverged after %d epochs (step %d): non-finite %s; recorded in %s",
                  trainer.epoch, trainer.step, ", ".join(broken[:3]), DIVERGENCE_NAME)
    return bool(broken)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig):
    train(cfg)


if __name__ == "__main__":
    main()
