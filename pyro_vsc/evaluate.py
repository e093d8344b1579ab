"""Command line: ``python -m pyro_vsc.evaluate <run folder> [options]``.

Evaluates a trained linear-generator run (§4.1) with the metrics of Table 1, Table 2 and
Figures 4, 5 and 9, and writes them into the run folder:

* ``evaluation.json``: the metrics below, the run's identity (method, objective, J, estimator,
  seed) and the settings used; a run that diverged (a ``diverged`` record in ``metrics.jsonl``, NaN parameters or NaN
  metrics) is written with ``"status": "diverged"`` and every metric NaN (``null`` in
  ``nan_metrics``), not dropped;
* ``dictionary.png`` (atoms sorted by norm), ``estimated_dictionary.png`` (Â of §4.2),
  ``jaccard_histogram.png`` and ``snr.png``.

Metrics (each from :mod:`pyro_vsc.evaluation` / :mod:`pyro_vsc.metrics`, on the validation set):

* ``validation_objective``: objective (10), ½‖x − Az‖² + 20‖z‖₁, of the codes chosen by max-ELBO
  sampling with the run's J; ``fista_objective``: the same at FISTA's optimum for the same A;
* ``multi_information_bits``: Σ h(z_i) − h(z) of those codes, plug-in estimate in bits over the
  paper's bins;
* ``iwae_loss`` (−IWAE bound, K = 200, exact mixed-measure densities, nats per patch), ``elbo``,
  ``psis_khat_fraction_above`` (fraction of patches with PSIS k̂ > 0.7), ``psis_khat_median``;
* ``posterior_collapse_pct`` (eq. 15) and ``feature_collapse_pct`` (eq. 16), ε = 1e-2, δ = 5e-2;
* ``snr_encoder`` and ``snr_dictionary``: gradient SNR per data point, averaged over a subset;
* ``jaccard_mean``: average pairwise Jaccard index of J plain samples (eq. 13), atoms
  ‖a_i‖² > 0.1; the per-patch histogram is stored for Figure 5;
* ``estimated_dictionary_relative_error``: ‖Â − A‖_F / ‖A‖_F with Â = (X Zᵀ)(Z Zᵀ)⁺.

Not defined for the FISTA baseline (a point mass): IWAE/PSIS, posterior collapse and gradient SNR
(deterministic codes); these are ``null`` with the reason under ``not_applicable``.
"""

import argparse
import contextlib
import json
import logging
import math
import operator
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pyro
import torch

from pyro_vsc.devices import select_device
from pyro_vsc.evaluation.consistency import PAPER_CONSISTENCY_SAMPLES, guide_support_consistency
from pyro_vsc.evaluation.figures import jaccard_histogram_counts, plot_jaccard_histogram, plot_snr_bars
from pyro_vsc.evaluation.gradient_snr import PAPER_SNR_SAMPLES, gradient_snr
from pyro_vsc.evaluation.importance_sampling import (
    KHAT_THRESHOLD,
    PAPER_IWAE_SAMPLES,
    importance_sampling_metrics,
)
from pyro_vsc.evaluation.methods import describe_run
from pyro_vsc.evaluation.objective import PAPER_LAMBDA, objective_metrics
from pyro_vsc.evaluation.posterior_kl import posterior_kl_per_dimension
from pyro_vsc.evaluation.trained_run import (
    CONFIG_NAME,
    EVALUATION_NAME,
    divergence_reason,
    find_run_folders,
    load_trained_run,
    read_config,
)
from pyro_vsc.distributions.util import is_point_mass
from pyro_vsc.evaluation.traces import trace_guide
from pyro_vsc.evaluation.warmups import finish_warmups
from pyro_vsc.metrics import (
    active_atom_mask,
    estimate_linear_dictionary,
    feature_collapse,
    multi_information,
    posterior_collapse,
)
from pyro_vsc.plotting import plot_dictionary
from pyro_vsc.train.checkpoint import write_text_atomic
from pyro_vsc.train.validation import select_codes

log = logging.getLogger("pyro_vsc.evaluate")

#: Every scalar metric written to ``evaluation.json`` (a diverged run has all of them NaN).
METRIC_NAMES = (
    "validation_objective", "recon", "l1", "nonzero_pct", "fista_objective",
    "multi_information_bits", "iwae_loss", "iwae_bound", "elbo", "psis_khat_fraction_above",
    "psis_khat_median", "posterior_collapse_pct", "feature_collapse_pct", "snr_encoder",
    "snr_encoder_median", "snr_dictionary", "snr_dictionary_median", "jaccard_mean",
    "jaccard_median", "estimated_dictionary_relative_error",
)


def _setting(default, help=None, *, bound=None, why=None):
    """A field of :class:`EvaluationSettings`: its default, its command-line ``help`` (a field
    without one is not a command-line option) and the ``bound`` ``(sign, limit)`` that
    :meth:`EvaluationSettings.check` enforces, ``why`` saying what the limit means."""
    return field(default=default, metadata={"help": help, "bound": bound, "why": why})


#: Comparisons of :func:`_setting` bounds.
_BOUNDS = {"≥": operator.ge, ">": operator.gt}


@dataclass(frozen=True)
class EvaluationSettings:
    """Options of the evaluation (paper defaults unless noted), one field each.

    A field with a ``help`` text is also a command-line option: ``--iwae-samples`` for
    ``iwae_samples`` (of the field's type, with its default), ``--no-progress`` for the switch
    ``progress``; the others (λ, ε, δ, the atom threshold) are set from Python. The defaults are
    the paper's where it has one.
    """

    iwae_samples: int = _setting(
        PAPER_IWAE_SAMPLES, "K importance samples of the IWAE bound (Table 1: 200)", bound=("≥", 1))
    #: ``None``: every validation patch.
    iwae_points: int = _setting(None, "validation patches for IWAE/PSIS (default: all)", bound=("≥", 1),
                                why="or omitted for all")
    #: The paper uses every patch, which takes hours on a CPU.
    snr_points: int = _setting(
        100, "validation patches for the gradient SNR (0 skips it; default %(default)s)",
        bound=("≥", 0), why="0 skips the SNR")
    snr_samples: int = _setting(
        PAPER_SNR_SAMPLES, "code samples per patch for the gradient SNR (paper: 1000)", bound=("≥", 2))
    snr_points_per_pass: int = _setting(
        4, "patches per vectorized SNR pass (memory vs. speed; default %(default)s)", bound=("≥", 1))
    consistency_samples: int = _setting(
        PAPER_CONSISTENCY_SAMPLES, "samples J per patch of the Jaccard consistency (Figure 5: 20)",
        bound=("≥", 2), why="pairs of samples")
    #: λ of objective (10).
    lam: float = _setting(PAPER_LAMBDA)
    #: 1e-4: on 2000 patches of a trained 256×256 dictionary the mean objective matched a float64
    #: solve at 1e-8 to 7 digits (the training guide's 1e-3: to 5).
    fista_tol: float = _setting(1e-4, "tolerance of the reference FISTA solve (default %(default)s)",
                                bound=(">", 0))
    #: ε of eqs. (15)-(16).
    collapse_eps: float = _setting(1e-2)
    #: δ of eqs. (15)-(16).
    collapse_delta: float = _setting(5e-2)
    #: Atoms with ‖a_i‖² above this count for the consistency.
    atom_threshold: float = _setting(0.1)
    #: Patches per vectorized pass of the IWAE and consistency samples.
    batch_size: int = _setting(100, "patches per vectorized IWAE pass (default %(default)s)",
                               bound=("≥", 1))
    #: ``None``: the run's seed.
    seed: int = _setting(None, "seed of the samples (default: the run's)")
    device: str = _setting("auto", "auto | cpu | cuda | cuda:N")
    #: Show progress bars (``--no-progress`` hides them).
    progress: bool = _setting(True, "hide progress bars")

    def check(self):
        """Raises ``ValueError`` naming the first setting outside its bound."""
        for setting in fields(self):
            value, bound = getattr(self, setting.name), setting.metadata["bound"]
            why = setting.metadata["why"]
            if bound is None or (value is None and setting.default is None):
                continue
            sign, limit = bound
            if not _BOUNDS[sign](value, limit):
                raise ValueError(f"{setting.name} must be {sign} {limit}{f' ({why})' if why else ''}, "
                                 f"got {value}")


def _command_line_settings():
    """The fields of :class:`EvaluationSettings` that are command-line options."""
    return [setting for setting in fields(EvaluationSettings) if setting.metadata["help"] is not None]


def _reseed(seed):
    pyro.set_rng_seed(seed)  # each metric group draws the same samples whichever others run


def _finite_or_none(value):
    return value if isinstance(value, (bool, int, str)) or value is None or math.isfinite(value) else None


def _write_json(path, record):
    """Writes ``record`` atomically as standard JSON: NaN and inf become ``null`` (listed in
    ``nan_metrics``)."""
    write_text_atomic(json.dumps(record, indent=2, allow_nan=False) + "\n", path)


@contextlib.contextmanager
def _timed(seconds, name):
    """Records the wall time of the block under ``seconds[name]``."""
    start = time.perf_counter()
    yield
    seconds[name] = round(time.perf_counter() - start, 3)


class _CodesNotFinite(Exception):
    """The guide's codes overflowed although the parameters are finite: a diverged run."""


def _metrics_of_trained_run(run, settings, seed, seconds):
    """Computes every metric of a run with finite parameters.

    :returns: ``(metrics, not_applicable, figure data)``.
    :raises _CodesNotFinite: when the inferred codes hold NaN or inf.
    """
    model, guide, val = run.model, run.guide, run.val
    dictionary = model.dictionary.detach()
    metrics, not_applicable = {}, {}
    point_mass = is_point_mass(trace_guide(guide, val[:1]).nodes["z"]["fn"])
    if point_mass:
        reason = "the FISTA guide is a point mass: no density, no KL, no sampling noise"
        for name in ("iwae_loss", "iwae_bound", "elbo", "psis_khat_fraction_above",
                     "psis_khat_median", "posterior_collapse_pct", "snr_encoder",
                     "snr_encoder_median", "snr_dictionary", "snr_dictionary_median"):
            not_applicable[name] = reason

    with _timed(seconds, "selected_codes"), torch.no_grad():
        _reseed(seed)
        codes = select_codes(run.objective, val)["z"]
    if not bool(torch.isfinite(codes).all()):
        raise _CodesNotFinite("the inferred codes are not finite")
    with _timed(seconds, "objective"):
        metrics.update(objective_metrics(val, dictionary, codes, settings.lam, settings.fista_tol))
        if not metrics["fista_converged"]:
            log.warning("%s: the reference FISTA stopped at %d iterations before reaching tolerance "
                        "%g", run.run_dir, metrics["fista_iterations"], settings.fista_tol)
    with _timed(seconds, "multi_information"):
        metrics["multi_information_bits"] = multi_information(codes)
    with _timed(seconds, "feature_collapse"):
        metrics["feature_collapse_pct"] = feature_collapse(codes, settings.collapse_eps,
                                                           settings.collapse_delta)
    with _timed(seconds, "estimated_dictionary"):
        estimate = estimate_linear_dictionary(val, codes)
        metrics["estimated_dictionary_relative_error"] = (
            (estimate - dictionary).norm() / dictionary.norm()).item()
    with _timed(seconds, "consistency"):
        _reseed(seed)
        mask = active_atom_mask(dictionary, settings.atom_threshold)
        jaccard = guide_support_consistency(guide, val, settings.consistency_samples, mask,
                                            batch_size=5 * settings.batch_size).cpu().numpy()
        metrics["jaccard_mean"] = float(jaccard.mean())
        metrics["jaccard_median"] = float(np.median(jaccard))
    snr = {}
    if not point_mass:
        with _timed(seconds, "posterior_collapse"):
            _reseed(seed)
            kl = posterior_kl_per_dimension(model, guide, val)
            metrics["posterior_collapse_pct"] = posterior_collapse(kl, settings.collapse_eps,
                                                                   settings.collapse_delta)
        with _timed(seconds, "importance_sampling"):
            _reseed(seed)
            points = val if settings.iwae_points is None else val[:settings.iwae_points]
            sampling = importance_sampling_metrics(model, guide, points, settings.iwae_samples,
                                                   batch_size=settings.batch_size,
                                                   progress=settings.progress)
            metrics.update({"iwae_loss": sampling["iwae_loss"], "iwae_bound": sampling["iwae_bound"],
                            "elbo": sampling["elbo"],
                            "psis_khat_fraction_above": sampling["khat_fraction_above"],
                            "psis_khat_median": sampling["khat_median"]})
        if settings.snr_points > 0:
            with _timed(seconds, "gradient_snr"):
                _reseed(seed)
                snr = gradient_snr(run.objective, val[:settings.snr_points], settings.snr_samples,
                                   settings.snr_points_per_pass, progress=settings.progress)
                snr = {role: values.numpy() for role, values in snr.items()}
                for role, values in snr.items():
                    metrics[f"snr_{role}"] = float(np.nanmean(values))
                    metrics[f"snr_{role}_median"] = float(np.nanmedian(values))
        else:
            for name in ("snr_encoder", "snr_encoder_median", "snr_dictionary", "snr_dictionary_median"):
                not_applicable[name] = "skipped (--snr-points 0)"
    return metrics, not_applicable, {"jaccard": jaccard, "snr": snr, "estimate": estimate}


def _figures(run, figures, description):
    side = math.isqrt(run.model.dictionary.shape[0])
    shape = (side, side) if side * side == run.model.dictionary.shape[0] else None
    title = f"{description['label']}, {description['objective']} J={description['num_particles']}"
    plot_dictionary(run.model.dictionary.detach(), run.run_dir / "dictionary.png", patch_shape=shape,
                    title=f"{title}: dictionary sorted by norm")
    plot_dictionary(figures["estimate"], run.run_dir / "estimated_dictionary.png", patch_shape=shape,
                    title=f"{title}: estimated dictionary Â (§4.2)")
    plot_jaccard_histogram(figures["jaccard"], run.run_dir / "jaccard_histogram.png", title=title)
    if figures["snr"]:
        plot_snr_bars(figures["snr"], run.run_dir / "snr.png", title=title)


def evaluate_run(run_dir, settings=EvaluationSettings()):
    """Evaluates one run folder and writes ``evaluation.json`` and figures into it.

    :returns: the record written to ``evaluation.json`` (with ``None`` for NaN values).
    """
    settings.check()
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    description = describe_run(cfg)
    seed = int(cfg.seed if settings.seed is None else settings.seed)
    seconds = {}
    reason = divergence_reason(run_dir)
    run = None
    if reason is None:
        device = select_device(settings.device)
        with _timed(seconds, "load"):
            run = load_trained_run(run_dir, device)
        if not hasattr(run.model, "dictionary"):
            raise NotImplementedError(f"{run_dir}: evaluate covers the linear generator (§4.1) "
                                      f"only, this run's model is {description['model']}")
        reason = divergence_reason(run_dir, run)
    record = {"run": {**description, "run_dir": str(run_dir)}, "settings": asdict(settings)}
    record["settings"]["seed"] = seed
    not_applicable, per_point = {}, {}
    if reason is None:
        trained_step, evaluated_step = finish_warmups(run.guide)
        record["run"].update(epochs_trained=run.epochs_trained, guide_step_trained=trained_step,
                             guide_step_evaluated=evaluated_step)
        if run.epochs_trained < description["epochs"]:
            log.warning("%s: the checkpoint has %d of %d epochs; evaluating it as it is", run_dir,
                        run.epochs_trained, description["epochs"])
        try:
            metrics, not_applicable, figures = _metrics_of_trained_run(run, settings, seed, seconds)
        except _CodesNotFinite as error:
            reason = str(error)
        else:
            per_point["jaccard_histogram"] = jaccard_histogram_counts(figures["jaccard"]).tolist()
            _figures(run, figures, description)
            log.info("%s: objective (10) %.4g, multi-information %.4g bits", run_dir,
                     metrics["validation_objective"], metrics["multi_information_bits"])
    if reason is not None:
        log.warning("%s diverged: %s; every metric is recorded as NaN", run_dir, reason)
        metrics = {}
    values = {name: metrics.get(name, math.nan) for name in METRIC_NAMES}
    values.update({key: value for key, value in metrics.items() if key not in values})
    record.update(
        status="diverged" if reason is not None else "ok",
        diverged=reason,
        metrics={key: _finite_or_none(value) for key, value in values.items()},
        nan_metrics=sorted(key for key, value in values.items()
                           if key not in not_applicable and _finite_or_none(value) is None),
        not_applicable=not_applicable,
        per_point=per_point,
        khat_threshold=KHAT_THRESHOLD,
        seconds=seconds,
    )
    _write_json(run_dir / EVALUATION_NAME, record)
    return record


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m pyro_vsc.evaluate",
        description="Evaluate a trained run folder (config.yaml + checkpoint.pt) with the metrics of "
                    "Table 1, Table 2 and Figures 4, 5, 9; writes evaluation.json and figures into it.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run folder(s) to evaluate, or folders of runs (e.g. a multirun "
                             "folder), searched recursively")
    parser.add_argument("--skip-evaluated", action="store_true",
                        help="leave out runs that already have an evaluation.json")
    for setting in _command_line_settings():
        if setting.type is bool:  # a switch that is on by default: --no-<name> turns it off
            parser.add_argument(f"--no-{setting.name}", dest=setting.name, action="store_false",
                                help=setting.metadata["help"])
        else:
            parser.add_argument(f"--{setting.name.replace('_', '-')}", type=setting.type,
                                default=setting.default, help=setting.metadata["help"])
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    settings = EvaluationSettings(**{setting.name: getattr(args, setting.name)
                                     for setting in _command_line_settings()})
    settings.check()
    run_dirs = [run_dir for path in args.run_dirs for run_dir in find_run_folders(path)]
    if not run_dirs:
        raise SystemExit(f"no run folder (with {CONFIG_NAME}) in {' '.join(args.run_dirs)}")
    if args.skip_evaluated:
        run_dirs = [run_dir for run_dir in run_dirs if not (run_dir / EVALUATION_NAME).exists()]
    failed = []
    for run_dir in run_dirs:
        try:
            record = evaluate_run(run_dir, settings)
        except Exception:  # one broken run folder must not stop a sweep's evaluation
            log.exception("%s: evaluation failed", run_dir)
            failed.append(run_dir)
            continue
        print(f"{run_dir}: {record['status']}; " + ", ".join(
            f"{key}={value:.4g}" for key, value in record["metrics"].items()
            if isinstance(value, float)) + f" -> {run_dir / EVALUATION_NAME}")
    if failed:
        raise SystemExit(f"evaluation failed for {len(failed)} run(s): {' '.join(map(str, failed))}")


if __name__ == "__main__":
    main()
