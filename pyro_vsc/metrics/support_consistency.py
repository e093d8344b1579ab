"""Support consistency (§4.1, eq. 13, Figure 5): average pairwise Jaccard index of supports."""

import torch


def active_atom_mask(dictionary, threshold=0.1):
    r"""Atoms used for the consistency measure: columns with :math:`\|a_i\|_2^2 > 0.1` (§4.1).

    The paper restricts the supports to these atoms so that a method that leaves many dictionary
    entries at zero is not rewarded for trivially agreeing on them.

    :param torch.Tensor dictionary: linear generator :math:`A`, shape ``(D, K)``.
    :param float threshold: bound on the squared column norm (the paper's 1E-01).
    :returns: boolean tensor of shape ``(K,)``.
    """
    if dictionary.dim() != 2:
        raise ValueError(f"dictionary must have shape (D, K), got {tuple(dictionary.shape)}")
    return dictionary.pow(2).sum(0) > threshold


def support_consistency(samples, atom_mask=None, chunk_size=512):
    r"""Average pairwise Jaccard index of the supports of J code samples per input (eq. 13).

    For input k with samples :math:`z^{1,k},\dots,z^{J,k}` and supports
    :math:`S(z) = \{i : z_i \ne 0\}` (restricted to ``atom_mask`` if given):

    .. math:: \frac{1}{J(J-1)}\sum_m\sum_{n\ne m}\frac{|S_m\cap S_n|}{|S_m\cup S_n|}.

    A pair of empty supports has an empty union; it counts as 1: the two samples agree exactly
    (both use no atom), and 1 is the limit of the index for identical sets. An empty support paired
    with a non-empty one scores 0, as the formula gives.

    All pairs are computed at once as a batched product of 0/1 support matrices (integer counts,
    exact in float32 and TF32 for K < 2**24), over chunks of ``chunk_size`` inputs so that memory
    stays at about ``chunk_size * J * (K + 4 J)`` floats beyond the input.

    :param torch.Tensor samples: codes of shape ``(J, N, K)``: J samples for each of N inputs.
    :param torch.Tensor atom_mask: optional boolean ``(K,)`` selecting atoms (see
        :func:`active_atom_mask`).
    :param int chunk_size: inputs processed per batch.
    :returns: tensor of shape ``(N,)`` with values in [0, 1].
    """
    if samples.dim() != 3:
        raise ValueError(f"samples must have shape (J, N, K), got {tuple(samples.shape)}")
    num_draws, num_inputs, num_atoms = samples.shape
    if num_draws < 2:
        raise ValueError(f"need at least J = 2 samples per input to form pairs, got {num_draws}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    if atom_mask is not None:
        if atom_mask.dtype != torch.bool or atom_mask.shape != (num_atoms,):
            raise ValueError(
                f"atom_mask must be a boolean tensor of shape ({num_atoms},), "
                f"got {atom_mask.dtype} of shape {tuple(atom_mask.shape)}"
            )
        atom_mask = atom_mask.to(samples.device)
    consistency = []
    for start in range(0, num_inputs, chunk_size):
        supports = samples[:, start : start + chunk_size] != 0  # (J, n, K)
        if atom_mask is not None:
            supports = supports & atom_mask
        supports = supports.transpose(0, 1).float()  # (n, J, K)
        intersection = supports @ supports.transpose(1, 2)  # (n, J, J)
        sizes = intersection.diagonal(dim1=1, dim2=2)  # |S_j| = |S_j ∩ S_j|, (n, J)
        union = sizes.unsqueeze(-1) + sizes.unsqueeze(-2) - intersection
        jaccard = torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))
        # The diagonal (m = n) is exactly 1 for every sample, empty or not: drop it from the sum.
        consistency.append((jaccard.sum((1, 2)) - num_draws) / (num_draws * (num_draws - 1)))
    if not consistency:
        return torch.zeros(0, device=samples.device)
    return torch.cat(consistency)
