"""Validation on max-ELBO-selected codes: objective (10) of the linear generator (§4.1), and
per-pixel MSE, sparsity and multi-information of the DNN generators (§4.2, Fig. 7)."""

import torch

from pyro_vsc.distributions.util import is_point_mass
from pyro_vsc.metrics import multi_information


@torch.no_grad()
def select_codes(objective, x, batch_size=1000):
    """Infers codes for ``x`` by max-ELBO sampling (eq. 9) with the J particles of an
    :class:`~pyro_vsc.train.objective.Objective`, in batches.

    Particles are selected by the weighted ELBO the run trains (β of eq. 5), with the run's
    choice of analytic or sampled KLs (``elbo.analytic_kl``).

    :returns: dict with ``z`` (N, K) the selected codes, ``elbo`` (N,) the selected particle's
        weighted ELBO, and for every latent site ``kl_<site>`` (N,) its KL (or the sampled
        log-density ratio log q - log p) *without* KL weight, so finite for any β ≥ 0; for a
        point-mass guide site (FISTA) there is no KL, and ``log_prior_<site>`` (N,) holds the
        prior's log-density of the code instead.
    """
    elbo, (model, guide) = objective.max_elbo(), objective.weighted()
    outputs = {}
    for batch in x.split(batch_size):
        result = elbo.particle_elbo(model, guide, batch)
        points = torch.arange(batch.shape[0], device=batch.device)
        chosen = {"z": result.selected("z"), "elbo": result.local[result.best, points]}
        guide_trace = result.guide_traces[0]
        for site, terms in elbo.unweighted_latent_terms(result).items():
            selected = terms[result.best, points]
            if is_point_mass(guide_trace.nodes[site]["fn"]):
                chosen[f"log_prior_{site}"] = selected  # log p(z) - log δ(z) = log p(z)
            else:
                chosen[f"kl_{site}"] = -selected
        for key, value in chosen.items():
            outputs.setdefault(key, []).append(value)
    return {key: torch.cat(values) for key, values in outputs.items()}


@torch.no_grad()
def linear_validation(objective, val, lam=20.0):
    r"""Per-patch validation metrics of the linear generator.

    ``objective`` is eq. (10) as the paper reports it, :math:`\tfrac12\|x-Az\|^2 + \lambda\|z\|_1`
    with λ = 20, averaged over patches (the all-zero code scores :math:`\tfrac12\|x\|^2`, about
    128 on standardised 256-pixel patches); ``mse`` is the per-pixel squared error; ``kl_*`` the
    unweighted KLs (``log_prior_*`` for point-mass codes, see :func:`select_codes`);
    ``nonzero_pct`` the percentage of non-zero code entries.
    """
    codes = select_codes(objective, val)
    z = codes["z"]
    residual = val - objective.model.decoder(z)
    recon = 0.5 * residual.pow(2).sum(-1)
    l1 = z.abs().sum(-1)
    metrics = {
        "objective": (recon + lam * l1).mean(),
        "recon": recon.mean(),
        "l1": l1.mean(),
        "mse": residual.pow(2).mean(),
        "nonzero_pct": 100.0 * (z != 0).float().mean(),
        "elbo": codes["elbo"].mean(),
    }
    metrics.update({key: value.mean() for key, value in codes.items()
                    if key.startswith(("kl_", "log_prior_"))})
    return {key: float(value) for key, value in metrics.items()}


@torch.no_grad()
def encode_batches(objective, batches):
    """Yields ``(x, codes)`` for every batch ``x`` of a stream, ``codes`` as :func:`select_codes`."""
    for x in batches:
        yield x, select_codes(objective, x, batch_size=x.shape[0])


@torch.no_grad()
def image_validation(objective, val):
    r"""Validation metrics of a DNN generator on max-ELBO-selected codes (§4.2, Fig. 7).

    ``mse`` is the per-pixel squared error :math:`\|x - f(z)\|^2/D` of the selected code's
    reconstruction (the paper's validation MSE); ``nonzero_pct`` the percentage of non-zero code
    entries; ``multi_information`` the redundancy of the codes in bits (paper binning,
    :func:`~pyro_vsc.metrics.multi_information`); ``elbo`` the selected particle's weighted ELBO
    per image; ``kl_*`` the unweighted KLs. All are means over the validation images.

    :param val: iterable of image batches ``(B, C, H, W)`` on the model's device.
    """
    sums, codes, count = {}, [], 0
    for x, chosen in encode_batches(objective, val):
        z = chosen["z"]
        per_image = {"mse": (x - objective.model.decoder(z)).pow(2).flatten(1).mean(1),
                     "nonzero_pct": 100.0 * (z != 0).float().mean(1),
                     **{key: value for key, value in chosen.items() if key != "z"}}
        for key, value in per_image.items():
            sums[key] = sums.get(key, 0.0) + value.double().sum()
        codes.append(z.cpu())
        count += x.shape[0]
    if count == 0:
        raise ValueError("the validation set is empty")
    metrics = {key: float(total) / count for key, total in sums.items()}
    metrics["multi_information"] = multi_information(torch.cat(codes))
    return metrics
