"""Throughput of the batched torch LASSO solvers (plain FISTA, ``pyro_vsc.fista``, and the certified
active-set solver, ``pyro_vsc.active_set_lasso``) against scikit-learn's ``Lasso``.

Both solve, for every validation patch x, the LASSO problem of §4.1 (eq. 10 without the dictionary
term): min_z ½‖x - Az‖² + λ‖z‖₁. scikit-learn minimises (1/(2 n_samples))‖y - Xw‖² + α‖w‖₁ with
X = A, so n_samples = D pixels and α = λ / D gives the same minimiser.

Problems: (a) λ = 20 on a trained dictionary (``--dictionary``; skipped without it) and (b) λ = 1 on
a random dictionary with unit-norm columns. Data: the 16,000 whitened validation patches of
``pyro_vsc.data.load_whitened_patches`` (or ``--patches file.npy``; synthetic standard-normal
patches if neither is available, which the output says).

Solvers timed (all start from the dictionary and patches and end with the codes):
  * torch FISTA, float32, at each of ``--fista-tol`` (``default`` = the library's default);
  * torch active-set solver, float32, duality gap ≤ ``--active-set-tol`` (1e-4) × the objective;
  * sklearn ``Lasso`` fitted once per patch (the plain per-sample loop), float64;
  * sklearn ``Lasso`` fitted once on all patches as a multi-target problem with the Gram matrix
    AᵀA precomputed (its fastest path here), float64.
Every solver's mean objective must agree with the best one to 1e-4 relative (asserted).
torch and the BLAS behind scikit-learn are limited to ``--threads`` (2) threads (sklearn's coordinate
descent itself is single-threaded); each timing is the median over ``--repeats`` repetitions,
interleaved across solvers so that machine load affects all alike. The load average before and
after is recorded, since a loaded machine slows multi-threaded torch more than sklearn.

Run ``python -m benchmarks.fista_vs_lasso --help``. Results go to benchmarks/results/ as JSON and
a Markdown table.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso
from threadpoolctl import threadpool_limits

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyro_vsc.fista import default_tolerance, fista, lasso_objective  # noqa: E402
from pyro_vsc.active_set_lasso import active_set_lasso  # noqa: E402

NUM_VAL_PATCHES = 16_000
PATCH_DIM = 256
TRAINED_LAMBDA = 20.0
RANDOM_LAMBDA = 1.0
OBJECTIVE_RTOL = 1e-4
SKLEARN_MAX_ITER = 10_000
#: The active-set solver stops at a duality gap of 1e-4·P(z); scikit-learn's coordinate descent
#: at tol·‖x‖² = 2e-4·P(0) ≥ 2e-4·P(z) (its tol = 1e-4): the same certificate, ours stricter.
ACTIVE_SET_TOL = 1e-4


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dictionary",
        type=Path,
        help="trained dictionary A of shape (D, K): a .npy file or a torch checkpoint holding the tensor; "
        "without it problem (a) is skipped",
    )
    parser.add_argument(
        "--dictionary-key", help="key of the dictionary inside a checkpoint, e.g. model/decoder.weight for a run's checkpoint.pt (needed when several tensors fit)"
    )
    parser.add_argument(
        "--patches", type=Path, help="validation patches (N, D) as .npy, instead of pyro_vsc.data.load_whitened_patches"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions per solver (median reported)")
    parser.add_argument(
        "--sklearn-subset",
        type=int,
        help="time the per-patch sklearn loop on the first N patches only and extrapolate its throughput "
        "(default: all patches)",
    )
    parser.add_argument(
        "--fista-tol",
        nargs="+",
        default=["1e-3", "1e-4", "default"],
        help="FISTA relative-change tolerances to time, one run each ('default' = the library default)",
    )
    parser.add_argument("--active-set-tol", type=float, default=ACTIVE_SET_TOL,
                        help="relative duality-gap tolerance of the active-set solver (default 1e-4, at least as "
                        "strict as sklearn's tol=1e-4)")
    parser.add_argument("--sklearn-tol", type=float, default=1e-4, help="sklearn Lasso tol (its default is 1e-4)")
    parser.add_argument("--threads", type=int, default=2, help="torch and BLAS threads")
    parser.add_argument("--device", default="cpu", help="torch device for FISTA (sklearn always runs on the CPU)")
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.sklearn_subset is not None and args.sklearn_subset < 1:
        parser.error(f"--sklearn-subset must be >= 1, got {args.sklearn_subset}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    try:
        args.fista_tol = [None if tol == "default" else float(tol) for tol in args.fista_tol]
    except ValueError:
        parser.error(f"--fista-tol takes numbers or 'default', got {args.fista_tol}")
    return args


def load_patches(path):
    """Return (patches as float32 numpy (N, D), description of their source)."""
    if path is not None:
        patches = np.load(path).astype(np.float32)
        if patches.ndim != 2:
            raise ValueError(f"--patches must hold an (N, D) array, got shape {patches.shape}")
        return patches, f"{path} ({patches.shape[0]} patches)"
    try:
        from pyro_vsc.data import load_whitened_patches
    except ImportError:
        rng = np.random.default_rng(0)
        patches = rng.standard_normal((NUM_VAL_PATCHES, PATCH_DIM)).astype(np.float32)
        return patches, "SYNTHETIC standard-normal patches (pyro_vsc.data not available, no --patches given)"
    split = load_whitened_patches(images="skimage", patch_size=16, num_train=80_000, num_val=NUM_VAL_PATCHES, seed=0)
    return split.val.numpy(), "pyro_vsc.data.load_whitened_patches(images='skimage', patch_size=16, seed=0).val"


def load_dictionary(path, key, dim):
    """Load a (dim, K) dictionary from .npy or from a torch checkpoint (a tensor or a dict of tensors)."""
    if path.suffix == ".npy":
        dictionary = torch.from_numpy(np.load(path))
    else:
        from pyro_vsc.train.checkpoint import load  # a run's checkpoint also holds RNG states

        checkpoint = load(path)
        dictionary = _tensor_from_checkpoint(checkpoint, key, dim, path)
    if dictionary.dim() != 2 or dictionary.shape[0] != dim:
        raise ValueError(
            f"the dictionary must have shape (D, K) with D = {dim} (the patch dimension; atoms are columns), "
            f"got {tuple(dictionary.shape)} from {path}"
        )
    return dictionary.to(torch.float64)


def _tensor_from_checkpoint(checkpoint, key, dim, path):
    if isinstance(checkpoint, torch.Tensor):
        return checkpoint
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}; expected a tensor or a dict of tensors")
    flat = dict(_flatten(checkpoint))
    if key is not None:
        if key not in flat:
            raise ValueError(f"--dictionary-key {key!r} is not in {path}; tensors there: {sorted(flat)}")
        return flat[key]
    candidates = {name: t for name, t in flat.items() if t.dim() == 2 and t.shape[0] == dim}
    if len(candidates) != 1:
        shapes = {name: tuple(t.shape) for name, t in flat.items()}
        raise ValueError(
            f"found {len(candidates)} tensors of shape ({dim}, K) in {path}; pass --dictionary-key. Tensors: {shapes}"
        )
    return next(iter(candidates.values()))


def _flatten(tree, prefix=""):
    for name, value in tree.items():
        if isinstance(value, torch.Tensor):
            yield prefix + str(name), value
        elif isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{name}/")


def random_unit_norm_dictionary(dim, num_atoms, seed=0):
    generator = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(dim, num_atoms, generator=generator, dtype=torch.float64)
    return dictionary / dictionary.norm(dim=0)


def make_fista_solver(tol, device):
    def solve(dictionary, patches, lam):
        dictionary32 = torch.as_tensor(dictionary, dtype=torch.float32, device=device)
        patches32 = torch.as_tensor(patches, dtype=torch.float32, device=device)
        result = fista(dictionary32, patches32, lam, tol=tol)
        codes = result.codes.cpu().to(torch.float64).numpy()  # .cpu() waits for a CUDA device to finish
        return codes, {"iterations": result.iterations, "converged": result.converged}

    return solve


def make_active_set_solver(tol, device):
    def solve(dictionary, patches, lam):
        dictionary32 = torch.as_tensor(dictionary, dtype=torch.float32, device=device)
        patches32 = torch.as_tensor(patches, dtype=torch.float32, device=device)
        result = active_set_lasso(dictionary32, patches32, lam, tol=tol)
        codes = result.codes.cpu().to(torch.float64).numpy()
        return codes, {"iterations": result.iterations, "row_iterations": result.row_iterations,
                       "converged": result.converged}

    return solve


def make_sklearn_per_patch_solver(tol):
    def solve(dictionary, patches, lam):
        lasso = Lasso(alpha=lam / dictionary.shape[0], fit_intercept=False, tol=tol, max_iter=SKLEARN_MAX_ITER)
        codes = np.empty((patches.shape[0], dictionary.shape[1]))
        for row, patch in enumerate(patches):
            codes[row] = lasso.fit(dictionary, patch).coef_
        return codes, {}

    return solve


def make_sklearn_gram_solver(tol):
    def solve(dictionary, patches, lam):
        lasso = Lasso(
            alpha=lam / dictionary.shape[0],
            fit_intercept=False,
            tol=tol,
            max_iter=SKLEARN_MAX_ITER,
            precompute=dictionary.T @ dictionary,
        )
        codes = lasso.fit(dictionary, np.ascontiguousarray(patches.T)).coef_
        return codes.reshape(patches.shape[0], dictionary.shape[1]), {}

    return solve


def run_problem(name, dictionary, patches, lam, args, device):
    """Time every solver on one problem; return its rows and the throughput ratios."""
    dictionary_np = dictionary.numpy()
    # Each solver gets the patches in its working precision; the conversion is not timed.
    patches64 = patches.astype(np.float64)
    subset = len(patches) if args.sklearn_subset is None else min(args.sklearn_subset, len(patches))
    solvers = [
        (
            "torch FISTA (float32)",
            f"default tol={default_tolerance(torch.float32):.2g}" if tol is None else f"tol={tol:g}",
            make_fista_solver(tol, device),
            len(patches),
        )
        for tol in args.fista_tol
    ]
    solvers.append(("torch active-set (float32)", f"gap tol={args.active_set_tol:g}",
                    make_active_set_solver(args.active_set_tol, device), len(patches)))
    solvers += [
        ("sklearn Lasso, one fit per patch", f"tol={args.sklearn_tol:g}", make_sklearn_per_patch_solver(args.sklearn_tol), subset),
        (
            "sklearn Lasso, one multi-target fit, precomputed Gram",
            f"tol={args.sklearn_tol:g}",
            make_sklearn_gram_solver(args.sklearn_tol),
            len(patches),
        ),
    ]
    times = [[] for _ in solvers]
    outputs = [None] * len(solvers)
    convergence_warnings = [0] * len(solvers)
    for repeat in range(args.repeats):
        for index, (label, tol_label, solve, count) in enumerate(solvers):
            data = patches if label.startswith("torch") else patches64
            start = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                codes, info = solve(dictionary_np, data[:count], lam)
            times[index].append(time.perf_counter() - start)
            convergence_warnings[index] = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
            outputs[index] = (codes, info)
            print(f"  [{name}] repeat {repeat + 1}/{args.repeats} {label} {tol_label}: {times[index][-1]:.2f} s", flush=True)

    x = torch.from_numpy(patches64)
    rows = []
    for index, (label, tol_label, _, count) in enumerate(solvers):
        codes, info = outputs[index]
        objectives = lasso_objective(dictionary, x[:count], torch.from_numpy(codes), lam)
        median_s = statistics.median(times[index])
        rows.append(
            {
                "solver": label,
                "tolerance": tol_label,
                "patches_timed": count,
                "extrapolated": count < len(patches),
                "median_seconds": median_s,
                "all_seconds": times[index],
                "patches_per_second": count / median_s,
                "mean_objective": float(objectives.mean()),
                "mean_objective_on_subset": float(objectives[:subset].mean()),
                "active_fraction": float((codes != 0).mean()),
                "sklearn_convergence_warnings": convergence_warnings[index],
                **info,
            }
        )
    # Compare mean objectives on the patches every solver saw.
    best = min(row["mean_objective_on_subset"] for row in rows)
    for row in rows:
        row["relative_objective_excess"] = (row["mean_objective_on_subset"] - best) / best
    ratios = {
        f"{f['solver']} [{f['tolerance']}] / {s['solver']}": f["patches_per_second"] / s["patches_per_second"]
        for f in rows
        if f["solver"].startswith("torch")
        for s in rows
        if s["solver"].startswith("sklearn")
    }
    return {"problem": name, "lambda": lam, "num_patches": len(patches), "rows": rows, "throughput_ratios": ratios}


def markdown_report(report):
    lines = [
        "# torch FISTA vs scikit-learn Lasso: patches per second at equal objective",
        "",
        f"- patches: {report['patches_source']}",
        f"- torch {report['torch_version']} on {report['device']}, scikit-learn {report['sklearn_version']}, "
        f"{report['num_threads']} threads, median of {report['repeats']} repetitions, {report['machine']} "
        f"with {report['cpu_count']} CPUs, load average (1 min) {report['load_average_before']:.1f} before and "
        f"{report['load_average_after']:.1f} after",
        "- objective: mean over patches of ½‖x − Az‖² + λ‖z‖₁; sklearn α = λ / D",
    ]
    lines += [f"- {note}" for note in report["notes"]]
    for problem in report["problems"]:
        lines += [
            "",
            f"## {problem['problem']} (λ = {problem['lambda']:g}, {problem['num_patches']} patches)",
            "",
            "| solver | tolerance | patches timed | median s | patches/s | mean objective (patches timed) "
            "| excess over best (common patches) | active fraction | notes |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in problem["rows"]:
            notes = []
            if row["extrapolated"]:
                notes.append(f"extrapolated from {row['patches_timed']} patches")
            if "row_iterations" in row:
                notes.append(f"{row['iterations']} iterations, {row['row_iterations']:.1f} per patch"
                             + ("" if row["converged"] else " (not converged)"))
            elif "iterations" in row:
                notes.append(f"{row['iterations']} iterations" + ("" if row["converged"] else " (not converged)"))
            if row["sklearn_convergence_warnings"]:
                notes.append(f"{row['sklearn_convergence_warnings']} ConvergenceWarnings")
            lines.append(
                f"| {row['solver']} | {row['tolerance']} | {row['patches_timed']} | {row['median_seconds']:.2f} | "
                f"{row['patches_per_second']:.0f} | {row['mean_objective']:.6g} | {row['relative_objective_excess']:.1e} | "
                f"{row['active_fraction']:.3f} | {'; '.join(notes)} |"
            )
        lines += ["", "| throughput ratio (torch / sklearn) | value |", "|---|---|"]
        lines += [f"| {name} | {value:.2f} |" for name, value in problem["throughput_ratios"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    patches, patches_source = load_patches(args.patches)
    dim = patches.shape[1]
    notes = []
    problems = []
    if args.dictionary is None:
        notes.append("problem (a) (λ = 20 on a trained dictionary) SKIPPED: no --dictionary given")
    else:
        problems.append(("(a) trained dictionary " + args.dictionary.name, load_dictionary(args.dictionary, args.dictionary_key, dim), TRAINED_LAMBDA))
    problems.append((f"(b) random unit-norm dictionary {dim}x{dim}", random_unit_norm_dictionary(dim, dim), RANDOM_LAMBDA))
    if args.sklearn_subset is not None and args.sklearn_subset < len(patches):
        notes.append(
            f"the per-patch sklearn loop was timed on the first {args.sklearn_subset} patches only and its "
            "patches/s extrapolated; objectives are compared on those patches"
        )
    for note in notes:
        print(note)

    load_average_before = os.getloadavg()[0]
    results = []
    with threadpool_limits(limits=args.threads):
        for name, dictionary, lam in problems:
            print(f"{name}, λ = {lam:g}", flush=True)
            results.append(run_problem(name, dictionary, patches, lam, args, device))

    report = {
        "patches_source": patches_source,
        "torch_version": torch.__version__,
        "sklearn_version": sklearn.__version__,
        "device": str(device),
        "num_threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_average_before": load_average_before,
        "load_average_after": os.getloadavg()[0],
        "repeats": args.repeats,
        "machine": f"{platform.machine()} {platform.processor() or platform.platform()}",
        "command": " ".join(sys.argv),
        "notes": notes,
        "problems": results,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "fista_vs_lasso.json").write_text(json.dumps(report, indent=2))
    markdown = markdown_report(report)
    (args.output_dir / "fista_vs_lasso.md").write_text(markdown)
    print(markdown)
    print(f"written to {args.output_dir}/fista_vs_lasso.{{json,md}}")

    for problem in results:
        for row in problem["rows"]:
            assert row["relative_objective_excess"] <= OBJECTIVE_RTOL, (
                f"{problem['problem']}: {row['solver']} [{row['tolerance']}] mean objective exceeds the best by "
                f"{row['relative_objective_excess']:.2e} > {OBJECTIVE_RTOL:g} relative; tighten its tolerance"
            )


if __name__ == "__main__":
    main()
