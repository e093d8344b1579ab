"""Fréchet Inception distance of reconstructions (§4.2, Fig. 7b/f), when it can be computed.

FID needs the Inception-v3 weights, which ``torchmetrics[image]`` (the optional extra ``fid``:
``pip install -e '.[fid]'``) loads through ``torch-fidelity`` from its cache or the network.
Without them :func:`frechet_inception_distance` raises :class:`FIDUnavailable` with the reason,
and callers report "FID skipped" instead of a number.
"""

import torch


class FIDUnavailable(RuntimeError):
    """FID cannot be computed here (package or Inception weights missing); the message says why."""


def _fid_metric(device):
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError as error:
        raise FIDUnavailable("torchmetrics[image] is not installed (pip install -e '.[fid]')") from error
    try:
        return FrechetInceptionDistance(feature=2048, normalize=True).to(device)
    except Exception as error:  # missing weights offline: torch-fidelity/urllib raise their own types
        raise FIDUnavailable(f"the Inception-v3 weights could not be loaded ({error}); "
                             "place them in torch-fidelity's cache or allow the download") from error


def _as_rgb(images):
    """Images (N, C, H, W) in [0, 1] with C = 1 or 3, as 3-channel images (grey repeated)."""
    images = images.float().clamp(0, 1)
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


@torch.no_grad()
def frechet_inception_distance(pairs, device):
    """FID between images and their reconstructions (Heusel et al., 2017), on Inception-v3 pool
    features (2048) of images resized by the metric.

    :param pairs: iterable of ``(images, reconstructions)`` batches ``(N, C, H, W)`` in [0, 1].
    :raises FIDUnavailable: when torchmetrics or the Inception weights are not available.
    """
    metric = _fid_metric(device)
    for images, reconstructions in pairs:
        metric.update(_as_rgb(images).to(device), real=True)
        metric.update(_as_rgb(reconstructions).to(device), real=False)
    return float(metric.compute())
