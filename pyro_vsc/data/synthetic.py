r"""Synthetic sparse data from a known dictionary, to test that learning recovers it.

Samples follow the generative model of sparse coding (§2-3): :math:`x = A z + \epsilon` with a
dictionary :math:`A \in \mathbb{R}^{D \times K}` and codes :math:`z` having exactly ``nonzeros``
non-zero entries at uniformly random places, with Laplace or Gaussian magnitudes. (The authors'
code draws its synthetic supports with replacement, so some codes have fewer non-zeros; here the
count is exact.)
"""

import math
from dataclasses import dataclass

import torch

#: Distributions of the non-zero code values.
MAGNITUDES = ("laplace", "normal")


def random_dictionary(dim, size, generator=None, dtype=None, device=None):
    """A ``(dim, size)`` dictionary whose columns are independent and uniform on the unit sphere.

    :param int dim: signal dimension D.
    :param int size: number of atoms K.
    :param torch.Generator generator: random source (its device is used when ``device`` is None).
    :returns: tensor ``(dim, size)`` with unit ℓ2-norm columns.
    """
    for name, value in (("dim", dim), ("size", size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    if device is None and generator is not None:
        device = generator.device
    gaussian = torch.randn(dim, size, generator=generator, dtype=dtype, device=device)
    return gaussian / gaussian.norm(dim=0, keepdim=True)


def _nonzeros_per_code(nonzeros, size):
    if isinstance(nonzeros, bool):
        raise ValueError(f"nonzeros must be a count or a fraction; got {nonzeros!r}")
    if isinstance(nonzeros, int):
        if not 1 <= nonzeros <= size:
            raise ValueError(f"nonzeros={nonzeros} must lie in [1, {size}] (the dictionary size)")
        return nonzeros
    if isinstance(nonzeros, float) and 0 < nonzeros <= 1:
        return max(1, round(nonzeros * size))
    raise ValueError(f"nonzeros must be an integer count in [1, {size}] or a fraction in (0, 1]; "
                     f"got {nonzeros!r}")


def sparse_synthetic(dictionary, num, nonzeros, magnitude="laplace", scale=1.0, noise_std=0.0,
                     generator=None):
    """Draw ``num`` samples ``x = A z + noise`` with exactly ``nonzeros`` non-zeros in each code.

    :param torch.Tensor dictionary: A, shape ``(D, K)``; results share its dtype and device.
    :param int num: number of samples.
    :param nonzeros: non-zeros per code, an integer in [1, K] or a fraction of K in (0, 1]
        (rounded, at least 1).
    :param str magnitude: ``"laplace"`` (Laplace(0, scale)) or ``"normal"`` (Normal(0, scale)).
    :param float scale: scale of the non-zero values.
    :param float noise_std: standard deviation of the added i.i.d. Gaussian noise.
    :param torch.Generator generator: random source, on the dictionary's device.
    :returns: ``(x, z)`` with shapes ``(num, D)`` and ``(num, K)``.
    """
    if not (isinstance(dictionary, torch.Tensor) and dictionary.ndim == 2
            and dictionary.is_floating_point()):
        raise ValueError("dictionary must be a floating-point tensor of shape (D, K)")
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f"num must be an integer >= 1; got {num!r}")
    if magnitude not in MAGNITUDES:
        raise ValueError(f"magnitude must be one of {MAGNITUDES}; got {magnitude!r}")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0; got {scale!r}")
    if not (isinstance(noise_std, (int, float)) and math.isfinite(noise_std) and noise_std >= 0):
        raise ValueError(f"noise_std must be a finite number >= 0; got {noise_std!r}")
    dim, size = dictionary.shape
    count = _nonzeros_per_code(nonzeros, size)
    options = {"dtype": dictionary.dtype, "device": dictionary.device}

    # The k largest of K i.i.d. uniforms sit at a uniformly random k-subset of places.
    support = torch.rand(num, size, generator=generator, **options).topk(count, dim=1).indices
    if magnitude == "laplace":
        # Laplace(0, b) = random sign times Exponential(rate 1/b).
        values = torch.empty(num, count, **options).exponential_(1.0 / scale, generator=generator)
        values *= 2 * torch.randint(0, 2, (num, count), generator=generator, **options) - 1
    else:
        values = scale * torch.randn(num, count, generator=generator, **options)
    codes = torch.zeros(num, size, **options).scatter_(1, support, values)
    signals = codes @ dictionary.T
    if noise_std > 0:
        signals = signals + noise_std * torch.randn(num, dim, generator=generator, **options)
    return signals, codes


@dataclass
class SyntheticSplit:
    """Train/validation signals drawn from a known dictionary, with the true codes.

    Has the ``train``/``val`` interface of :class:`~pyro_vsc.data.PatchSplit`, so the training
    command runs on it (``data=synthetic``) and the learned dictionary can be compared with
    ``dictionary``.
    """

    train: torch.Tensor
    val: torch.Tensor
    dictionary: torch.Tensor
    train_codes: torch.Tensor
    val_codes: torch.Tensor
    source: str


def synthetic_split(dim=64, size=64, num_train=20_000, num_val=2_000, nonzeros=4,
                    magnitude="laplace", scale=1.0, noise_std=0.0, seed=0):
    """A :class:`SyntheticSplit` from a :func:`random_dictionary` with ``seed``."""
    generator = torch.Generator().manual_seed(int(seed))
    dictionary = random_dictionary(dim, size, generator=generator)
    x, z = sparse_synthetic(dictionary, num_train + num_val, nonzeros, magnitude, scale,
                            noise_std, generator=generator)
    source = (f"synthetic: {dim}x{size} random unit-norm dictionary, {nonzeros} non-zeros "
              f"({magnitude}, scale {scale}), noise std {noise_std}, seed {seed}")
    return SyntheticSplit(train=x[:num_train], val=x[num_train:], dictionary=dictionary,
                          train_codes=z[:num_train], val_codes=z[num_train:], source=source)
