import itertools

import pytest
import torch

from pyro_vsc.metrics import active_atom_mask, support_consistency


def _supports_to_samples(supports, num_atoms):
    """(J, N) nested lists of index sets -> codes of shape (J, N, K) with value 1 on the support."""
    samples = torch.zeros(len(supports), len(supports[0]), num_atoms)
    for j, per_input in enumerate(supports):
        for n, support in enumerate(per_input):
            samples[j, n, list(support)] = 1.0
    return samples


def _reference(samples):
    """Direct transcription of eq. (13) averaged over ordered pairs, with sets."""
    num_draws, num_inputs, _ = samples.shape
    result = []
    for n in range(num_inputs):
        supports = [set(torch.nonzero(samples[j, n]).flatten().tolist()) for j in range(num_draws)]
        total = 0.0
        for m, k in itertools.permutations(range(num_draws), 2):
            union = supports[m] | supports[k]
            total += len(supports[m] & supports[k]) / len(union) if union else 1.0
        result.append(total / (num_draws * (num_draws - 1)))
    return torch.tensor(result)


def test_identical_supports_score_one():
    # Same support {0, 3, 6, 9}, different non-zero values.
    code = torch.randn(1, 1, 10) * (torch.arange(10) % 3 == 0)
    samples = code * torch.tensor([1.0, -2.0, 3.0, 0.5]).view(4, 1, 1)
    assert support_consistency(samples).item() == pytest.approx(1.0)


def test_disjoint_supports_score_zero():
    samples = _supports_to_samples([[{0, 1}], [{2}], [{3, 4, 5}]], num_atoms=6)
    assert support_consistency(samples).item() == 0.0


def test_hand_computed_case():
    # S1 = {0, 1}, S2 = {1, 2}, S3 = {0, 1, 2, 3}: C12 = 1/3, C13 = 2/4, C23 = 2/4.
    # Ordered-pair average = 2 * (1/3 + 1/2 + 1/2) / (3 * 2) = 4/9.
    samples = _supports_to_samples([[{0, 1}], [{1, 2}], [{0, 1, 2, 3}]], num_atoms=5)
    assert support_consistency(samples).item() == pytest.approx(4 / 9)


def test_empty_supports():
    # Both empty: identical (empty) supports, defined as 1. Empty with non-empty: 0.
    samples = _supports_to_samples([[set(), set()], [set(), {2}]], num_atoms=3)
    assert support_consistency(samples).tolist() == [1.0, 0.0]


def test_atom_mask_restricts_supports():
    # The samples disagree only on atom 3; dropping it makes them identical.
    samples = _supports_to_samples([[{0, 1}], [{0, 1, 3}]], num_atoms=4)
    assert support_consistency(samples).item() == pytest.approx(2 / 3)
    dictionary = torch.ones(5, 4)
    dictionary[:, 3] = 0.1  # squared norm 5 * 0.01 = 0.05 <= 0.1
    mask = active_atom_mask(dictionary)
    assert mask.tolist() == [True, True, True, False]
    assert support_consistency(samples, atom_mask=mask).item() == pytest.approx(1.0)


@pytest.mark.parametrize("chunk_size", [1, 7, 1024])
def test_matches_set_reference_on_random_sparse_samples(chunk_size):
    generator = torch.Generator().manual_seed(0)
    samples = torch.randn(6, 40, 12, generator=generator)
    samples = samples * (torch.rand(6, 40, 12, generator=generator) < 0.25)
    result = support_consistency(samples, chunk_size=chunk_size)
    assert result.shape == (40,)
    assert torch.allclose(result, _reference(samples), atol=1e-6)


def test_single_sample_is_rejected():
    with pytest.raises(ValueError, match="J = 2"):
        support_consistency(torch.ones(1, 3, 4))
