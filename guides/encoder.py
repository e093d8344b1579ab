"""Amortized encoder: a backbone with one linear head per distribution parameter (Appendix D)."""

from torch import nn


class AmortizedEncoder(nn.Module):
    """x ↦ {parameter name: head(backbone(x))}.

    Appendix D: "Each inference network uses an MLP backbone … with a separate projection head
    for each distribution parameter", a ``feature_dim × latent_dim`` linear layer. Kept as one
    plain ``nn.Module`` so that it can be wrapped in ``DistributedDataParallel`` and called
    through the wrapper.

    :param backbone: module with a ``feature_dim`` attribute mapping x to features.
    :param int latent_dim: d, the latent dimension.
    :param heads: names of the distribution parameters.
    """

    def __init__(self, backbone, latent_dim, heads):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict({name: nn.Linear(backbone.feature_dim, latent_dim)
                                    for name in heads})

    def forward(self, x):
        features = self.backbone(x)
        return {name: head(features) for name, head in self.heads.items()}
