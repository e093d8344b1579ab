"""Support consistency of repeated guide samples for the same input (§4.1.2, eq. 13, Fig. 5)."""

import torch

from pyro_vsc.metrics import support_consistency

from .traces import trace_guide

#: Figure 5: the average pairwise Jaccard index over 20 forward passes.
PAPER_CONSISTENCY_SAMPLES = 20


@torch.no_grad()
def guide_support_consistency(guide, x, num_samples=PAPER_CONSISTENCY_SAMPLES,
                              atom_mask=None, site="z", batch_size=500):
    """Average pairwise Jaccard index of the supports of J plain guide samples per input (eq. 13).

    The J samples :math:`z^{1,k},\\dots,z^{J,k}\\sim q_\\phi(z\\mid x^k)` are independent forward
    passes (one vectorized plate), not max-ELBO selections: the measure is about how consistently
    the inference network uses the same features. ``atom_mask`` restricts supports to the atoms
    with :math:`\\|a_i\\|_2^2 > 0.1` (:func:`pyro_vsc.metrics.active_atom_mask`).

    :returns: tensor ``(N,)`` with values in [0, 1].
    """
    pieces = []
    for batch in x.split(int(batch_size)):
        samples = trace_guide(guide, batch, num_samples=int(num_samples)).nodes[site]["value"]
        pieces.append(support_consistency(samples.expand(int(num_samples), *samples.shape[-2:]),
                                          atom_mask))
    return torch.cat(pieces)
