"""Per-data-point, per-dimension KL(q(z_i|x) || p(z_i)) for posterior collapse (eq. 15)."""

import torch

from pyro_vsc.distributions.kl import closed_form_kl
from pyro_vsc.distributions.util import base_distribution, is_point_mass

from .traces import guide_and_model_traces


@torch.no_grad()
def posterior_kl_per_dimension(model, guide, x, site="z", batch_size=1000):
    r""":math:`D_{KL}(q_\phi(z_i\mid x^n)\,\|\,p(z_i))` for every data point n and dimension i.

    The KL the objectives use (:func:`~pyro_vsc.distributions.kl.closed_form_kl`) for the pair
    of per-dimension laws (the ``base_dist`` inside ``.to_event``):
    for the thresholded laws the paper's KL of the base distributions (Appendix B), for the
    spike-and-slab the exact KL of Tonolini et al., Gaussian and Laplace KLs otherwise. Unweighted
    (no β). Thresholds sampled by a Gamma posterior do not enter the base KL.

    :returns: tensor ``(N, K)``, or ``None`` when the guide is a point mass (FISTA), for which the
        KL to a continuous prior, and hence posterior collapse, is not defined.
    """
    pieces = []
    for batch in x.split(int(batch_size)):
        guide_trace, model_trace = guide_and_model_traces(model, guide, batch)
        posterior = guide_trace.nodes[site]["fn"]
        if is_point_mass(posterior):
            return None
        prior = model_trace.nodes[site]["fn"]
        kl = closed_form_kl(base_distribution(posterior), base_distribution(prior))
        pieces.append(kl.expand(batch.shape[0], kl.shape[-1]))
    return torch.cat(pieces)
