"""Command line: ``python -m pyro_vsc.run model=linear guide=thresh_gamma [elbo=max] [...]``.

Composes the Hydra config (``pyro_vsc/conf``), builds data, model, guide, objective and
optimizers, and trains into a run folder under ``runs/`` (resolved config, ``metrics.jsonl``,
``checkpoint.pt``, figures). Re-running with ``resume=<run folder>`` continues that run.

Data-parallel: ``torchrun --nproc_per_node=N -m pyro_vsc.run ...`` trains on N processes (see
:mod:`pyro_vsc.train.distributed`). Rank 0 runs Hydra and owns the run folder; the other ranks
compose the same config from the command line without creating any folder.
"""

import contextlib
import logging
import os
import sys
from pathlib import Path

import hydra
import pyro
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pyro.infer.util import is_validation_enabled

from pyro_vsc.build import build_model_and_guide
from pyro_vsc.c_heap import reusing_freed_memory
from pyro_vsc.config import compose_config
from pyro_vsc.config_checks import check_config
from pyro_vsc.elbo.site_match import ModelGuideMismatch
from pyro_vsc.resolvers import register_resolvers
from pyro_vsc.resume import RESUMABLE_CHANGES, flatten, resumed_config
from pyro_vsc.train.batches import LoaderBatches, OrderedBatches, TensorBatches
from pyro_vsc.train.callbacks.csv_logger import CSVLogger
from pyro_vsc.train.callbacks.early_stopping import EarlyStoppingMetricError
from pyro_vsc.train.callbacks.epoch_log import EpochLog
from pyro_vsc.train.callbacks.figures import ImageFigures, LinearFigures
from pyro_vsc.train.callbacks.metrics_file import MetricsFile
from pyro_vsc.train.callbacks.progress_bar import ProgressBar
from pyro_vsc.train.callbacks.tensorboard_logger import TensorBoardLogger
from pyro_vsc.train.checkpoint import CHECKPOINT_NAME, CONFIG_NAME, RunFolderWriteError, prepare_run_folder
from pyro_vsc.train.checkpointing import Checkpointer
from pyro_vsc.train.distributed import DistributedContext, route_calls
from pyro_vsc.train.divergence import TrainingDiverged
from pyro_vsc.train.divergence_policy import divergence_policy
from pyro_vsc.train.global_batchnorm import synchronise_batchnorm
from pyro_vsc.train.interruption import TrainingInterrupted
from pyro_vsc.train.objective import Objective
from pyro_vsc.train.optimizer_set import OptimizerSet
from pyro_vsc.train.precision import AutocastNetwork, autocast_dtype, grad_scaler
from pyro_vsc.train.step import ObjectiveStep
from pyro_vsc.train.trainer import Trainer

log = logging.getLogger("pyro_vsc")
register_resolvers()



#: cuBLAS workspace setting that makes CUDA matrix products deterministic (cuBLAS docs, "Results
#: reproducibility"); must be set before the first cuBLAS call of the process.
CUBLAS_WORKSPACE = ":4096:8"


def _flushes_denormals():
    """Whether the CPU currently flushes subnormal floats to zero (torch has no getter)."""
    return bool(torch.tensor([1e-39], dtype=torch.float32).mul(1.0).eq(0.0).item())


@contextlib.contextmanager
def runtime_settings(cfg):
    """Process-wide settings of a run, restored when it ends: module-local Pyro parameters,
    distribution validation, subnormal flushing, deterministic algorithms and the C heap's
    handling of freed memory.

    Validation (Pyro's and torch's argument/support checks) is off by default: it costs a few
    reductions and host synchronisations per distribution per step. ``validate=true`` turns it
    on to debug a model.

    Subnormal floats are flushed to zero on the CPU: late in a run the learning rates of the
    one-cycle schedule reach 1e-7 and optimizer states fill with subnormals, whose arithmetic
    is an order of magnitude slower on x86; values below ~1e-38 do not matter to any result.

    ``deterministic=true`` makes torch use deterministic algorithms only
    (``torch.use_deterministic_algorithms``, which raises on an operation that has none),
    disables cuDNN's benchmark autotuning and sets ``CUBLAS_WORKSPACE_CONFIG`` (unless already
    set), so that CUDA runs repeat bit for bit; on a CPU runs repeat without it (README,
    "Reliability").

    ``reuse_freed_memory=true`` (the default) keeps the memory of freed tensors in glibc's heap
    for the next step instead of unmapping it (:func:`~pyro_vsc.c_heap.reusing_freed_memory`):
    the kernel no longer faults the same pages in again at every step, at a cost in host memory
    (the heap keeps what it grew to; :mod:`pyro_vsc.c_heap`).
    """
    previous = (pyro.settings.get("module_local_params"), is_validation_enabled(),
                _flushes_denormals(),
                torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
                torch.backends.cudnn.deterministic)
    pyro.settings.set(module_local_params=True)
    pyro.enable_validation(bool(cfg.validate))
    torch.set_flush_denormal(True)
    deterministic = bool(cfg.deterministic)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = deterministic
    try:
        with reusing_freed_memory(bool(cfg.get("reuse_freed_memory", True))):
            yield
    finally:
        module_local, validation, flush, deterministic, benchmark, cudnn_deterministic = previous
        pyro.settings.set(module_local_params=module_local)
        pyro.enable_validation(validation)
        torch.set_flush_denormal(flush)
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.benchmark = benchmark
        torch.backends.cudnn.deterministic = cudnn_deterministic


def seed_everything(seed):
    pyro.set_rng_seed(seed)  # python, numpy and torch (all devices)


def build_run(cfg, device, grad_scaler=None, data=None):
    """Builds everything a training run needs from a composed config.

    :param grad_scaler: the float16 gradient scaler of the objective, if any.
    :param data: the instantiated ``cfg.data`` if already loaded.
    :returns: dict with ``data``, ``model``, ``guide``, ``elbo``, ``objective`` (the
        :class:`~pyro_vsc.train.objective.Objective`: model, guide, J, KL weights) and ``step``
        (its :class:`~pyro_vsc.train.step.ObjectiveStep`).
    """
    data = instantiate(cfg.data) if data is None else data
    model, guide = build_model_and_guide(cfg, device)
    elbo = instantiate(cfg.elbo)
    objective = Objective.from_config(cfg, model, guide)
    step = ObjectiveStep(elbo, model, guide, objective.kl_weights, grad_scaler=grad_scaler,
                         capture=cfg.capture, kl_warmup_steps=cfg.kl_warmup_steps)
    return {"data": data, "model": model, "guide": guide, "elbo": elbo, "objective": objective, "step": step}


def wrap_networks(model, guide, context, amp_dtype):
    """Routes calls of ``model.decoder`` and ``guide.encoder`` through autocast (``amp_dtype``)
    and, under data parallelism, ``DistributedDataParallel`` with global-batch BatchNorm.

    Only trainable networks are wrapped (the FISTA guide has none). The modules keep their
    names in ``state_dict()`` (see :func:`~pyro_vsc.train.distributed.route_calls`).
    """
    for owner, name in ((model, "decoder"), (guide, "encoder")):
        network = owner._modules.get(name)
        if network is None or not any(p.requires_grad for p in network.parameters()):
            continue
        if context.distributed:
            network = synchronise_batchnorm(network, context.device)
            setattr(owner, name, network)
        wrapped = network
        if amp_dtype is not None:
            wrapped = AutocastNetwork(wrapped, context.device.type, amp_dtype)
        if context.distributed:
            wrapped = context.data_parallel(wrapped)
        if wrapped is not network:
            route_calls(owner, name, wrapped)


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


def save_config(cfg, run_dir):
    """Writes the resolved config into the run folder, or checks it against the saved one.

    A resumed run must describe the same experiment: any difference outside
    :data:`RESUMABLE_CHANGES` stops the run before training, naming the changed keys.
    """
    path = Path(run_dir) / CONFIG_NAME
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if path.exists():
        saved = flatten(OmegaConf.to_container(OmegaConf.load(path), resolve=True))
        current = flatten(resolved)
        changed = sorted(key for key in saved.keys() | current.keys()
                         if key.split(".")[0] not in RESUMABLE_CHANGES
                         and saved.get(key) != current.get(key))
        if changed:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
            raise ValueError(f"cannot resume {run_dir}: the config differs from the one the run "
                             f"was started with ({details}); start a new run folder instead")
        return
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(resolved)))


def load_data(cfg, context):
    """Instantiates the data on rank 0 first (downloads, decompression and caches write files),
    then on the other ranks."""
    data = instantiate(cfg.data) if context.is_main else None
    context.barrier()
    return data if context.is_main else instantiate(cfg.data)


def training_batches(cfg, data, model, context):
    """``(training batches, validation data)`` for in-memory splits (``.train``/``.val``
    tensors, the linear generator) or a ``(train, val)`` pair of image datasets."""
    device = context.device
    if isinstance(data, tuple):
        train_set, val_set = data
        image_shape = tuple(train_set[0][0].shape)
        model_shape = getattr(model, "image_shape", None)
        if model_shape is None:
            raise ValueError(f"the data are images of shape {image_shape} but "
                             f"{type(model).__name__} takes vectors of model.data_dim="
                             f"{cfg.model.data_dim} values; use model=fmnist or model=celeba")
        if image_shape != model_shape:
            raise ValueError(f"data images have shape {image_shape} but the model generates "
                             f"{model_shape}; use the data config of the model")
        batches = LoaderBatches(train_set, cfg.batch_size, device, seed=cfg.seed, rank=context.rank,
                                world_size=context.world_size, num_workers=cfg.num_workers)
        return batches, OrderedBatches(val_set, cfg.batch_size, device, num_workers=cfg.num_workers)
    train_data, val_data = data.train.to(device), data.val.to(device)
    if train_data.shape[-1] != cfg.model.data_dim:
        raise ValueError(f"data has dimension {train_data.shape[-1]} but model.data_dim is "
                         f"{cfg.model.data_dim}")
    batches = TensorBatches(train_data, cfg.batch_size, seed=cfg.seed, rank=context.rank,
                            world_size=context.world_size)
    return batches, val_data


def build_callbacks(cfg, objective, val, run_dir, image_data):
    """The loop's callbacks of a run config, in the order they run: ``metrics.jsonl``, the
    optional loggers, the epoch log line, the progress bar, the figures, early stopping, and the
    user's own (``callbacks.<name>``)."""
    callbacks = [MetricsFile(run_dir)]
    loggers = {"csv": CSVLogger, "tensorboard": TensorBoardLogger}
    callbacks += [logger(run_dir) for name, logger in loggers.items() if cfg.loggers[name]]
    callbacks.append(EpochLog())
    if cfg.progress:
        callbacks.append(ProgressBar())
    callbacks.append(ImageFigures(objective, val, run_dir) if image_data else LinearFigures(objective.model, run_dir))
    callbacks.append(instantiate(cfg.early_stopping))
    callbacks += [instantiate(options) for options in cfg.callbacks.values()]
    return callbacks


def run_folder(cfg):
    """The run's folder: ``resume``, else ``run_dir``, else Hydra's output folder
    (``runs/<date>_<model>_<guide>_<elbo>_J<J>_s<seed>``, or the sweep's sub-folder)."""
    if cfg.resume:
        return Path(cfg.resume)
    if cfg.run_dir:
        return Path(cfg.run_dir)
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    raise ValueError("run_dir is not set: pass run_dir=<folder> (outside the command line there "
                     "is no Hydra output folder to default to)")


def build_trainer(cfg, context):
    """Everything of a run up to the trainer, on this process of ``context``.

    Rank 0 chooses the run folder (``resume`` or ``run_dir``), checks or saves the config in it;
    the other ranks receive its path and write nothing.
    """
    run_dir = None
    if context.is_main:
        run_dir = run_folder(cfg)
        if cfg.resume and not (run_dir / CHECKPOINT_NAME).exists():
            raise FileNotFoundError(f"resume={cfg.resume}: no {CHECKPOINT_NAME} in that folder")
        prepare_run_folder(run_dir)  # before the data: an unwritable folder fails at once
    run_dir = Path(context.broadcast(None if run_dir is None else str(run_dir)))
    cfg.run_dir = str(run_dir)  # the saved config names the folder it lives in
    cfg.resume = None
    seed_everything(cfg.seed)  # the same initial networks on every process
    amp_dtype = autocast_dtype(cfg.amp, context.device)
    scaler = grad_scaler(amp_dtype, context.device)
    data = load_data(cfg, context)
    built = build_run(cfg, context.device, grad_scaler=scaler, data=data)
    model, guide = built["model"], built["guide"]
    batches, val = training_batches(cfg, data, model, context)
    if context.is_main:
        save_config(cfg, run_dir)
    wrap_networks(model, guide, context, amp_dtype)
    if context.rank > 0:
        context.seed(cfg.seed)  # independent Monte Carlo noise per process; rank 0 continues
    optimizers = OptimizerSet(build_optimizers(cfg, model, guide, len(batches)), scaler)
    validation, objective = instantiate(cfg.model.validation), built["objective"]
    return Trainer(model=model, guide=guide, objective=built["step"], optimizers=optimizers,
                   batches=batches, epochs=cfg.epochs, validate=lambda: validation(objective, val),
                   callbacks=build_callbacks(cfg, objective, val, run_dir, isinstance(data, tuple)),
                   checkpoints=Checkpointer(run_dir, cfg.checkpoint_every, cfg.checkpoint_every_seconds, context,
                                            config=OmegaConf.to_container(cfg, resolve=True)),
                   divergence=divergence_policy(cfg.on_divergence, cfg.max_skipped_steps),
                   log_every=cfg.log_every, session_epochs=cfg.session_epochs, context=context)


#: Added to a ``ValueError``/``OSError`` raised while a run is prepared (config, data, run
#: folder, checkpoint to resume): the command line reports those in one line.
BEFORE_TRAINING = "raised while preparing the run, before any training step"


@contextlib.contextmanager
def _preparing():
    """Marks bad-input errors of the preparation; errors of objects built by Hydra (data
    loaders, priors) are re-raised as they were raised, not wrapped in Hydra's exception."""
    try:
        yield
    except InstantiationException as error:
        cause = error.__cause__
        if not isinstance(cause, (ValueError, OSError)):
            raise
        cause.add_note(BEFORE_TRAINING)
        raise cause from None
    except (ValueError, OSError) as error:
        error.add_note(BEFORE_TRAINING)
        raise


def train(cfg: DictConfig):
    """Trains one run described by ``cfg`` (on every process of a torchrun launch); returns the
    metrics history.

    :raises ValueError, OSError: bad config, data or run folder, before any training step.
    :raises TrainingDiverged: NaN/inf in the loss or gradients (``on_divergence``).
    :raises TrainingInterrupted: SIGTERM/SIGINT, after the checkpoint was written.
    :raises RunFolderWriteError: a checkpoint or the metrics could not be written.
    """
    with _preparing():
        check_config(cfg)
    max_particles = OmegaConf.select(cfg, "max_particles")
    if max_particles is not None and cfg.elbo.num_particles > max_particles:
        # e.g. FISTA in a J sweep: more particles repeat the same deterministic code (Table 1 "–")
        log.warning("skipped: this guide takes at most J = %d particle(s), got elbo.num_particles=%d",
                    max_particles, cfg.elbo.num_particles)
        return []
    with runtime_settings(cfg), DistributedContext.from_environment(cfg.device) as context:
        with _preparing():
            trainer = build_trainer(cfg, context)
            trainer.prepare()
        log.info("run folder: %s (device %s, %d process(es), %d steps per epoch)", trainer.run_dir,
                 context.device, context.world_size, len(trainer.batches))
        history = trainer.fit()
    if history and (len(history) == cfg.epochs or trainer.stop_reason is not None):
        log.info("done: %s", ", ".join(f"{key}={value:.4g}" for key, value in history[-1].items()
                                       if key.startswith("val_") and isinstance(value, float)))
    return history


#: Exit statuses of the command line besides 0 (done) and 1 (an unexpected error, with its
#: traceback); a run stopped by SIGTERM/SIGINT exits with 128 + the signal (143, 130).
EXIT_INVALID_INPUT = 2
EXIT_DIVERGED = 3
EXIT_WRITE_FAILED = 4


def run_command(cfg, overrides=None):
    """:func:`train` for the command line: returns the exit status and reports an expected
    failure (bad input, divergence, signal, failed write) as one line on stderr.

    :param overrides: the command line's overrides; with ``resume=<folder>`` the run continues
        with its saved config and only these settings are compared with it
        (:func:`~pyro_vsc.resume.resumed_config`). ``None`` compares every setting of ``cfg``.
    """
    try:
        if cfg.resume and overrides is not None:
            with _preparing():
                cfg = resumed_config(cfg, overrides)
        train(cfg)
    except TrainingDiverged as error:
        status, line = EXIT_DIVERGED, f"error: {error}"
    except TrainingInterrupted as error:
        status, line = error.exit_status, str(error)
    except RunFolderWriteError as error:
        status, line = EXIT_WRITE_FAILED, f"error: {error}"
    except (ModelGuideMismatch, EarlyStoppingMetricError) as error:  # found once training started
        status, line = EXIT_INVALID_INPUT, f"error: {error}"
    except (ValueError, OSError) as error:
        if BEFORE_TRAINING not in getattr(error, "__notes__", ()):
            raise
        status, line = EXIT_INVALID_INPUT, f"error: {error}"
    else:
        return 0
    print(line, file=sys.stderr)
    return status


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig):
    status = run_command(cfg, overrides=HydraConfig.get().overrides.task)
    if status == EXIT_DIVERGED and HydraConfig.get().mode == RunMode.MULTIRUN:
        # a sweep measures every run: this one is recorded as diverged (its metrics.jsonl ends
        # with a "diverged" record, reported as NaN), the next jobs still run
        log.warning("this run diverged; the sweep continues with its next job")
        return
    if status:
        sys.exit(status)


def worker_overrides(argv):
    """The overrides of a torchrun process other than rank 0: the command line's, without those
    of Hydra's run folder and logging (``hydra.*`` overrides only concern those)."""
    if any(arg in ("-m", "--multirun") for arg in argv):
        raise ValueError("Hydra multirun cannot be combined with torchrun; launch one torchrun per "
                         "run (e.g. the submitit launcher's tasks_per_node)")
    return [arg for arg in argv if not arg.startswith(("hydra.", "hydra/", "-"))]


def worker_config(argv):
    """The config of a torchrun process other than rank 0, composed without Hydra's app."""
    return compose_config(worker_overrides(argv))


if __name__ == "__main__":
    if int(os.environ.get("RANK", "0")) > 0:
        sys.exit(run_command(worker_config(sys.argv[1:]), overrides=worker_overrides(sys.argv[1:])))
    else:
        main()
