"""``python -m pyro_vsc.evaluate``: the command line is derived from EvaluationSettings."""

import dataclasses

import pytest

from pyro_vsc.evaluate import EvaluationSettings, _parser

#: The options of the command, as they have been since the command was written.
OPTIONS = ["--skip-evaluated", "--iwae-samples", "--iwae-points", "--snr-points", "--snr-samples",
           "--snr-points-per-pass", "--consistency-samples", "--fista-tol", "--batch-size", "--seed",
           "--device", "--no-progress"]


def _options():
    return [option for action in _parser()._actions for option in action.option_strings
            if option not in ("-h", "--help")]


def test_the_options_are_those_of_the_settings():
    assert _options() == OPTIONS
    help_text = _parser().format_help()
    for setting in dataclasses.fields(EvaluationSettings):
        # λ, ε, δ and the atom threshold are Python-only settings
        on_command_line = setting.name not in ("lam", "collapse_eps", "collapse_delta", "atom_threshold")
        assert (setting.metadata["help"] is not None) == on_command_line, setting.name
        if on_command_line:
            assert setting.metadata["help"].split(" (")[0].split(";")[0] in help_text


def test_defaults_come_from_the_settings():
    args = _parser().parse_args(["runs/x"])
    defaults = EvaluationSettings()
    for setting in dataclasses.fields(EvaluationSettings):
        if setting.metadata["help"] is not None:
            assert getattr(args, setting.name) == getattr(defaults, setting.name), setting.name
    assert args.run_dirs == ["runs/x"] and not args.skip_evaluated
    assert "default 100)" in _parser().format_help()  # %(default)s of --snr-points


def test_every_option_sets_its_field_with_its_type():
    args = _parser().parse_args([
        "a", "b", "--skip-evaluated", "--iwae-samples", "30", "--iwae-points", "7", "--snr-points", "0",
        "--snr-samples", "8", "--snr-points-per-pass", "2", "--consistency-samples", "5",
        "--fista-tol", "1e-3", "--batch-size", "9", "--seed", "11", "--device", "cpu", "--no-progress"])
    assert args.run_dirs == ["a", "b"] and args.skip_evaluated
    settings = EvaluationSettings(**{setting.name: getattr(args, setting.name)
                                     for setting in dataclasses.fields(EvaluationSettings)
                                     if setting.metadata["help"] is not None})
    assert settings == EvaluationSettings(iwae_samples=30, iwae_points=7, snr_points=0, snr_samples=8,
                                          snr_points_per_pass=2, consistency_samples=5, fista_tol=1e-3,
                                          batch_size=9, seed=11, device="cpu", progress=False)
    assert isinstance(settings.fista_tol, float) and isinstance(settings.seed, int)
    with pytest.raises(SystemExit):
        _parser().parse_args(["a", "--iwae-samples", "many"])


@pytest.mark.parametrize("changes,message", [
    ({"iwae_samples": 0}, "iwae_samples must be ≥ 1, got 0"),
    ({"iwae_points": 0}, "iwae_points must be ≥ 1 (or omitted for all), got 0"),
    ({"snr_points": -1}, "snr_points must be ≥ 0 (0 skips the SNR), got -1"),
    ({"snr_samples": 1}, "snr_samples must be ≥ 2, got 1"),
    ({"snr_points_per_pass": 0}, "snr_points_per_pass must be ≥ 1, got 0"),
    ({"consistency_samples": 1}, "consistency_samples must be ≥ 2 (pairs of samples), got 1"),
    ({"batch_size": 0}, "batch_size must be ≥ 1, got 0"),
    ({"fista_tol": 0.0}, "fista_tol must be > 0, got 0.0"),
])
def test_check_names_the_setting_outside_its_bound(changes, message):
    with pytest.raises(ValueError) as error:
        EvaluationSettings(**changes).check()
    assert str(error.value) == message


def test_check_accepts_the_defaults_and_the_limits():
    EvaluationSettings().check()
    EvaluationSettings(iwae_points=None, seed=None, snr_points=0, snr_samples=2, iwae_samples=1,
                       consistency_samples=2, batch_size=1, snr_points_per_pass=1, fista_tol=1e-12).check()
