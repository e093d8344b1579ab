"""Conversion of metric inputs that are computed with NumPy (binning, ArviZ)."""

import numpy as np
import torch


def as_numpy(array):
    """A NumPy view or copy of ``array``; torch tensors are detached and moved to the CPU."""
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)
