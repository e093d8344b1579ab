"""NumPy array files named on the command line (``.npy``, or one named array of an ``.npz``).

Files are opened with ``allow_pickle=False``: a data file cannot run code, and an array of Python
objects is refused. A ``.npy`` array is memory-mapped, so that only the rows or images used are
read; an ``.npz`` member (possibly compressed) is read whole. Every error names the file and the
setting that gave it.
"""

import contextlib
import zipfile
from pathlib import Path

import numpy as np

#: Suffixes of the NumPy files read here.
ARRAY_SUFFIXES = (".npy", ".npz")


class _Refused(ValueError):
    """A file that was read but does not hold what was asked for (its message names it)."""


def _checked_path(path, setting):
    if not isinstance(path, (str, Path)) or not str(path):
        raise ValueError(f"{setting} must be the path of a .npy or .npz file; got {path!r}")
    path = Path(path).expanduser()
    if path.suffix.lower() not in ARRAY_SUFFIXES:
        raise ValueError(f"{setting}={path} is not a NumPy file: give a .npy file or an .npz "
                         f"archive (numpy.save / numpy.savez)")
    if not path.is_file():
        raise FileNotFoundError(f"{setting}={path}: no such file")
    return path


def _member_name(path, names, key, key_setting):
    """The ``.npz`` member to read: ``key``, or the archive's only array."""
    if key is not None:
        if key not in names:
            raise _Refused(f"{path} has no array {key!r} ({key_setting}); it holds "
                             f"{', '.join(names) or 'no arrays'}")
        return key
    if len(names) != 1:
        raise _Refused(f"{path} holds {len(names)} arrays ({', '.join(names) or 'none'}): choose "
                         f"one with {key_setting}=<name>")
    return names[0]


@contextlib.contextmanager
def _reading(path):
    """Reports a file NumPy or zipfile cannot read as one ``ValueError`` naming it."""
    try:
        yield
    except _Refused:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} could not be read as a NumPy {path.suffix} file ({error})") from error


def _header_shape(file):
    version = np.lib.format.read_magic(file)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, _fortran_order, _dtype = read_header(file)
    return shape


def array_shape(path, key=None, setting="data.path", key_setting="data.key"):
    """The shape of the array :func:`read_array` returns, read from the file's header only.

    :raises FileNotFoundError, ValueError: as :func:`read_array`.
    """
    path = _checked_npy_or_npz(path, key, setting, key_setting)
    with _reading(path):
        if path.suffix.lower() == ".npy":
            with open(path, "rb") as file:
                return _header_shape(file)
        with zipfile.ZipFile(path) as archive:
            names = [name[:-4] for name in archive.namelist() if name.endswith(".npy")]
            with archive.open(_member_name(path, names, key, key_setting) + ".npy") as file:
                return _header_shape(file)


def _checked_npy_or_npz(path, key, setting, key_setting):
    path = _checked_path(path, setting)
    if path.suffix.lower() == ".npy" and key is not None:
        raise ValueError(f"{key_setting}={key} names an array inside an .npz archive, but {path} "
                         f"is a .npy file holding one array: leave {key_setting} unset")
    return path


def read_array(path, key=None, setting="data.path", key_setting="data.key"):
    """The array of a ``.npy`` file (memory-mapped) or the array ``key`` of an ``.npz`` archive.

    :param path: the file.
    :param key: the array's name inside an ``.npz`` (None: its only array); must be None for a
        ``.npy`` file.
    :param str setting: the setting that named the file, for messages (e.g. ``data.path``).
    :param str key_setting: the setting that names the array, for messages.
    :raises FileNotFoundError: if there is no such file.
    :raises ValueError: for another suffix, an unreadable file, Python objects, a missing or
        ambiguous ``.npz`` member, or a ``key`` for a ``.npy`` file.
    """
    path = _checked_npy_or_npz(path, key, setting, key_setting)
    with _reading(path):
        if path.suffix.lower() == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
        with np.load(path, allow_pickle=False) as archive:
            return archive[_member_name(path, list(archive.files), key, key_setting)]


def check_real(array, what):
    """Raises ``ValueError`` unless ``array`` holds real numbers (booleans, integers, floats).

    :param str what: what the array is, for the message (e.g. the file's name).
    """
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
            or array.dtype == np.bool_):
        raise ValueError(f"{what} holds values of dtype {array.dtype}; it must hold real numbers "
                         f"(integers or floats)")
