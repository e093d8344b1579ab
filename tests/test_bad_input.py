"""Bad configuration, bad data and an unwritable or full run folder fail before any training with
one clear line, and never damage what an earlier run left in its folder."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import pyro_vsc.train.checkpoint
from pyro_vsc.data.natural_images import IMAGES_MAT_URL
from pyro_vsc.run import check_config, train
from pyro_vsc.train.checkpoint import load
from pyro_vsc.train.checkpoint import RunFolderWriteError
from tests.faults import TINY_RUN, read_metrics
from tests.helpers import compose_config
from tests.image_data import write_fashion_mnist

REPOSITORY = Path(__file__).resolve().parents[1]
ONE_EPOCH = [*TINY_RUN, "epochs=1"]


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory):
    """A finished one-epoch run, with the record Hydra keeps of a command-line start, and the
    bytes of every file in its folder."""
    run_dir = tmp_path_factory.mktemp("earlier")
    train(compose_config([*ONE_EPOCH, f"run_dir={run_dir}"]))
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text("- epochs=1\n")
    return run_dir, {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}


def assert_untouched(earlier_run):
    """Every file of the earlier run is still there, byte for byte."""
    _, files = earlier_run
    assert {path: path.read_bytes() for path in files} == files


@pytest.mark.parametrize("overrides, message", [
    (["prior.threshold=0"], r"^prior\.threshold must be a number > 0, got 0"),
    (["guide=thresh", "guide.threshold.threshold=-0.1"],
     r"^guide\.threshold\.threshold must be a number > 0, got -0\.1"),
    (["elbo.num_particles=0"], r"^elbo\.num_particles \(J\) must be an integer ≥ 1, got 0"),
    (["sweep=fig7_sparsity", "guide=thresh_gauss", "nonzero_fraction=1.5"],  # Fig. 7's target sparsity
     r"^prior\.threshold: target non-zero fraction must lie in \(0, 1\), got 1\.5"),
    (["model.latent_dim=0"], r"^model\.latent_dim must be an integer ≥ 1, got 0"),
    (["batch_size=301"], r"^batch_size=301 is larger than the training set \(data\.num_train=300\); "
                         r"use a batch size of at most 300"),
    (["data.patch_size=8", "model.data_dim=256"],  # model.data_dim follows the data unless given
     r"^data\.patch_size=8 gives 64-dimensional patches but model\.data_dim=256"),
    (["epochs=0"], r"^epochs must be an integer ≥ 1, got 0"),
    (["epochs=two"], r"^epochs must be an integer ≥ 1, got 'two'"),
    (["log_every=0"], r"^log_every must be an integer ≥ 1, got 0"),
    (["checkpoint_every=0"], r"^checkpoint_every must be an integer ≥ 1 or null, got 0"),
    (["checkpoint_every_seconds=-5"], r"^checkpoint_every_seconds must be a number > 0 or null"),
    (["kl_weight=-0.01"], r"^kl_weight must be a number ≥ 0, got -0\.01"),
    (["kl_weights.threshold=-1"], r"^kl_weights\.threshold must be a number ≥ 0, got -1"),
    (["on_divergence=ignore"], r"^on_divergence must be one of stop, skip, got 'ignore'"),
    (["seed=-1"], r"^seed must be an integer in \[0, 2\^32 - 1\], got -1"),
    (["device=gpu"], r"^device=gpu is not a device name; use auto, cpu, cuda or cuda:N"),
    (["guide=spike_slab", "prior.nonzero_prob=1.0"], r"^prior\.nonzero_prob must lie in \(0, 1\), got 1\.0"),
])
def test_a_bad_value_fails_before_training_with_its_accepted_range(overrides, message, earlier_run):
    run_dir, _ = earlier_run
    with pytest.raises(ValueError, match=message):
        train(compose_config([*ONE_EPOCH, *overrides, f"resume={run_dir}"]))
    assert_untouched(earlier_run)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_machine_without_it_is_refused():
    with pytest.raises(ValueError, match="device=cuda requested but CUDA is not available"):
        check_config(compose_config(["device=cuda"]))


def test_every_shipped_experiment_and_sweep_passes_the_checks():
    """The checks accept what the project ships (every guide, experiments, sweep values)."""
    configs = [[f"guide={g}"] for g in ("gaussian", "laplace", "spike_slab", "thresh", "thresh_gamma",
                                        "thresh_gauss", "thresh_gauss_gamma", "fista")]
    configs += [["experiment=paper"], ["experiment=fmnist"], ["experiment=celeba"],
                ["experiment=celeba", "sweep=fig7_sparsity", "nonzero_fraction=0.02"],
                ["experiment=celeba", "sweep=fig7_sparsity", "nonzero_fraction=0.4"],
                ["experiment=celeba", "sweep=fig7_sparsity_spike_slab"],
                ["experiment=fmnist", "sweep=fig7_latent_dim", "model.latent_dim=4096"],
                ["data=synthetic", "model.data_dim=${data.dim}", "model.latent_dim=${data.size}"]]
    for overrides in configs:
        check_config(compose_config(overrides))


def _images_mat(path, **variables):
    scipy.io.savemat(path, variables)
    return path


def _nan_images(path):
    images = np.random.default_rng(0).standard_normal((64, 64, 2))
    images[3, 4, 1] = np.nan
    return _images_mat(path, IMAGES=images)


@pytest.mark.parametrize("make, error, message", [
    (lambda path: path, FileNotFoundError, f"not found at .*Download {IMAGES_MAT_URL}"),
    (lambda path: path.write_bytes(b"<html>404</html>") and path, ValueError,
     "could not be read as a MATLAB .mat file"),
    (lambda path: _images_mat(path, IMAGES=np.zeros((64, 64, 2, 2))), ValueError,
     r"\(N, N, M\).*got shape \(64, 64, 2, 2\)"),
    (_nan_images, ValueError, r"NaN or infinite pixels in image\(s\) \[1\]"),
], ids=["missing", "corrupt", "wrong-shape", "nan"])
def test_bad_images_mat_fails_before_training(make, error, message, tmp_path, earlier_run):
    run_dir, _ = earlier_run
    path = make(tmp_path / "IMAGES.mat")
    with pytest.raises(error, match=message):
        train(compose_config([*ONE_EPOCH, f"data.images={path}", f"resume={run_dir}"]))
    assert_untouched(earlier_run)


def test_missing_fashion_mnist_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        train(compose_config(["model=fmnist", f"data.root={tmp_path}", "data.download=false",
                              "progress=false", f"run_dir={tmp_path / 'run'}"]))


def test_image_data_for_the_linear_model_is_refused(tmp_path):
    write_fashion_mnist(tmp_path / "data", train_count=8, test_count=4)
    cfg = compose_config(["data=fmnist", f"data.root={tmp_path / 'data'}", "data.train_size=8",
                          "data.val_size=4", "data.download=false", "batch_size=4", "progress=false",
                          f"run_dir={tmp_path / 'run'}"])
    with pytest.raises(ValueError, match=r"the data are images of shape \(1, 28, 28\) but "
                                         r"LinearSparseCoding takes vectors .* use model=fmnist"):
        train(cfg)


def test_the_command_reports_bad_input_in_one_line(tmp_path):
    """Missing data when continuing a run, as the user sees it: one line (not Hydra's wrapped
    traceback), status 2, and the run's folder, Hydra's record of its start included, intact.
    The run was started on an IMAGES.mat that has since been moved away."""
    images = _images_mat(tmp_path / "IMAGES.mat", IMAGES=np.random.default_rng(0).standard_normal((64, 64, 2)))
    run_dir = tmp_path / "run"
    train(compose_config([*ONE_EPOCH, "epochs=2", "session_epochs=1", f"data.images={images}",
                          f"run_dir={run_dir}"]))
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text(f"- data.images={images}\n")
    images.unlink()
    before = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    result = subprocess.run([sys.executable, "-m", "pyro_vsc.run", f"resume={run_dir}"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "HYDRA_FULL_ERROR" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert errors[0].startswith("error: Olshausen's whitened images were not found at "
                                f"{images}. Download {IMAGES_MAT_URL}")
    assert {path: path.read_bytes() for path in before} == before


def test_a_run_folder_that_cannot_be_created_is_reported_at_start(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match=rf"the run folder {blocker / 'run'} is not writable \(Not a "
                                      r"directory\): fix its permissions or choose another run_dir"):
        train(compose_config([*ONE_EPOCH, f"run_dir={blocker / 'run'}"]))


def test_a_full_disk_at_start_is_reported_and_the_earlier_run_is_intact(earlier_run, monkeypatch):
    run_dir, _ = earlier_run

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match=rf"the run folder {run_dir} is not writable \(No space left "
                                      r"on device\): free some space"):
        train(compose_config([*TINY_RUN, "epochs=2", f"resume={run_dir}"]))
    monkeypatch.undo()
    assert_untouched(earlier_run)


def test_a_failed_checkpoint_write_stops_the_run_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """The disk fills up while the second epoch's checkpoint is written (part of it on disk)."""
    writes = []
    real_save = torch.save

    def save_until_the_disk_is_full(obj, stream):
        writes.append(1)
        if len(writes) == 2:
            stream.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(obj, stream)

    monkeypatch.setattr(pyro_vsc.train.checkpoint.torch, "save", save_until_the_disk_is_full)
    with pytest.raises(RunFolderWriteError, match=r"cannot write the checkpoint at step 12 \(the end of "
                                                  r"epoch 2\): \[Errno 28\] No space left on device; "
                                                  r"the last checkpoint, .* at step 6 \(the end of epoch "
                                                  rf"1\), is intact: .* resume={tmp_path}$"):
        train(compose_config([*TINY_RUN, f"run_dir={tmp_path}"]))
    monkeypatch.undo()
    assert load(tmp_path / "checkpoint.pt")["step"] == 6
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1]
    assert not list(tmp_path.glob(".checkpoint.pt.*"))
    assert [r["epoch"] for r in train(compose_config([*TINY_RUN, f"resume={tmp_path}"]))] == [1, 2, 3]


def test_a_damaged_checkpoint_is_named_when_resuming(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=rf"cannot read the checkpoint {tmp_path / 'checkpoint.pt'} .* "
                                         "damaged"):
        train(compose_config([*ONE_EPOCH, f"resume={tmp_path}"]))
