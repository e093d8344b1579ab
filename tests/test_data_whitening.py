"""Olshausen & Field's whitening (pyro_vsc.data.whitening) against its formula and its purpose."""

import math

import numpy as np
import pytest

from pyro_vsc.data import olshausen_filter, whiten_image, whiten_images


def _radial_frequency(n):
    frequencies = np.fft.fftfreq(n, d=1.0 / n)
    return np.hypot(frequencies[:, None], frequencies[None, :])


def _one_over_f_field(n, rng):
    """Gaussian random field with amplitude spectrum 1/f (power 1/f², like natural images)."""
    rho = _radial_frequency(n)
    amplitude = np.divide(1.0, rho, out=np.zeros_like(rho), where=rho > 0)
    return np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * amplitude).real


def test_filter_matches_formula_at_known_frequencies():
    n, f0 = 8, 0.4 * 8
    R = olshausen_filter(n)

    def expected(f):
        return f * math.exp(-((f / f0) ** 4))

    assert R.shape == (8, 8)
    assert R[0, 0] == 0.0  # the mean is removed
    assert R[0, 1] == pytest.approx(expected(1.0), rel=1e-14)
    assert R[1, 0] == pytest.approx(expected(1.0), rel=1e-14)
    assert R[4, 0] == pytest.approx(expected(4.0), rel=1e-14)  # Nyquist, frequency -4
    assert R[3, 4] == pytest.approx(expected(5.0), rel=1e-14)  # (3, -4): radius 5
    assert R[7, 7] == pytest.approx(expected(math.sqrt(2.0)), rel=1e-14)  # (-1, -1)
    assert olshausen_filter(10, f0_fraction=0.25)[0, 2] == pytest.approx(
        2.0 * math.exp(-((2.0 / 2.5) ** 4)), rel=1e-14)


def test_filter_is_olshausens_fftshifted_centred_filter():
    """Olshausen: [fx fy] = meshgrid(-N/2:N/2-1); rho = sqrt(fx²+fy²);
    filt = rho.*exp(-(rho/f_0).^4); the FFT is multiplied by fftshift(filt)."""
    n = 16
    fx, fy = np.meshgrid(np.arange(-n // 2, n // 2), np.arange(-n // 2, n // 2))
    rho = np.sqrt(fx * fx + fy * fy)
    centred = rho * np.exp(-((rho / (0.4 * n)) ** 4))
    np.testing.assert_allclose(olshausen_filter(n), np.fft.fftshift(centred), rtol=1e-14, atol=0)


@pytest.mark.parametrize("n", [15, 16])
def test_whitening_multiplies_the_spectrum_by_the_filter(n):
    """Whitening is exactly: standardise, then multiply each Fourier coefficient by R(f)."""
    image = np.random.default_rng(1).standard_normal((n, n)) + 3.0
    standardized = (image - image.mean()) / image.std()
    whitened = whiten_image(image)
    expected_spectrum = np.fft.fft2(standardized) * olshausen_filter(n)
    np.testing.assert_allclose(np.fft.fft2(whitened), expected_spectrum, atol=1e-10)
    assert whitened.dtype == np.float64 and abs(whitened.mean()) < 1e-12


def _band_power_ratios(whitened, images, bands, f0_fraction=0.4, ramp_exponent=1.0):
    """Measured / predicted whitened power per frequency band, pooled over images.

    For the 1/f field x = F⁻¹[W/f] (W = FFT of unit white noise), a filter f^a·exp(-(f/f0)⁴) after
    standardisation gives Fourier coefficients s·W·f^(a-1)·exp(-(f/f0)⁴), s = 1/std(x), so
    E|FFT(whitened)|² = N² s² f^(2a-2) exp(-2(f/f0)⁴). Olshausen's a = 1: flat, rolled off at f0."""
    n = whitened[0].shape[0]
    rho = _radial_frequency(n)
    rho = np.where(rho > 0, rho, 1.0)  # the mean (f = 0) is in no band
    roll_off = np.exp(-2.0 * (rho / (f0_fraction * n)) ** 4)
    prediction = n * n * rho ** (2 * ramp_exponent - 2) * roll_off
    ratios = []
    for low, high in bands:
        band = (rho >= low) & (rho < high)
        ratios.append(np.mean([np.abs(np.fft.fft2(w))[band] ** 2 * x.var() / prediction[band]
                               for w, x in zip(whitened, images)]))
    return np.array(ratios)


def test_whitened_one_over_f_images_have_flat_spectrum_up_to_the_roll_off():
    n, num_images = 256, 8
    rng = np.random.default_rng(0)
    images = [_one_over_f_field(n, rng) for _ in range(num_images)]
    whitened = [whiten_image(image) for image in images]
    bands = [(4, 8), (8, 16), (16, 32), (32, 64), (64, 96), (96, 128)]
    rho = _radial_frequency(n)
    counts = np.array([((rho >= low) & (rho < high)).sum() for low, high in bands])
    # Each |W(k)|²/N² is Exponential(1), independent except for the Hermitian pair W(-k) = W(k)*,
    # so a band mean over M images has relative standard deviation sqrt(2 / (M·count)); allow 5σ.
    tolerance = 5.0 * np.sqrt(2.0 / (num_images * counts))
    assert tolerance.max() < 0.25

    ratios = _band_power_ratios(whitened, images, bands)
    np.testing.assert_array_less(np.abs(ratios - 1.0), tolerance)

    # The check has power: no constant makes a wrong roll-off or a wrong ramp fit the data.
    for wrong in ({"f0_fraction": 0.5}, {"f0_fraction": 0.33}, {"ramp_exponent": 1.2},
                  {"ramp_exponent": 0.8}):
        wrong_ratios = _band_power_ratios(whitened, images, bands, **wrong)
        assert np.any(np.abs(wrong_ratios / wrong_ratios.mean() - 1.0) > tolerance), wrong

    # Below f0/3 the prediction itself is flat within exp(-2/81) ≈ 0.98: the whitened band powers
    # agree within 15 % (band (4, 8) alone has σ ≈ 4 %), whereas the 1/f input's power spans a
    # factor of about (24/6)² = 16 over the same bands.
    def band_powers(fields):
        return np.array([np.mean([np.abs(np.fft.fft2(x))[(rho >= low) & (rho < high)] ** 2
                                  / x.var() for x in fields]) for low, high in bands[:3]])

    whitened_powers, raw_powers = band_powers(whitened), band_powers(images)
    assert whitened_powers.max() / whitened_powers.min() < 1.15
    assert raw_powers.max() / raw_powers.min() > 10


def test_whiten_images_is_olshausens_recipe_with_common_variance():
    """Olshausen: IMAGES(:, i) = real(ifft2(fft2(image).*fftshift(filt))) for each standardised
    image, then IMAGES = sqrt(0.1)*IMAGES/sqrt(mean(var(IMAGES))) with MATLAB's var (N²-1 normaliser)."""
    n, rng = 32, np.random.default_rng(2)
    raw = [rng.standard_normal((n, n)).cumsum(0).cumsum(1) * scale for scale in (1.0, 5.0, 0.3)]
    fx, fy = np.meshgrid(np.arange(-n // 2, n // 2), np.arange(-n // 2, n // 2))
    rho = np.sqrt(fx * fx + fy * fy)
    filt = np.fft.fftshift(rho * np.exp(-((rho / (0.4 * n)) ** 4)))
    columns = np.stack([np.fft.ifft2(np.fft.fft2((x - x.mean()) / x.std()) * filt).real.ravel()
                        for x in raw], axis=1)
    olshausen = math.sqrt(0.1) * columns / math.sqrt(np.mean(np.var(columns, axis=0, ddof=1)))

    ours = np.stack([w.ravel() for w in whiten_images(raw)], axis=1)
    # Ours normalises the variance by N² instead of N²-1 (the pooled pixel variance is exactly 0.1).
    np.testing.assert_allclose(ours, olshausen * math.sqrt(n * n / (n * n - 1)), rtol=1e-10,
                               atol=1e-14)
    assert np.mean(ours ** 2) == pytest.approx(0.1, rel=1e-12)


def test_whiten_images_pools_pixels_of_images_of_different_sizes():
    rng = np.random.default_rng(3)
    images = whiten_images([rng.standard_normal((20, 20)), rng.standard_normal((33, 33)) * 7],
                           variance=0.5)
    pixels = np.concatenate([image.ravel() for image in images])
    assert [image.shape for image in images] == [(20, 20), (33, 33)]
    assert np.mean(pixels ** 2) == pytest.approx(0.5, rel=1e-12)


def test_whiten_images_accepts_an_olshausen_stack():
    stack = np.random.default_rng(4).standard_normal((16, 16, 3))
    from_stack = whiten_images(stack)
    from_list = whiten_images([stack[:, :, m] for m in range(3)])
    for a, b in zip(from_stack, from_list):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("image, message", [
    (np.ones((4, 6)), "square"),
    (np.ones((4, 4)), "constant"),
    (np.array([[0.0, 1.0], [np.nan, 2.0]]), "NaN"),
    (np.ones((2, 2, 2, 2)), "square"),
])
def test_whiten_image_rejects_bad_images(image, message):
    with pytest.raises(ValueError, match=message):
        whiten_image(image)


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "integer >= 1"),
    ({"n": 4.0}, "integer >= 1"),
    ({"n": 4, "f0_fraction": 0.0}, "f0_fraction"),
    ({"n": 4, "f0_fraction": float("nan")}, "f0_fraction"),
])
def test_filter_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        olshausen_filter(**kwargs)


def test_whiten_images_rejects_bad_variance_and_empty_collections():
    with pytest.raises(ValueError, match="variance"):
        whiten_images([np.eye(4)], variance=-1.0)
    with pytest.raises(ValueError, match="empty"):
        whiten_images([])
