"""Point-biserial correlation between latent features and binary attributes (§4.2, Figure 8)."""

import torch


def point_biserial_correlation(codes, attributes):
    r"""Correlation of every binary attribute m with every latent feature n (§4.2).

    .. math:: \rho_{pb}^{m,n} = \frac{M_1 - M_0}{s_N}\,\frac{\sqrt{n_1 n_0}}{N},

    :math:`M_1, M_0` the mean of feature n over the samples with attribute m equal to 1 and 0,
    :math:`n_1, n_0` their counts and :math:`s_N` the population standard deviation of feature n.
    This is Pearson's correlation of the feature with the 0/1 attribute
    (``scipy.stats.pointbiserialr``); the paper prints the last factor as
    :math:`\sqrt{n_1 n_0}/\sqrt N`, which is not scale-free, so we read it as
    :math:`\sqrt{n_1 n_0/N^2}`, the standard form. Computed in float64.

    A constant feature (:math:`s_N = 0`) or an attribute that takes one value on all samples
    (:math:`n_1 n_0 = 0`) carries no information about the other; its correlation is undefined
    and returned as 0 so that rankings by :math:`|\rho|` (Figure 8) never pick it.

    :param torch.Tensor codes: latent features, shape ``(N, K)``.
    :param torch.Tensor attributes: binary labels in {0, 1}, shape ``(N, M)``.
    :returns: float64 tensor of shape ``(M, K)``.
    """
    if codes.dim() != 2 or attributes.dim() != 2 or codes.shape[0] != attributes.shape[0]:
        raise ValueError(
            f"expected codes (N, K) and attributes (N, M) with the same N, got "
            f"{tuple(codes.shape)} and {tuple(attributes.shape)}"
        )
    if codes.shape[0] < 2:
        raise ValueError(f"need at least 2 samples to correlate, got N = {codes.shape[0]}")
    if not ((attributes == 0) | (attributes == 1)).all():
        raise ValueError("attributes must be binary, with values in {0, 1}")
    codes = codes.double()
    attributes = attributes.to(device=codes.device, dtype=torch.float64)
    num_samples = codes.shape[0]
    count_one = attributes.sum(0).unsqueeze(1)  # n1, (M, 1)
    count_zero = num_samples - count_one  # n0
    sum_where_one = attributes.T @ codes  # (M, K)
    sum_where_zero = codes.sum(0) - sum_where_one
    mean_one = sum_where_one / count_one.clamp(min=1)  # M1
    mean_zero = sum_where_zero / count_zero.clamp(min=1)  # M0
    population_std = codes.std(0, correction=0)  # s_N, (K,)
    varies = codes.amax(0) > codes.amin(0)  # exact test; std of a constant can round above 0
    defined = (count_one * count_zero > 0) & varies
    safe_std = torch.where(varies, population_std, torch.ones_like(population_std))
    correlation = (mean_one - mean_zero) / safe_std * (count_one * count_zero).sqrt() / num_samples
    return torch.where(defined, correlation, torch.zeros_like(correlation))
