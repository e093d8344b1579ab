"""Minibatch order, reproducible per (seed, epoch): in-memory tensors and map-style datasets."""

import itertools

import torch
from torch.utils.data import DataLoader, DistributedSampler

#: Spreads run seeds apart, so that (seed, epoch) and (seed + 1, epoch - 1) shuffle differently.
SEED_STRIDE = 1_000_003


def check_batch_size(batch_size, num_examples, world_size=1):
    """``ValueError`` with one line unless ``batch_size`` is a positive integer that fits in a
    dataset of ``num_examples`` and splits evenly over ``world_size`` data-parallel processes."""
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch size must be a positive integer, got {batch_size}")
    if batch_size > num_examples:
        raise ValueError(f"batch size {batch_size} is larger than the dataset "
                         f"({num_examples} examples); use at most {num_examples}")
    if batch_size % world_size:
        raise ValueError(f"batch size {batch_size} is not divisible by the {world_size} "
                         f"data-parallel processes; choose a multiple of {world_size}")


class TensorBatches:
    """Shuffled minibatches of a tensor held on the training device.

    The permutation of epoch ``e`` is drawn from a generator seeded with ``(seed, e)``, so an
    epoch's order does not depend on anything that happened before it: a resumed run sees the
    same batches as an uninterrupted one. The last incomplete batch is dropped. Under
    data-parallel training, process ``rank`` of ``world_size`` takes its contiguous slice of
    every global batch.

    :param torch.Tensor data: (N, ...) tensor, already on the training device.
    :param int batch_size: the global batch size B.
    :param int seed: base seed of the shuffles.
    :param int rank: this process's rank.
    :param int world_size: number of data-parallel processes W (must divide B).
    """

    def __init__(self, data, batch_size, seed=0, rank=0, world_size=1):
        check_batch_size(batch_size, data.shape[0], world_size)
        self.data, self.batch_size, self.seed = data, int(batch_size), int(seed)
        local = self.batch_size // world_size
        self.shard = slice(rank * local, (rank + 1) * local)

    def __len__(self):
        return self.data.shape[0] // self.batch_size

    def order(self, epoch):
        generator = torch.Generator().manual_seed(self.seed * SEED_STRIDE + epoch)
        return torch.randperm(self.data.shape[0], generator=generator).to(self.data.device)

    def epoch(self, epoch, start=0):
        """Yields this process's part of the batches of ``epoch`` from batch index ``start`` on."""
        order = self.order(epoch)
        for index in range(start, len(self)):
            batch = order[index * self.batch_size:(index + 1) * self.batch_size]
            yield self.data[batch[self.shard]]


class EpochSampler(DistributedSampler):
    """This process's share of one epoch's shuffled order, from a chosen batch on.

    torch's ``DistributedSampler`` (shuffle, drop_last) with the epoch's permutation seeded by
    ``(seed, epoch)`` and a start offset for resuming inside an epoch. Rank ``r`` of ``W`` takes
    positions ``r, r + W, r + 2W, …`` of the permutation, so with a per-process batch of B/W its
    batch ``b`` and those of the other ranks together are exactly positions ``[bB, (b+1)B)``:
    the global batch a single process (W = 1) reads at step ``b``.
    """

    def __init__(self, dataset, local_batch_size, seed=0, rank=0, world_size=1):
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                         seed=int(seed) * SEED_STRIDE, drop_last=True)
        self.local_batch_size = int(local_batch_size)
        self.start_batch = 0

    def start_at(self, epoch, batch):
        """Selects epoch ``epoch`` and skips its first ``batch`` batches."""
        self.set_epoch(epoch)
        self.start_batch = int(batch)

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.start_batch * self.local_batch_size, None)

    def __len__(self):
        return super().__len__() - self.start_batch * self.local_batch_size


class LoaderBatches:
    """Shuffled minibatches of a map-style dataset of ``(image, target)`` items, read by a DataLoader.

    Same interface as :class:`TensorBatches` (``len``, ``epoch(e, start)`` yielding the images
    on ``device``; targets are dropped). Under data-parallel training each of the ``world_size``
    processes reads ``batch_size / world_size`` images of every global batch
    (:class:`EpochSampler`), so the processes together see the global batches of a
    single-process run. The last incomplete global batch is dropped.

    Random augmentations (CelebA's flips) draw from the main process's torch RNG when
    ``num_workers`` is 0 (restored with the checkpointed RNG state), otherwise from worker seeds
    that are a function of (seed, epoch, rank); workers are started afresh each epoch (not
    persistent). The DataLoader's own base seed is drawn from a generator seeded the same way,
    not from the global RNG, so that starting an epoch's iterator in the middle of the epoch
    (a resumed run) leaves the training's random stream where an uninterrupted run has it. A run
    resumed inside an epoch therefore sees the same images with ``num_workers`` = 0; with workers,
    the augmentations of the rest of that epoch differ (each worker's stream restarts).

    :param dataset: map-style dataset whose items are ``(image, target)``.
    :param int batch_size: the global batch size B.
    :param device: device the images are moved to.
    :param int seed: base seed of the shuffles.
    :param int rank: this process's rank.
    :param int world_size: number of data-parallel processes W (must divide B).
    :param int num_workers: DataLoader worker processes.
    """

    def __init__(self, dataset, batch_size, device, seed=0, rank=0, world_size=1, num_workers=0):
        check_batch_size(batch_size, len(dataset), world_size)
        self.batch_size, self.device = int(batch_size), torch.device(device)
        self.seed, self.rank = int(seed), int(rank)
        self.steps = len(dataset) // self.batch_size
        self.sampler = EpochSampler(dataset, self.batch_size // world_size, seed, rank, world_size)
        self.loader = DataLoader(dataset, batch_size=self.batch_size // world_size,
                                 sampler=self.sampler, drop_last=True, num_workers=num_workers,
                                 pin_memory=self.device.type == "cuda")

    def __len__(self):
        return self.steps

    def epoch(self, epoch, start=0):
        """Yields this process's images of the batches of ``epoch`` from batch index ``start`` on."""
        self.sampler.start_at(epoch, start)
        self.loader.generator = torch.Generator().manual_seed(
            ((self.seed * SEED_STRIDE + epoch) * SEED_STRIDE + self.rank) % 2**63)
        for images, _targets in itertools.islice(self.loader, self.steps - start):
            yield images.to(self.device, non_blocking=True)


class OrderedBatches:
    """The images of a dataset in file order, in batches on ``device`` (validation, evaluation).

    Iterating yields ``images``; :meth:`with_targets` yields ``(images, targets)``.
    """

    def __init__(self, dataset, batch_size, device, num_workers=0):
        self.device = torch.device(device)
        self.loader = DataLoader(dataset, batch_size=int(batch_size), shuffle=False,
                                 num_workers=num_workers, pin_memory=self.device.type == "cuda")

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for images, _targets in self.loader:
            yield images.to(self.device, non_blocking=True)

    def with_targets(self):
        for images, targets in self.loader:
            yield images.to(self.device, non_blocking=True), targets
