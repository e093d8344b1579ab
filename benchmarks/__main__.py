"""All benchmarks in one command: ``python -m benchmarks [--trained-run runs/<folder>]``.

1. ``benchmarks.linear_step``: Pyro path vs plain-PyTorch floor vs roofline (linear model).
2. ``benchmarks.gamma_sampler``: the Gamma threshold sampler alone (draws/s, forward and
   backward), ``VectorizedGamma`` vs torch's Gamma.
3. ``benchmarks.memory``: peak RSS of data preparation and of the default run.
4. ``benchmarks.fista_vs_lasso``: torch FISTA and the active-set solver vs scikit-learn's
   Lasso, λ = 20 on a trained dictionary (the ``checkpoint.pt`` of ``--trained-run``, e.g. the
   default run's folder) and λ = 1 on a random one.
5. ``benchmarks.dnn_step``: images/s of the Fashion-MNIST generator (batch 512, J = 20) on the
   CPU and, when available, on CUDA with and without mixed precision.

Results land in ``benchmarks/results/`` (JSON and Markdown); not part of the test suite.
"""

import argparse
import sys
from pathlib import Path

from benchmarks import dnn_step, fista_vs_lasso, gamma_sampler, linear_step, memory


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trained-run", type=Path,
                        help="run folder whose checkpoint.pt holds a trained dictionary (FISTA λ=20)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None,
                        help="repetitions (default: each benchmark's own; the linear step's are per process)")
    args = parser.parse_args(argv)
    print("== linear step ==", flush=True)
    repeats = [] if args.repeats is None else ["--repeats", str(args.repeats)]
    linear_step.main(["--threads", str(args.threads), *repeats])
    print("== Gamma sampler ==", flush=True)
    gamma_sampler.main(["--threads", str(args.threads), *repeats])
    print("== memory ==", flush=True)
    memory.main()
    print("== FISTA and the active-set solver vs scikit-learn Lasso ==", flush=True)
    fista_args = ["--threads", str(args.threads)]
    if args.trained_run is not None:
        fista_args += ["--dictionary", str(args.trained_run / "checkpoint.pt"),
                       "--dictionary-key", "model/decoder.weight"]
    fista_vs_lasso.main(fista_args)
    print("== Fashion-MNIST generator ==", flush=True)
    dnn_step.main(["--threads", str(args.threads), "--steps", "2", "--repeats", "2"])


if __name__ == "__main__":
    sys.exit(main())
