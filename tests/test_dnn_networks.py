"""Encoders and decoders of Tables 4 (CelebA) and 5 (Fashion-MNIST), Appendix E."""

import pytest
import torch
from torch import nn

from pyro_vsc.guides.conv_encoders import CelebAEncoder, FashionMNISTEncoder
from pyro_vsc.models.decoders import CelebADecoder, FashionMNISTDecoder

# Layer rows of the tables, as (in_channels, out_channels, stride, padding) of 4x4 (transposed)
# convolutions, with the spatial size each one must produce (after resolving the typos, see the
# class docstrings).
CELEBA_ENCODER_ROWS = [(3, 64, 2, 1, 32), (64, 64, 2, 1, 16), (64, 128, 2, 1, 8), (128, 256, 2, 1, 4), (256, 256, 2, 0, 1)]
FMNIST_ENCODER_ROWS = [(1, 64, 2, 1, 14), (64, 64, 2, 1, 7), (64, 128, 1, 0, 4), (128, 128, 2, 0, 1)]
CELEBA_DECODER_ROWS = [(256, 128, 2, 1, 4), (128, 128, 2, 1, 8), (128, 64, 2, 1, 16), (64, 64, 2, 1, 32), (64, 3, 2, 1, 64)]
FMNIST_DECODER_ROWS = [(128, 128, 2, 0, 4), (128, 64, 1, 0, 7), (64, 64, 2, 1, 14), (64, 1, 2, 1, 28)]

ENCODERS = [
    (CelebAEncoder, (3, 64, 64), 256, CELEBA_ENCODER_ROWS),
    (FashionMNISTEncoder, (1, 28, 28), 128, FMNIST_ENCODER_ROWS),
]
DECODERS = [
    (CelebADecoder, 1024, (3, 64, 64), CELEBA_DECODER_ROWS),
    (FashionMNISTDecoder, 128, (1, 28, 28), FMNIST_DECODER_ROWS),
]


def _conv_stack_parameter_count(rows):
    """Weights 4*4*in*out and bias out per (transposed) conv; BatchNorm weight and bias on all but a decoder's last row."""
    return sum(16 * c_in * c_out + c_out for c_in, c_out, *_ in rows)


def _batch_norm_parameter_count(channels):
    return sum(2 * c for c in channels)


def _output_sizes_of(module, layer_type, inputs):
    """Shapes (without batch) produced by every ``layer_type`` layer of ``module`` on ``inputs``."""
    shapes = []
    hooks = [
        layer.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
        for layer in module.modules()
        if isinstance(layer, layer_type)
    ]
    module(inputs)
    for hook in hooks:
        hook.remove()
    return shapes


@pytest.mark.parametrize("encoder_class, input_shape, feature_dim, rows", ENCODERS)
def test_encoder_layers_follow_table(encoder_class, input_shape, feature_dim, rows):
    encoder = encoder_class()
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (c_in, c_out, (4, 4), (s, s), (p, p)) for c_in, c_out, s, p, _ in rows
    ]
    batch_norms = [m.num_features for m in encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    assert batch_norms == [c_out for _, c_out, *_ in rows]
    expected_shapes = [(c_out, size, size) for _, c_out, _, _, size in rows]
    assert _output_sizes_of(encoder, nn.Conv2d, torch.rand(2, *input_shape)) == expected_shapes
    assert encoder.feature_dim == feature_dim == rows[-1][1]
    assert encoder.input_shape == input_shape
    expected_count = _conv_stack_parameter_count(rows) + _batch_norm_parameter_count(batch_norms)
    assert sum(p.numel() for p in encoder.parameters()) == expected_count


@pytest.mark.parametrize("encoder_class, input_shape, feature_dim, rows", ENCODERS)
def test_encoder_maps_batches_to_nonnegative_features(encoder_class, input_shape, feature_dim, rows):
    encoder = encoder_class()
    features = encoder(torch.rand(3, *input_shape))
    assert features.shape == (3, feature_dim)
    assert (features >= 0).all()  # the stack ends with a ReLU
    # Leading dimensions are restored; in eval mode each image's features do not depend on its batch.
    encoder.eval()
    images = torch.rand(2, 3, *input_shape)
    stacked = encoder(images)
    assert stacked.shape == (2, 3, feature_dim)
    torch.testing.assert_close(stacked[1], encoder(images[1]))


@pytest.mark.parametrize("encoder_class, input_shape, feature_dim, rows", ENCODERS)
def test_encoder_rejects_wrong_image_shape(encoder_class, input_shape, feature_dim, rows):
    channels, height, width = input_shape
    with pytest.raises(ValueError, match=rf"expects images of shape \(\.\.\., {channels}, {height}, {width}\)"):
        encoder_class()(torch.rand(2, channels, height + 1, width))


@pytest.mark.parametrize("decoder_class, seed_units, output_shape, rows", DECODERS)
def test_decoder_layers_follow_table(decoder_class, seed_units, output_shape, rows):
    latent_dim = 64
    decoder = decoder_class(latent_dim)
    linear = decoder.project[0]
    assert (linear.in_features, linear.out_features) == (latent_dim, seed_units)
    convs = [m for m in decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (c_in, c_out, (4, 4), (s, s), (p, p)) for c_in, c_out, s, p, _ in rows
    ]
    batch_norms = [m.num_features for m in decoder.modules() if isinstance(m, nn.BatchNorm2d)]
    assert batch_norms == [c_out for _, c_out, *_ in rows[:-1]]  # no BatchNorm before the Sigmoid
    expected_shapes = [(c_out, size, size) for _, c_out, _, _, size in rows]
    assert _output_sizes_of(decoder, nn.ConvTranspose2d, torch.randn(2, latent_dim)) == expected_shapes
    expected_count = (
        latent_dim * seed_units
        + seed_units
        + _conv_stack_parameter_count(rows)
        + _batch_norm_parameter_count(batch_norms)
    )
    assert sum(p.numel() for p in decoder.parameters()) == expected_count


@pytest.mark.parametrize("latent_dim", [64, 512, 4096])
@pytest.mark.parametrize("decoder_class, seed_units, output_shape, rows", DECODERS)
def test_decoder_output_shapes_and_range(decoder_class, seed_units, output_shape, rows, latent_dim):
    decoder = decoder_class(latent_dim)
    assert decoder.latent_dim == latent_dim
    images = decoder(torch.randn(2, latent_dim))
    assert images.shape == (2, *output_shape)
    assert ((images > 0) & (images < 1)).all()  # Sigmoid output, unsaturated at initialisation
    # Vectorised particles: (J, B, d) -> (J, B, C, H, W).
    assert decoder(torch.randn(2, 2, latent_dim)).shape == (2, 2, *output_shape)


@pytest.mark.parametrize("decoder_class, seed_units, output_shape, rows", DECODERS)
def test_decoder_particles_match_separate_passes_in_eval_mode_only(decoder_class, seed_units, output_shape, rows):
    decoder = decoder_class(32)
    codes = torch.randn(3, 2, 32)  # J = 3 particles, B = 2 images
    decoder.eval()
    vectorised = decoder(codes)
    for j in range(3):
        torch.testing.assert_close(vectorised[j], decoder(codes[j]))
    # Training mode: BatchNorm normalises over all J*B codes at once (see pyro_vsc.models.decoders), so
    # one particle decoded alone gets different batch statistics.
    decoder.train()
    vectorised = decoder(codes)
    torch.testing.assert_close(vectorised.reshape(6, *output_shape), decoder(codes.reshape(6, 32)))
    assert not torch.allclose(vectorised[0], decoder(codes[0]), atol=1e-4)


@pytest.mark.parametrize("decoder_class, seed_units, output_shape, rows", DECODERS)
def test_decoder_rejects_bad_latent_dim_and_code_shape(decoder_class, seed_units, output_shape, rows):
    for bad in (0, -3, 2.0, True):
        with pytest.raises(ValueError, match="latent_dim must be a positive int"):
            decoder_class(bad)
    with pytest.raises(ValueError, match=r"expects codes of shape \(\.\.\., 16\)"):
        decoder_class(16)(torch.randn(2, 17))


@pytest.mark.parametrize(
    "encoder_class, decoder_class",
    [(CelebAEncoder, CelebADecoder), (FashionMNISTEncoder, FashionMNISTDecoder)],
)
def test_gradients_reach_every_parameter(encoder_class, decoder_class):
    """An autoencoder made of backbone, a linear head and decoder trains end to end."""
    encoder = encoder_class()
    head = nn.Linear(encoder.feature_dim, 16)
    decoder = decoder_class(16)
    images = torch.rand(2, *encoder.input_shape)
    loss = (decoder(head(encoder(images))) - images).pow(2).mean()
    loss.backward()
    for name, parameter in [*encoder.named_parameters(), *head.named_parameters(), *decoder.named_parameters()]:
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
