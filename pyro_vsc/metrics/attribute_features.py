"""The latent feature most correlated with each binary attribute (§4.2, Figure 8)."""


def top_feature_per_attribute(correlations):
    r"""For each attribute m, the feature :math:`n^\star = \arg\max_n |\rho_{pb}^{m,n}|` and its
    (signed) correlation, from a matrix of point-biserial correlations
    (:func:`~pyro_vsc.metrics.point_biserial_correlation`). Figure 8 shows the estimated
    dictionary entry of :math:`n^\star` for selected attributes.

    :param torch.Tensor correlations: shape ``(M, K)``, attributes × features.
    :returns: ``(features, values)``, long and float tensors of shape ``(M,)``.
    """
    if correlations.dim() != 2 or correlations.shape[1] == 0:
        raise ValueError(f"correlations must have shape (M, K) with K ≥ 1, got {tuple(correlations.shape)}")
    features = correlations.abs().argmax(1)
    return features, correlations.gather(1, features[:, None])[:, 0]
