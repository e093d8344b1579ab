"""Pieces of the DNN figures: norm-ordered dictionary entries (Figs. 20-23), the feature most
correlated with each attribute (Fig. 8), FID when available."""

import builtins

import pytest
import torch

from pyro_vsc.image_plots import dictionary_entries, plot_attribute_entries, plot_image_dictionary
from pyro_vsc.metrics.attribute_features import top_feature_per_attribute
from pyro_vsc.metrics.fid import FIDUnavailable, frechet_inception_distance


def test_dictionary_entries_in_descending_norm_at_linearly_spaced_ranks():
    norms = torch.tensor([3.0, 9.0, 1.0, 7.0, 5.0, 2.0, 8.0, 4.0, 6.0])
    dictionary = torch.randn(12, 9)
    dictionary = dictionary / dictionary.norm(dim=0) * norms
    assert dictionary_entries(dictionary, count=20).tolist() == [1, 6, 3, 8, 4, 7, 0, 5, 2]
    # three entries: the largest, the median and the smallest
    assert dictionary_entries(dictionary, count=3).tolist() == [1, 4, 2]


def test_top_feature_per_attribute_takes_the_largest_absolute_correlation_with_its_sign():
    correlations = torch.tensor([[0.1, -0.7, 0.3], [0.2, 0.1, 0.15], [0.0, 0.0, 0.0]])
    features, values = top_feature_per_attribute(correlations)
    assert features.tolist() == [1, 0, 0]
    torch.testing.assert_close(values, torch.tensor([-0.7, 0.2, 0.0]))
    with pytest.raises(ValueError, match=r"shape \(M, K\)"):
        top_feature_per_attribute(torch.zeros(3))


def test_image_figures_are_written(tmp_path):
    dictionary = torch.randn(3 * 8 * 8, 10)
    plot_image_dictionary(dictionary, (3, 8, 8), tmp_path / "rgb.png", count=6)
    plot_image_dictionary(torch.randn(28 * 28, 5), (1, 28, 28), tmp_path / "grey.png")
    plot_attribute_entries(dictionary, torch.randn(2, 10), ["Smiling", "Male"], (3, 8, 8), tmp_path / "fig8.png")
    assert all((tmp_path / name).stat().st_size > 0 for name in ("rgb.png", "grey.png", "fig8.png"))
    with pytest.raises(ValueError, match="unknown attributes"):
        plot_attribute_entries(dictionary, torch.randn(2, 10), ["Smiling", "Male"], (3, 8, 8),
                               tmp_path / "x.png", attributes=["Bald"])


def test_fid_without_torchmetrics_is_skipped_with_the_reason(monkeypatch):
    real_import = builtins.__import__

    def no_torchmetrics(name, *args, **kwargs):
        if name.startswith("torchmetrics"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchmetrics)
    images = torch.rand(2, 1, 28, 28)
    with pytest.raises(FIDUnavailable, match=r"torchmetrics\[image\] is not installed"):
        frechet_inception_distance([(images, images)], "cpu")
