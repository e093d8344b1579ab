"""On-disk cache of prepared arrays: one ``.npz`` file per set of parameters.

The file name carries a hash of every parameter that affects the result (including the identity
of the source images), so a changed parameter or source never reads a stale file. Files are
written to a temporary name in the same folder and renamed into place, so a crash or a
concurrent reader never sees a half-written file.
"""

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

#: Environment variable overriding the default cache folder.
CACHE_ENV_VAR = "PYRO_VSC_CACHE"
#: Default cache folder when neither an argument nor the environment variable is given.
DEFAULT_CACHE_DIR = "~/.cache/pyro_vsc"
_PARAMETERS_FIELD = "cache_parameters"


def cache_directory(cache_dir=None):
    """The cache folder: ``cache_dir`` if given, else ``$PYRO_VSC_CACHE``, else
    ``~/.cache/pyro_vsc``."""
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV_VAR, DEFAULT_CACHE_DIR)
    return Path(cache_dir).expanduser()


def _canonical(parameters):
    return json.dumps(parameters, sort_keys=True, separators=(",", ":"))


def cache_path(cache_dir, prefix, parameters):
    """``<cache_dir>/<prefix>_<hash>.npz``, the hash being SHA-256 of the JSON ``parameters``."""
    digest = hashlib.sha256(_canonical(parameters).encode()).hexdigest()[:24]
    return cache_directory(cache_dir) / f"{prefix}_{digest}.npz"


def load_cached(path, parameters):
    """The arrays stored at ``path`` for exactly these ``parameters``, or None when there are none.

    An unreadable file or one written for other parameters counts as absent (it is rewritten).
    """
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    if str(arrays.pop(_PARAMETERS_FIELD, "")) != _canonical(parameters):
        return None
    return arrays


def save_atomically(path, parameters, arrays):
    """Write ``arrays`` (name → array) and ``parameters`` to ``path`` via a temp file + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            np.savez(file, **arrays, **{_PARAMETERS_FIELD: np.array(_canonical(parameters))})
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
