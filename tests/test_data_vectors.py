"""Prepared vectors (``data=arrays``): a seeded split, standardised with training statistics only,
from .npy files or named .npz arrays, with one-line errors naming the file."""

import numpy as np
import pytest
import torch

from pyro_vsc.data import VectorSplit, load_vectors


def _vectors(count=500, dim=7, seed=0):
    """Vectors whose coordinates have very different means and scales, as raw features do."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, dim)) * np.geomspace(0.01, 100, dim) + np.arange(dim) * 1e3


@pytest.fixture
def vectors_file(tmp_path):
    path = tmp_path / "vectors.npy"
    np.save(path, _vectors())
    return path


@pytest.mark.parametrize("val_split, num_val", [(0.1, 50), (0.25, 125), (0.001, 1), (37, 37)])
def test_the_split_is_seeded_disjoint_and_covers_every_row(vectors_file, val_split, num_val):
    split = load_vectors(vectors_file, val_split=val_split, seed=3)
    assert isinstance(split, VectorSplit)
    assert split.train.shape == (500 - num_val, 7) and split.val.shape == (num_val, 7)
    assert split.train.dtype == split.val.dtype == torch.float32
    rows = torch.cat([split.train_rows, split.val_rows])
    assert sorted(rows.tolist()) == list(range(500))
    again = load_vectors(vectors_file, val_split=val_split, seed=3)
    torch.testing.assert_close(again.val_rows, split.val_rows, rtol=0, atol=0)
    other = load_vectors(vectors_file, val_split=val_split, seed=4)
    assert num_val == 1 or not torch.equal(other.val_rows, split.val_rows)


def test_standardisation_uses_the_training_vectors_only(vectors_file):
    raw = np.load(vectors_file)
    split = load_vectors(vectors_file, val_split=100, seed=0)
    train, val = raw[split.train_rows.numpy()], raw[split.val_rows.numpy()]
    np.testing.assert_allclose(split.mean, train.mean(0), rtol=1e-6)
    np.testing.assert_allclose(split.std, train.std(0), rtol=1e-6)
    # training vectors: zero mean, unit variance per coordinate (float32 storage: ~1e-7 relative)
    np.testing.assert_allclose(split.train.double().mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(split.train.double().std(0, unbiased=False), 1, atol=1e-6)
    # validation vectors: mapped with the training statistics, not their own
    expected_val = (val - train.mean(0)) / train.std(0)
    np.testing.assert_allclose(split.val, expected_val, rtol=0, atol=1e-5)
    assert np.abs(expected_val.mean(0)).max() > 0.05  # their own means differ: the test can fail
    # undone up to float32 storage: the standardised values, mean and std each round by ≤ eps/2
    recovered = split.unstandardize(split.val.double()).numpy()
    eps = np.finfo(np.float32).eps
    assert np.all(np.abs(recovered - val) <= 2 * eps * (np.abs(val) + 2 * np.abs(train.mean(0))))


def test_unstandardised_vectors_keep_their_values(tmp_path):
    raw = _vectors().astype(np.float32)
    np.save(tmp_path / "v.npy", raw)
    split = load_vectors(tmp_path / "v.npy", standardize=False)
    np.testing.assert_array_equal(split.train, raw[split.train_rows.numpy()])
    np.testing.assert_array_equal(split.val, raw[split.val_rows.numpy()])
    assert not split.standardized


@pytest.mark.parametrize("save, key", [
    (lambda path, x: np.savez(path, x), None),                              # its only array
    (lambda path, x: np.savez_compressed(path, frames=x, labels=np.arange(len(x))), "frames"),
])
def test_an_npz_array_is_read_by_name(tmp_path, vectors_file, save, key):
    save(tmp_path / "v.npz", np.load(vectors_file))
    from_npz = load_vectors(tmp_path / "v.npz", key=key, seed=1)
    from_npy = load_vectors(vectors_file, seed=1)
    for name in ("train", "val", "mean", "std", "train_rows", "val_rows"):
        torch.testing.assert_close(getattr(from_npz, name), getattr(from_npy, name), rtol=0, atol=0)


def _save(name, array):
    def write(folder):
        np.save(folder / name, array) if name.endswith(".npy") else np.savez(folder / name, **array)
        return folder / name
    return write


def _with_nan_rows(rows):
    array = _vectors()
    array[rows, 2] = np.nan
    array[rows[:1], 0] = np.inf
    return array


@pytest.mark.parametrize("write, settings, error, message", [
    (lambda d: d / "missing.npy", {}, FileNotFoundError, r"^data\.path=.*missing\.npy: no such file$"),
    (lambda d: (d / "v.csv").write_text("1,2") and d / "v.csv", {}, ValueError,
     r"^data\.path=.*v\.csv is not a NumPy file"),
    (lambda d: (d / "v.npy").write_bytes(b"garbage") and d / "v.npy", {}, ValueError,
     r"^.*v\.npy could not be read as a NumPy \.npy file"),
    (_save("v.npy", np.arange(10.0)), {}, ValueError,
     r"v\.npy holds a 1-D array of shape \(10,\); data=arrays needs vectors \(N, D\).*x\.reshape\(-1, 1\)"),
    (_save("v.npy", np.zeros((10, 4, 4))), {}, ValueError,
     r"v\.npy holds a 3-D array of shape \(10, 4, 4\); .*flatten each.*data\.images="),
    (_save("v.npy", np.array(3.0)), {}, ValueError, r"v\.npy holds a 0-D array"),
    (_save("v.npy", _with_nan_rows([4, 17, 300])), {}, ValueError,
     r"v\.npy contains NaN or infinite values in 3 vector\(s\), rows 4, 17, 300"),
    (_save("v.npy", _vectors().astype(np.complex64)), {}, ValueError, r"v\.npy holds values of dtype complex64"),
    (_save("v.npy", np.array([[None, 1]] * 5, dtype=object)), {}, ValueError,
     r"v\.npy could not be read .*Python objects"),
    (_save("v.npy", _vectors(count=120)), {"min_train": 200}, ValueError,
     r"v\.npy holds 120 vectors: 12 held out for validation \(data\.val_split=0\.1\) leave 108 for "
     r"training, fewer than one batch \(batch_size=200\)"),
    (_save("v.npy", _vectors(count=120)), {"val_split": 120}, ValueError,
     r"data\.val_split=120 asks for 120 validation vectors but .*v\.npy holds only 120"),
    (_save("v.npy", _vectors()), {"val_split": 1.0}, ValueError,
     r"data\.val_split must be a fraction in \(0, 1\) or a count ≥ 1 .*got 1\.0"),
    (_save("v.npy", _vectors()[:1]), {}, ValueError, r"v\.npy holds an array of shape \(1, 7\); .*two vectors"),
    (_save("v.npy", np.c_[_vectors(), np.ones(500)]), {}, ValueError,
     r"1 coordinate\(s\) of the vectors in .*v\.npy are constant .*columns 7\).*data\.standardize=false"),
    (_save("v.npz", {"a": _vectors(), "b": _vectors()}), {}, ValueError,
     r"v\.npz holds 2 arrays \(a, b\): choose one with data\.key=<name>"),
    (_save("v.npz", {"a": _vectors()}), {"key": "frames"}, ValueError, r"v\.npz has no array 'frames'.*holds a"),
    (_save("v.npy", _vectors()), {"key": "frames"}, ValueError,
     r"data\.key=frames names an array inside an \.npz archive, but .*v\.npy is a \.npy file"),
], ids=["missing", "suffix", "unreadable", "1-D", "3-D", "0-D", "nan-inf", "complex", "objects",
        "fewer-than-a-batch", "all-for-validation", "bad-split", "one-vector", "constant", "npz-ambiguous",
        "npz-no-such-key", "key-for-npy"])
def test_a_file_that_cannot_be_used_is_refused_naming_it(write, settings, error, message, tmp_path):
    path = write(tmp_path)
    with pytest.raises(error, match=message):
        load_vectors(path, **settings)
