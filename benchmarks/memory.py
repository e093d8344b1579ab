"""Peak resident memory of data preparation and of the default training run.

Each is measured in a fresh subprocess (its own ``ru_maxrss``, from ``os.wait4``), so the numbers
include the interpreter, torch and Pyro:

* data preparation: ``load_whitened_patches`` with the default sizes into an empty cache folder
  (whitening, patch sampling, standardisation, writing the cache);
* the default run: ``python -m pyro_vsc.run model=linear guide=thresh_gamma`` for one epoch
  (``session_epochs=1``; memory does not grow with epochs: the same tensors are reused).

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


def peak_rss_of(command, env=None):
    """Runs ``command`` in a subprocess and returns its own peak RSS in MB (``os.wait4`` gives
    the rusage of that child alone; Linux reports ru_maxrss in kB)."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, env={**os.environ, **(env or {})}, cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            stderr.seek(0)
            raise subprocess.CalledProcessError(process.returncode, command,
                                                stderr=stderr.read().decode(errors="replace"))
    return usage.ru_maxrss / 1024


def main():
    results = {}
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as run_dir:
        env = {"PYRO_VSC_CACHE": cache, "PYTHONPATH": str(ROOT)}
        results["data_preparation_mb"] = peak_rss_of(
            [sys.executable, "-c", "from pyro_vsc.data import load_whitened_patches; "
             "load_whitened_patches()"], env)
        results["default_run_one_epoch_mb"] = peak_rss_of(
            [sys.executable, "-m", "pyro_vsc.run", "model=linear", "guide=thresh_gamma",
             "session_epochs=1", "progress=false", f"run_dir={run_dir}/run"], env)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps(results, indent=2))
    for key, value in results.items():
        print(f"{key}: {value:.0f} MB")
    return results


if __name__ == "__main__":
    main()
