"""Linear dictionary estimated from data and inferred codes (§4.2, Figures 6, 8 and 20-23)."""

import torch


def estimate_linear_dictionary(x, codes):
    r"""Least-squares linear dictionary :math:`\hat A = (X^\top Z)(Z^\top Z)^{-1}` (§4.2).

    The paper writes :math:`\hat A=(XZ^T)(ZZ^T)^{-1}` with samples as columns; here samples are
    rows, ``x`` is ``(N, D)`` and ``codes`` is ``(N, K)``, so :math:`\hat A` (``(D, K)``) is the
    least-squares fit of :math:`x \approx \hat A z`. It is computed as
    :math:`\hat A^\top = Z^+ X` with the SVD pseudo-inverse in float64, which equals the
    normal-equation formula when :math:`Z^\top Z` is invertible and otherwise gives the
    minimum-norm least-squares solution (as the published code's ``pinv``), never NaN: a feature
    that is always zero gets a zero column, and exact copies of a feature split its atom evenly.

    :param torch.Tensor x: data, shape ``(N, D)``.
    :param torch.Tensor codes: inferred codes, shape ``(N, K)``.
    :returns: :math:`\hat A`, shape ``(D, K)``, in the dtype of ``x``.
    """
    if x.dim() != 2 or codes.dim() != 2 or x.shape[0] != codes.shape[0]:
        raise ValueError(
            f"expected x (N, D) and codes (N, K) with the same N, got {tuple(x.shape)} and "
            f"{tuple(codes.shape)}"
        )
    estimate = torch.linalg.pinv(codes.double()) @ x.double()  # (K, D)
    return estimate.T.to(x.dtype)


def sort_by_norm(dictionary):
    """Column order of ``dictionary`` (D, K) by descending Euclidean norm (Figures 10, 20-23)."""
    if dictionary.dim() != 2:
        raise ValueError(f"dictionary must have shape (D, K), got {tuple(dictionary.shape)}")
    return torch.argsort(dictionary.norm(dim=0), descending=True, stable=True)
