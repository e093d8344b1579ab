"""Inference network backbone of the linear experiment (Table 3)."""

from torch import nn


class MLPBackbone(nn.Sequential):
    """Table 3: Linear 256→512, ReLU, 512→1024, ReLU, 1024→512, ReLU, 512→256, ReLU.

    :param int input_dim: flattened input size (16×16 patches: 256).
    :param hidden: widths of the hidden layers; the last one is :attr:`feature_dim`.
    """

    def __init__(self, input_dim=256, hidden=(512, 1024, 512, 256)):
        widths = [int(input_dim), *map(int, hidden)]
        if min(widths) <= 0:
            raise ValueError(f"layer widths must be positive, got {widths}")
        layers = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        super().__init__(*layers)
        self.feature_dim = widths[-1]
