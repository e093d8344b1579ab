"""``VariationalSparseCoder`` with its defaults against scikit-learn's ``MiniBatchDictionaryLearning``.

1. **Known dictionary** (issue 13's target): X = A z from a random 64 × 64 dictionary with
   unit-norm atoms, 5 % (3 of 64) non-zero Laplace(1) codes, 10,000 samples
   (:func:`pyro_vsc.data.synthetic_split`, data seed ``--data-seeds``);
   ``VariationalSparseCoder(n_components=64, random_state=0).fit(X)``: wall and CPU time of the
   fit and the share of true atoms recovered (some learned atom with |cos| > 0.9, the criterion
   of ``tests/test_learning_synthetic.py``); ``MiniBatchDictionaryLearning(n_components=64,
   alpha=1, random_state=0)`` on the same X for reference.
2. **Whitened natural-image patches** (:func:`pyro_vsc.data.load_whitened_patches`,
   ``--num-train``/``--num-val``, 16 × 16, standardised per pixel as in Appendix D): both
   estimators with 256 atoms, fitted on the training patches; on the validation patches,
   objective (10) as the library's validation computes it, ½‖x − Az‖² + λ‖z‖₁ with λ = 20
   (:func:`pyro_vsc.metrics.sparse_coding_objective`), of each estimator's own codes (the
   estimator's ``transform``: max-ELBO codes; scikit-learn's with ``transform_algorithm=
   "lasso_cd"`` at its ``alpha``, the minimiser of ½‖x − Az‖² + α‖z‖₁ on its dictionary) and of
   FISTA's codes at λ = 20 on each learned dictionary (the best any encoder could do there); the
   % of non-zero code entries, the MSE per pixel of the reconstruction, fit time (wall and CPU).
   scikit-learn's coordinate descent warns that it has not converged on many patches (1,000
   iterations); the warnings are counted (``convergence_warnings`` in the JSON), not shown.

scikit-learn normalises its atoms (‖a_k‖ ≤ 1) while the paper's dictionary is only held by the
Frobenius penalty κ‖A‖²_F of eq. (11): at the same λ, unit-norm atoms need larger codes, so
objective (10) at λ = 20 weighs the ℓ1 term differently for the two; the MSE at a given % non-zero
compares the dictionaries without that.

torch and the BLAS behind scikit-learn are limited to ``--threads`` (2) threads. Prints Markdown
tables; writes ``benchmarks/results/estimator_vs_sklearn.json``. Not part of the test suite:
``python -m benchmarks.estimator_vs_sklearn`` (``--help`` for options).
"""

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.decomposition import MiniBatchDictionaryLearning
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyro_vsc import VariationalSparseCoder  # noqa: E402
from pyro_vsc.data import load_whitened_patches, synthetic_split  # noqa: E402
from pyro_vsc.fista import fista  # noqa: E402
from pyro_vsc.metrics import MATCH_COSINE, recovered_fraction, sparse_coding_objective  # noqa: E402

#: λ of objective (10) in the paper's validation (Table 1).
LAMBDA = 20.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-seeds", type=int, nargs="+", default=[1234],
                        help="seeds of the synthetic dictionaries and codes (part 1)")
    parser.add_argument("--num-train", type=int, default=20_000, help="training patches (part 2)")
    parser.add_argument("--num-val", type=int, default=4_000, help="validation patches (part 2)")
    parser.add_argument("--alphas", type=float, nargs="+", default=[1.0, 0.3],
                        help="MiniBatchDictionaryLearning's alpha values on the patches (part 2)")
    parser.add_argument("--vsc-steps", type=int, nargs="+", default=[12_000],
                        help="n_steps of the VariationalSparseCoder fits on the patches (part 2; "
                             "12000 is the default)")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--skip-patches", action="store_true")
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    return parser.parse_args(argv)


def timed_fit(estimator, x):
    """``(estimator, wall seconds, CPU seconds of this process)`` of ``estimator.fit(x)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    estimator.fit(x)
    return estimator, time.perf_counter() - wall, time.process_time() - cpu


def recovered(components, dictionary):
    """Share of the true atoms (columns of ``dictionary``) that a learned atom matches."""
    return recovered_fraction(torch.from_numpy(np.ascontiguousarray(components.T, dtype=np.float32)),
                              dictionary)


def known_dictionary(seeds):
    rows = []
    for seed in seeds:
        data = synthetic_split(dim=64, size=64, num_train=10_000, num_val=1, nonzeros=0.05,
                               scale=1.0, seed=seed)
        x = data.train.numpy()
        fits = (("VariationalSparseCoder(n_components=64, random_state=0)",
                 VariationalSparseCoder(n_components=64, random_state=0)),
                ("MiniBatchDictionaryLearning(n_components=64, alpha=1, random_state=0)",
                 MiniBatchDictionaryLearning(n_components=64, alpha=1.0, random_state=0)))
        for name, estimator in fits:
            estimator, wall, cpu = timed_fit(estimator, x)
            rows.append({"data_seed": seed, "estimator": name, "recovered": recovered(estimator.components_, data.dictionary),
                         "fit_wall_s": wall, "fit_cpu_s": cpu, "epochs": int(estimator.n_iter_)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def code_metrics(x, codes, components, offset):
    """Objective (10) at λ = 20, % non-zero and MSE per pixel of ``codes`` on ``components``."""
    x = torch.from_numpy(np.asarray(x - offset, dtype=np.float64))
    z = torch.from_numpy(np.asarray(codes, dtype=np.float64))
    dictionary = torch.from_numpy(np.asarray(components.T, dtype=np.float64))
    residual = x - z @ dictionary.T
    return {"objective_10": float(sparse_coding_objective(x, dictionary, z, LAMBDA).mean()),
            "nonzero_pct": 100.0 * float((z != 0).double().mean()),
            "mse_per_pixel": float(residual.pow(2).mean())}


def fista_metrics(x, components, offset):
    """:func:`code_metrics` of FISTA's codes at λ = 20 on ``components`` (float32, as in
    training), the best objective (10) for that dictionary."""
    dictionary = torch.from_numpy(np.ascontiguousarray(components.T, dtype=np.float32))
    result = fista(dictionary, torch.from_numpy(np.asarray(x - offset, dtype=np.float32)), LAMBDA)
    return code_metrics(x, result.codes.numpy(), components, offset)


def patches(num_train, num_val, alphas, vsc_steps):
    data = load_whitened_patches(num_train=num_train, num_val=num_val)
    train, val = data.train.numpy(), data.val.numpy()
    fits = [(f"VariationalSparseCoder(n_components=256, n_steps={steps}, random_state=0)",
             VariationalSparseCoder(n_components=256, n_steps=steps, random_state=0)) for steps in vsc_steps]
    fits += [(f"MiniBatchDictionaryLearning(n_components=256, alpha={alpha:g}, random_state=0)",
              MiniBatchDictionaryLearning(n_components=256, alpha=alpha, transform_algorithm="lasso_cd",
                                          random_state=0)) for alpha in alphas]
    rows = []
    for name, estimator in fits:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            estimator, wall, cpu = timed_fit(estimator, train)
            codes = estimator.transform(val)
        unconverged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
        offset = getattr(estimator, "mean_", 0.0)  # the estimator centres its data
        row = {"estimator": name, "fit_wall_s": wall, "fit_cpu_s": cpu, "epochs": int(estimator.n_iter_),
               "convergence_warnings": unconverged,
               "own_codes": code_metrics(val, codes, estimator.components_, offset),
               "fista_codes": fista_metrics(val, estimator.components_, offset)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows, data.source


def synthetic_table(rows):
    lines = ["| data seed | estimator | atoms recovered (\\|cos\\| > %.1f) | fit wall s | fit CPU s | epochs |" % MATCH_COSINE,
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['data_seed']} | `{r['estimator']}` | {100 * r['recovered']:.0f}% | {r['fit_wall_s']:.1f} | "
              f"{r['fit_cpu_s']:.1f} | {r['epochs']} |" for r in rows]
    return "\n".join(lines)


def patches_table(rows):
    lines = ["| estimator | objective (10), own codes | % non-zero | MSE/pixel | objective (10), FISTA "
             "λ = 20 | % non-zero | MSE/pixel | fit wall s | fit CPU s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        own, best = r["own_codes"], r["fista_codes"]
        lines.append(f"| `{r['estimator']}` | {own['objective_10']:.1f} | {own['nonzero_pct']:.1f} | "
                     f"{own['mse_per_pixel']:.3f} | {best['objective_10']:.1f} | {best['nonzero_pct']:.1f} | "
                     f"{best['mse_per_pixel']:.3f} | {r['fit_wall_s']:.0f} | {r['fit_cpu_s']:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                          "torch": torch.__version__, "sklearn": sklearn.__version__,
                          "load_average_before": os.getloadavg()}}
    with threadpool_limits(limits=args.threads):
        if not args.skip_synthetic:
            result["known_dictionary"] = known_dictionary(args.data_seeds)
        if not args.skip_patches:
            result["patches"], result["patches_source"] = patches(args.num_train, args.num_val, args.alphas,
                                                                  args.vsc_steps)
    result["machine"]["load_average_after"] = os.getloadavg()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "estimator_vs_sklearn.json").write_text(json.dumps(result, indent=2))
    print(f"\nload average before/after: {result['machine']['load_average_before']} / "
          f"{result['machine']['load_average_after']}")
    if "known_dictionary" in result:
        print("\n" + synthetic_table(result["known_dictionary"]))
    if "patches" in result:
        print(f"\n{result['patches_source']}\n\n" + patches_table(result["patches"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
