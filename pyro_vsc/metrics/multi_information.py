"""Multi-information of inferred codes (§4.1 Table 1, §4.2 Figure 7), with the paper's binning."""

import numpy as np

from ._arrays import as_numpy

#: The published discretisation: 20 edges evenly spaced over [-2, 2] plus the edges ±1e-50, so
#: that exact zeros (the spikes of a sparse code) fall in a bin of their own.
PAPER_BIN_EDGES = np.sort(np.concatenate([np.linspace(-2.0, 2.0, 20), [-1e-50, 1e-50]]))
PAPER_BIN_EDGES.setflags(write=False)


def discretize_codes(codes, bin_edges=PAPER_BIN_EDGES):
    """Bin index of every code value, with :func:`numpy.digitize` semantics.

    Index ``i`` means ``bin_edges[i-1] <= value < bin_edges[i]``; values below the first edge get
    0 and values at or above the last edge get ``len(bin_edges)``. With the paper's edges an exact
    zero lands in ``[-1e-50, 1e-50)``, alone.

    :param codes: array or tensor of shape ``(N, K)``, finite values.
    :param bin_edges: increasing 1-D array of edges.
    :returns: integer array of shape ``(N, K)`` with values in ``[0, len(bin_edges)]``.
    """
    codes = as_numpy(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must have shape (N, K), got {codes.shape}")
    if not np.all(np.isfinite(codes)):
        raise ValueError("codes contain NaN or infinite values; they cannot be binned")
    bin_edges = np.asarray(bin_edges, dtype=np.float64)
    if bin_edges.ndim != 1 or np.any(np.diff(bin_edges) <= 0):
        raise ValueError("bin_edges must be a strictly increasing 1-D array")
    return np.digitize(codes, bin_edges)


def _plug_in_entropy_bits(counts):
    """Plug-in (maximum-likelihood) entropy, in bits, of the distribution with these counts."""
    counts = counts[counts > 0]
    probabilities = counts / counts.sum()
    return float(-(probabilities * np.log2(probabilities)).sum())


def multi_information(codes, bin_edges=PAPER_BIN_EDGES):
    r"""Multi-information :math:`\sum_i h(z_i) - h(\mathbf z)` of codes, in bits (§4.1).

    The measure of redundancy the paper reports (Table 1, Figure 7a/e): zero when the K features
    are independent, larger when they share information. Estimator, as in the published
    evaluation (pyitlib ``information_multi`` with its defaults): every value is discretised by
    :func:`discretize_codes` (paper edges by default), then each entropy is the plug-in
    (maximum-likelihood) estimate :math:`-\sum p \log_2 p` from the empirical frequencies, in
    **bits** (base 2). :math:`h(z_i)` uses the N binned values of feature i; :math:`h(\mathbf z)`
    uses the N binned K-dimensional rows, each distinct row being one outcome.

    Properties of this estimator worth knowing when reading the numbers: it is never negative
    (plug-in entropies satisfy the same inequalities as true ones); for independent features and
    N much larger than the number of occupied joint cells :math:`B_{joint}`, its expected value is
    about :math:`[(B_{joint}-1) - \sum_i (B_i-1)]/(2N\ln 2)` (:math:`B_i` occupied bins of
    feature i), a small positive bias; but :math:`h(\mathbf z)\le\log_2 N`, so with many features
    (K = 256, N = 16000 in §4.1) the joint entropy saturates near :math:`\log_2 N` and the number
    is dominated by the sum of marginal entropies, even for independent features.

    :param codes: array or tensor of shape ``(N, K)``.
    :param bin_edges: increasing 1-D array of bin edges (default: the paper's).
    :returns: the multi-information estimate in bits (a Python float).
    """
    bins = discretize_codes(codes, bin_edges)
    num_samples, num_features = bins.shape
    if num_samples == 0 or num_features == 0:
        raise ValueError(f"codes must have at least one sample and one feature, got {bins.shape}")
    num_bins = len(bin_edges) + 1
    # All marginal counts with one bincount: feature k's bin indices are offset by k * num_bins.
    offsets = np.arange(num_features) * num_bins
    marginal_counts = np.bincount((bins + offsets).ravel(), minlength=num_features * num_bins)
    marginal_entropy = sum(
        _plug_in_entropy_bits(feature_counts)
        for feature_counts in marginal_counts.reshape(num_features, num_bins)
    )
    # Joint counts: each row of bin indices, as raw bytes, is one outcome of the joint variable.
    row_dtype = np.uint8 if num_bins <= 256 else np.int64
    rows = np.ascontiguousarray(bins.astype(row_dtype))
    row_keys = rows.view(np.dtype((np.void, rows.itemsize * num_features))).ravel()
    _, joint_counts = np.unique(row_keys, return_counts=True)
    return marginal_entropy - _plug_in_entropy_bits(joint_counts)
