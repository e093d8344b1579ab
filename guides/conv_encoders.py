"""Convolutional inference-network backbones of the DNN-generator experiment (§4.2, Appendix E).

Each backbone maps an image to a feature vector of size ``feature_dim``; the per-parameter heads
(``Linear(feature_dim, latent_dim)`` for location, scale, threshold, ...) are added by the guides
that use them, as in the linear-generator experiment of Table 3.

Both stacks are ``conv -> BatchNorm -> ReLU`` blocks with 4x4 kernels. The convolutions keep their
bias (PyTorch's default, also what the authors' published ``model/feature_enc.py`` does) even
though the following BatchNorm makes it redundant, so the parameter counts match that code.

BatchNorm and particles: the guide is evaluated on the data batch only, so these backbones see
each image once per step. Leading dimensions beyond one batch dimension are nevertheless
accepted (flattened into one BatchNorm batch and restored afterwards), see
:mod:`pyro_vsc.models.decoders` for what that means for the batch statistics.
"""

import torch
from torch import nn


def _conv_bn_relu(in_channels, out_channels, stride, padding):
    """One encoder row group of Tables 4-5: 4x4 conv, BatchNorm over its channels, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=stride, padding=padding),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


class _ConvEncoder(nn.Module):
    """Runs ``self.layers`` on images of shape ``(*batch_shape, *input_shape)``.

    Subclasses set ``input_shape`` (channels, height, width), ``feature_dim`` and ``layers``,
    whose output must be ``(N, feature_dim, 1, 1)``.
    """

    input_shape: tuple[int, int, int]
    feature_dim: int

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map images ``(*batch_shape, C, H, W)`` in [0, 1] to features ``(*batch_shape, feature_dim)``."""
        if images.dim() < 3 or tuple(images.shape[-3:]) != self.input_shape:
            raise ValueError(
                f"{type(self).__name__} expects images of shape (..., {', '.join(map(str, self.input_shape))}) "
                f"(channels, height, width), got {tuple(images.shape)}"
            )
        batch_shape = images.shape[:-3]
        features = self.layers(images.reshape(-1, *self.input_shape))
        return features.reshape(*batch_shape, self.feature_dim)


class FashionMNISTEncoder(_ConvEncoder):
    """Table 5 encoder: ``(B, 1, 28, 28) -> (B, 128)``.

    Spatial sizes through the stack: 28 -> 14 -> 7 -> 4 -> 1.

    Reading of Table 5 as extracted, and how it is resolved:

    * The fourth row reads "conv: chan: 64, kern: 4, stride: 2, pad: 1" but is followed by
      "BatchNorm: feat: 128" and the table's output is in R^128. With 64 channels the
      BatchNorm would not fit, and with padding 1 the 4x4 map would become 2x2 (a 4*C feature
      vector, never 128 for C = 128). So this row is taken as ``conv 128 -> 128, kernel 4,
      stride 2, padding 0`` (4x4 -> 1x1), which gives exactly the 128 features of the table;
      the published ``ConvEncoder(im_size=28)`` uses the same layer.
    * "Input in R^{28x28x1}" is height x width x channels; torch tensors are channels first.
    """

    input_shape = (1, 28, 28)
    feature_dim = 128

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            _conv_bn_relu(1, 64, stride=2, padding=1),  # 28 -> 14
            _conv_bn_relu(64, 64, stride=2, padding=1),  # 14 -> 7
            _conv_bn_relu(64, 128, stride=1, padding=0),  # 7 -> 4
            _conv_bn_relu(128, 128, stride=2, padding=0),  # 4 -> 1
        )


class CelebAEncoder(_ConvEncoder):
    """Table 4 encoder: ``(B, 3, 64, 64) -> (B, 256)``.

    Spatial sizes through the stack: 64 -> 32 -> 16 -> 8 -> 4 -> 1. Table 4 is consistent
    as extracted (channels 64, 64, 128, 256, 256; the last convolution has padding 0, which is
    what takes the 4x4 map to 1x1 so that the output is in R^256), and it matches the
    published ``ConvEncoder(im_size=64)``. "Input in R^{64x64x3}" is height x width x channels;
    torch tensors are channels first.
    """

    input_shape = (3, 64, 64)
    feature_dim = 256

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            _conv_bn_relu(3, 64, stride=2, padding=1),  # 64 -> 32
            _conv_bn_relu(64, 64, stride=2, padding=1),  # 32 -> 16
            _conv_bn_relu(64, 128, stride=2, padding=1),  # 16 -> 8
            _conv_bn_relu(128, 256, stride=2, padding=1),  # 8 -> 4
            _conv_bn_relu(256, 256, stride=2, padding=0),  # 4 -> 1
        )
