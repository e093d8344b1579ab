"""Posterior collapse (eq. 15) and feature collapse (eq. 16) of Appendix C, Table 2."""



def _percentage_collapsed(near_zero, delta):
    """Percent of the K columns of boolean ``near_zero`` (N, K) true on at least 1 - δ of rows."""
    if near_zero.dim() != 2 or near_zero.shape[0] == 0:
        raise ValueError(
            f"expected values of shape (N, K) with N >= 1 data points, got {tuple(near_zero.shape)}"
        )
    if not 0.0 <= delta <= 1.0:
        raise ValueError(f"delta must lie in [0, 1], got {delta}")
    fraction_near_zero = near_zero.double().mean(0)
    return 100.0 * (fraction_near_zero >= 1.0 - delta).double().mean().item()


def posterior_collapse(kl, eps=1e-2, delta=5e-2):
    r"""Percentage of latent dimensions whose posterior has collapsed to the prior (eq. 15).

    Dimension i is collapsed when
    :math:`\mathbb P_{x}[D_{KL}(q_\phi(z_i\mid x)\,\|\,p(z_i)) \le \epsilon] \ge 1-\delta`, the
    probability being the fraction of the N data points (Lucas et al., 2019).

    :param torch.Tensor kl: per-data-point, per-dimension KL values, shape ``(N, K)``.
    :param float eps: KL level ε counted as collapsed (Table 2: 1E-02).
    :param float delta: tolerated fraction δ of data points above ε (Table 2: 5E-02).
    :returns: percentage in [0, 100] (a Python float).
    """
    return _percentage_collapsed(kl <= eps, delta)


def feature_collapse(codes, eps=1e-2, delta=5e-2):
    r"""Percentage of latent features that are (nearly) zero for almost every input (eq. 16).

    Feature i is collapsed when :math:`\mathbb P_{x}[|\hat z_i| \le \epsilon] \ge 1-\delta`,
    the probability being the fraction of the N data points.

    :param torch.Tensor codes: inferred codes :math:`\hat z`, shape ``(N, K)``.
    :param float eps: magnitude ε counted as zero (Table 2: 1E-02).
    :param float delta: tolerated fraction δ of data points above ε (Table 2: 5E-02).
    :returns: percentage in [0, 100] (a Python float).
    """
    return _percentage_collapsed(codes.abs() <= eps, delta)
