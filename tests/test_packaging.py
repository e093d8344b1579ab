"""Installing the package claims no generic top-level names (README, "Layout").

A regular (non-editable) install is run from a project folder that has its own ``models`` and
``guides`` packages, as ML projects often do; the command must still find its own programs.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


#: Not part of the source: what a checkout accumulates at its top level (the build runs on a
#: copy without them).
NOT_SOURCE = {".git", ".venv", "venv", "runs", "data", "build", "benchmarks", ".pytest_cache", ".hypothesis"}


def _not_source(folder, names):
    top = Path(folder) == REPO
    return {name for name in names if (top and name in NOT_SOURCE) or name == "__pycache__"
            or name.endswith(".egg-info")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The project installed (no dependencies: they are this environment's) into a folder, built
    from a copy of the checkout so that the build leaves nothing in it."""
    source, target = tmp_path_factory.mktemp("source") / "pyro_vsc_src", tmp_path_factory.mktemp("site")
    shutil.copytree(REPO, source, symlinks=True, ignore=_not_source)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-compile", "--target", str(target), str(source)],
                   check=True, capture_output=True, text=True, timeout=300)
    return target


def test_a_regular_install_has_only_the_pyro_vsc_package_at_the_top_level(installed):
    packages = {p.name for p in installed.iterdir()
                if p.is_dir() and not p.name.endswith((".dist-info", ".egg-info")) and p.name != "bin"}
    assert packages == {"pyro_vsc"}
    for name in ("models", "guides"):  # the model and guide programs travel inside it, as files
        folder = installed / "pyro_vsc" / name
        assert (folder / "__init__.py").is_file() and not folder.is_symlink()
    assert (installed / "pyro_vsc" / "models" / "priors.py").is_file()
    assert (installed / "pyro_vsc" / "guides" / "thresholded.py").is_file()


def test_the_command_runs_from_a_folder_with_its_own_models_and_guides(installed, tmp_path):
    project = tmp_path / "my_project"
    for name in ("models", "guides"):
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text(
            f"raise ImportError('the user project\\'s own {name} package was imported')\n")
    (project / "models" / "priors.py").write_text("")
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(installed)}
    command = [sys.executable, "-m", "pyro_vsc.run", "data=synthetic", "data.dim=16", "data.size=8",
               "data.nonzeros=2", "data.num_train=200", "data.num_val=50", "model.data_dim=16",
               "model.latent_dim=8", "model.backbone.hidden=[16]", "batch_size=50", "epochs=1",
               "progress=false", f"run_dir={run_dir}"]
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "metrics.jsonl").is_file()
    where = subprocess.run([sys.executable, "-c", "import pyro_vsc.models.priors as p; print(p.__file__)"],
                           cwd=project, env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(installed)
