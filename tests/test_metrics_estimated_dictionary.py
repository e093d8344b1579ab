import torch

from pyro_vsc.metrics import estimate_linear_dictionary, sort_by_norm


def test_recovers_dictionary_from_noiseless_data():
    generator = torch.Generator().manual_seed(0)
    dictionary = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    codes = torch.randn(50, 4, generator=generator, dtype=torch.float64)  # full column rank
    x = codes @ dictionary.T
    assert torch.allclose(estimate_linear_dictionary(x, codes), dictionary, atol=1e-10)


def test_equals_normal_equations_when_invertible():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(200, 5, generator=generator, dtype=torch.float64)
    codes = torch.randn(200, 3, generator=generator, dtype=torch.float64)
    normal_equations = (x.T @ codes) @ torch.linalg.inv(codes.T @ codes)
    assert torch.allclose(estimate_linear_dictionary(x, codes), normal_equations, atol=1e-10)


def test_never_active_feature_gets_zero_column_and_no_nan():
    generator = torch.Generator().manual_seed(2)
    dictionary = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    codes = torch.randn(50, 4, generator=generator, dtype=torch.float64)
    codes[:, 2] = 0.0  # Z^T Z is singular
    x = codes @ dictionary.T
    estimate = estimate_linear_dictionary(x, codes)
    assert not estimate.isnan().any()
    # Minimum norm: the unidentifiable column is zero, the others are recovered exactly.
    assert torch.allclose(estimate[:, 2], torch.zeros(6, dtype=torch.float64), atol=1e-12)
    keep = [0, 1, 3]
    assert torch.allclose(estimate[:, keep], dictionary[:, keep], atol=1e-10)


def test_duplicated_feature_shares_the_atom():
    # z1 = z0 exactly: any split a0 + a1 = A fits; minimum norm splits it evenly.
    generator = torch.Generator().manual_seed(3)
    atom = torch.randn(5, generator=generator, dtype=torch.float64)
    code = torch.randn(40, generator=generator, dtype=torch.float64)
    codes = torch.stack([code, code], dim=1)
    x = code.unsqueeze(1) * atom
    estimate = estimate_linear_dictionary(x, codes)
    assert torch.allclose(estimate, torch.stack([atom / 2, atom / 2], dim=1), atol=1e-10)


def test_float32_input_gives_float32_output():
    estimate = estimate_linear_dictionary(torch.randn(10, 3), torch.randn(10, 2))
    assert estimate.dtype == torch.float32 and estimate.shape == (3, 2)


def test_sort_by_norm_descending():
    dictionary = torch.tensor([[1.0, 0.0, 3.0, 0.0], [0.0, 2.0, 0.0, 0.5]])
    assert sort_by_norm(dictionary).tolist() == [2, 1, 0, 3]
