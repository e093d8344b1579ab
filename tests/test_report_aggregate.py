"""Report building blocks: mean ± std over seeds with NaN runs, and finding run folders."""

import math

import numpy as np
import pytest

from pyro_vsc.evaluation.trained_run import divergence_reason, find_run_folders
from pyro_vsc.reporting.aggregate import format_summary, summarize


def test_mean_and_population_std_over_seeds():
    summary = summarize([1.0, 2.0, 6.0])
    assert (summary.count, summary.nan_count) == (3, 0)
    assert summary.mean == 3.0 and summary.std == pytest.approx(math.sqrt(14 / 3))
    assert format_summary(summary) == "3.00E+00"
    assert format_summary(summary, with_std=True) == "3.00E+00 ± 2.16E+00"
    assert format_summary(summarize([4.1666, 4.5]), percent=True) == "4.33%"


def test_diverged_runs_stay_visible():
    assert format_summary(summarize([math.nan, math.nan, math.nan])) == "NaN"
    partly = summarize([math.nan, 1.0, 3.0])
    assert (partly.mean, partly.nan_count) == (2.0, 1)
    assert format_summary(partly) == "2.00E+00 (1/3 NaN)"


def test_missing_or_inapplicable_values_are_a_dash():
    assert format_summary(summarize([])) == "–"
    assert format_summary(summarize([None, None])) == "–"  # e.g. FISTA's IWAE loss
    assert np.isnan(summarize([None]).mean)


def test_run_folders_of_single_runs_and_multiruns(tmp_path):
    # Hydra keeps its own config.yaml in every job's .hydra/, also for a skipped job (FISTA, J = 20).
    for folder in ("runs/2024_thresh", "runs/multirun/2024-01-01/0_thresh_max_J1_s0",
                   "runs/multirun/2024-01-01/0_thresh_max_J1_s0/.hydra",
                   "runs/multirun/2024-01-01/1_fista_max_J20_s0/.hydra"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "config.yaml").write_text("seed: 0\n")
    assert find_run_folders(tmp_path / "runs") == [
        tmp_path / "runs/2024_thresh", tmp_path / "runs/multirun/2024-01-01/0_thresh_max_J1_s0"]
    with pytest.raises(FileNotFoundError, match="not a folder of runs"):
        find_run_folders(tmp_path / "nowhere")


def test_nan_metrics_mark_a_run_as_diverged(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 1.5}\n'
                                            '{"epoch": 2, "train_loss": NaN}\n')
    assert "train_loss" in divergence_reason(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 1.5}\n')
    assert divergence_reason(tmp_path) is None
