"""Global-batch BatchNorm: plain BatchNorm for one process, same parameters and state-dict keys.
(Its multi-process statistics are tested by tests/test_dnn_distributed.py, where two gloo
processes must reproduce the single-process run.)"""

import torch
from torch import nn

from pyro_vsc.train.global_batchnorm import GlobalBatchNorm, synchronise_batchnorm


def _network():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 4),
                         nn.BatchNorm1d(4))


def test_conversion_shares_parameters_and_keeps_the_state_dict_keys():
    network = _network()
    keys, weight = list(network.state_dict()), network[1].weight
    converted = synchronise_batchnorm(network, "cpu")
    assert isinstance(converted[1], GlobalBatchNorm) and isinstance(converted[5], GlobalBatchNorm)
    assert converted[1].weight is weight and list(converted.state_dict()) == keys


def test_single_process_equals_batchnorm_in_training_and_evaluation():
    reference, converted = _network(), synchronise_batchnorm(_network(), "cpu")
    x = torch.randn(5, 2, 6, 6)
    for mode in ("train", "eval"):
        getattr(reference, mode)()
        getattr(converted, mode)()
        torch.testing.assert_close(converted(x), reference(x), rtol=0, atol=0)
    torch.testing.assert_close(converted.state_dict(), reference.state_dict(), rtol=0, atol=0)
