"""Whether a learned dictionary recovered a known one: the share of true atoms matched."""

#: An atom counts as recovered when some learned atom has |cosine| > 0.9 with it.
MATCH_COSINE = 0.9


def recovered_fraction(learned, true, cosine=MATCH_COSINE):
    """Fraction of the true atoms (columns of ``true``, ``(D, K₀)``) that some learned atom
    (column of ``learned``, ``(D, K)``) matches with ``|cos| > cosine``; signs and norms do not
    matter, nor does the order of the atoms.

    :param torch.Tensor learned: the learned dictionary, ``(D, K)``.
    :param torch.Tensor true: the dictionary the data were generated with, ``(D, K₀)``.
    :rtype: float
    """
    if learned.dim() != 2 or true.dim() != 2 or learned.shape[0] != true.shape[0]:
        raise ValueError(f"expected dictionaries (D, K) and (D, K0) with the same D; got shapes "
                         f"{tuple(learned.shape)} and {tuple(true.shape)}")
    learned = learned / learned.norm(dim=0, keepdim=True)
    true = true / true.norm(dim=0, keepdim=True)
    matches = (learned.T.to(true) @ true).abs()
    return float((matches.max(dim=0).values > cosine).float().mean())
