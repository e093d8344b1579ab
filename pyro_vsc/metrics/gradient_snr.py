"""Gradient signal-to-noise ratio (§4.1, Figure 4; Rainforth et al., 2018)."""

import torch


def flatten_gradients(parameters):
    """The ``.grad`` of all ``parameters`` as one flat vector, in order.

    A parameter whose ``.grad`` is ``None`` (it took no part in the backward pass) contributes
    zeros, so the vector has the same length and layout on every call.

    :param parameters: iterable of tensors (e.g. ``module.parameters()``).
    :returns: 1-D tensor on the parameters' device.
    """
    pieces = [
        p.new_zeros(p.numel()) if p.grad is None else p.grad.reshape(-1) for p in parameters
    ]
    if not pieces:
        raise ValueError("no parameters given")
    return torch.cat(pieces)


class GradientSNR:
    r"""Streaming per-parameter gradient signal-to-noise ratio (§4.1, Rainforth et al., 2018).

    .. math:: \mathrm{SNR}(\theta)
              = |\mathbb E[\nabla_\theta\mathcal L]| / \sigma[\nabla_\theta\mathcal L].

    §4.1 evaluates this over 1000 gradient samples (fresh code samples, fixed data) for every
    parameter of the inference network or the dictionary, and averages it over the parameters
    (Figure 4). What one sample is, the caller decides: the published evaluation took gradients of
    the loss of mini-batches of 100 validation patches and averaged the mean SNR over batches.
    Holding 1000 gradient vectors is wasteful, so the moments are accumulated one gradient at a
    time with Welford's update in float64 on the gradients' device:

    .. math:: n \leftarrow n+1,\quad \bar g \leftarrow \bar g + (g-\bar g)/n,\quad
              M_2 \leftarrow M_2 + (g-\bar g_{old})(g-\bar g_{new}).

    σ is the population standard deviation :math:`\sqrt{M_2/n}` (as in the published
    evaluation; with 1000 samples the n-1 correction changes SNR by 0.05%).

    Parameters whose gradient never varies (σ = 0, e.g. weights that never receive a gradient)
    have no defined SNR: :meth:`snr` returns NaN for them and :meth:`mean_snr` averages over the
    others; :attr:`num_constant` reports how many were left out. (The published evaluation instead
    divided by σ + 1e-9, which scores zero-gradient parameters 0 and constant non-zero ones ~1e9.)

    Example::

        snr = GradientSNR()
        for _ in range(1000):
            encoder.zero_grad()
            loss(x).backward()
            snr.update(flatten_gradients(encoder.parameters()))
        snr.mean_snr()
    """

    def __init__(self):
        self.count = 0
        self._mean = None
        self._sum_squared_deviations = None

    def update(self, gradient):
        """Add one gradient sample, a 1-D tensor of the same length every time."""
        if gradient.dim() != 1:
            raise ValueError(
                f"expected one flat gradient (1-D), got shape {tuple(gradient.shape)}; "
                "use flatten_gradients(parameters)"
            )
        gradient = gradient.detach().to(torch.float64)
        if self._mean is None:
            self._mean = torch.zeros_like(gradient)
            self._sum_squared_deviations = torch.zeros_like(gradient)
        elif gradient.shape != self._mean.shape:
            raise ValueError(
                f"gradient has {gradient.numel()} entries, earlier ones had {self._mean.numel()}"
            )
        self.count += 1
        deviation_from_old_mean = gradient - self._mean
        self._mean += deviation_from_old_mean / self.count
        self._sum_squared_deviations += deviation_from_old_mean * (gradient - self._mean)

    def update_moments(self, count, mean, sum_squared_deviations):
        r"""Add ``count`` gradient samples summarised by their moments (Chan et al., 1979).

        For gradients that are cheaper to summarise than to list one by one, e.g. the per-sample
        gradients of a linear layer, whose sums are matrix products (see
        :mod:`pyro_vsc.evaluation.gradient_snr`). The merge is exact: with
        :math:`n = n_a + n_b` and :math:`d = \bar g_b - \bar g_a`,

        .. math:: \bar g = \bar g_a + d\,n_b/n,\qquad M_2 = M_{2,a} + M_{2,b} + d^2 n_a n_b / n.

        :param int count: number of samples in the batch, ≥ 1.
        :param torch.Tensor mean: their per-parameter mean, 1-D.
        :param torch.Tensor sum_squared_deviations: :math:`\sum (g - \bar g_b)^2` per parameter,
            1-D, ≥ 0 (exactly 0 for a parameter whose gradient did not vary).
        """
        if int(count) != count or count < 1:
            raise ValueError(f"count must be a positive integer, got {count}")
        if mean.dim() != 1 or sum_squared_deviations.shape != mean.shape:
            raise ValueError(
                "mean and sum_squared_deviations must be 1-D of the same length, got shapes "
                f"{tuple(mean.shape)} and {tuple(sum_squared_deviations.shape)}"
            )
        if bool((sum_squared_deviations < 0).any()):
            raise ValueError("sum_squared_deviations must be non-negative")
        mean = mean.detach().to(torch.float64)
        sum_squared_deviations = sum_squared_deviations.detach().to(torch.float64)
        if self._mean is None:
            self.count = int(count)
            self._mean = mean.clone()
            self._sum_squared_deviations = sum_squared_deviations.clone()
            return
        if mean.shape != self._mean.shape:
            raise ValueError(f"mean has {mean.numel()} entries, earlier ones had {self._mean.numel()}")
        total = self.count + int(count)
        difference = mean - self._mean
        self._mean += difference * (int(count) / total)
        self._sum_squared_deviations += (
            sum_squared_deviations + difference.pow(2) * (self.count * int(count) / total)
        )
        self.count = total

    def _require_two(self):
        if self.count < 2:
            raise ValueError(
                f"need at least 2 gradient samples for a standard deviation, have {self.count}"
            )

    @property
    def mean(self):
        """Per-parameter sample mean of the gradients (float64)."""
        self._require_two()
        return self._mean

    @property
    def std(self):
        """Per-parameter population standard deviation of the gradients (float64)."""
        self._require_two()
        return (self._sum_squared_deviations / self.count).sqrt()

    @property
    def num_constant(self):
        """How many parameters had a constant gradient (σ = 0); :meth:`mean_snr` skips them."""
        return int((self.std == 0).sum().item())

    def snr(self):
        """Per-parameter SNR, NaN where σ = 0."""
        std = self.std
        return torch.where(std > 0, self.mean.abs() / std, torch.full_like(std, float("nan")))

    def mean_snr(self):
        """SNR averaged over the parameters whose gradient varies (a Python float)."""
        snr = self.snr()
        defined = ~snr.isnan()
        if not defined.any():
            raise ValueError("every parameter has a constant gradient (σ = 0): SNR undefined")
        return snr[defined].mean().item()
