"""BatchNorm with the statistics of the global batch under data-parallel training.

``DistributedDataParallel`` averages gradients but leaves BatchNorm alone: each process would
normalise with the mean and variance of its own shard, and a run on W processes would train a
different network than one process on the same global batch. Synchronised BatchNorm computes
the statistics of the whole global batch instead (and differentiates through them), which makes
the two runs equal up to floating-point rounding. torch's ``SyncBatchNorm`` does this on GPUs
only; :class:`GlobalBatchNorm` does the same with any process-group backend (gloo on CPUs).
"""

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class _GatherShards(torch.autograd.Function):
    """``stack`` of every process's tensor, differentiable: the gradient of a process's tensor is
    the sum over processes of the gradients flowing into its slot (all of them depend on it)."""

    @staticmethod
    def forward(ctx, tensor):
        shards = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(shards, tensor.contiguous())
        return torch.stack(shards)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[dist.get_rank()]


class GlobalBatchNorm(_BatchNorm):
    r"""BatchNorm over all dimensions but the channel dimension 1, with global batch statistics.

    In training mode inside an initialised process group with more than one process, every
    process computes its shard's count :math:`n_r`, mean :math:`m_r` and sum of squared
    deviations :math:`M_r`; these are gathered (differentiably) and combined exactly:
    :math:`m = \sum_r n_r m_r / N`, :math:`\sigma^2 = \sum_r [M_r + n_r (m_r - m)^2] / N`.
    Normalisation and the running statistics (unbiased variance, as ``F.batch_norm``) then
    follow BatchNorm. Otherwise (evaluation, or a single process) it is plain BatchNorm. The
    state-dict keys are BatchNorm's, so checkpoints move freely between the two.
    """

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {input.dim()}-D")

    def forward(self, input):
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        reduce = [d for d in range(input.dim()) if d != 1]
        shape = [1, -1] + [1] * (input.dim() - 2)
        values = input.float()
        count = values.new_tensor([input.numel() / input.shape[1]])
        mean = values.mean(reduce)
        squares = (values - mean.reshape(shape)).pow(2).sum(reduce)
        shards = _GatherShards.apply(torch.cat([count, mean, squares]))
        counts, means, sums = shards[:, :1], shards[:, 1:1 + mean.numel()], shards[:, 1 + mean.numel():]
        total = counts.sum()
        global_mean = (counts * means).sum(0) / total
        variance = (sums + counts * (means - global_mean).pow(2)).sum(0) / total
        if self.track_running_stats:
            self._update_running_stats(global_mean.detach(), variance.detach(), total.item())
        output = (values - global_mean.reshape(shape)) * torch.rsqrt(variance + self.eps).reshape(shape)
        if self.affine:
            output = output * self.weight.reshape(shape) + self.bias.reshape(shape)
        return output.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean, variance, total):
        self.num_batches_tracked.add_(1)
        factor = (1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum)
        unbiased = variance * (total / max(total - 1.0, 1.0))
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)

    @classmethod
    def convert(cls, module):
        """Replaces every BatchNorm layer of ``module`` (in place) by a GlobalBatchNorm sharing its
        parameters and buffers; returns ``module`` (or the replacement if it is a BatchNorm)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, cls):
            replacement = cls(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
            if module.affine:
                replacement.weight, replacement.bias = module.weight, module.bias
            if module.track_running_stats:
                replacement.running_mean, replacement.running_var = module.running_mean, module.running_var
                replacement.num_batches_tracked = module.num_batches_tracked
            replacement.train(module.training)
            return replacement
        for name, child in module.named_children():
            module.add_module(name, cls.convert(child))
        return module


def synchronise_batchnorm(module, device):
    """BatchNorm layers of ``module`` switched to global-batch statistics for data parallelism:
    torch's ``SyncBatchNorm`` on CUDA, :class:`GlobalBatchNorm` elsewhere."""
    if torch.device(device).type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return GlobalBatchNorm.convert(module)
