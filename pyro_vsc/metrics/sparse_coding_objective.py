"""The sparse coding objective (10), used as the validation loss of §4.1 (Table 1)."""



def sparse_coding_objective(x, dictionary, codes, lam=20.0):
    r"""Per-sample sparse coding loss :math:`\tfrac12\|x - A z\|_2^2 + \lambda\|z\|_1`.

    This is objective (10) without its dictionary regulariser :math:`\kappa\|A\|_F^2`, which does
    not depend on the codes. The paper prints (10) without the factor ½ on the data term; the
    published validation loss behind Table 1 (FISTA at λ = 20 scoring ≈ 101) uses
    :math:`\tfrac12\|x - Az\|^2 + \lambda\|z\|_1`, which is what is computed here.

    :param torch.Tensor x: data, shape ``(N, D)`` (one patch per row).
    :param torch.Tensor dictionary: linear generator :math:`A`, shape ``(D, K)``.
    :param torch.Tensor codes: codes :math:`z`, shape ``(N, K)``.
    :param float lam: sparsity weight λ (the paper's FISTA baseline uses 20).
    :returns: the loss of each sample, shape ``(N,)``; average it for the Table 1 number.
    """
    if x.dim() != 2 or dictionary.dim() != 2 or codes.dim() != 2:
        raise ValueError(
            "expected x (N, D), dictionary (D, K) and codes (N, K); got shapes "
            f"{tuple(x.shape)}, {tuple(dictionary.shape)}, {tuple(codes.shape)}"
        )
    if dictionary.shape[0] != x.shape[1] or codes.shape != (x.shape[0], dictionary.shape[1]):
        raise ValueError(
            f"shapes do not chain: x {tuple(x.shape)} = codes {tuple(codes.shape)} @ dictionary.T "
            f"{tuple(dictionary.T.shape)} needs x (N, D), dictionary (D, K), codes (N, K)"
        )
    if lam < 0:
        raise ValueError(f"sparsity weight lam must be non-negative, got {lam}")
    residual = x - codes @ dictionary.T
    return 0.5 * residual.pow(2).sum(-1) + lam * codes.abs().sum(-1)
