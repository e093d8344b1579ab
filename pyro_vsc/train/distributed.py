"""Data-parallel training across processes started by ``torchrun`` (Appendix E: DDP).

``torchrun --nproc_per_node=N -m pyro_vsc.run ...`` starts N processes with the environment
variables ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``.
:meth:`DistributedContext.from_environment` joins them into one process group (NCCL on GPUs,
gloo on CPUs); without those variables it describes a single process and does nothing.

Division of labour: every process trains on its shard of each global batch, and
``DistributedDataParallel`` averages the gradients; rank 0 alone validates, logs and writes the
run folder, and shares what the others need (the run folder's path, the epoch's record).
"""

import inspect
import logging
import os

import pyro
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from pyro_vsc.devices import select_device

log = logging.getLogger(__name__)

#: Keyword arguments of this torch version's DistributedDataParallel.
_DDP_OPTIONS = inspect.signature(DistributedDataParallel).parameters


def rank_seed(seed, rank):
    """The seed of process ``rank``: ``seed`` itself on rank 0 (a single-process run's stream)."""
    return int(seed) + 1_000_003 * int(rank)


class _CallThrough:
    """Calls go to ``wrapper``; attribute reads (``weight``, submodules, ...) to ``network``."""

    def __init__(self, network, wrapper):
        self._network, self._wrapper = network, wrapper

    def __call__(self, *args, **kwargs):
        return self._wrapper(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._network, name)


def route_calls(owner, name, wrapper):
    """Makes ``owner.<name>(...)`` call ``wrapper`` while the registered submodule stays in place.

    The router is stored in the instance ``__dict__``, which attribute lookup consults before
    ``nn.Module.__getattr__``: ``owner.<name>(x)`` runs the wrapper (``DistributedDataParallel``,
    autocast), while ``owner.<name>.weight`` and other attributes still read the network, and
    ``parameters()``, ``state_dict()``, ``train()`` and ``to()`` see the unwrapped network under
    its own name, so checkpoints have the same keys with or without wrappers. Assigning
    ``owner.<name> = module`` later replaces both.
    """
    object.__setattr__(owner, name, _CallThrough(owner._modules[name], wrapper))


def is_routed(module):
    """Whether calls of ``module`` or of one of its submodules go through a wrapper
    (:func:`route_calls`)."""
    return any(isinstance(value, _CallThrough) for m in module.modules() for value in vars(m).values())


class DistributedContext:
    """Rank, world size and device of this process, and the few collectives the trainer needs.

    :param int rank: this process's global rank.
    :param int world_size: number of processes.
    :param torch.device device: this process's device.
    :param bool owns_group: destroy the process group on :meth:`close`.
    """

    def __init__(self, rank=0, world_size=1, device=torch.device("cpu"), owns_group=False):
        self.rank, self.world_size, self.device = int(rank), int(world_size), torch.device(device)
        self.owns_group = owns_group

    @classmethod
    def from_environment(cls, device_name="auto"):
        """Joins the torchrun process group when ``WORLD_SIZE`` > 1 (else a single process).

        The device is ``cuda:LOCAL_RANK`` on GPUs; the backend NCCL on CUDA and gloo otherwise.
        """
        device = select_device(device_name)
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls(device=device)
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        owns_group = not dist.is_initialized()
        if owns_group:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(rank, world_size, device, owns_group)

    @property
    def is_main(self):
        """Rank 0: the process that validates, logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1

    def close(self):
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # --- collectives (no-ops for a single process) ---------------------------------------------
    def barrier(self):
        if self.distributed:
            dist.barrier()

    def mean(self, value):
        """The average of a scalar tensor over processes."""
        if not self.distributed:
            return value
        value = value.detach().clone()
        dist.all_reduce(value)
        return value / self.world_size

    def broadcast(self, obj):
        """Rank 0's ``obj`` (picklable) on every process."""
        if not self.distributed:
            return obj
        holder = [obj]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def gather(self, obj):
        """The list of every process's ``obj``, in rank order, on every process."""
        if not self.distributed:
            return [obj]
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def seed(self, seed):
        """Seeds python, numpy and torch with this process's :func:`rank_seed`."""
        pyro.set_rng_seed(rank_seed(seed, self.rank))

    def data_parallel(self, module):
        """``module`` wrapped in ``DistributedDataParallel``.

        Buffers are not re-broadcast before each forward pass: the networks' only buffers are
        BatchNorm statistics, which global-batch BatchNorm keeps equal on every process; and a
        broadcast would be a collective that rank 0 alone enters when it validates.
        """
        no_buffer_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in _DDP_OPTIONS
                          else {"broadcast_buffers": False})
        return DistributedDataParallel(
            module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
            **no_buffer_sync)
