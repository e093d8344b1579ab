"""An estimator becomes a run folder and a run folder becomes an estimator (issue 13 §4)."""

import pickle

import numpy as np
import pyro
import pytest
import torch

import pyro_vsc
from pyro_vsc import VariationalSparseCoder
from pyro_vsc.train.checkpoint import load
from tests.test_estimator import assert_same_estimator, fitted, signals  # noqa: F401  (fixtures)
from tests.test_load_run import linear_run  # noqa: F401  (the fixture: a 2-epoch run of the command)


def test_a_saved_estimator_comes_back_and_continues_bit_for_bit(fitted, signals, tmp_path):  # noqa: F811
    folder = fitted.save_run(tmp_path / "coder")
    assert (folder / "checkpoint.pt").is_file() and (folder / "config.yaml").is_file()
    load(folder / "checkpoint.pt")  # weights_only=True: nothing in it runs code
    back = VariationalSparseCoder.from_run(folder, device="cpu")
    assert back.get_params() == {**fitted.get_params(), "device": "cpu"}
    np.testing.assert_array_equal(back.components_, fitted.components_)
    np.testing.assert_array_equal(back.mean_, fitted.mean_)
    assert_same_estimator(back, fitted, signals)


def test_load_run_reads_a_saved_estimator(fitted, signals, tmp_path):  # noqa: F811
    trained = pyro_vsc.load_run(fitted.save_run(tmp_path / "coder"))
    scaled = (signals - fitted.mean_) / fitted.scale_
    pyro.set_rng_seed(0)
    z = trained.encode(scaled)
    assert z.shape == (len(signals), 12) and bool((z == 0).any())
    np.testing.assert_allclose(trained.dictionary.numpy().T * fitted.scale_, fitted.components_, rtol=1e-6)
    with pytest.raises(ValueError, match="its data are not stored with it"):
        trained.load_data()


def test_a_command_run_becomes_a_fitted_estimator(linear_run):  # noqa: F811
    trained = pyro_vsc.load_run(linear_run)
    coder = VariationalSparseCoder.from_run(linear_run, device="cpu")
    config = trained.config
    assert coder.n_components == config.model.latent_dim and coder.guide == "thresh_gamma"
    assert coder.num_particles == config.elbo.num_particles and coder.random_state == config.seed
    assert coder.standardize is False and coder.scale_ == 1.0 and not coder.mean_.any()
    np.testing.assert_array_equal(coder.components_, trained.dictionary.numpy().T)
    x = trained.load_data().val[:40].numpy()
    codes = coder.transform(x)
    assert codes.shape == (40, config.model.latent_dim) and (codes == 0).any()
    # the same network and selection rule as load_run's encode, on the estimator's own stream
    pyro.set_rng_seed(coder.seed_)
    torch.testing.assert_close(torch.from_numpy(codes), trained.encode(x))
    assert np.isfinite(coder.score(x))


def test_a_finished_command_run_is_not_continued_past_its_schedules(linear_run, tmp_path):  # noqa: F811
    coder = VariationalSparseCoder.from_run(linear_run, device="cpu")
    saved = VariationalSparseCoder.from_run(coder.save_run(tmp_path / "coder"), device="cpu")
    x = np.zeros((10, coder.n_features_in_), dtype=np.float32)
    for estimator in (coder, pickle.loads(pickle.dumps(coder)), saved):  # the refusal travels with it
        with pytest.raises(ValueError, match=r"finished its 2 planned epochs.*resume=<folder> epochs=<more>"):
            estimator.partial_fit(x)


def test_a_folder_without_a_run_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} holds no trained run"):
        VariationalSparseCoder.from_run(tmp_path)
