"""Crash-safe files of a run folder: atomic checkpoints with every state a run needs to continue
exactly, atomic text files, and the start-of-run checks of the folder."""

import errno
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

CHECKPOINT_NAME = "checkpoint.pt"
#: A file created and removed at the start of a run to prove the folder is writable.
WRITE_PROBE_NAME = ".write_probe"
#: The process's file-creation mask (read once: ``os.umask`` can only be read by setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def rng_state():
    """RNG states of python, numpy, torch (CPU) and every CUDA device."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _temporary_prefix(path):
    return f".{path.name}."


def _write_atomic(path, write):
    """Calls ``write(stream)`` on a temporary file next to ``path``, fsyncs it, renames it over
    ``path`` and fsyncs the folder. A crash or a failed write (full disk, I/O error) never leaves
    a truncated file: ``path`` keeps its previous content until the new one is complete, and the
    temporary file is removed when the write fails. The file gets the permissions ``open`` would
    give it (``mkstemp`` makes it private), so that others can read a shared run folder."""
    path = Path(path)
    handle, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), 0o666 & ~_UMASK)
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def save_atomic(obj, path):
    """Writes ``obj`` with ``torch.save`` to ``path`` atomically (see :func:`_write_atomic`)."""
    _write_atomic(path, lambda stream: torch.save(obj, stream))


def write_text_atomic(text, path):
    """Writes ``text`` (UTF-8) to ``path`` atomically (see :func:`_write_atomic`)."""
    _write_atomic(path, lambda stream: stream.write(text.encode("utf-8")))


def remove_stale_temporaries(path):
    """Removes the temporary files a killed process left while writing ``path``; returns them."""
    path = Path(path)
    stale = sorted(path.parent.glob(f"{_temporary_prefix(path)}*.tmp"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def prepare_run_folder(folder):
    """Creates ``folder`` if needed and proves that a file can be written, synced and removed in
    it, so that an unwritable folder or a full disk stops the run before any training.

    :raises OSError: naming the folder, the reason and what to do.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / WRITE_PROBE_NAME
        try:
            with open(probe, "wb") as stream:
                stream.write(b"0")
                stream.flush()
                os.fsync(stream.fileno())
        finally:
            probe.unlink(missing_ok=True)
    except OSError as error:
        reason = error.strerror or str(error)
        hint = ("free some space" if error.errno in (errno.ENOSPC, errno.EDQUOT)
                else "fix its permissions or choose another run_dir")
        raise OSError(f"the run folder {folder} is not writable ({reason}): {hint}") from error


def load(path, map_location="cpu"):
    """Reads a checkpoint; a damaged file raises a ``ValueError`` that names it."""
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except (FileNotFoundError, PermissionError):
        raise
    except Exception as error:  # torch.load fails on damaged files with many types
        raise ValueError(f"cannot read the checkpoint {path} ({error}); it is damaged (checkpoints "
                         "are written atomically, so it was changed by something else): restore "
                         "a copy or start a new run folder") from error
