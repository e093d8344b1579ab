"""Crash-safe files of a run folder: atomic checkpoints with every state a run needs to continue
exactly, atomic text files, and the start-of-run checks of the folder."""

import errno
import os
import pickle
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

try:  # NumPy ≥ 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import _reconstruct

CHECKPOINT_NAME = "checkpoint.pt"
#: The run's resolved config, next to its checkpoint (which holds it too).
CONFIG_NAME = "config.yaml"
#: A file created and removed at the start of a run to prove the folder is writable.
WRITE_PROBE_NAME = ".write_probe"
#: The process's file-creation mask (read once: ``os.umask`` can only be read by setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class RunFolderWriteError(RuntimeError):
    """A checkpoint or the metrics could not be written (full disk, lost mount, permissions);
    the previous checkpoint is intact and the run stopped."""


def rng_state():
    """RNG states of python, numpy, torch (CPU) and every CUDA device, in types that
    ``torch.load(weights_only=True)`` reads (NumPy's key array as a tensor)."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state):
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
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


#: Checkpoints written before RNG states were stored as tensors hold NumPy's key array; these
#: are the only non-tensor types :func:`load` accepts besides plain Python data.
_OLD_NUMPY_STATE = (_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32)))


def load(path, map_location="cpu"):
    """Reads a checkpoint without running code from it (``torch.load(weights_only=True)``:
    tensors, numbers, strings and containers only), so that a run folder someone shared can be
    loaded safely. A file that needs anything else (a pickled callable) raises a one-line
    ``ValueError`` naming it, and so does a damaged file.
    """
    try:
        with torch.serialization.safe_globals(list(_OLD_NUMPY_STATE)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except (FileNotFoundError, PermissionError):
        raise
    except pickle.UnpicklingError as error:
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(error))
        if unsafe:
            raise ValueError(f"refusing to load the checkpoint {path}: it holds a pickled "
                             f"{unsafe.group(1)}, and loading it would run code from the file; "
                             "checkpoints of this library hold only tensors and plain data") from None
        raise _damaged(path, error) from error
    except Exception as error:  # torch.load fails on damaged files with many types
        raise _damaged(path, error) from error


def _damaged(path, error):
    # torch prefixes its reason with paragraphs about weights_only; keep the reason
    paragraphs = [part.strip() for part in str(error).split("\n\n") if part.strip()
                  and not part.strip().startswith(("Weights only load failed", "Check the documentation"))]
    first_line = (paragraphs[0].splitlines() if paragraphs else [type(error).__name__])[0]
    return ValueError(f"cannot read the checkpoint {path} ({first_line}); it is damaged (checkpoints "
                      "are written atomically, so it was changed by something else): restore "
                      "a copy or start a new run folder")
