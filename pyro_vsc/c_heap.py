"""Keeping freed tensor memory in the C heap for the next training step (glibc's malloc).

A training step frees its activations, gradients and temporaries and allocates tensors of the
same sizes again at the next step. torch's CPU allocator takes them from the C library's
``malloc``, and glibc's serves every block above its mmap threshold (128 KiB, rising with freed
blocks to at most 32 MiB) with a fresh mapping that ``free`` unmaps, and gives the top of its
heap back to the system above a trim threshold. A freed tensor then returns to the kernel at
every step, and the next step's tensor of the same size faults its pages in again, each page
zero-filled by the kernel: kernel time that grows with the tensors. Measured on this project's
CPU machine (``python -m benchmarks.dnn_step``, the Fashion-MNIST generator, batch 512, J = 20,
whose convolution activations are hundreds of MB): 8.8 s per step, 32 s of the run's 54 s in the
kernel; with freed memory kept in the heap 5.3 s per step and 3.6 s in the kernel. The linear
model's 2 MB tensors faulted in 400-2,000 pages per step in about half the processes.

:func:`reusing_freed_memory` (used by :func:`pyro_vsc.run.runtime_settings`, config
``reuse_freed_memory``, default true) sets, for as long as it is entered, ``M_MMAP_MAX = 0`` (every
block comes from the heap, whose freed blocks ``malloc`` reuses) and ``M_TRIM_THRESHOLD = -1``
(which glibc stores as the largest size: the heap is never given back; a finite threshold such as
2 GiB still returned the DNN step's freed activations, 9 s of kernel time), then restores glibc's
default values (65,536 mappings, 128 KiB) and returns the free memory with ``malloc_trim(0)``.
Other C libraries (macOS, musl) are left alone: there it does nothing.

The price is memory: the heap keeps what it grew to, and large blocks of many sizes fragment it
(best-fit splits, and the small remainder that ``posix_memalign`` splits off after each of
torch's 64-byte aligned blocks can keep the block from merging with its neighbour when freed).
The heap grows for the first steps and then stays put. Peak RSS of the Fashion-MNIST CPU step
above: 5.6-5.9 GB, against 4.0-4.1 GB with ``reuse_freed_memory=false``; the
linear model's default run: 1,086 MB (1,113 MB without). Set it false where host memory, not
time, is what a run is short of (a CUDA run keeps its activations on the device, so little is
at stake there either way).
"""

import contextlib
import ctypes
import platform
import threading

#: ``mallopt`` parameters (glibc's ``malloc.h``) and glibc's defaults for them.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
#: The trim threshold while freed memory is kept: ``mallopt`` takes a C int, which glibc converts
#: to its size type, so -1 is the largest size (never trim).
KEPT_TRIM_THRESHOLD = -1

_lock = threading.Lock()
_depth = 0


def _glibc():
    """The process's C library if it is glibc with ``mallopt`` and ``malloc_trim``, else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@contextlib.contextmanager
def reusing_freed_memory(enabled=True):
    """Keeps freed memory in glibc's heap while entered (see the module docstring).

    Nested uses share the outermost one's setting. Yields whether the setting is in force
    (False with ``enabled=False`` or another C library).
    """
    global _depth
    libc = _glibc() if enabled else None
    if libc is None:
        yield False
        return
    with _lock:
        if _depth == 0:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, KEPT_TRIM_THRESHOLD)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)
