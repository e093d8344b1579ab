"""``python -m pyro_vsc.run resume=<folder>``: continue a run with the config it was started with.

The command line of a resumed run need not repeat how the run was started: the run's saved
config is used, and only the settings given *explicitly* on the resuming command line are
compared with it. Those that do not change the experiment's numbers (:data:`RESUMABLE_CHANGES`:
the progress display, the device, checkpoint intervals, ...) are applied; any other that differs
is refused with one line naming it (``epochs: 3 -> 30``).
"""

from importlib import resources
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from pyro_vsc.config import compose_config
from pyro_vsc.train.checkpoint import CONFIG_NAME

#: Settings that may change when a run is resumed: they do not affect its numbers (``method``
#: names the run in reports; folders saved before configs had it resume without it).
RESUMABLE_CHANGES = {"resume", "run_dir", "progress", "log_every", "session_epochs", "device",
                     "checkpoint_every", "checkpoint_every_seconds", "on_divergence",
                     "max_skipped_steps", "deterministic", "capture", "reuse_freed_memory", "loggers",
                     "method"}


def flatten(node, prefix=""):
    """``{"a.b": value}`` of a nested plain container."""
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in flatten(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def _groups():
    """The config groups (``model``, ``guide``, ...): the folders of ``pyro_vsc/conf``."""
    return {entry.name for entry in resources.files("pyro_vsc.conf").iterdir() if entry.is_dir()}


def explicit_keys(overrides):
    """The config keys that command-line ``overrides`` set: a value override its key (and what is
    below it), a group choice (``guide=thresh``) every key it changes relative to the defaults;
    Hydra's own settings (``hydra.*``) and ``resume`` itself are left out."""
    groups, keys = _groups(), set()
    defaults = None
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key.startswith("hydra") or key.split(".")[0] == "resume":
            continue
        if key in groups:
            defaults = defaults if defaults is not None else flatten(_plain(compose_config([])))
            chosen = flatten(_plain(compose_config([override.input_line])))
            keys |= {k for k in chosen.keys() | defaults.keys() if chosen.get(k) != defaults.get(k)}
        else:
            keys.add(key)
    return keys


def _plain(cfg):
    return OmegaConf.to_container(cfg, resolve=False)


def saved_config(run_dir):
    """The resolved config a run folder was started with (``config.yaml``)."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"resume={run_dir}: no {CONFIG_NAME} in that folder, so it is not a run "
                                "folder of python -m pyro_vsc.run")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def resumed_config(cfg, overrides):
    """The config that continues the run in ``cfg.resume``: its saved config, with the resumable
    settings of ``overrides`` (the resuming command line) taken from ``cfg``.

    :raises ValueError: naming every explicitly given setting that would change the experiment.
    """
    run_dir = Path(cfg.resume)
    saved = saved_config(run_dir)
    result = OmegaConf.create(saved)
    flat_saved = flatten(saved)
    current = flatten(OmegaConf.to_container(cfg, resolve=True))
    changed = []
    for key in sorted(explicit_keys(overrides)):
        below = [k for k in current.keys() | flat_saved.keys() if k == key or k.startswith(f"{key}.")]
        differing = [k for k in below if current.get(k, "<unset>") != flat_saved.get(k, "<unset>")]
        if not differing:
            continue
        if key.split(".")[0] in RESUMABLE_CHANGES:
            OmegaConf.update(result, key, OmegaConf.select(cfg, key), force_add=True)
        else:
            changed += [(k, flat_saved.get(k, "<unset>"), current.get(k, "<unset>")) for k in sorted(differing)]
    if changed:
        details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changed)
        raise ValueError(f"cannot resume {run_dir}: the command line changes the experiment it was started "
                         f"with ({details}); resume=<folder> alone continues it as it was, and only "
                         f"{', '.join(sorted(RESUMABLE_CHANGES - {'resume', 'run_dir'}))} may change")
    result.resume = str(run_dir)
    return result
