"""Synthetic sparse data x = A z + noise from a known dictionary (pyro_vsc.data.synthetic)."""

import math

import pytest
import torch

from pyro_vsc.data import random_dictionary, sparse_synthetic

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _generator(device, seed=0):
    return torch.Generator(device=device).manual_seed(seed)


@pytest.mark.parametrize("device", DEVICES)
def test_random_dictionary_has_unit_norm_columns_and_follows_its_generator(device):
    dictionary = random_dictionary(64, 100, _generator(device))
    assert dictionary.shape == (64, 100) and dictionary.device.type == device
    torch.testing.assert_close(dictionary.norm(dim=0), torch.ones(100, device=device))
    torch.testing.assert_close(random_dictionary(64, 100, _generator(device)), dictionary,
                               rtol=0, atol=0)
    assert not torch.equal(random_dictionary(64, 100, _generator(device, 1)), dictionary)
    assert random_dictionary(8, 4, dtype=torch.float64).dtype == torch.float64


def test_random_dictionary_columns_are_isotropic():
    """Uniform on the sphere in D=16: each squared coordinate has mean 1/D and variance
    2(D-1)/(D²(D+2)) ≈ 0.0065; averaged over 4,000 columns its std is 0.0013; allow 5σ."""
    dictionary = random_dictionary(16, 4000, _generator("cpu"), dtype=torch.float64)
    mean_squares = (dictionary ** 2).mean(1)
    std = math.sqrt(2 * 15 / (16 ** 2 * 18) / 4000)
    assert (mean_squares - 1 / 16).abs().max() < 5 * std


@pytest.mark.parametrize("device", DEVICES)
def test_codes_have_exactly_the_requested_nonzeros_and_x_is_a_times_z(device):
    dictionary = random_dictionary(32, 50, _generator(device))
    x, z = sparse_synthetic(dictionary, 1000, nonzeros=5, generator=_generator(device))
    assert x.shape == (1000, 32) and z.shape == (1000, 50)
    assert x.device.type == z.device.type == device and z.dtype == dictionary.dtype
    assert torch.all((z != 0).sum(1) == 5)
    torch.testing.assert_close(x, z @ dictionary.T)
    _, z_fraction = sparse_synthetic(dictionary, 10, nonzeros=0.1, generator=_generator(device))
    assert torch.all((z_fraction != 0).sum(1) == 5)  # 10 % of 50


def test_supports_are_uniform_over_the_atoms():
    """Each of K=20 atoms is used by a code with probability k/K = 1/4; over n=8,000 codes the
    count is Binomial(8000, 1/4): mean 2000, std sqrt(8000·¼·¾) ≈ 38.7; allow 5σ."""
    dictionary = random_dictionary(10, 20, _generator("cpu"))
    _, z = sparse_synthetic(dictionary, 8000, nonzeros=5, generator=_generator("cpu"))
    usage = (z != 0).sum(0).double()
    assert (usage - 2000).abs().max() < 5 * 38.7


@pytest.mark.parametrize("magnitude, mean_abs, second_moment", [
    ("laplace", 1.0, 2.0),                  # Laplace(0, b): E|v| = b, E v² = 2b²
    ("normal", math.sqrt(2 / math.pi), 1.0),  # Normal(0, b): E|v| = b√(2/π), E v² = b²
])
def test_nonzero_values_follow_the_requested_law(magnitude, mean_abs, second_moment):
    """n = 40,000 values with scale b = 2. Standard errors: Laplace |v| is Exponential(b), std b;
    v² has std b²√20 (E v⁴ = 24b⁴); Normal |v| has std b√(1-2/π), v² std b²√2. Allow 5σ."""
    scale, n = 2.0, 40_000
    dictionary = random_dictionary(4, 8, _generator("cpu"), dtype=torch.float64)
    _, z = sparse_synthetic(dictionary, n // 2, nonzeros=2, magnitude=magnitude, scale=scale,
                            generator=_generator("cpu"))
    values = z[z != 0]
    assert values.numel() == n
    abs_std, square_std = ((1.0, math.sqrt(20.0)) if magnitude == "laplace"
                           else (math.sqrt(1 - 2 / math.pi), math.sqrt(2.0)))
    assert abs(values.abs().mean() / scale - mean_abs) < 5 * abs_std / math.sqrt(n)
    assert abs((values ** 2).mean() / scale ** 2 - second_moment) < 5 * square_std / math.sqrt(n)
    assert abs(values.mean() / scale) < 5 * math.sqrt(second_moment / n)  # symmetric


def test_noise_has_the_requested_standard_deviation():
    """Residual x - A z is N(0, σ²) i.i.d.: n·D = 64,000 values, the sample std has relative
    standard error 1/sqrt(2·64,000) ≈ 0.0028; allow 5σ."""
    dictionary = random_dictionary(16, 32, _generator("cpu"), dtype=torch.float64)
    x, z = sparse_synthetic(dictionary, 4000, nonzeros=3, noise_std=0.3,
                            generator=_generator("cpu"))
    residual = x - z @ dictionary.T
    assert abs(residual.std().item() / 0.3 - 1) < 5 / math.sqrt(2 * 64_000)


def test_draws_are_reproducible_from_the_generator():
    dictionary = random_dictionary(8, 16, _generator("cpu"))
    first = sparse_synthetic(dictionary, 50, 3, noise_std=0.1, generator=_generator("cpu", 7))
    again = sparse_synthetic(dictionary, 50, 3, noise_std=0.1, generator=_generator("cpu", 7))
    for a, b in zip(first, again):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"nonzeros": 0}, r"nonzeros=0 must lie in \[1, 16\]"),
    ({"nonzeros": 17}, r"nonzeros=17 must lie in \[1, 16\]"),
    ({"nonzeros": 1.5}, r"fraction in \(0, 1\]"),
    ({"nonzeros": True}, "count or a fraction"),
    ({"magnitude": "cauchy"}, "magnitude must be one of"),
    ({"scale": 0.0}, "scale must be a finite number > 0"),
    ({"noise_std": -0.1}, "noise_std must be a finite number >= 0"),
    ({"num": 0}, "num must be an integer >= 1"),
])
def test_sparse_synthetic_rejects_bad_arguments(kwargs, message):
    arguments = {"dictionary": torch.eye(16), "num": 4, "nonzeros": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        sparse_synthetic(**arguments)


def test_bad_dictionaries_are_rejected():
    with pytest.raises(ValueError, match=r"shape \(D, K\)"):
        sparse_synthetic(torch.ones(3), 4, 1)
    with pytest.raises(ValueError, match="floating-point"):
        sparse_synthetic(torch.ones(3, 3, dtype=torch.int64), 4, 1)
    with pytest.raises(ValueError, match="dim must be an integer >= 1"):
        random_dictionary(0, 3)
