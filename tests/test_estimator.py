"""The scikit-learn estimator (:class:`~pyro_vsc.VariationalSparseCoder`): conventions, codes
with exact zeros, continued training, scaling, scores, pickling, and that it learns."""

import logging
import math
import os
import pickle
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pyro_vsc import VariationalSparseCoder
from pyro_vsc.data import synthetic_split
from pyro_vsc.distributions import laplace_kl
from pyro_vsc.metrics import recovered_fraction
from pyro_vsc.train.callbacks import Callback
from pyro_vsc.train.interruption import TrainingInterrupted

#: A small network and a short fit: seconds, for the tests of conventions.
SMALL = dict(n_components=12, n_steps=200, batch_size=50, hidden_layer_sizes=(32,), device="cpu")


@pytest.fixture(scope="module")
def signals():
    """500 signals of dimension 8 from a random 12-atom dictionary, 2 non-zeros each, as a
    user has them: not centred, not of unit scale."""
    data = synthetic_split(dim=8, size=12, num_train=500, num_val=1, nonzeros=2, scale=1.0, seed=3)
    return 5.0 * data.train.double().numpy() + 2.0


@pytest.fixture(scope="module")
def fitted(signals):
    return VariationalSparseCoder(**SMALL, random_state=0).fit(signals)


def test_importing_the_library_leaves_scikit_learn_unimported():
    code = ("import sys, pyro_vsc, pyro_vsc.estimator, pyro_vsc.estimator.training, pyro_vsc.run; "
            "assert 'sklearn' not in sys.modules, 'scikit-learn was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_scikit_learn_the_estimator_says_how_to_install_it():
    code = ("import sys; sys.modules['sklearn'] = None; import pyro_vsc\n"
            "try:\n    pyro_vsc.VariationalSparseCoder\nexcept ImportError as error:\n    print(error)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ("pyro_vsc.VariationalSparseCoder needs scikit-learn >= 1.6: "
                                     "pip install 'pyro-vsc[sklearn]'")


def test_fitted_attributes_have_dictionary_learnings_shapes(fitted, signals):
    assert fitted.components_.shape == (12, 8) and fitted.components_.dtype == np.float32
    assert fitted.n_features_in_ == 8
    assert fitted.mean_.shape == (8,) and fitted.scale_ > 0
    steps_per_epoch = 500 // 50
    assert fitted.n_iter_ == math.ceil(200 / steps_per_epoch) == len(fitted.history_)
    assert fitted.n_steps_ == fitted.n_iter_ * steps_per_epoch
    # components_ are the model's atoms in the units of X
    atoms = fitted.model_.dictionary.detach().numpy().T
    np.testing.assert_allclose(fitted.components_, fitted.scale_ * atoms, rtol=1e-6)
    assert list(fitted.get_feature_names_out()) == [f"variationalsparsecoder{k}" for k in range(12)]


def test_codes_have_exact_zeros_and_generate_the_data(fitted, signals):
    codes = fitted.transform(signals)
    assert codes.shape == (500, 12) and codes.dtype == np.float32
    zeros = (codes == 0).mean()
    assert 0.3 < zeros < 1.0  # exact zeros (a continuous law has none), and not only zeros
    reconstruction = fitted.inverse_transform(codes)
    np.testing.assert_allclose(reconstruction, codes @ fitted.components_ + fitted.mean_, rtol=1e-6)
    # better than the mean alone (0.87 of its error measured): the codes explain part of the signal
    error = ((reconstruction - signals) ** 2).mean()
    assert error < ((signals - signals.mean(0)) ** 2).mean()


def test_transform_repeats_and_leaves_the_global_random_state_alone(fitted, signals):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    first = fitted.transform(signals)
    np.testing.assert_array_equal(first, fitted.transform(signals))
    assert torch.equal(torch.rand(3), expected)


def test_fit_is_a_function_of_random_state(signals, caplog):
    torch.manual_seed(1)  # the caller's generator plays no part, and is left as it was
    expected = torch.rand(3)
    torch.manual_seed(1)
    with caplog.at_level(logging.WARNING):
        first = VariationalSparseCoder(**SMALL, random_state=7).fit(signals)
    assert torch.equal(torch.rand(3), expected)
    assert not caplog.records  # nothing to report: recorded and replayed, no data file to look up
    np.random.seed(99)
    second = VariationalSparseCoder(**SMALL, random_state=7).fit(signals)
    other = VariationalSparseCoder(**SMALL, random_state=8).fit(signals)
    np.testing.assert_array_equal(first.components_, second.components_)
    np.testing.assert_array_equal(first.transform(signals), second.transform(signals))
    assert not np.array_equal(first.components_, other.components_)
    assert first.seed_ == 7


def test_partial_fit_epochs_add_up_to_fit(signals):
    """fit(X) trains E epochs; E calls of partial_fit(X) take the same steps with the same
    optimizer states, schedules, warm-ups and noise: the same numbers, bit for bit."""
    options = dict(SMALL, n_steps=30)
    whole = VariationalSparseCoder(**options, random_state=0).fit(signals)
    parts = VariationalSparseCoder(**options, random_state=0)
    for _ in range(whole.n_iter_):
        parts.partial_fit(signals)
    assert parts.n_iter_ == whole.n_iter_ == 3 and parts.n_steps_ == whole.n_steps_
    np.testing.assert_array_equal(parts.components_, whole.components_)
    np.testing.assert_array_equal(parts.transform(signals), whole.transform(signals))
    # and training goes on past the planned length, from where it is
    whole.partial_fit(signals[:200])
    assert whole.n_iter_ == 4 and whole.n_steps_ == 30 + 200 // 50
    assert not np.array_equal(whole.components_, parts.components_)


def assert_same_estimator(copy, fitted, signals):
    """``copy`` transforms and scores as ``fitted`` does, and one more epoch of both gives the
    same dictionary (``fitted`` itself is left untouched)."""
    np.testing.assert_array_equal(copy.transform(signals), fitted.transform(signals))
    assert copy.score(signals) == fitted.score(signals)
    original = pickle.loads(pickle.dumps(fitted))
    original.partial_fit(signals)
    copy.partial_fit(signals)
    np.testing.assert_array_equal(copy.components_, original.components_)
    assert copy.n_steps_ == original.n_steps_


def test_pickled_estimators_transform_and_continue_the_same(fitted, signals):
    assert_same_estimator(pickle.loads(pickle.dumps(fitted)), fitted, signals)


def test_it_clones_sets_params_and_runs_in_a_pipeline(signals):
    estimator = VariationalSparseCoder(**SMALL, random_state=0)
    estimator.set_params(n_components=5, kl_weight=0.05)
    twin = clone(estimator)
    assert twin.get_params() == estimator.get_params() and not hasattr(twin, "components_")
    pipeline = make_pipeline(StandardScaler(), twin)
    codes = pipeline.fit_transform(signals)
    assert codes.shape == (500, 5) and (codes == 0).any()
    assert pipeline[-1].components_.shape == (5, 8)
    assert pipeline.score(signals) == pipeline[-1].score(pipeline[0].transform(signals))
    assert pipeline.get_feature_names_out()[0] == "variationalsparsecoder0"


def test_standardising_makes_the_fit_independent_of_the_datas_units(signals):
    """Standardised data are the same whatever the units of X, so the fit is too; components_,
    mean_ and score are in the units of X."""
    options = dict(SMALL, n_steps=20)
    first = VariationalSparseCoder(**options, random_state=0).fit(signals)
    second = VariationalSparseCoder(**options, random_state=0).fit(10.0 * signals - 3.0)
    assert second.scale_ == pytest.approx(10.0 * first.scale_, rel=1e-12)
    np.testing.assert_allclose(second.mean_, 10.0 * first.mean_ - 3.0, rtol=1e-5)
    np.testing.assert_allclose(second.components_, 10.0 * first.components_, rtol=1e-3, atol=1e-5)
    # the Jacobian of x -> 10 x - 3 in the 8-dimensional density
    assert second.score(10.0 * signals - 3.0) == pytest.approx(first.score(signals) - 8 * math.log(10.0), rel=1e-4)


def test_without_standardising_x_is_used_as_given(signals):
    estimator = VariationalSparseCoder(**SMALL, random_state=0, standardize=False).fit(signals)
    assert estimator.scale_ == 1.0 and not estimator.mean_.any()
    atoms = estimator.model_.dictionary.detach().numpy().T
    np.testing.assert_array_equal(estimator.components_, atoms)


def test_score_is_the_unweighted_elbo_at_the_codes(fitted, signals):
    """score = mean of log N(x; A z, σ² = D/2) - KL(q(s|x) || p(s)) (the base Laplace KL of the
    thresholded guide, eq. 5 with β = 1), computed here from the guide's parameters, minus the
    standardisation's Jacobian D log(scale)."""
    codes = torch.from_numpy(fitted.transform(signals))
    x = torch.from_numpy(((signals - fitted.mean_) / fitted.scale_).astype(np.float32))
    model, guide = fitted.model_, fitted.guide_
    with torch.no_grad():
        likelihood = torch.distributions.Normal(model.decoder(codes), model.noise_variance ** 0.5)
        params = guide.encoder(x)
        kl = laplace_kl(params["loc"], params["log_scale"].exp(), torch.zeros(()), model.prior.scale)
    elbo = likelihood.log_prob(x).sum(-1) - kl.sum(-1)
    expected = float(elbo.double().mean()) - 8 * math.log(fitted.scale_)
    assert fitted.score(signals) == pytest.approx(expected, rel=1e-5)
    # the training objective weighs the KL by β = 1e-2: its ELBO is higher by 0.99 KL
    assert fitted.score(signals) < expected + 0.99 * float(kl.sum(-1).mean()) - 1.0


@pytest.mark.parametrize("guide", ["thresh_gamma", "fista"])
def test_other_methods_fit_transform_and_score(guide, signals):
    estimator = VariationalSparseCoder(**dict(SMALL, n_steps=20), guide=guide, random_state=0)
    codes = estimator.fit_transform(signals)
    assert codes.shape == (500, 12) and (codes == 0).any()
    assert math.isfinite(estimator.score(signals))


@pytest.mark.parametrize("parameter, value, message", [
    ("n_components", 0, "n_components must be None or an integer >= 1, got 0"),
    ("guide", "thresholded", "guide must be one of fista, gaussian, laplace, spike_slab, thresh, "
                             "thresh_gamma, thresh_gauss, thresh_gauss_gamma; got 'thresholded'"),
    ("objective", "elbo", "objective must be one of max, avg, avg_pyro, iwae; got 'elbo'"),
    ("num_particles", 0, "num_particles must be an integer >= 1, got 0"),
    ("kl_weight", -1.0, "kl_weight must be a number >= 0, got -1.0"),
    ("n_steps", 2.5, "n_steps must be an integer >= 1, got 2.5"),
    ("batch_size", 0, "batch_size must be an integer >= 1, got 0"),
    ("encoder_learning_rate", 0.0, "encoder_learning_rate must be a number > 0, got 0.0"),
    ("dictionary_learning_rate", float("nan"), "dictionary_learning_rate must be a number > 0, got nan"),
    ("hidden_layer_sizes", (32, 0), "hidden_layer_sizes must be a tuple of integers >= 1, got (32, 0)"),
    ("standardize", "yes", "standardize must be True or False, got 'yes'"),
    ("overrides", "prior.threshold=0.3", "overrides must be a tuple of strings such as "
                                         "'prior.threshold=0.3', got 'prior.threshold=0.3'"),
    ("overrides", ("prior.threshold=-1",), "prior.threshold must be a number > 0, got -1"),
    ("overrides", ("model.data_dim=9",), "the data have 8 features but the overrides set model.data_dim=9; "
                                         "leave model.data_dim out"),
    ("device", "tpu", "device=tpu is not a device name; use auto, cpu, cuda or cuda:N"),
    ("progress", 1, "progress must be True or False, got 1"),
    ("num_particles", 2, None),  # with guide=fista below
])
def test_bad_hyper_parameters_are_refused_in_one_line_at_fit(parameter, value, message, signals):
    options = dict(SMALL, random_state=0, **{parameter: value})
    if message is None:
        options["guide"], message = "fista", "guide=fista takes at most 1 particle(s), got num_particles=2"
    estimator = VariationalSparseCoder(**options)  # scikit-learn: nothing is checked before fit
    with pytest.raises(ValueError) as error:
        estimator.fit(signals)
    assert str(error.value) == message
    assert not hasattr(estimator, "components_")


@pytest.mark.parametrize("data, message", [
    (np.ones((20, 4)), "every feature of X is constant; standardize=True cannot scale it (pass "
                       "standardize=False to use X as given)"),
    (np.ones((1, 4)), "standardize=True estimates the data's scale from at least 2 samples; got 1 "
                      "sample (pass standardize=False to use X as given)"),
])
def test_data_it_cannot_standardise_are_refused(data, message):
    with pytest.raises(ValueError) as error:
        VariationalSparseCoder(**SMALL).fit(data)
    assert str(error.value) == message


class SignalAtStep(Callback):
    """Sends this process ``SIGINT`` at the progress interval after ``step`` steps (Ctrl-C)."""

    def __init__(self, step):
        self.step = step

    def on_log(self, trainer):
        if trainer.position.step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_stops_after_the_step_and_keeps_what_was_learned(signals):
    overrides = ("log_every=1", "+callbacks.stop._target_=tests.test_estimator.SignalAtStep",
                 "+callbacks.stop.step=13")
    estimator = VariationalSparseCoder(**SMALL, random_state=0, overrides=overrides)
    with pytest.raises(TrainingInterrupted) as error:
        estimator.fit(signals)
    assert str(error.value) == ("stopped by SIGINT after step 13 (epoch 2, batch 3 of 10); no "
                                "checkpoint was written (a run without a folder)")
    assert estimator.n_steps_ == 13 and estimator.transform(signals).shape == (500, 12)


def test_its_defaults_learn_a_known_dictionary():
    """Known answer: signals from a random 16 × 16 dictionary with 5 % (1 of 16) non-zero
    Laplace(1) codes, as a user has them (no scaling); the defaults with 3,000 steps recover most
    atoms (|cos| > 0.9 with some learned atom): 62.5 % measured on this seed (68.8 % on seed 12),
    none by chance. (benchmarks/estimator_vs_sklearn.py measures the 64 × 64 case of the README.)"""
    data = synthetic_split(dim=16, size=16, num_train=4000, num_val=1, nonzeros=0.05, scale=1.0, seed=11)
    x = data.train.numpy()
    estimator = VariationalSparseCoder(n_components=16, n_steps=3000, random_state=0, device="cpu").fit(x)
    assert recovered_fraction(torch.randn(16, 16), data.dictionary) == 0.0
    assert recovered_fraction(torch.from_numpy(estimator.components_.T.copy()), data.dictionary) >= 0.5
    assert (estimator.transform(x) != 0).mean() < 0.2  # sparse: 15 % measured, the data 6 %


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_it_fits_on_cuda_and_unpickles_there(signals):
    estimator = VariationalSparseCoder(**SMALL, random_state=0, device="cuda").fit(signals)
    assert next(estimator.model_.parameters()).is_cuda
    codes = estimator.transform(signals)
    assert codes.shape == (500, 12) and (codes == 0).any() and isinstance(codes, np.ndarray)
    copy = pickle.loads(pickle.dumps(estimator))
    np.testing.assert_array_equal(copy.transform(signals), codes)
