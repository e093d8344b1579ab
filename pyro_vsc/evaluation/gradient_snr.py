r"""Gradient signal-to-noise ratio of the encoder and the dictionary (§4.1.1, Figures 4 and 9).

What is averaged, and how it differs from the published evaluation
--------------------------------------------------------------------
§4.1.1 defines :math:`\mathrm{SNR}(\theta)=|\mathbb E[\nabla_\theta\mathcal L]/\sigma[\nabla_\theta
\mathcal L]|` for every parameter θ of the inference network or the dictionary, with
:math:`\mathcal L` the training loss, "over 1000 sparse code samples for each data point", averaged
over the parameters. Here, for each data point :math:`x^n` of a validation subset:

1. draw S code samples; each gives the gradient of that data point's training loss, the max-ELBO
   loss (eq. 9) with the run's J particles and KL weights β (as in training);
2. per parameter, SNR = |mean| / population standard deviation over the S gradients
   (:class:`pyro_vsc.metrics.GradientSNR`); parameters whose gradient does not vary (σ = 0, e.g.
   weights fed by a ReLU that is off for this input) are left out, as the SNR is undefined there;
3. average over the parameters of the encoder (all guide parameters) and, separately, of the
   dictionary (all model parameters).

The per-point values are then summarised over the subset (mean, median, standard deviation).

The published scripts (``compute_snr_inference.py``, ``compute_snr_dict.py``) instead took
gradients of the loss of mini-batches of 100 validation patches (1000 forward passes per batch),
divided by σ + 1e-9 (so never-varying parameters score 0 and constant non-zero ones ~1e9), took
the mean over parameters and averaged that over the 160 batches. Gradients of a 100-point batch
average the noise of 100 independent points, so their SNR is larger than the per-point SNR of the
paper's text; we follow the text ("for each data point").

Per-sample gradients without a backward pass per sample
-------------------------------------------------------
All S samples of a point are drawn in one pass over S copies of it (P points at a time). For a
linear layer :math:`y = W a (+ b)` a row's gradient is the outer product :math:`\delta a^\top` of the
loss gradient at the output and the input, so the per-parameter sums over the S rows of the
gradient and of its square are two matrix products,
:math:`\sum_s \delta_s a_s^\top` and :math:`\sum_s \delta_s^2 (a_s^2)^\top` (float64). This needs every
parameter to sit in a linear layer (``nn.Linear``, the Table 3 MLP and its heads, and
:class:`~pyro_vsc.models.linear.LinearDictionary`); other layers raise ``NotImplementedError``. With J > 1
particles the dictionary sees J codes per row; the max-ELBO loss sends the gradient through one of
them only (checked), so the squares still add up per row.

σ from :math:`\sum g^2 - S\bar g^2` carries a rounding error of about :math:`10^{-13} S\bar g^2` in
float64, so a gradient whose variance is below :data:`CONSTANT_RTOL` × its mean square is treated as
constant (σ = 0): SNRs above about 1e5 cannot be told apart from a deterministic gradient.
"""

import math

import torch
from torch import nn
from tqdm.auto import tqdm

from pyro_vsc.models.linear import LinearDictionary
from pyro_vsc.metrics import GradientSNR

#: §4.1.1: the SNR is evaluated over 1000 code samples per data point.
PAPER_SNR_SAMPLES = 1000
#: Layers whose per-sample gradients are outer products of output gradient and input.
LINEAR_LAYERS = (nn.Linear, LinearDictionary)
#: Relative variance below which a parameter's gradient counts as constant (see module docs).
CONSTANT_RTOL = 1e-10


def linear_layers(module, role):
    """The linear layers of ``module``, checking that they hold all of its trainable parameters."""
    layers = [layer for layer in module.modules() if isinstance(layer, LINEAR_LAYERS)]
    covered = {id(p) for layer in layers for p in layer.parameters(recurse=False)}
    for name, parameter in module.named_parameters():
        if parameter.requires_grad and id(parameter) not in covered:
            owner = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
            raise NotImplementedError(
                f"gradient SNR of the {role}: parameter '{name}' belongs to a "
                f"{type(owner).__name__}; per-sample gradients are computed for linear layers "
                f"only ({', '.join(cls.__name__ for cls in LINEAR_LAYERS)})")
    return layers


class _LayerRecorder:
    """Forward hooks that keep each layer's input and output of one forward pass."""

    def __init__(self, layers):
        self.layers = layers
        self.records = {}
        self._handles = []

    def _record(self, layer, inputs, output):
        if layer in self.records:
            raise NotImplementedError(
                f"a {type(layer).__name__} ran twice in one pass; per-sample gradients of a "
                "layer applied more than once are not supported")
        self.records[layer] = (inputs[0], output)

    def __enter__(self):
        self._handles = [layer.register_forward_hook(self._record) for layer in self.layers]
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()


def _moment_sums(layer, inputs, output_grad, num_points, num_samples):
    """Per-point sums over the S rows of each parameter's gradient and squared gradient: (P, n)."""
    rows = num_points * num_samples
    lead = torch.broadcast_shapes(inputs.shape[:-1], output_grad.shape[:-1])
    if lead[-1] != rows:
        raise ValueError(f"{type(layer).__name__}: expected {rows} data rows in the second-last "
                         f"dimension of its input, got shape {tuple(inputs.shape)}")
    a = inputs.detach().expand(*lead, inputs.shape[-1]).double()
    d = output_grad.expand(*lead, output_grad.shape[-1]).double()
    a = a.reshape(-1, num_points, num_samples, a.shape[-1])
    d = d.reshape(-1, num_points, num_samples, d.shape[-1])
    if d.shape[0] > 1 and bool(((d != 0).any(-1).sum(0) > 1).any()):
        raise ValueError("more than one particle of a data row carries gradient: per-row squared "
                         "gradients need the max-ELBO loss, which selects one particle per row")
    sums = [torch.einsum("lpso,lpsi->poi", d, a).flatten(1)]
    squares = [torch.einsum("lpso,lpsi->poi", d * d, a * a).flatten(1)]
    if getattr(layer, "bias", None) is not None:
        sums.append(d.sum((0, 2)))
        squares.append((d * d).sum((0, 2)))
    return torch.cat(sums, 1), torch.cat(squares, 1)


def per_point_gradient_moments(objective, x, num_samples):
    """Moments of the per-sample gradients of each data point's training loss.

    :param objective: the :class:`~pyro_vsc.train.objective.Objective` (model, guide, J of the
        max-ELBO loss of eq. 9, KL weights β as in training).
    :param torch.Tensor x: P data points, shape ``(P, ...)``.
    :param int num_samples: S code samples per point.
    :returns: dict ``{"encoder": (mean, m2), "dictionary": (mean, m2)}`` with float64 tensors of
        shape ``(P, number of parameters)``: per-parameter mean of the S gradients and sum of squared
        deviations from it. A role without parameters is left out.
    """
    num_points, num_samples = x.shape[0], int(num_samples)
    roles = {"encoder": linear_layers(objective.guide, "encoder"),
             "dictionary": linear_layers(objective.model, "dictionary")}
    roles = {role: layers for role, layers in roles.items() if layers}
    layers = [layer for role_layers in roles.values() for layer in role_layers]
    model, guide = objective.weighted()
    rows = x.repeat_interleave(num_samples, dim=0)
    with _LayerRecorder(layers) as recorder:
        loss = objective.max_elbo().particle_elbo(model, guide, rows).loss
    used = [layer for layer in layers if layer in recorder.records]
    output_grads = dict(zip(used, torch.autograd.grad(
        loss, [recorder.records[layer][1] for layer in used], allow_unused=True)))
    moments = {}
    for role, role_layers in roles.items():
        sums, squares = [], []
        for layer in role_layers:
            size = sum(p.numel() for p in layer.parameters(recurse=False))
            grad = output_grads.get(layer)
            if grad is None:  # the layer took no part in this loss: zero gradient
                zeros = x.new_zeros(num_points, size, dtype=torch.float64)
                sums.append(zeros)
                squares.append(zeros)
                continue
            layer_sums, layer_squares = _moment_sums(layer, recorder.records[layer][0], grad,
                                                     num_points, num_samples)
            sums.append(layer_sums)
            squares.append(layer_squares)
        total, total_squares = torch.cat(sums, 1), torch.cat(squares, 1)
        mean = total / num_samples
        m2 = (total_squares - total * mean).clamp(min=0)
        moments[role] = (mean, torch.where(m2 <= CONSTANT_RTOL * total_squares, 0.0, m2))
    return moments


def gradient_snr(objective, x, num_samples=PAPER_SNR_SAMPLES, points_per_pass=4, progress=False):
    """Mean-over-parameters gradient SNR of the encoder and of the dictionary per data point.

    See the module documentation for the definition. Memory per pass is about
    ``points_per_pass * num_samples`` forward rows plus ``2 * points_per_pass`` float64 copies of
    the parameters.

    :param objective: the :class:`~pyro_vsc.train.objective.Objective` of the run.
    :param torch.Tensor x: the data points (the validation subset), shape ``(N, ...)``.
    :param int num_samples: S ≥ 2 code samples per point (paper: 1000).
    :returns: dict role → float64 tensor ``(N,)`` (NaN where every parameter's gradient is
        constant, or a gradient is not finite).
    """
    if int(num_samples) != num_samples or num_samples < 2:
        raise ValueError(f"num_samples must be an integer ≥ 2 (a standard deviation needs two "
                         f"samples), got {num_samples}")
    if int(points_per_pass) != points_per_pass or points_per_pass < 1:
        raise ValueError(f"points_per_pass must be a positive integer, got {points_per_pass}")
    values = {}
    chunks = x.split(int(points_per_pass))
    for chunk in tqdm(chunks, desc="gradient SNR", disable=not progress, leave=False):
        for role, (mean, m2) in per_point_gradient_moments(objective, chunk, num_samples).items():
            for point_mean, point_m2 in zip(mean, m2):
                undefined = (not bool(torch.isfinite(point_mean).all() & torch.isfinite(point_m2).all())
                             or bool((point_m2 == 0).all()))  # diverged, or no parameter varies
                if undefined:
                    values.setdefault(role, []).append(math.nan)
                    continue
                accumulator = GradientSNR()
                accumulator.update_moments(int(num_samples), point_mean, point_m2)
                values.setdefault(role, []).append(accumulator.mean_snr())
    return {role: torch.tensor(role_values, dtype=torch.float64) for role, role_values in values.items()}
