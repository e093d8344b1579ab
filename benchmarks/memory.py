"""Peak resident memory of data preparation and of the default training run.

Each is measured in a fresh subprocess (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` after
it exits), so the numbers include the interpreter, torch and Pyro:

* data preparation: ``load_whitened_patches`` with the default sizes into an empty cache folder
  (whitening, patch sampling, standardisation, writing the cache);
* the default run: ``python -m pyro_vsc.run model=linear guide=thresh_gamma`` for one epoch
  (``session_epochs=1``; memory does not grow with epochs: the same tensors are reused).

Run: ``python -m benchmarks.memory``. Target (issue "Performance"): the default run ≤ 1.5 GB.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def peak_rss_of(command, env=None):
    """Runs ``command`` in a subprocess and returns its peak RSS in MB (Linux: ru_maxrss in kB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(command, check=True, env={**os.environ, **(env or {})}, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if after <= before:
        raise RuntimeError("the child's peak RSS did not exceed an earlier child's; run each "
                           "measurement in its own process (python -m benchmarks.memory)")
    return after / 1024


def main():
    results = {}
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as run_dir:
        env = {"PYRO_VSC_CACHE": cache, "PYTHONPATH": str(ROOT)}
        # smaller first: ru_maxrss of children is a maximum over all of them
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
