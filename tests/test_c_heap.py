"""Freed tensor memory kept in glibc's heap during a run (pyro_vsc.c_heap), measured by the page
faults that allocating the same 64 MB tensor again costs, in a fresh process."""

import ctypes
import json
import os
import platform
import subprocess
import sys

import pytest

from pyro_vsc import c_heap
from pyro_vsc.config import compose_config
from pyro_vsc.run import runtime_settings

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="the setting is glibc's")


def _no_mallinfo2():
    """Whether the C library lacks ``mallinfo2`` (glibc before 2.33), which the probe reads."""
    return not (platform.system() == "Linux" and hasattr(ctypes.CDLL(None), "mallinfo2"))


def _huge_pages_always():
    """Whether transparent huge pages back every mapping (then a 64 MB block faults in 2 MB pages,
    too few to count)."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as setting:
            return "[always]" in setting.read()
    except OSError:
        return False

_PROBE = r"""
import ctypes, json, os, resource, torch
from pyro_vsc.c_heap import reusing_freed_memory

class MallInfo(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo

def faults(times=5, size=16 * 2**20):
    '''Minor page faults of allocating, writing and freeing a tensor of size floats, times times.'''
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        torch.empty(size).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def mapped(size):
    '''Bytes glibc holds in mappings of their own while a tensor of size floats is alive.'''
    block = torch.empty(size).fill_(1.0)
    return libc.mallinfo2().hblkhd

def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

plain = faults()
with reusing_freed_memory(enabled=False) as disabled:
    off = faults()
with reusing_freed_memory() as kept:
    faults(), faults()  # the heap grows to its steady size (most often in two rounds, at times three)
    reused = min(faults() for _ in range(3))
    with reusing_freed_memory():
        pass
    nested = min(faults() for _ in range(3))  # the inner exit leaves the outer setting in force
    mapped_while_kept = mapped(16 * 2**20)  # a 64 MB block, from the heap
    resident_while_kept = resident()
returned = resident_while_kept - resident()
# blocks larger than the whole heap, so no free chunk of it can serve them: each gets a mapping of
# its own, unmapped when freed
large = (max(libc.mallinfo2().arena, 2**28) + 2**26) // 4
mapped_after = mapped(large)
restored = faults(size=large)
print(json.dumps({"disabled": disabled, "kept": kept, "plain": plain, "off": off, "reused": reused,
                  "nested": nested, "mapped_while_kept": mapped_while_kept, "mapped_after": mapped_after,
                  "returned": returned, "large": 4 * large, "restored": restored}))
"""


@glibc
@pytest.mark.skipif(_no_mallinfo2(), reason="the probe reads glibc's mallinfo2 (glibc 2.33 and later)")
@pytest.mark.skipif(_huge_pages_always(), reason="transparent huge pages are always on: page faults "
                    "do not count the pages a block touches")
def test_freed_memory_is_reused_while_entered_and_returned_after():
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    probe = json.loads(result.stdout.splitlines()[-1])
    page = os.sysconf("SC_PAGE_SIZE")
    pages = 5 * 64 * 2**20 // page
    assert probe["kept"] and not probe["disabled"]
    # glibc unmaps a freed 64 MB block, so each allocation faults its pages in again ...
    assert probe["plain"] >= pages // 2 and probe["off"] >= pages // 2
    # ... unless freed memory stays in the heap, where the next allocation finds it
    assert probe["reused"] <= pages // 20 and probe["nested"] <= pages // 20
    # while entered no block gets a mapping of its own (M_MMAP_MAX = 0) ...
    assert probe["mapped_while_kept"] < 2**28
    # ... and once the outermost use ends the heap's free memory goes back to the system
    # (malloc_trim) and glibc's defaults are back: a block larger than the heap is mapped, and
    # unmapped when freed
    assert probe["returned"] >= 2**25
    assert probe["mapped_after"] >= probe["large"]
    assert probe["restored"] >= 5 * probe["large"] // page // 2


@pytest.mark.parametrize("setting,depth", [(True, 1), (False, 0)])
def test_runtime_settings_keep_freed_memory_unless_the_config_says_not_to(setting, depth):
    cfg = compose_config([f"reuse_freed_memory={str(setting).lower()}"])
    with runtime_settings(cfg):
        assert c_heap._depth == (depth if c_heap._glibc() is not None else 0)
    assert c_heap._depth == 0
