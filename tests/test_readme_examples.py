"""The README's worked examples run as written (the code block after ``<!-- example: NAME -->``)."""

import logging
import re
from pathlib import Path


from pyro_vsc.run import train
from pyro_vsc.train.checkpoint import load
from tests.helpers import TINY_LINEAR, compose_config
from tests.test_user_edits import _metrics

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example(name):
    """The code of the README block marked ``<!-- example: name -->``."""
    match = re.search(rf"<!-- example: {re.escape(name)} -->\s*```\w*\n(.*?)```", README.read_text(), re.S)
    assert match, f"README.md has no example {name}"
    return match.group(1)


def test_the_annealed_prior_of_writing_your_own_prior_trains_with_and_without_capture(
        tmp_path, monkeypatch, caplog):
    (tmp_path / "my_priors.py").write_text(readme_example("my_priors.py"))
    monkeypatch.syspath_prepend(str(tmp_path))
    run = [*TINY_LINEAR, "guide=thresh", "model.backbone.hidden=[64,64]",
           "prior._target_=my_priors.AnnealedThresholdLaplacePrior", "+prior.anneal_calls=8"]
    with caplog.at_level(logging.WARNING, logger="pyro_vsc.train.capture"):
        for capture in (True, False):
            train(compose_config([*run, f"capture={capture}", f"run_dir={tmp_path / str(capture)}"]))
    assert not caplog.records  # recorded and replayed: nothing to announce
    assert _metrics(tmp_path / "True") == _metrics(tmp_path / "False")
    steps = load(tmp_path / "True" / "checkpoint.pt")["step"]
    calls = load(tmp_path / "True" / "checkpoint.pt")["model"]["prior.calls"]
    assert int(calls) == steps == 12  # one call per training step, none during validation


def test_the_load_run_example_runs_on_a_trained_run(tmp_path):
    run_dir = tmp_path / "run"
    train(compose_config([*TINY_LINEAR, "epochs=1", "model.backbone.hidden=[64,64]", f"run_dir={run_dir}"]))
    scope = {"run_dir": run_dir}
    exec(readme_example("load_run"), scope)  # noqa: S102 (the README's own code)
    assert scope["codes"].shape == (100, 256) and scope["reconstructions"].shape == (100, 256)
    assert scope["dictionary"].shape == (256, 256)


def test_the_estimator_examples_of_use_it_on_your_own_data_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example writes runs/my_coder
    namespace = {}
    exec(readme_example("estimator"), namespace)
    coder, codes = namespace["coder"], namespace["codes"]
    assert codes.shape == (2000, 16) and (codes == 0).any()
    assert coder.n_iter_ == 1000 // 20 + 1  # fit's 50 epochs of 20 steps, and partial_fit's one
    assert "of the code entries are non-zero" in capsys.readouterr().out
    assert (tmp_path / "runs" / "my_coder" / "checkpoint.pt").is_file()
    exec(readme_example("estimator-pipeline"), namespace)
    assert namespace["codes"].shape == (2000, 32)
    assert namespace["pipeline"][-1].n_steps_ == 300
