"""Image sources of §4.1: the scikit-image photographs and Olshausen's IMAGES.mat loader."""

import numpy as np
import pytest
import scipy.io

from pyro_vsc.data import (
    IMAGES_MAT_URL,
    SKIMAGE_PHOTOGRAPHS,
    load_images_mat,
    skimage_photographs,
    whitened_skimage_images,
)


@pytest.fixture(scope="module")
def photographs():
    return skimage_photographs()


@pytest.fixture(scope="module")
def whitened():
    return whitened_skimage_images()


def test_photographs_are_square_grayscale_crops_of_the_listed_images(photographs):
    # Largest centred squares: min(height, width) of camera 512², astronaut 512², coffee 400×600,
    # chelsea 300×451, rocket 427×640, grass/gravel/moon 512², motorcycle_left 500×741.
    assert [image.shape[0] for image in photographs] == [512, 512, 400, 300, 427,
                                                          512, 512, 512, 500]
    assert len(photographs) == len(SKIMAGE_PHOTOGRAPHS) == 9
    for image in photographs:
        assert image.ndim == 2 and image.shape[0] == image.shape[1] and image.dtype == np.float64
        assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.05


def _radial_power_slope(image, low, high):
    """Log-log slope of the radially averaged power spectrum between low and high cycles/picture."""
    n = image.shape[0]
    frequencies = np.fft.fftfreq(n, d=1.0 / n)
    radius = np.rint(np.hypot(frequencies[:, None], frequencies[None, :])).astype(int).ravel()
    power = np.abs(np.fft.fft2(image - image.mean())).ravel() ** 2
    radial = np.bincount(radius, power) / np.bincount(radius)
    k = np.arange(low, high + 1)
    return np.polyfit(np.log(k), np.log(radial[k]), 1)[0]


def test_whitening_flattens_the_photographs_spectra(photographs, whitened):
    """Natural photographs have power ≈ 1/f^2 or steeper; the ramp f of the whitening filter lifts
    the log-log slope by exactly 2 below the roll-off (f ≤ N/8 = f0/3.2, where exp(-2(f/f0)^4)
    loses < 2 %), leaving a roughly flat spectrum for the collection."""
    raw = [_radial_power_slope(image, image.shape[0] // 32, image.shape[0] // 8)
           for image in photographs]
    flat = [_radial_power_slope(image, image.shape[0] // 32, image.shape[0] // 8)
            for image in whitened]
    np.testing.assert_allclose(np.subtract(flat, raw), 2.0, atol=0.05)
    assert np.mean(raw) < -2.0
    assert abs(np.mean(flat)) < 0.75


def test_whitened_photographs_share_variance_one_tenth(whitened):
    pixels = np.concatenate([image.ravel() for image in whitened])
    assert np.mean(pixels ** 2) == pytest.approx(0.1, rel=1e-12)
    assert all(abs(image.mean()) < 1e-12 for image in whitened)


def _save(path, **variables):
    scipy.io.savemat(path, variables)
    return path


def test_images_mat_round_trip(tmp_path):
    images = np.random.default_rng(0).standard_normal((24, 24, 3))
    loaded = load_images_mat(_save(tmp_path / "IMAGES.mat", IMAGES=images))
    assert loaded.shape == (24, 24, 3) and loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded, images)
    assert load_images_mat(str(tmp_path / "IMAGES.mat")).shape == (24, 24, 3)


def test_a_single_image_saved_by_matlab_as_2d_is_one_image(tmp_path):
    image = np.random.default_rng(1).standard_normal((16, 16))
    loaded = load_images_mat(_save(tmp_path / "IMAGES.mat", IMAGES=image[:, :, None]))
    assert loaded.shape == (16, 16, 1)
    np.testing.assert_array_equal(loaded[:, :, 0], image)


def test_missing_images_mat_says_where_to_get_it_and_where_to_put_it(tmp_path):
    path = tmp_path / "nowhere" / "IMAGES.mat"
    with pytest.raises(FileNotFoundError) as error:
        load_images_mat(path)
    assert IMAGES_MAT_URL in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize("variables, message", [
    ({"images": np.zeros((8, 8, 2))}, r"no variable 'IMAGES' \(it holds \['images'\]\)"),
    ({"IMAGES": np.zeros((8, 8, 2, 2))}, r"\(N, N, M\).*got shape \(8, 8, 2, 2\)"),
    ({"IMAGES": np.zeros(8)}, r"square.*got shape \(1, 8\)"),
    ({"IMAGES": np.zeros((8, 6, 2))}, r"square.*got shape \(8, 6, 2\)"),
    ({"IMAGES": np.zeros((8, 8, 2), dtype=np.uint8)}, "floating-point.*uint8"),
])
def test_malformed_images_mat_is_rejected_with_its_reason(tmp_path, variables, message):
    path = _save(tmp_path / "IMAGES.mat", **variables)
    with pytest.raises(ValueError, match=message):
        load_images_mat(path)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_images_mat_with_non_finite_pixels_names_the_images(tmp_path, bad_value):
    images = np.zeros((8, 8, 4))
    images[3, 5, 1] = bad_value
    images[0, 0, 3] = bad_value
    with pytest.raises(ValueError, match=r"NaN or infinite pixels in image\(s\) \[1, 3\]"):
        load_images_mat(_save(tmp_path / "IMAGES.mat", IMAGES=images))


@pytest.mark.parametrize("contents", [b"", b"<html>404 Not Found</html>", bytes(range(256)) * 4])
def test_a_file_that_is_not_a_mat_file_is_rejected(tmp_path, contents):
    path = tmp_path / "IMAGES.mat"
    path.write_bytes(contents)
    with pytest.raises(ValueError, match="could not be read as a MATLAB .mat file"):
        load_images_mat(path)


def test_a_truncated_mat_file_is_rejected(tmp_path):
    path = _save(tmp_path / "IMAGES.mat", IMAGES=np.zeros((16, 16, 2)))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match="could not be read as a MATLAB .mat file"):
        load_images_mat(path)
