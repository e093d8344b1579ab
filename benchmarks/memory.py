"""Peak resident memory of data preparation and of the default training run.

Each is measured in a fresh subprocess (its own VmHWM, read when it exits), so the numbers include
the interpreter, torch and Pyro:

* data preparation: ``load_whitened_patches`` with the default sizes into an empty cache folder
  (whitening, patch sampling, standardisation, writing the cache);
* the default run: ``python -m pyro_vsc.run model=linear guide=thresh_gamma`` for one epoch
  (``session_epochs=1``; memory does not grow with epochs: the same tensors are reused);
* the Fashion-MNIST generator's CPU training step (``benchmarks.dnn_step``'s step, batch 512,
  J = 20), three steps on fresh random batches, with freed memory kept in the C heap (the
  default, ``reuse_freed_memory=true``, :mod:`pyro_vsc.c_heap`) and without: what that setting
  costs in host memory (the heap grows for two steps, then stays put).

Run: ``python -m benchmarks.memory``. Target (issue "Performance"): the default run ≤ 1.5 GB.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


#: Runs in the measured process: its own peak RSS (VmHWM, a property of the address space it got
#: at exec) is written to the file named by argv[1] when the process exits, then the target
#: (argv[2]: ``-m module`` or ``-c code``, with the rest as its argv) runs as it would from the
#: command line. ``ru_maxrss`` cannot be used: Linux carries a forking parent's high-water mark
#: across exec, so every child of a large benchmark process would report the parent's size.
_MEASURE = """
import atexit, runpy, sys
out, kind, target, *args = sys.argv[1:]
def report():
    with open("/proc/self/status") as status:
        hwm = next(line for line in status if line.startswith("VmHWM:"))
    with open(out, "w") as stream:
        stream.write(hwm.split()[1])
atexit.register(report)
sys.argv = [target, *args]
if kind == "-m":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    exec(compile(target, "<benchmark>", "exec"), {"__name__": "__main__"})
"""


def peak_rss_of(kind, target, *args, env=None):
    """Peak RSS in MB of ``python -m target args`` (``kind='-m'``) or ``python -c target``
    (``kind='-c'``) in a fresh process (Linux: VmHWM of that process)."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "vmhwm_kb"
        subprocess.run([sys.executable, "-c", _MEASURE, str(out), kind, target, *args], check=True,
                       env={**os.environ, **(env or {})}, cwd=ROOT, stdout=subprocess.DEVNULL)
        return int(out.read_text()) / 1024


#: Three Fashion-MNIST CPU training steps on fresh batches under ``runtime_settings`` with
#: ``reuse_freed_memory`` set to the format argument.
_FMNIST_STEPS = """
import torch
from benchmarks.dnn_step import build_step
from pyro_vsc.config import compose_config
from pyro_vsc.run import runtime_settings
torch.set_num_threads(2)
with runtime_settings(compose_config(["reuse_freed_memory={}"])):
    step, cfg, shape = build_step(torch.device("cpu"), "false")
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        step(torch.rand(cfg.batch_size, *shape, generator=generator))
"""


def main():
    results = {}
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as run_dir:
        env = {"PYRO_VSC_CACHE": cache, "PYTHONPATH": str(ROOT)}
        results["data_preparation_mb"] = peak_rss_of(
            "-c", "from pyro_vsc.data import load_whitened_patches; load_whitened_patches()",
            env=env)
        results["default_run_one_epoch_mb"] = peak_rss_of(
            "-m", "pyro_vsc.run", "model=linear", "guide=thresh_gamma", "session_epochs=1",
            "progress=false", f"run_dir={run_dir}/run", env=env)
        for setting in ("true", "false"):
            results[f"fmnist_cpu_step_reuse_freed_memory_{setting}_mb"] = peak_rss_of(
                "-c", _FMNIST_STEPS.format(setting), env=env)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps(results, indent=2))
    for key, value in results.items():
        print(f"{key}: {value:.0f} MB")
    return results


if __name__ == "__main__":
    main()
