"""The generative models of §4 (models/generator.py and its two programs): z ~ p(z) and
x | z ~ N(f(z), σ² I) in the data plate, with the minibatch's subsample scale."""

import math

import pytest
import torch
from pyro import poutine

from pyro_vsc.distributions import IsotropicNormal
from pyro_vsc.models.decoders import FashionMNISTDecoder
from pyro_vsc.models.generator import Generator, likelihood_variance
from pyro_vsc.models.image_generator import ImageGenerator
from pyro_vsc.models.linear import LinearSparseCoding
from pyro_vsc.models.priors import ThresholdedLaplacePrior

LATENT = 6


def _linear(prior_dim=LATENT, noise_variance=None):
    return LinearSparseCoding(ThresholdedLaplacePrior(prior_dim), data_dim=16, dict_size=LATENT,
                              noise_variance=noise_variance)


def _image(prior_dim=LATENT, noise_variance=None):
    return ImageGenerator(ThresholdedLaplacePrior(prior_dim), FashionMNISTDecoder(LATENT), noise_variance)


MODELS = {"linear": (_linear, (16,)), "image": (_image, (1, 28, 28))}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("noise_variance", [None, 0.7])
def test_the_program_is_prior_then_gaussian_likelihood_in_the_data_plate(name, noise_variance):
    build, shape = MODELS[name]
    model = build(noise_variance=noise_variance)
    assert isinstance(model, Generator) and model.latent_dim == LATENT
    data_dim = math.prod(shape)
    assert model.data_dim == data_dim
    batch, num_data = 3, 40
    x = torch.rand(batch, *shape)
    model.eval()  # BatchNorm of the image decoder: running statistics, so decoder(z) repeats
    trace = poutine.trace(model).get_trace(x, num_data, torch.arange(batch))
    z, likelihood = trace.nodes["z"]["value"], trace.nodes["x"]["fn"]
    assert z.shape == (batch, LATENT) and trace.nodes["x"]["is_observed"]
    assert isinstance(likelihood, IsotropicNormal) and likelihood.event_shape == shape
    torch.testing.assert_close(likelihood.loc, model.decoder(z))
    expected_variance = data_dim / 2 if noise_variance is None else noise_variance
    assert model.noise_scale == expected_variance ** 0.5
    torch.testing.assert_close(likelihood.scale, torch.tensor(expected_variance ** 0.5))
    for site in ("z", "x"):
        frames = trace.nodes[site]["cond_indep_stack"]
        assert [(f.name, f.size, f.full_size) for f in frames] == [("data", batch, num_data)]
        assert trace.nodes[site]["scale"] == num_data / batch


@pytest.mark.parametrize("name,message", [
    ("linear", r"^prior latent dimension 5 does not match the dictionary size 6$"),
    ("image", r"^prior latent dimension 5 does not match the decoder's latent dimension 6$"),
])
def test_a_prior_of_another_size_is_refused(name, message):
    with pytest.raises(ValueError, match=message):
        MODELS[name][0](prior_dim=5)


@pytest.mark.parametrize("name,bad,message", [
    ("linear", torch.zeros(2, 15), r"^expected data of dimension 16, got shape \(2, 15\)$"),
    ("image", torch.zeros(2, 28, 28), r"^expected images of shape \(B, 1, 28, 28\), got \(2, 28, 28\)$"),
])
def test_data_of_another_shape_is_refused(name, bad, message):
    with pytest.raises(ValueError, match=message):
        MODELS[name][0]()(bad)


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_the_likelihood_variance_must_be_positive(bad):
    assert likelihood_variance(16) == 8.0 and likelihood_variance(16, 3) == 3.0
    with pytest.raises(ValueError, match="noise variance must be > 0"):
        likelihood_variance(16, bad)
