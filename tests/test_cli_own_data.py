"""Your own data through the command: ``data.images=<folder>`` and ``data=arrays data.path=...``
train without ``model.data_dim`` (it follows the data), and bad data stop the run before any
training step with one line naming the file (exit status 2)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import tifffile
from omegaconf import OmegaConf

from pyro_vsc.config_checks import check_config
from pyro_vsc.run import EXIT_INVALID_INPUT, run_command
from tests.helpers import compose_config

REPOSITORY = Path(__file__).resolve().parents[1]
#: A one-epoch run of seconds on any data: 6 steps of 50, a small network and dictionary.
SMALL = ["batch_size=50", "epochs=1", "progress=false", "model.latent_dim=16",
         "model.backbone.hidden=[32,16]"]
PATCHES = ["data.patch_size=8", "data.num_train=300", "data.num_val=100"]


def _smooth(height, width, seed=0):
    walk = np.random.default_rng(seed).standard_normal((height, width)).cumsum(0).cumsum(1)
    return (walk - walk.min()) / np.ptp(walk)


def _image_folder(folder):
    """Three photographs-to-be of different sizes and formats: RGB PNG, 16-bit TIFF, JPEG."""
    folder.mkdir()
    rgb = np.stack([_smooth(40, 56, seed=s) for s in range(3)], axis=2)
    PIL.Image.fromarray((rgb * 255).astype(np.uint8)).save(folder / "a.png")
    tifffile.imwrite(folder / "b.tif", (_smooth(48, 48, seed=4) * 65535).astype(np.uint16))
    PIL.Image.fromarray((_smooth(36, 60, seed=5) * 255).astype(np.uint8)).save(folder / "c.jpg")
    return folder


def _vectors(path, count=400, dim=40):
    """Vectors of a dimension that is not a square (as spectrogram frames)."""
    rng = np.random.default_rng(0)
    np.save(path, rng.standard_normal((count, 12)) @ rng.standard_normal((12, dim)) + 5.0)
    return path


@pytest.mark.parametrize("overrides, dimension", [
    ([], 256),
    (["data.patch_size=8"], 64),
    (["data=synthetic", "data.dim=20"], 20),
    (["data=arrays", "data.path=VECTORS"], 40),
    (["model=fmnist"], 784),
])
def test_the_linear_model_takes_its_dimension_from_the_data(overrides, dimension, tmp_path):
    path = _vectors(tmp_path / "v.npy")
    cfg = compose_config([override.replace("VECTORS", str(path)) for override in overrides])
    check_config(cfg)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    assert model["data_dim"] == dimension
    assert model["noise_variance"] == dimension / 2  # σ² = D/2 (linear.yaml)
    if "backbone" in model and "input_dim" in model["backbone"]:
        assert model["backbone"]["input_dim"] == model["module"]["data_dim"] == dimension


def _write_nan_tiff(folder):
    image = _smooth(40, 40).astype(np.float32)
    image[5, 6] = np.inf
    tifffile.imwrite(folder / "nan.tif", image)


def _images(make):
    def data(tmp_path):
        folder = tmp_path / "images"
        folder.mkdir()
        make(folder)
        return [f"data.images={folder}", *PATCHES]
    return data


def _arrays(array, *settings):
    def data(tmp_path):
        np.save(tmp_path / "vectors.npy", array)
        return ["data=arrays", f"data.path={tmp_path / 'vectors.npy'}", *settings]
    return data


def _nan_vectors():
    array = np.random.default_rng(0).standard_normal((400, 10))
    array[123, 4] = np.nan
    return array


VECTORS = np.random.default_rng(0).standard_normal((400, 10))


@pytest.mark.parametrize("data, message", [
    (_images(lambda folder: None), r"no images in the folder .*images \(it is empty\)"),
    (_images(lambda folder: (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")),
     r"broken\.jpg could not be read as an image"),
    (_images(lambda folder: PIL.Image.fromarray(np.zeros((6, 30), np.uint8)).save(folder / "strip.png")),
     r"images smaller than a 8×8 patch \(data\.patch_size=8\): .*strip\.png \(6×30\)"),
    (_images(_write_nan_tiff), r"NaN or infinite pixels in .*nan\.tif"),
    (lambda tmp_path: [f"data.images={tmp_path / 'nowhere'}"], r"data\.images=.*nowhere: no such file"),
    (lambda tmp_path: ["data=arrays"], r"data=arrays needs the file of vectors: data\.path="),
    (lambda tmp_path: ["data=arrays", f"data.path={tmp_path / 'gone.npy'}"], r"gone\.npy: no such file"),
    (_arrays(_nan_vectors()), r"vectors\.npy contains NaN or infinite values in 1 vector\(s\), rows 123"),
    (_arrays(np.arange(400.0)), r"vectors\.npy holds a 1-D array of shape \(400,\)"),
    (_arrays(np.zeros((400, 4, 4))), r"vectors\.npy holds a 3-D array of shape \(400, 4, 4\)"),
    (_arrays(VECTORS, "batch_size=380"), r"vectors\.npy holds 400 vectors: 40 held out .* fewer than "
                                         r"one batch \(batch_size=380\)"),
    (_arrays(VECTORS, "data.val_split=400"), r"data\.val_split=400 asks for 400 validation vectors but "
                                             r".*vectors\.npy holds only 400"),
    (_arrays(VECTORS, "model.data_dim=16"), r"data\.path=.*vectors\.npy holds 10-dimensional vectors but "
                                            r"model\.data_dim=16"),
], ids=["empty-folder", "unreadable-image", "smaller-than-a-patch", "nan-image", "no-such-folder",
        "no-data-path", "no-such-file", "nan-vectors", "1-D", "3-D", "fewer-than-a-batch",
        "all-for-validation", "contradicting-data-dim"])
def test_bad_data_stop_the_command_with_one_line(data, message, tmp_path, capsys):
    """As the command reports it (``run_command`` is what ``python -m pyro_vsc.run`` calls after
    Hydra composed the config): status 2, one ``error:`` line, no training step."""
    run_dir = tmp_path / "run"
    status = run_command(compose_config([*SMALL, *data(tmp_path), f"run_dir={run_dir}"]))
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert status == EXIT_INVALID_INPUT and len(errors) == 1, stderr
    assert "Traceback" not in stderr
    assert re.search(message, errors[0]), errors[0]
    assert not (run_dir / "metrics.jsonl").exists()


def _command(*overrides):
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pyro_vsc.run", *SMALL, *overrides],
                          capture_output=True, text=True, env=env, timeout=300)


def _one_epoch(run_dir, steps):
    (record,) = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert record["epoch"] == 1 and record["step"] == steps
    assert all(value == value for value in record.values() if isinstance(value, float))  # no NaN
    assert {"dictionary.png", "training_curves.png", "checkpoint.pt"} <= {p.name for p in run_dir.iterdir()}
    return OmegaConf.load(run_dir / "config.yaml")


def test_the_command_trains_on_a_folder_of_images(tmp_path):
    folder = _image_folder(tmp_path / "photos")
    result = _command(f"data.images={folder}", *PATCHES, f"run_dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    cfg = _one_epoch(tmp_path / "run", steps=300 // 50)
    assert cfg.model.data_dim == 64 and cfg.data.images == str(folder)


def test_the_command_trains_on_a_file_of_vectors(tmp_path):
    path = _vectors(tmp_path / "frames.npy")
    result = _command("data=arrays", f"data.path={path}", f"run_dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    cfg = _one_epoch(tmp_path / "run", steps=(400 - 40) // 50)  # val_split 0.1
    assert cfg.model.data_dim == 40 and cfg.model.noise_variance == 20.0


def test_the_command_reports_an_unreadable_image_in_one_line(tmp_path):
    """The real command line (Hydra, exit status) for one of the cases above."""
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"not a png")
    result = _command(f"data.images={folder}", *PATCHES, f"run_dir={tmp_path / 'run'}")
    assert result.returncode == EXIT_INVALID_INPUT, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert errors[0].startswith(f"error: {folder / 'broken.png'} could not be read as an image")
