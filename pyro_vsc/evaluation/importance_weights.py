"""Importance log-weights log p(x, z) - log q(z | x) from Pyro traces (Burda et al., 2016)."""

import torch
from pyro.poutine.util import site_is_subsample
from tqdm.auto import tqdm

from .traces import guide_and_model_traces


def _per_sample_and_point(log_prob, site, num_samples, num_points, sample_dim, data_plate):
    """Sums a site's log-density over every dimension but the sample and data-plate ones: (K, B)."""
    frames = {frame.name: frame.dim for frame in site["cond_indep_stack"] if frame.vectorized}
    if data_plate not in frames:
        raise ValueError(
            f"site '{site['name']}' lies outside the data plate '{data_plate}': importance "
            "weights per data point need every site of model and guide inside it")
    nesting = -sample_dim
    if log_prob.dim() > nesting:
        raise ValueError(f"site '{site['name']}' has log-density shape {tuple(log_prob.shape)}, "
                         f"wider than its {nesting - 1} plate dimension(s) and the sample dimension; "
                         "declare event dimensions with .to_event()")
    log_prob = log_prob.reshape((1,) * (nesting - log_prob.dim()) + log_prob.shape)
    kept = {nesting + sample_dim, nesting + frames[data_plate]}
    summed = [dim for dim in range(nesting) if dim not in kept]
    if summed:
        log_prob = log_prob.sum(summed, keepdim=True)
    return log_prob.reshape(log_prob.shape[nesting + sample_dim],
                            log_prob.shape[nesting + frames[data_plate]]).expand(num_samples, num_points)


def _check_unscaled(site):
    scale = site["scale"]
    if not (isinstance(scale, (int, float)) and scale == 1.0):
        raise ValueError(
            f"site '{site['name']}' has scale {scale}: importance weights need the unweighted model "
            "and guide (no KL weights, no subsampling scale), or the bound would be tempered")


@torch.no_grad()
def importance_log_weights(model, guide, x, num_samples, batch_size=100, data_plate="data",
                           max_plate_nesting=1, progress=False):
    r"""Log importance weights of K vectorized guide samples for every data point.

    .. math:: \log w_k(x) = \log p(x\mid z_k) + \log p(z_k) - \log q(z_k\mid x),
              \qquad z_k \sim q(z\mid x),

    summed over every latent site of the model (``z`` and, for the Gamma priors, the thresholds
    λ: :math:`+\log p(\lambda_k) - \log q(\lambda_k\mid x)`). Each term is the site's exact
    ``log_prob``: for the thresholded and spike-and-slab laws the density with respect to the
    mixed measure :math:`\delta_0 + \mathrm{Leb}` (log of the spike's probability at an exact zero,
    the slab density elsewhere), which is the Radon-Nikodym derivative that makes :math:`w` an
    unbiased estimate of :math:`p(x)` when q and p share that dominating measure. No KL weights
    (β of eq. 5) enter: pass the bare model and guide.

    The K samples are drawn at once in a plate at dimension ``-(max_plate_nesting + 1)`` (as
    Pyro's vectorized particles), over batches of ``batch_size`` data points so that memory stays
    at about ``K * batch_size * max(D, latent size)`` numbers.

    :param model: Pyro model ``model(x)`` with its data plate named ``data_plate``.
    :param guide: Pyro guide ``guide(x)`` sampling every latent site of the model.
    :param torch.Tensor x: data, shape ``(N, ...)``.
    :param int num_samples: K ≥ 1.
    :param int batch_size: data points per vectorized pass.
    :param bool progress: show a progress bar over the batches.
    :returns: tensor of shape ``(K, N)``, the layout of :func:`pyro_vsc.metrics.iwae_bound`.
    """
    if int(num_samples) != num_samples or num_samples < 1:
        raise ValueError(f"num_samples (K) must be a positive integer, got {num_samples}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    sample_dim = -(max_plate_nesting + 1)
    pieces = []
    for batch in tqdm(x.split(int(batch_size)), desc="importance weights", disable=not progress,
                      leave=False):
        guide_trace, model_trace = guide_and_model_traces(
            model, guide, batch, num_samples=int(num_samples), max_plate_nesting=max_plate_nesting)
        log_weight = batch.new_zeros(int(num_samples), batch.shape[0])
        for sign, trace in ((1.0, model_trace), (-1.0, guide_trace)):
            for name, site in trace.nodes.items():
                if site["type"] != "sample" or site_is_subsample(site):
                    continue
                if trace is model_trace and not site["is_observed"] and name not in guide_trace.nodes:
                    raise ValueError(f"latent site '{name}' of the model is not sampled by the guide")
                _check_unscaled(site)
                log_prob = site["fn"].log_prob(site["value"])
                log_weight += sign * _per_sample_and_point(
                    log_prob, site, int(num_samples), batch.shape[0], sample_dim, data_plate)
        pieces.append(log_weight)
    return torch.cat(pieces, dim=1)
