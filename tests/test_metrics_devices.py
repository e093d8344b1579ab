"""The tensor metrics keep their inputs' device and agree with the CPU computation."""

import pytest
import torch

from pyro_vsc.metrics import (
    GradientSNR,
    active_atom_mask,
    estimate_linear_dictionary,
    feature_collapse,
    flatten_gradients,
    iwae_bound,
    multi_information,
    point_biserial_correlation,
    posterior_collapse,
    psis_khat,
    sparse_coding_objective,
    support_consistency,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_tensor_metrics_on_device(device):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=generator, dtype=torch.float64)
    dictionary = torch.randn(8, 6, generator=generator, dtype=torch.float64)
    codes = torch.randn(64, 6, generator=generator, dtype=torch.float64)
    codes = codes * (torch.rand(64, 6, generator=generator) < 0.4)
    samples = torch.randn(5, 64, 6, generator=generator)
    samples = samples * (torch.rand(5, 64, 6, generator=generator) < 0.4)
    attributes = (torch.rand(64, 3, generator=generator) < 0.5).float()
    log_weights = torch.randn(50, 64, generator=generator, dtype=torch.float64)

    def on(tensor):
        return tensor.to(device)

    pairs = [
        (
            sparse_coding_objective(on(x), on(dictionary), on(codes)),
            sparse_coding_objective(x, dictionary, codes),
        ),
        (
            support_consistency(on(samples), active_atom_mask(on(dictionary), threshold=5.0)),
            support_consistency(samples, active_atom_mask(dictionary, threshold=5.0)),
        ),
        (estimate_linear_dictionary(on(x), on(codes)), estimate_linear_dictionary(x, codes)),
        (
            point_biserial_correlation(on(codes), on(attributes)),
            point_biserial_correlation(codes, attributes),
        ),
        (iwae_bound(on(log_weights)), iwae_bound(log_weights)),
    ]
    for on_device, on_cpu in pairs:
        assert on_device.device.type == device
        assert torch.allclose(on_device.cpu(), on_cpu, atol=1e-6)
    thresholds = dict(eps=0.5, delta=0.6)
    assert feature_collapse(on(codes), **thresholds) == feature_collapse(codes, **thresholds)
    kl = codes.abs()
    assert posterior_collapse(on(kl), **thresholds) == posterior_collapse(kl, **thresholds)
    assert multi_information(on(codes)) == multi_information(codes)
    assert (psis_khat(on(log_weights)) == psis_khat(log_weights)).all()


@pytest.mark.parametrize("device", DEVICES)
def test_gradient_snr_on_device(device):
    layer = torch.nn.Linear(4, 3).to(device)
    accumulator = GradientSNR()
    for _ in range(3):
        layer.zero_grad()
        layer(torch.randn(2, 4, device=device)).pow(2).sum().backward()
        accumulator.update(flatten_gradients(layer.parameters()))
    assert accumulator.snr().device.type == device
    assert accumulator.snr().shape == (15,)
