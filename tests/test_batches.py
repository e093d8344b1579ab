"""Minibatch providers: reproducible per (seed, epoch), resumable inside an epoch, and sharded so
that the data-parallel processes together read exactly the single-process global batch."""

import pytest
import torch
from torch.utils.data import TensorDataset

from pyro_vsc.train.batches import LoaderBatches, OrderedBatches, TensorBatches, check_batch_size

SIZE, BATCH = 50, 8  # 6 full batches, 2 examples dropped


def _indexed_dataset():
    """Items (image, target) whose image is its own index, so a batch tells which items it holds."""
    indices = torch.arange(SIZE)
    return TensorDataset(indices.float().reshape(SIZE, 1, 1, 1), indices)


def _loader_epoch(epoch, seed=3, rank=0, world_size=1, start=0):
    batches = LoaderBatches(_indexed_dataset(), BATCH, "cpu", seed=seed, rank=rank, world_size=world_size)
    return [batch.flatten().long() for batch in batches.epoch(epoch, start)]


def _tensor_epoch(epoch, seed=3, rank=0, world_size=1, start=0):
    batches = TensorBatches(torch.arange(SIZE), BATCH, seed=seed, rank=rank, world_size=world_size)
    return list(batches.epoch(epoch, start))


@pytest.mark.parametrize("epoch_of", [_loader_epoch, _tensor_epoch])
def test_an_epoch_is_a_shuffled_sample_without_replacement_fixed_by_seed_and_epoch(epoch_of):
    batches = epoch_of(epoch=1)
    assert len(batches) == SIZE // BATCH and all(len(b) == BATCH for b in batches)
    seen = torch.cat(batches)
    assert len(set(seen.tolist())) == len(seen)  # no example twice
    assert not torch.equal(seen, torch.sort(seen).values)  # shuffled
    assert all(torch.equal(a, b) for a, b in zip(batches, epoch_of(epoch=1)))
    assert not torch.equal(seen, torch.cat(epoch_of(epoch=2)))
    assert not torch.equal(seen, torch.cat(epoch_of(epoch=1, seed=4)))


@pytest.mark.parametrize("epoch_of", [_loader_epoch, _tensor_epoch])
def test_starting_inside_an_epoch_continues_its_order(epoch_of):
    assert all(torch.equal(a, b) for a, b in zip(epoch_of(epoch=2, start=4), epoch_of(epoch=2)[4:], strict=True))


@pytest.mark.parametrize("epoch_of", [_loader_epoch, _tensor_epoch])
@pytest.mark.parametrize("world_size", [2, 4])
def test_process_shards_together_are_the_single_process_global_batch(epoch_of, world_size):
    single = epoch_of(epoch=5)
    shards = [epoch_of(epoch=5, rank=rank, world_size=world_size) for rank in range(world_size)]
    assert all(len(s) == len(single) for s in shards)
    for step, batch in enumerate(single):
        parts = [shard[step] for shard in shards]
        assert all(len(part) == BATCH // world_size for part in parts)
        assert sorted(torch.cat(parts).tolist()) == sorted(batch.tolist())


def test_batch_sizes_that_cannot_be_sharded_or_filled_are_rejected():
    with pytest.raises(ValueError, match="not divisible by the 3 data-parallel processes"):
        LoaderBatches(_indexed_dataset(), BATCH, "cpu", world_size=3)
    with pytest.raises(ValueError, match="larger than the dataset"):
        LoaderBatches(_indexed_dataset(), SIZE + 1, "cpu")
    with pytest.raises(ValueError, match="not divisible"):
        TensorBatches(torch.arange(SIZE), BATCH, world_size=3)


def test_ordered_batches_keep_file_order_and_targets():
    ordered = OrderedBatches(_indexed_dataset(), BATCH, "cpu")
    assert len(ordered) == 7  # validation keeps the last, smaller batch
    assert torch.equal(torch.cat([x.flatten() for x in ordered]).long(), torch.arange(SIZE))
    assert torch.equal(torch.cat([y for _, y in ordered.with_targets()]), torch.arange(SIZE))


@pytest.mark.parametrize("batch_size,world_size,message", [
    (0, 1, "batch size must be a positive integer, got 0"),
    (2.5, 1, "batch size must be a positive integer, got 2.5"),
    (SIZE + 1, 1, f"batch size {SIZE + 1} is larger than the dataset ({SIZE} examples); use at most {SIZE}"),
    (BATCH, 3, f"batch size {BATCH} is not divisible by the 3 data-parallel processes; choose a multiple of 3"),
])
def test_both_batch_sources_check_the_batch_size_alike(batch_size, world_size, message):
    """Tensors and datasets refuse the same batch sizes with the same line (check_batch_size)."""
    for make in (lambda: TensorBatches(torch.arange(SIZE), batch_size, world_size=world_size),
                 lambda: LoaderBatches(_indexed_dataset(), batch_size, "cpu", world_size=world_size),
                 lambda: check_batch_size(batch_size, SIZE, world_size)):
        with pytest.raises(ValueError) as error:
            make()
        assert str(error.value) == message
    check_batch_size(SIZE, SIZE, 1)
