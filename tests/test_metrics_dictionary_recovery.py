"""The dictionary-recovery criterion: the share of true atoms some learned atom matches."""

import pytest
import torch

from pyro_vsc.data import random_dictionary
from pyro_vsc.metrics import recovered_fraction


def test_a_permuted_rescaled_sign_flipped_copy_recovers_every_atom():
    generator = torch.Generator().manual_seed(0)
    true = random_dictionary(32, 40, generator=generator)
    signs = torch.where(torch.rand(40, generator=generator) < 0.5, -1.0, 1.0)
    learned = (true * signs * torch.linspace(0.1, 9.0, 40))[:, torch.randperm(40, generator=generator)]
    assert recovered_fraction(learned, true) == 1.0


@pytest.mark.parametrize("kept", [0, 10, 25, 40])
def test_each_kept_atom_counts_and_random_atoms_do_not(kept):
    generator = torch.Generator().manual_seed(kept)
    true = random_dictionary(64, 40, generator=generator)
    # random directions in 64 dimensions have |cos| ≈ N(0, 1/64) with a true atom: below 0.9
    learned = random_dictionary(64, 40, generator=generator)
    learned[:, :kept] = true[:, :kept]
    assert recovered_fraction(learned, true) == kept / 40


def test_an_atom_just_inside_or_outside_the_cosine_threshold():
    true = torch.eye(2)[:, :1]  # e1
    for angle, expected in ((0.45, 1.0), (0.46, 0.0)):  # cos 0.4500 rad = 0.9004, cos 0.46 = 0.8961
        learned = torch.tensor([[torch.cos(torch.tensor(angle))], [torch.sin(torch.tensor(angle))]])
        assert recovered_fraction(learned, true) == expected


def test_dictionaries_of_different_dimensions_are_refused():
    with pytest.raises(ValueError, match=r"same D; got shapes \(3, 2\) and \(4, 2\)"):
        recovered_fraction(torch.ones(3, 2), torch.ones(4, 2))
