"""Minibatch order for in-memory datasets, reproducible per (seed, epoch)."""

import torch


class TensorBatches:
    """Shuffled minibatches of a tensor held on the training device.

    The permutation of epoch ``e`` is drawn from a generator seeded with ``(seed, e)``, so an
    epoch's order does not depend on anything that happened before it: a resumed run sees the
    same batches as an uninterrupted one. The last incomplete batch is dropped.

    :param torch.Tensor data: (N, ...) tensor, already on the training device.
    :param int batch_size: B.
    :param int seed: base seed of the shuffles.
    """

    def __init__(self, data, batch_size, seed=0):
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch size must be a positive integer, got {batch_size}")
        if batch_size > data.shape[0]:
            raise ValueError(f"batch size {batch_size} is larger than the dataset "
                             f"({data.shape[0]} examples); use at most {data.shape[0]}")
        self.data, self.batch_size, self.seed = data, int(batch_size), int(seed)

    def __len__(self):
        return self.data.shape[0] // self.batch_size

    def order(self, epoch):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.data.shape[0], generator=generator).to(self.data.device)

    def epoch(self, epoch, start=0):
        """Yields the batches of ``epoch`` from batch index ``start`` on."""
        order = self.order(epoch)
        for index in range(start, len(self)):
            yield self.data[order[index * self.batch_size:(index + 1) * self.batch_size]]
