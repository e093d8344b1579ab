r"""A scikit-learn estimator of variational sparse coding (§3, Algorithm 1) on your own vectors.

``VariationalSparseCoder`` learns a dictionary :math:`A \in \mathbb R^{D \times K}` and an
amortized inference network for the linear generator of §4.1, :math:`x = Az + \varepsilon`,
with the conventions of scikit-learn's ``DictionaryLearning`` and
``MiniBatchDictionaryLearning``. It trains with the command's code: its hyper-parameters become
overrides of the Hydra config of ``python -m pyro_vsc.run`` (README, "Use it on your own data"),
and :class:`~pyro_vsc.estimator.training.VectorTraining` builds and trains what that config
describes. scikit-learn is needed for this module only (``pip install 'pyro-vsc[sklearn]'``).
"""

import math
import numbers
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

try:
    from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as error:  # pragma: no cover - exercised in a subprocess without scikit-learn
    raise ImportError("pyro_vsc.VariationalSparseCoder needs scikit-learn >= 1.6: "
                      "pip install 'pyro-vsc[sklearn]'") from error

from pyro_vsc.config import compose_config
from pyro_vsc.resolvers import register_resolvers
from pyro_vsc.train.checkpoint import (CHECKPOINT_NAME, CONFIG_NAME, load, prepare_run_folder,
                                       save_atomic, write_text_atomic)
from pyro_vsc.config_checks import check_config
from pyro_vsc.elbo.objectives import OBJECTIVES
from pyro_vsc.devices import select_device
from pyro_vsc.trained import resolve_checkpoint
from pyro_vsc.train.interruption import TrainingInterrupted

from .training import VectorTraining

#: The encoder's optimizer of the estimator: Adam at a constant learning rate (the command's is
#: SGD + Nesterov with a one-cycle schedule over a planned length, Appendix D).
ENCODER_ADAM = (
    "model.optim.guide.optimizer._target_=torch.optim.Adam",
    "~model.optim.guide.optimizer.momentum",
    "~model.optim.guide.optimizer.nesterov",
    "model.optim.guide.scheduler._target_=pyro_vsc.train.optim.constant",
    "~model.optim.guide.scheduler.pct_start",
    "~model.optim.guide.scheduler.div_factor",
    "~model.optim.guide.scheduler.final_div_factor",
)

#: Where ``cfg.data`` would name a data set: the vectors come from ``fit``.
IN_MEMORY_DATA = {"source": "vectors passed to VariationalSparseCoder.fit/partial_fit"}


def guide_names():
    """The ``guide=`` choices of the command (``pyro_vsc/conf/guide/*.yaml``)."""
    folder = resources.files("pyro_vsc.conf") / "guide"
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def _is_int(value, minimum):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


def _is_positive(value, allow_zero=False):
    return (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            and (value >= 0 if allow_zero else value > 0))


class VariationalSparseCoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    r"""Variational sparse coding with learned thresholding (Fallah & Rozell, 2022).

    Learns a dictionary and an inference network :math:`q_\phi(z|x)` whose codes have exact
    zeros (thresholded samples, eq. 2, trained through the threshold with the straight-through
    estimator, eq. 4) by maximising the max-over-particles ELBO (eq. 9) of the linear generator
    :math:`x = Az + \varepsilon`, :math:`\varepsilon \sim \mathcal N(0, \tfrac D2 I)` (§4.1).

    The values are the paper's (Appendix D) except where short fits on any data need otherwise;
    each deviation is named below. ``overrides`` reaches every other setting of the command.

    :param n_components: K, the number of atoms (None: ``n_features``, a complete dictionary
        as the paper's 256 × 256).
    :param str guide: the method, a ``guide=`` of the command: ``thresh`` (default:
        Thresholded Laplacian of Table 1, λ₀ = 0.25), ``thresh_gamma`` (the paper's
        Laplacian + Gamma threshold, the command's default; its Gamma sampling makes a step
        about 1.6-1.7× as long at J = 1, README "Performance"), ``thresh_gauss``, ``thresh_gauss_gamma``, ``laplace``, ``gaussian``,
        ``spike_slab``, ``fista``.
    :param str objective: ``max`` (eq. 9), ``avg`` (eq. 7), ``avg_pyro`` (eq. 7 by Pyro's stock ELBOs) or ``iwae``, as ``elbo=``.
    :param int num_particles: J, the particles of the objective and of the code selection
        (Appendix D: 1 and 20).
    :param float kl_weight: β of eq. (5) (β₂ = β/10 for a Gamma threshold), Appendix D: 1e-2.
    :param int n_steps: training length of :meth:`fit`: the whole epochs (passes over ``X`` in
        minibatches) that make at least this many steps, ``ceil(n_steps / (n_samples //
        batch_size))``. The schedules are laid out for that many epochs, as the command's are
        for ``epochs`` (the dictionary's 0.99-per-epoch decay and the warm-ups of 300 epochs
        compressed into them). Default 6000 (the paper trains 300 epochs of 800 steps).
    :param int batch_size: minibatch size (Appendix D: 100); all samples if there are fewer.
    :param float encoder_learning_rate: Adam's constant learning rate for the inference network.
        Deviates from Appendix D (SGD + Nesterov at 1e-2 with a one-cycle schedule over 300
        epochs), which does not reach a useful encoder within a few thousand steps and cannot
        be continued by :meth:`partial_fit` past its planned end.
    :param float dictionary_learning_rate: η of the dictionary's gradient step on eq. (10)
        (Appendix D: 0.5, decayed by 0.99 per paper epoch).
    :param tuple hidden_layer_sizes: the inference network's hidden widths before its heads.
        Default (256, 256): a step takes a quarter of the time of Table 3's (512, 1024, 512,
        256) on 64-dimensional data; pass Table 3's for the paper's network.
    :param bool standardize: centre every feature on its mean and divide all features by one
        scale, the root mean square over features of their standard deviations, so that the data
        have the unit variance per coordinate that the model's constants assume (σ² = D/2,
        prior scale 0.1, λ₀ = 0.25: Appendix D's standardised patches). One scale for all
        features keeps the atoms' directions: :attr:`components_` are directions of your data.
        ``False``: ``X`` is used as given (as ``DictionaryLearning`` does; the constants then
        expect unit variance). For a per-feature scaling, put a ``StandardScaler`` before this
        estimator in a ``Pipeline``.
    :param overrides: further overrides of the command's Hydra config, applied after the ones
        these parameters make, e.g. ``("prior.threshold=0.3", "elbo.analytic_kl=false")``.
        ``model=`` must stay ``linear``.
    :param random_state: seed (int) of the initial networks, the minibatch order and the Monte
        Carlo noise of training and of :meth:`transform`; with an int, :meth:`fit` runs as
        ``python -m pyro_vsc.run seed=<int>`` would. None: a seed drawn from NumPy's global
        generator at each :meth:`fit`.
    :param str device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
    :param bool progress: show a progress bar per epoch (tqdm).

    Attributes (after :meth:`fit` or :meth:`partial_fit`):

    :ivar components_: ``(n_components, n_features)`` float32, the atoms in the units of ``X``:
        row k is ``scale_`` × the k-th column of A, so that ``X ≈ transform(X) @ components_ +
        mean_``. Not normalised (the dictionary's norm is bounded by the Frobenius penalty κ of
        eq. 11, not fixed).
    :ivar mean_: ``(n_features,)`` the subtracted feature means (zeros without standardising).
    :ivar scale_: the data's scale (1.0 without standardising).
    :ivar n_iter_: epochs trained in total (``fit`` and ``partial_fit`` calls).
    :ivar n_steps_: minibatch steps trained in total.
    :ivar n_features_in_: D.
    :ivar history_: one record per epoch (``train_loss``, the per-data-point negative ELBO
        of the objective, learning rates, seconds).
    :ivar model_: the Pyro model module (:class:`~pyro_vsc.models.linear.LinearSparseCoding`).
    :ivar guide_: the Pyro guide module.
    """

    def __init__(self, n_components=None, *, guide="thresh", objective="max", num_particles=1,
                 kl_weight=1e-2, n_steps=12000, batch_size=100, encoder_learning_rate=3e-4,
                 dictionary_learning_rate=0.2, hidden_layer_sizes=(256, 256), standardize=True,
                 overrides=(), random_state=None, device="auto", progress=False):
        self.n_components = n_components
        self.guide = guide
        self.objective = objective
        self.num_particles = num_particles
        self.kl_weight = kl_weight
        self.n_steps = n_steps
        self.batch_size = batch_size
        self.encoder_learning_rate = encoder_learning_rate
        self.dictionary_learning_rate = dictionary_learning_rate
        self.hidden_layer_sizes = hidden_layer_sizes
        self.standardize = standardize
        self.overrides = overrides
        self.random_state = random_state
        self.device = device
        self.progress = progress

    # --- scikit-learn protocol ------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # the model computes in float32
        return tags

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    # --- parameters ---------------------------------------------------------------------------
    def _check_params(self):
        """One-line ``ValueError`` for the first invalid hyper-parameter."""
        guides = guide_names()
        checks = (
            (self.n_components is None or _is_int(self.n_components, 1),
             f"n_components must be None or an integer >= 1, got {self.n_components!r}"),
            (self.guide in guides, f"guide must be one of {', '.join(guides)}; got {self.guide!r}"),
            (self.objective in OBJECTIVES,
             f"objective must be one of {', '.join(OBJECTIVES)}; got {self.objective!r}"),
            (_is_int(self.num_particles, 1), f"num_particles must be an integer >= 1, got {self.num_particles!r}"),
            (_is_positive(self.kl_weight, allow_zero=True), f"kl_weight must be a number >= 0, got {self.kl_weight!r}"),
            (_is_int(self.n_steps, 1), f"n_steps must be an integer >= 1, got {self.n_steps!r}"),
            (_is_int(self.batch_size, 1), f"batch_size must be an integer >= 1, got {self.batch_size!r}"),
            (_is_positive(self.encoder_learning_rate),
             f"encoder_learning_rate must be a number > 0, got {self.encoder_learning_rate!r}"),
            (_is_positive(self.dictionary_learning_rate),
             f"dictionary_learning_rate must be a number > 0, got {self.dictionary_learning_rate!r}"),
            (isinstance(self.hidden_layer_sizes, (tuple, list))
             and all(_is_int(width, 1) for width in self.hidden_layer_sizes),
             f"hidden_layer_sizes must be a tuple of integers >= 1, got {self.hidden_layer_sizes!r}"),
            (isinstance(self.standardize, (bool, np.bool_)), f"standardize must be True or False, got {self.standardize!r}"),
            (isinstance(self.overrides, (tuple, list)) and all(isinstance(o, str) for o in self.overrides),
             f"overrides must be a tuple of strings such as 'prior.threshold=0.3', got {self.overrides!r}"),
            (isinstance(self.device, str), f"device must be a string (auto, cpu, cuda, cuda:N), got {self.device!r}"),
            (isinstance(self.progress, (bool, np.bool_)), f"progress must be True or False, got {self.progress!r}"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def _config(self, n_features, epochs, seed):
        """The command's config for these hyper-parameters (their overrides, then ``overrides``)."""
        hidden = ",".join(str(int(width)) for width in self.hidden_layer_sizes)
        n_components = n_features if self.n_components is None else int(self.n_components)
        cfg = compose_config([
            f"guide={self.guide}", f"elbo={self.objective}",
            f"elbo.num_particles={int(self.num_particles)}", f"kl_weight={float(self.kl_weight)}",
            f"batch_size={int(self.batch_size)}", f"epochs={int(epochs)}", f"seed={int(seed)}",
            f"model.data_dim={int(n_features)}", f"model.latent_dim={n_components}",
            f"model.backbone.hidden=[{hidden}]",
            f"model.optim.model.optimizer.lr={float(self.dictionary_learning_rate)}",
            *ENCODER_ADAM, f"model.optim.guide.optimizer.lr={float(self.encoder_learning_rate)}",
            f"progress={bool(self.progress)}", f"device={self.device}", *self.overrides,
        ])
        OmegaConf.update(cfg, "data", IN_MEMORY_DATA, merge=False)
        check_config(cfg)
        if int(cfg.model.data_dim) != n_features:
            raise ValueError(f"the data have {n_features} features but the overrides set "
                             f"model.data_dim={cfg.model.data_dim}; leave model.data_dim out")
        max_particles = OmegaConf.select(cfg, "max_particles")
        if max_particles is not None and cfg.elbo.num_particles > max_particles:
            raise ValueError(f"guide={self.guide} takes at most {max_particles} particle(s), got "
                             f"num_particles={cfg.elbo.num_particles}")
        return cfg

    # --- data ---------------------------------------------------------------------------------
    def _validate(self, X, reset):
        X = validate_data(self, X, reset=reset, dtype=(np.float64, np.float32))
        return X

    def _scaling(self, X):
        """``(mean_, scale_)`` of ``X``: see ``standardize``."""
        if not self.standardize:
            return np.zeros(X.shape[1], dtype=np.float32), 1.0
        if X.shape[0] < 2:
            raise ValueError(f"standardize=True estimates the data's scale from at least 2 samples; "
                             f"got {X.shape[0]} sample (pass standardize=False to use X as given)")
        mean = X.mean(axis=0, dtype=np.float64)
        scale = float(np.sqrt(((X - mean) ** 2).mean(dtype=np.float64)))
        if not scale > 0:
            raise ValueError("every feature of X is constant; standardize=True cannot scale it "
                             "(pass standardize=False to use X as given)")
        return mean.astype(np.float32), scale

    def _vectors(self, X):
        """``X`` standardised as in training, as a float32 tensor ``(n_samples, n_features)``."""
        scaled = (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_
        return torch.from_numpy(scaled.astype(np.float32))

    # --- training -----------------------------------------------------------------------------
    def _start(self, X):
        """Chooses the seed and the scaling from ``X`` and builds an untrained model and guide;
        returns the planned epochs."""
        self._check_params()
        random_state = self.random_state
        seed = (int(random_state) if _is_int(random_state, 0)
                else int(check_random_state(random_state).randint(np.iinfo(np.int32).max)))
        mean, scale = self._scaling(X)
        steps_per_epoch = X.shape[0] // min(int(self.batch_size), X.shape[0])
        epochs = max(1, math.ceil(int(self.n_steps) / steps_per_epoch))
        cfg = self._config(X.shape[1], epochs, seed)
        training = VectorTraining(cfg, select_device(self.device), seed, steps_per_epoch)
        self._forget()
        self._training, self.seed_, self.mean_, self.scale_ = training, seed, mean, scale
        return epochs

    def _forget(self):
        """Back to unfitted (before a new fit, or after training failed)."""
        for name in ("_training", "_finished_run", "seed_", "mean_", "scale_", "components_", "n_iter_",
                     "n_steps_"):
            self.__dict__.pop(name, None)

    def _train(self, X, epochs):
        """Trains ``epochs`` epochs on ``X``. After an error (divergence, a bad override found by
        the first step) the estimator is unfitted; after Ctrl-C or SIGTERM it keeps the steps
        done and :class:`~pyro_vsc.train.interruption.TrainingInterrupted` is raised."""
        try:
            self._training.train(self._vectors(X), epochs)
        except TrainingInterrupted:
            self._publish()
            raise
        except BaseException:
            self._forget()
            raise
        self._publish()
        return self

    def _publish(self):
        """The fitted attributes from the training state."""
        training = self._training
        self.components_ = (self.scale_ * training.dictionary.T).cpu().numpy().astype(np.float32)
        self.n_iter_ = training.trainer.position.epoch
        self.n_steps_ = training.trainer.position.step

    def fit(self, X, y=None):
        """Learns the dictionary and the inference network from ``X`` ``(n_samples,
        n_features)``, from scratch; returns ``self``."""
        X = self._validate(X, reset=True)
        epochs = self._start(X)
        return self._train(X, epochs)

    def partial_fit(self, X, y=None):
        """Trains one more epoch on ``X`` (its minibatches), continuing the optimizer states,
        schedules, warm-ups and random stream; returns ``self``.

        The first call on an unfitted estimator sets the scaling (``mean_``, ``scale_``) from
        its ``X`` and lays the schedules out as :meth:`fit` on that ``X`` would, so that
        ``E = ceil(n_steps / (n_samples // batch_size))`` calls on the same ``X`` give what
        ``fit(X)`` gives; later calls continue the schedules past that point.
        """
        first = not hasattr(self, "_training")
        if not first and getattr(self, "_finished_run", None):
            raise ValueError(self._finished_run)
        X = self._validate(X, reset=first)
        if first:
            self._start(X)
        return self._train(X, 1)

    # --- using the fitted model ---------------------------------------------------------------
    def _codes(self, X):
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        return self._training.codes(self._vectors(X), self.seed_)

    def transform(self, X):
        """Sparse codes ``(n_samples, n_components)`` float32 with exact zeros.

        For each sample, J codes are drawn from the inference network (J = ``num_particles``)
        and the one with the highest ELBO (eq. 9, with the training's KL weights) is returned:
        the codes the paper validates with. They are samples: the same estimator returns the
        same codes for the same ``X`` (drawn from a stream seeded with ``seed_``, without
        touching the training's), but a sample's code depends on its row in ``X``.
        """
        return self._codes(X)["z"].cpu().numpy()

    def inverse_transform(self, X):
        """Data ``(n_samples, n_features)`` generated by codes: ``X @ components_ + mean_``."""
        check_is_fitted(self)
        codes = np.asarray(X, dtype=np.float32)
        if codes.ndim != 2 or codes.shape[1] != self.components_.shape[0]:
            raise ValueError(f"inverse_transform expects codes of shape (n_samples, "
                             f"{self.components_.shape[0]}), got {codes.shape}")
        return codes @ self.components_ + self.mean_

    def score(self, X, y=None):
        r"""The mean ELBO per sample of ``X`` in nats (higher is better).

        :math:`\log p(x \mid z) - \mathrm{KL}(q(z \mid x) \,\|\, p(z))` (eqs. 1, 5 with β = 1:
        unweighted, so a lower bound of :math:`\log p(x)` for J = 1) at the codes
        :meth:`transform` returns, with the model's Gaussian likelihood (σ² = D/2) and the
        registered KLs; for FISTA's point-mass codes, :math:`\log p(x|z) + \log p(z)`. It is in
        the units of ``X``: standardising adds the Jacobian :math:`-D\log(\text{scale\_})`.
        """
        codes = self._codes(X)
        weights = self._training.objective.kl_weights
        elbo = codes["elbo"]
        for key, value in codes.items():
            for prefix, sign in (("kl_", -1.0), ("log_prior_", 1.0)):
                if key.startswith(prefix):
                    elbo = elbo + (1.0 - float(weights.get(key[len(prefix):], 1.0))) * sign * value
        return float(elbo.double().mean()) - self.n_features_in_ * math.log(self.scale_)

    @property
    def model_(self):
        check_is_fitted(self)
        return self._training.model

    @property
    def guide_(self):
        check_is_fitted(self)
        return self._training.guide

    @property
    def history_(self):
        check_is_fitted(self)
        return self._training.history

    # --- run folders --------------------------------------------------------------------------
    def save_run(self, folder):
        """Writes the fitted estimator as a run folder: ``checkpoint.pt`` (networks, optimizers,
        schedules, position, history, random stream, the resolved config and this estimator's
        parameters and scaling, all in types ``torch.load(weights_only=True)`` reads) and
        ``config.yaml``. :func:`pyro_vsc.load_run` loads it (its ``encode`` takes vectors
        scaled as in training, ``(X - mean_) / scale_``) and :meth:`from_run` gives back this
        estimator, whose :meth:`partial_fit` continues as this one's would, bit for bit.

        :returns: the folder, a :class:`pathlib.Path`.
        """
        check_is_fitted(self)
        folder = Path(folder)
        prepare_run_folder(folder)
        training = self._training
        config = OmegaConf.to_container(training.cfg, resolve=True)
        estimator = {"params": self.get_params(deep=False), "seed": training.seed,
                     "finished_run": getattr(self, "_finished_run", None),
                     "steps_per_epoch": training.steps_per_epoch, "n_features": int(self.n_features_in_),
                     "mean": torch.from_numpy(np.asarray(self.mean_, dtype=np.float32)),
                     "scale": float(self.scale_), "feature_names": (list(self.feature_names_in_)
                                                                  if hasattr(self, "feature_names_in_") else None)}
        save_atomic({**_to_cpu(training.state_dict()), "config": config, "estimator": estimator},
                    folder / CHECKPOINT_NAME)
        write_text_atomic(OmegaConf.to_yaml(config), folder / CONFIG_NAME)
        return folder

    @classmethod
    def from_run(cls, path, device="auto"):
        """A fitted estimator from a run folder (or its ``checkpoint.pt``).

        * A folder :meth:`save_run` wrote gives the estimator that was saved: parameters,
          scaling, networks, optimizers and random stream, so that ``transform``, ``score``
          and ``partial_fit`` give what they gave before saving.
        * A run of ``python -m pyro_vsc.run`` with the linear model gives an estimator of its
          dictionary and guide for ``transform``, ``inverse_transform`` and ``score`` on data
          prepared as the run's (``load_run(path).load_data()``: whitened, standardised patches);
          ``standardize=False``, so ``mean_`` is 0 and ``scale_`` 1. Its parameters are the run's
          where the estimator has one (``n_components``, ``guide``, ``objective``,
          ``num_particles``, ``kl_weight``, ``batch_size``, ``hidden_layer_sizes``, learning rates,
          ``random_state`` = the run's seed); the rest of the run's config (the encoder's SGD and
          one-cycle schedule of Appendix D, …) is not expressed by them, so a ``clone`` fits
          with the estimator's own settings there. ``partial_fit`` continues the run's own
          optimizers and schedules, which stop at the run's planned end: a finished run is refused
          in one line.

        :raises FileNotFoundError: no checkpoint at ``path``.
        :raises ValueError: a run of a DNN generator (no linear dictionary), a damaged checkpoint,
            or one that would run code when loaded.
        """
        checkpoint = resolve_checkpoint(path)
        register_resolvers()
        state = load(checkpoint)
        saved = state.get("estimator")
        if saved is None:
            return cls._from_command_run(state, checkpoint, device)
        coder = cls(**saved["params"])
        coder.set_params(device=device)
        cfg = OmegaConf.create(state["config"])
        training = VectorTraining(cfg, select_device(device), saved["seed"], saved["steps_per_epoch"])
        training.load_state_dict(state)
        coder._training, coder.seed_ = training, int(saved["seed"])
        coder.mean_, coder.scale_ = saved["mean"].numpy(), float(saved["scale"])
        coder.n_features_in_ = int(saved["n_features"])
        if saved.get("finished_run"):
            coder._finished_run = saved["finished_run"]
        if saved.get("feature_names") is not None:
            coder.feature_names_in_ = np.asarray(saved["feature_names"], dtype=object)
        coder._publish()
        return coder

    @classmethod
    def _from_command_run(cls, state, checkpoint, device):
        config = state.get("config")
        if config is None:
            raise ValueError(f"{checkpoint} holds no config (a checkpoint of an older version); "
                             "pyro_vsc.load_run reads it with the config.yaml next to it")
        cfg = OmegaConf.create(config)
        if "latent_dim" not in cfg.model or "data_dim" not in cfg.model or cfg.model.get("backbone") is None:
            raise ValueError(f"{checkpoint} is a run of {cfg.model.get('_target_', 'a model')}: "
                             "the estimator learns a linear dictionary (model=linear)")
        epoch, step, batch = int(state["epoch"]), int(state["step"]), int(state.get("batch", 0))
        steps_per_epoch = max(1, (step - batch) // max(epoch, 1))
        seed = int(cfg.seed)
        coder = cls(n_components=int(cfg.model.latent_dim), guide=str(cfg.method.name),
                    objective=str(cfg.elbo.objective), num_particles=int(cfg.elbo.num_particles),
                    kl_weight=float(cfg.kl_weight), n_steps=int(cfg.epochs) * steps_per_epoch,
                    batch_size=int(cfg.batch_size),
                    encoder_learning_rate=float(cfg.model.optim.guide.optimizer.lr),
                    dictionary_learning_rate=float(cfg.model.optim.model.optimizer.lr),
                    hidden_layer_sizes=tuple(int(width) for width in cfg.model.backbone.hidden),
                    standardize=False, random_state=seed, device=device)
        cfg.progress, cfg.callbacks = False, {}  # the run's own callbacks write into its folder
        OmegaConf.update(cfg, "data", IN_MEMORY_DATA, merge=False)
        training = VectorTraining(cfg, select_device(device), seed, steps_per_epoch)
        rng = (state.get("process_rng") or [state.get("rng")])[0]  # rank 0's stream of a run
        training.load_state_dict({**state, "callbacks": {}, "rng": rng})
        if epoch >= int(cfg.epochs):
            coder._finished_run = (f"the run in {checkpoint.parent} finished its {cfg.epochs} planned "
                                   "epochs, where its schedules end: continue it with python -m "
                                   "pyro_vsc.run resume=<folder> epochs=<more>, or fit a new estimator")
        coder._training, coder.seed_ = training, seed
        coder.n_features_in_ = int(cfg.model.data_dim)
        coder.mean_, coder.scale_ = np.zeros(coder.n_features_in_, dtype=np.float32), 1.0
        coder._publish()
        return coder

    # --- pickling -----------------------------------------------------------------------------
    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object.__getstate__ gives __dict__ itself
        training = state.pop("_training", None)
        if training is not None:
            state["_training_state"] = {
                "cfg": OmegaConf.to_container(training.cfg), "seed": training.seed,
                "steps_per_epoch": training.steps_per_epoch,
                "state": _to_cpu(training.state_dict())}
        return state

    def __setstate__(self, state):
        saved = state.pop("_training_state", None)
        super().__setstate__(state)
        if saved is not None:
            self._training = VectorTraining(OmegaConf.create(saved["cfg"]), select_device(self.device),
                                            saved["seed"], saved["steps_per_epoch"])
            self._training.load_state_dict(saved["state"])


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    return value
