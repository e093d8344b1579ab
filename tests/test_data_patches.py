"""Patch positions, extraction, and the cached train/validation split of §4.1."""

import time
import tracemalloc

import numpy as np
import pytest
import scipy.io
import torch

from pyro_vsc.data import (
    PatchSplit,
    extract_patches,
    load_whitened_patches,
    positions_per_image,
    sample_patch_positions,
    whiten_images,
    whitened_skimage_images,
)
from pyro_vsc.data import patches as patch_module

# ---------------------------------------------------------------------------------------------
# positions


def test_positions_are_distinct_inside_the_images_and_reproducible():
    shapes = [(20, 30), (17, 17), (40, 25)]
    positions = sample_patch_positions(shapes, 8, 500, rng=3)
    assert positions.shape == (500, 3) and positions.dtype == np.int64
    assert len({tuple(p) for p in positions.tolist()}) == 500
    heights, widths = np.array(shapes).T
    image, row, col = positions.T
    assert np.all((row >= 0) & (row <= heights[image] - 8))
    assert np.all((col >= 0) & (col <= widths[image] - 8))
    np.testing.assert_array_equal(positions, sample_patch_positions(shapes, 8, 500, rng=3))
    assert not np.array_equal(positions, sample_patch_positions(shapes, 8, 500, rng=4))


def test_asking_for_every_position_returns_each_exactly_once():
    shapes = [(5, 7), (6, 6)]
    counts = positions_per_image(shapes, 3)
    assert counts == [3 * 5, 4 * 4]
    positions = sample_patch_positions(shapes, 3, sum(counts), np.random.default_rng(0))
    expected = {(m, r, c) for m, (h, w) in enumerate(shapes)
                for r in range(h - 2) for c in range(w - 2)}
    assert {tuple(p) for p in positions.tolist()} == expected


def test_positions_are_uniform_over_all_positions():
    """Image 0 holds 1/4 of all positions (1 of 4 equal images): the count drawn from it is
    hypergeometric, n=20,000 of 4·91², std ≤ sqrt(n·¼·¾) ≈ 61; allow 5σ. Rows likewise: mean
    row (90/2 = 45) with std 26.3/sqrt(n) ≈ 0.19; allow 5σ."""
    positions = sample_patch_positions([(100, 100)] * 4, 10, 20_000, rng=0)
    assert abs(np.sum(positions[:, 0] == 0) - 5_000) < 5 * 61
    assert abs(positions[:, 1].mean() - 45.0) < 5 * 0.19


def test_sampling_memory_grows_with_the_sample_not_with_the_positions():
    """10¹³ positions (1,000 images of 10⁵×10⁵, never created): materialising them would need
    80 TB; drawing 50,000 needs a few arrays of 50,000 integers."""
    shapes = [(100_000, 100_000)] * 1_000
    tracemalloc.start()
    positions = sample_patch_positions(shapes, 16, 50_000, rng=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len({tuple(p) for p in positions.tolist()}) == 50_000
    assert peak < 20 * 2**20


@pytest.mark.parametrize("shapes, patch_size, num, message", [
    ([(10, 10)], 11, 1, "does not fit in image 0"),
    ([(10, 10)], 0, 1, "patch_size must be an integer >= 1"),
    ([(10, 10)], 4, 50, "asked for 50 distinct patch positions but the images hold only 49"),
    ([(10, 10)], 4, -1, "num_positions must be an integer >= 0"),
    ([], 4, 1, "no images"),
])
def test_position_sampling_rejects_impossible_requests(shapes, patch_size, num, message):
    with pytest.raises(ValueError, match=message):
        sample_patch_positions(shapes, patch_size, num, rng=0)


# ---------------------------------------------------------------------------------------------
# extraction


def test_extracted_patches_are_the_image_windows_flattened_row_major():
    images = [np.arange(64.0).reshape(8, 8), np.arange(100.0).reshape(10, 10) + 1000]
    positions = np.array([[0, 0, 0], [1, 7, 2], [0, 5, 5], [1, 0, 7]])
    patches = extract_patches(images, positions, 3)
    assert patches.shape == (4, 9) and patches.dtype == np.float32
    for patch, (m, r, c) in zip(patches, positions):
        np.testing.assert_array_equal(patch, images[m][r:r + 3, c:c + 3].ravel())
    stack = np.stack([images[0], images[0] * 2], axis=2)  # Olshausen's (H, W, M) layout
    np.testing.assert_array_equal(extract_patches(stack, [[1, 2, 3]], 2, dtype=np.float64),
                                  [[38.0, 40.0, 54.0, 56.0]])


@pytest.mark.parametrize("positions, message", [
    ([[0, 6, 0]], "reach outside"),
    ([[0, 0, -1]], "reach outside"),
    ([[2, 0, 0]], r"image indices must lie in \[0, 1\]"),
    ([[0, 0]], r"\(n, 3\)"),
    ([[0.0, 0.0, 0.0]], "integer array"),
])
def test_extraction_rejects_positions_outside_the_images(positions, message):
    with pytest.raises(ValueError, match=message):
        extract_patches([np.zeros((8, 8)), np.zeros((8, 8))], np.array(positions), 3)


# ---------------------------------------------------------------------------------------------
# the cached split


@pytest.fixture
def images_mat(tmp_path):
    """A small IMAGES.mat of three whitened 48×48 images (variance 0.1), like Olshausen's file."""
    raw = np.random.default_rng(0).standard_normal((48, 48, 3)).cumsum(0).cumsum(1)
    path = tmp_path / "IMAGES.mat"
    scipy.io.savemat(path, {"IMAGES": np.stack(whiten_images(raw), axis=2)})
    return path


def _small_split(images_mat, cache_dir, **overrides):
    arguments = dict(images=images_mat, patch_size=6, num_train=1500, num_val=400, seed=0,
                     cache_dir=cache_dir)
    return load_whitened_patches(**{**arguments, **overrides})


def _position_set(positions):
    return {tuple(p) for p in positions.tolist()}


def _shared_positions(first, second):
    """How many (image, row, col) rows two position arrays have in common (rows are distinct)."""
    keys = [np.ravel_multi_index(p.numpy().T, (1000, 10_000, 10_000)) for p in (first, second)]
    return len(np.intersect1d(*keys))


def test_split_is_disjoint_standardised_on_train_and_undoable(images_mat, tmp_path):
    split = _small_split(images_mat, tmp_path / "cache")
    assert isinstance(split, PatchSplit) and split.standardized and split.patch_size == 6
    assert split.train.shape == (1500, 36) and split.val.shape == (400, 36)
    assert split.train.dtype == split.val.dtype == torch.float32
    assert "IMAGES.mat" in split.source
    assert _shared_positions(split.train_positions, split.val_positions) == 0
    assert len(_position_set(split.train_positions) | _position_set(split.val_positions)) == 1900

    # Standardised with the training statistics: exactly zero mean, unit variance per pixel.
    train64 = split.train.double()
    torch.testing.assert_close(train64.mean(0), torch.zeros(36, dtype=torch.float64), atol=1e-6,
                               rtol=0)
    torch.testing.assert_close(train64.var(0, unbiased=False), torch.ones(36, dtype=torch.float64),
                               atol=1e-5, rtol=0)
    # The same train mean/std map raw validation patches, and unstandardize undoes the map.
    images = scipy.io.loadmat(images_mat)["IMAGES"]
    raw_train = extract_patches(images, split.train_positions.numpy(), 6, dtype=np.float64)
    raw_val = extract_patches(images, split.val_positions.numpy(), 6, dtype=np.float64)
    np.testing.assert_allclose(split.mean, raw_train.mean(0), atol=1e-6)
    np.testing.assert_allclose(split.std, raw_train.std(0), rtol=1e-5)
    np.testing.assert_allclose(split.val, (raw_val - split.mean.numpy()) / split.std.numpy(),
                               atol=1e-5)
    np.testing.assert_allclose(split.unstandardize(split.val), raw_val, atol=1e-6)
    np.testing.assert_allclose(split.unstandardize(split.train.double()), raw_train, atol=1e-6)


def test_unstandardised_split_keeps_the_whitened_pixels(images_mat, tmp_path):
    split = _small_split(images_mat, tmp_path, standardize=False)
    images = scipy.io.loadmat(images_mat)["IMAGES"]
    np.testing.assert_array_equal(split.train, extract_patches(images, split.train_positions, 6))
    assert not split.standardized
    torch.testing.assert_close(split.unstandardize(split.val), split.val)


def test_split_is_deterministic_per_seed(images_mat, tmp_path):
    first = _small_split(images_mat, tmp_path / "a")
    again = _small_split(images_mat, tmp_path / "b")  # another cache: computed afresh
    other = _small_split(images_mat, tmp_path / "c", seed=1)
    torch.testing.assert_close(first.train, again.train, rtol=0, atol=0)
    torch.testing.assert_close(first.val_positions, again.val_positions, rtol=0, atol=0)
    assert not torch.equal(first.train_positions, other.train_positions)


def test_second_call_reads_the_cache_without_extracting(images_mat, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    first = _small_split(images_mat, cache_dir)
    assert [p.suffix for p in cache_dir.iterdir()] == [".npz"]  # no temporary file left

    def no_extraction(*args, **kwargs):
        raise AssertionError("the cached split was recomputed")

    monkeypatch.setattr(patch_module, "extract_patches", no_extraction)
    second = _small_split(images_mat, cache_dir)
    for name in ("train", "val", "mean", "std", "train_positions", "val_positions"):
        torch.testing.assert_close(getattr(second, name), getattr(first, name), rtol=0, atol=0)
    assert (second.source, second.patch_size, second.standardized) == \
        (first.source, first.patch_size, first.standardized)

    # Every parameter, and the source file itself, is part of the key.
    for change in ({"seed": 1}, {"num_val": 10}, {"num_train": 10}, {"patch_size": 5},
                   {"standardize": False}):
        with pytest.raises(AssertionError, match="recomputed"):
            _small_split(images_mat, cache_dir, **change)
    scipy.io.savemat(images_mat, {"IMAGES": np.random.default_rng(1).standard_normal((40, 40, 3))})
    with pytest.raises(AssertionError, match="recomputed"):
        _small_split(images_mat, cache_dir)


def test_cache_folder_defaults_to_the_environment_variable(images_mat, tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_VSC_CACHE", str(tmp_path / "from_env"))
    _small_split(images_mat, None)
    assert len(list((tmp_path / "from_env").glob("whitened_patches_*.npz"))) == 1


def test_a_damaged_cache_file_is_recomputed(images_mat, tmp_path):
    first = _small_split(images_mat, tmp_path)
    (cached,) = tmp_path.glob("whitened_patches_*.npz")
    cached.write_bytes(cached.read_bytes()[:1000])
    second = _small_split(images_mat, tmp_path)
    torch.testing.assert_close(second.train, first.train, rtol=0, atol=0)
    assert cached.stat().st_size > 1000


def test_a_failed_cache_write_leaves_no_file_and_still_returns_the_data(images_mat, tmp_path,
                                                                        monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.warns(UserWarning, match="could not write the patch cache"):
        split = _small_split(images_mat, tmp_path / "cache")
    assert split.train.shape == (1500, 36)
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.parametrize("overrides, error, message", [
    ({"patch_size": 49}, ValueError, "does not fit in image 0"),
    ({"num_train": 4000, "num_val": 2000}, ValueError, "asked for 6000 .* only 5547"),
    ({"num_train": 1}, ValueError, "num_train must be an integer >= 2"),
    ({"num_val": -1}, ValueError, "num_val must be an integer >= 0"),
    ({"seed": 1.5}, ValueError, "seed must be an integer"),
    ({"standardize": 1}, ValueError, "standardize must be True or False"),
    ({"images": 3}, ValueError, "images must be 'skimage' or the path"),
    ({"images": "missing/IMAGES.mat"}, FileNotFoundError, "rctn.org"),
])
def test_split_rejects_bad_arguments(images_mat, tmp_path, overrides, error, message):
    with pytest.raises(error, match=message):
        _small_split(images_mat, tmp_path, **overrides)


def _position_weighted_second_moment(images, patch_size):
    """E[x²] of a pixel of a uniformly drawn patch: each image pixel weighs as many times as
    there are patch positions covering it."""
    def coverage(n):
        i = np.arange(n)
        return np.minimum(i, n - patch_size) - np.maximum(0, i - patch_size + 1) + 1

    weighted = sum(np.sum(x ** 2 * np.outer(coverage(x.shape[0]), coverage(x.shape[1])))
                   for x in images)
    return weighted / (sum(positions_per_image([x.shape for x in images], patch_size))
                       * patch_size ** 2)


def test_default_split_from_the_skimage_photographs(tmp_path):
    """The paper's sizes (§4.1, Appendix D) from the default source, within the time budget."""
    start = time.perf_counter()
    split = load_whitened_patches(cache_dir=tmp_path)
    elapsed = time.perf_counter() - start
    assert split.train.shape == (80_000, 256) and split.val.shape == (16_000, 256)
    assert "scikit-image" in split.source and split.patch_size == 16
    assert _shared_positions(split.train_positions, split.val_positions) == 0
    train = split.train.numpy()
    assert np.abs(train.mean(0, dtype=np.float64)).max() < 1e-5
    assert np.abs(train.var(0, dtype=np.float64) - 1).max() < 1e-4
    assert elapsed < 20.0

    # Before standardisation pixels have the whitened images' variance: 0.1 over whole images,
    # 0.0965 at patch pixels (pixels near borders, where the FFT's wrap-around leaves strong
    # edges, are covered by fewer patches). The sample
    # estimate has standard error std(per-patch mean of x²)/sqrt(80,000); allow 5 of them.
    per_patch = (split.unstandardize(split.train).numpy() ** 2).mean(1, dtype=np.float64)
    population = _position_weighted_second_moment(whitened_skimage_images(), 16)
    assert population == pytest.approx(0.1, rel=0.05)
    standard_error = per_patch.std() / np.sqrt(len(per_patch))
    assert abs(per_patch.mean() - population) < 5 * standard_error

    start = time.perf_counter()
    cached = load_whitened_patches(cache_dir=tmp_path)
    assert time.perf_counter() - start < elapsed
    torch.testing.assert_close(cached.val, split.val, rtol=0, atol=0)
