"""Checks of a composed run config before any data is read or any training step.

Every invalid value fails with one line that names the key, says what is accepted and what was
given (README, "Reliability"). Unknown config *names* (``guide=thresholded``) never get here:
Hydra rejects them while composing, listing the valid ones.
"""

import math
import re

from omegaconf import OmegaConf
from omegaconf.errors import InterpolationResolutionError

from pyro_vsc.data.dimension import data_dimension
from pyro_vsc.devices import select_device
from pyro_vsc.train.divergence_policy import POLICIES

#: Top-level integer settings and their smallest accepted value.
INTEGER_SETTINGS = {"epochs": 1, "paper_epochs": 1, "batch_size": 1, "log_every": 1,
                    "num_workers": 0, "max_skipped_steps": 0, "kl_warmup_steps": 0}
#: Top-level settings that are an integer ≥ 1 or null.
OPTIONAL_COUNTS = ("session_epochs", "checkpoint_every")
#: Top-level true/false settings.
SWITCHES = ("deterministic", "validate", "progress", "reuse_freed_memory")
#: Prior constants that must be positive (Table 1 priors; Appendix D values).
POSITIVE_PRIOR_CONSTANTS = ("threshold", "scale", "alpha0")


def _is_integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(key, value, minimum, optional=False):
    ok = (optional and value is None) or (_is_integer(value) and value >= minimum)
    return ok, f"{key} must be an integer ≥ {minimum}{' or null' if optional else ''}, got {value!r}"


def _positive(key, value, optional=False):
    ok = (optional and value is None) or (_is_number(value) and value > 0)
    return ok, f"{key} must be a number > 0{' or null' if optional else ''}, got {value!r}"


def _resolved(cfg):
    """The config as plain containers with every interpolation resolved, except the run folder
    (``${hydra:...}`` outside a Hydra app). A failing resolver (e.g. ``calibrated_threshold``
    with a target sparsity outside (0, 1)) becomes one line naming the key that calls it; the
    top-level values resolve first, then the prior (which the guide refers to), then the rest."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    keys = sorted((key for key in raw if key not in ("run_dir", "resume")),
                  key=lambda key: (isinstance(raw[key], dict), key != "prior"))
    resolved = {}
    for key in keys:
        try:
            value = cfg[key]
            resolved[key] = (OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value)
                             else value)
        except InterpolationResolutionError as error:
            reason = re.sub(r"^\w+ raised while resolving interpolation: ", "", str(error).splitlines()[0])
            raise ValueError(f"{error.full_key}: {reason}") from None
    return resolved


def _run_checks(values):
    """(condition, message) for the run's top-level settings among ``values``."""
    for key, minimum in INTEGER_SETTINGS.items():
        if key in values:
            yield _integer(key, values[key], minimum)
    for key in OPTIONAL_COUNTS:
        if key in values:
            yield _integer(key, values[key], 1, optional=True)
    if "checkpoint_every_seconds" in values:
        yield _positive("checkpoint_every_seconds", values["checkpoint_every_seconds"], optional=True)
    if "seed" in values:
        seed = values["seed"]
        yield (_is_integer(seed) and 0 <= seed < 2**32,
               f"seed must be an integer in [0, 2^32 - 1], got {seed!r}")
    if "on_divergence" in values:
        policy = values["on_divergence"]
        yield policy in POLICIES, f"on_divergence must be one of {', '.join(POLICIES)}, got {policy!r}"
    if "kl_weight" in values:
        weight = values["kl_weight"]
        yield _is_number(weight) and weight >= 0, f"kl_weight must be a number ≥ 0, got {weight!r}"
    for key in SWITCHES:
        if key in values:
            yield isinstance(values[key], bool), f"{key} must be true or false, got {values[key]!r}"
    for name, value in (values.get("loggers") or {}).items():
        yield isinstance(value, bool), f"loggers.{name} must be true or false, got {value!r}"


def _model_checks(cfg):
    """(condition, message) for J, the model's dimensions, the KL weights, prior and guide."""
    yield _integer("elbo.num_particles (J)", cfg["elbo"]["num_particles"], 1)
    yield _integer("model.latent_dim", cfg["model"]["latent_dim"], 1)
    if "data_dim" in cfg["model"]:
        yield _integer("model.data_dim", cfg["model"]["data_dim"], 1)
    for site, weight in cfg["kl_weights"].items():
        yield _is_number(weight) and weight >= 0, f"kl_weights.{site} must be a number ≥ 0, got {weight!r}"
    prior = cfg.get("prior") or {}
    for key in POSITIVE_PRIOR_CONSTANTS:
        if key in prior:
            yield _positive(f"prior.{key}", prior[key])
    if "nonzero_prob" in prior:
        value = prior["nonzero_prob"]
        yield _is_number(value) and 0 < value < 1, f"prior.nonzero_prob must lie in (0, 1), got {value!r}"
    guide = cfg.get("guide") or {}
    threshold = guide.get("threshold")
    if isinstance(threshold, dict) and "threshold" in threshold:
        yield _positive("guide.threshold.threshold", threshold["threshold"])
    if "lam" in guide:
        yield _positive("guide.lam", guide["lam"])


def _data_checks(cfg, dimension):
    """(condition, message) for the data config against the batch size and the model; ``dimension``
    is the data's (D, how the config gives it), see :func:`~pyro_vsc.data.dimension.data_dimension`."""
    data, model = cfg["data"], cfg["model"]
    for key in ("num_train", "train_size"):
        if key in data:
            size = data[key]
            yield _integer(f"data.{key}", size, 1)
            yield (not _is_integer(size) or cfg["batch_size"] <= size,
                   f"batch_size={cfg['batch_size']} is larger than the training set (data.{key}={size}); "
                   f"use a batch size of at most {size}")
    for key in ("num_val", "val_size"):
        if key in data:
            yield _integer(f"data.{key}", data[key], 1)
    dim = model.get("data_dim")
    if dimension is not None and _is_integer(dim):
        expected, given_by = dimension
        yield (expected == dim, f"{given_by} but model.data_dim={dim}; the model must take the data's "
                                "dimension (leave model.data_dim out: it follows the data)")


def _raise_first(checks):
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def check_config(cfg):
    """Raises ``ValueError`` with one line for the first invalid value of ``cfg``.

    The run's own settings are checked as written first (so that ``epochs=abc`` is reported as
    such, not as a schedule that cannot use it), then everything after resolution: threshold,
    scale and α₀ > 0, J ≥ 1, latent and data dimensions ≥ 1, KL weights ≥ 0, a target sparsity
    in (0, 1), a batch no larger than the training set, patches or vectors of the model's
    dimension (a file of vectors, ``data=arrays``, by its header), and the device.
    """
    raw = OmegaConf.to_container(cfg, resolve=False)
    _raise_first(_run_checks({key: value for key, value in raw.items()
                              if not OmegaConf.is_interpolation(cfg, key)}))
    # The data's dimension before the rest: for data=arrays it reads the file's header, so that a
    # missing or malformed file is reported as such, not through model.data_dim, which follows it.
    dimension = data_dimension(cfg.data)
    resolved = _resolved(cfg)
    _raise_first(_run_checks(resolved))
    _raise_first(_model_checks(resolved))
    _raise_first(_data_checks(resolved, dimension))
    select_device(resolved["device"])  # ValueError with one line for a device not usable here
