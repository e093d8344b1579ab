r"""DNN generators of the DNN-generator experiment (§4.2, Appendix E): latent code -> image mean.

The decoders play the role of the dictionary :math:`\Phi` of the linear generator: the
likelihood of an image ``x`` given a code ``z`` is centred on ``decoder(z)``, an image with
pixel values in (0, 1) (final Sigmoid), to be compared with data scaled to [0, 1].

Leading dimensions: Pyro's ELBO vectorises the ``J`` particles of the sample budget (Appendix E:
J = 10 for CelebA, J = 20 for Fashion-MNIST), so a decoder receives codes of shape
``(J, B, d)`` (or any ``(*batch_shape, d)``) and returns ``(*batch_shape, C, H, W)``. The
leading dimensions are flattened into one convolution batch and restored afterwards.

BatchNorm and particles: in training mode BatchNorm normalises with the statistics of the whole
flattened ``J x B`` batch, not of each particle's ``B`` codes separately, so ``decoder(z)[j]``
differs slightly from ``decoder(z[j])`` (in eval mode, with running statistics, they agree).
The authors' published ``ConvDecoder`` does the same: it reshapes its ``(B, J, d)`` codes to one
``B*J`` batch before the transposed convolutions. Nothing else is done about it here.

The transposed convolutions keep their bias (PyTorch's default, as in the published code), so the
parameter counts match that code.
"""

import torch
from torch import nn


def _conv_transpose_bn_relu(in_channels, out_channels, stride, padding):
    """One decoder row group of Tables 4-5: 4x4 transposed conv, BatchNorm, ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=stride, padding=padding),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


class _ConvDecoder(nn.Module):
    """``Linear(d, prod(seed_shape)) -> ReLU -> reshape(seed_shape) -> self.upsample``.

    Subclasses set ``seed_shape`` (channels, height, width of the first feature map),
    ``output_shape`` and ``upsample``, which must map ``(N, *seed_shape)`` to ``(N, *output_shape)``.
    """

    seed_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]

    def __init__(self, latent_dim: int):
        super().__init__()
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(
                f"latent_dim must be a positive int (the paper sweeps 64 ... 4096), got {latent_dim!r}"
            )
        self.latent_dim = latent_dim
        seed_channels, seed_height, seed_width = self.seed_shape
        self.project = nn.Sequential(nn.Linear(latent_dim, seed_channels * seed_height * seed_width), nn.ReLU())

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Map codes ``(*batch_shape, latent_dim)`` to images ``(*batch_shape, C, H, W)`` in (0, 1)."""
        if codes.dim() < 1 or codes.shape[-1] != self.latent_dim:
            raise ValueError(
                f"{type(self).__name__}(latent_dim={self.latent_dim}) expects codes of shape "
                f"(..., {self.latent_dim}), got {tuple(codes.shape)}"
            )
        batch_shape = codes.shape[:-1]
        seed = self.project(codes.reshape(-1, self.latent_dim)).reshape(-1, *self.seed_shape)
        return self.upsample(seed).reshape(*batch_shape, *self.output_shape)


class FashionMNISTDecoder(_ConvDecoder):
    """Table 5 decoder: ``(..., d) -> (..., 1, 28, 28)``.

    ``Linear(d, 128)``, ReLU, reshape to a 128-channel 1x1 map, then transposed convolutions
    with spatial sizes 1 -> 4 -> 7 -> 14 -> 28 and channels 128, 64, 64, 1, then Sigmoid.

    Reading of Table 5 as extracted, and how it is resolved:

    * The table does not say how the 128 units become a feature map; 128 channels at 1x1 is the
      only reading for which the listed layers give 28x28 (a 4x4 kernel with stride 2, padding 0
      maps 1 -> 4; stride 1, padding 0 maps 4 -> 7; stride 2, padding 1 doubles 7 -> 14 -> 28).
      The published ``ConvDecoder(im_size=28)`` reshapes to (128, 1, 1) as well.
    * "chann: 64" is a typo of "chan: 64"; "convTranpose" means ``ConvTranspose2d``.
    * The last transposed convolution has no BatchNorm/ReLU (Sigmoid directly), as listed.
    """

    seed_shape = (128, 1, 1)
    output_shape = (1, 28, 28)

    def __init__(self, latent_dim: int):
        super().__init__(latent_dim)
        self.upsample = nn.Sequential(
            _conv_transpose_bn_relu(128, 128, stride=2, padding=0),  # 1 -> 4
            _conv_transpose_bn_relu(128, 64, stride=1, padding=0),  # 4 -> 7
            _conv_transpose_bn_relu(64, 64, stride=2, padding=1),  # 7 -> 14
            nn.ConvTranspose2d(64, 1, kernel_size=4, stride=2, padding=1),  # 14 -> 28
            nn.Sigmoid(),
        )


class CelebADecoder(_ConvDecoder):
    """Table 4 decoder: ``(..., d) -> (..., 3, 64, 64)``.

    ``Linear(d, 1024)``, ReLU, reshape to a 256-channel 2x2 map, then five stride-2 transposed
    convolutions (4x4 kernels, padding 1, each doubling the size) 2 -> 4 -> 8 -> 16 -> 32 -> 64
    with channels 128, 128, 64, 64, 3, then Sigmoid.

    Reading of Table 4 as extracted, and how it is resolved:

    * The table does not say how the 1024 units become a feature map. Five doublings must end
      at 64, so the first map is 2x2, hence 1024 / (2*2) = 256 channels. (A 1024-channel 1x1
      map would end at 32x32, a 64-channel 4x4 map at 128x128.) The published
      ``ConvDecoder(im_size=64)`` reshapes to (256, 2, 2) as well.
    * "chann: 128" is a typo of "chan: 128"; "convTranpose" means ``ConvTranspose2d``; the
      last transposed convolution has no BatchNorm/ReLU (Sigmoid directly), as listed.
    * "Output in R^{64x64x3}" is height x width x channels; torch tensors are channels first.
    """

    seed_shape = (256, 2, 2)
    output_shape = (3, 64, 64)

    def __init__(self, latent_dim: int):
        super().__init__(latent_dim)
        self.upsample = nn.Sequential(
            _conv_transpose_bn_relu(256, 128, stride=2, padding=1),  # 2 -> 4
            _conv_transpose_bn_relu(128, 128, stride=2, padding=1),  # 4 -> 8
            _conv_transpose_bn_relu(128, 64, stride=2, padding=1),  # 8 -> 16
            _conv_transpose_bn_relu(64, 64, stride=2, padding=1),  # 16 -> 32
            nn.ConvTranspose2d(64, 3, kernel_size=4, stride=2, padding=1),  # 32 -> 64
            nn.Sigmoid(),
        )
