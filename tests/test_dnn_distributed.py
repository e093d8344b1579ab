"""Data-parallel training (Appendix E: DDP) equals single-process training on the same global batch.

Two CPU processes (gloo) train a tiny Fashion-MNIST generator through the command's own builder
(:func:`pyro_vsc.run.build_trainer`), as ``torchrun`` would start them, and the result is compared
with one process training on the same data and global batch.

What makes the comparison exact rather than statistical:

* the guide's sampling noise is switched off (Laplacian guide with its warm-up noise factor held at
  ω = 0, so z = μ(x), with the analytic Laplace KL), because each process draws the noise of its
  own shard: a sharded run is otherwise a different Monte Carlo realisation. (A thresholded guide
  cannot be made deterministic this way: the shifted threshold of eq. 2 zeroes s = μ exactly.);
* plain SGD instead of the paper's Adam: the convolutions in front of a BatchNorm have biases whose
  exact gradient is zero (BatchNorm subtracts them again), and Adam's division by √v turns the
  rounding noise of that zero into steps of size lr in arbitrary directions, in either run. With
  SGD, equal parameters after training mean equal gradients at every step.

Everything else is the real training path: the DataLoader shards of each global batch,
DistributedDataParallel's gradient averaging called from inside Pyro's traces, BatchNorm with
global-batch statistics in encoder and decoder (over the J x B decoder batch), the per-data-point
loss normalisation, the one-cycle schedule, rank-0 validation and checkpointing.
"""

import os
import socket

import pyro
import pytest
import torch
import torch.multiprocessing as mp

from pyro_vsc.run import build_trainer, train
from pyro_vsc.train.distributed import DistributedContext
from tests.helpers import compose_config
from tests.image_data import write_fashion_mnist

WORLD_SIZE = 2


def _overrides(data_root, run_dir):
    return [
        "model=fmnist", f"data.root={data_root}", "data.train_size=32", "data.val_size=16",
        "data.download=false", "model.latent_dim=8", "guide=laplace",
        "guide.scale_warmup.start=0.0", "guide.scale_warmup.increment=0.0", "elbo.num_particles=2",
        "batch_size=16", "epochs=2",
        "num_workers=0", "progress=false", "device=cpu", f"run_dir={run_dir}",
        *(override for part in ("model", "guide") for override in (
            f"~model.optim.{part}.optimizer",
            f"+model.optim.{part}.optimizer={{_target_:torch.optim.SGD,_partial_:true,lr:0.05}}")),
    ]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _train_one_process(rank, port, overrides, out_dir):
    """One torchrun-like process: environment, process group, the command's trainer."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    pyro.settings.set(module_local_params=True)
    with DistributedContext.from_environment("cpu") as context:
        trainer = build_trainer(compose_config(overrides), context)
        history = trainer.fit()
        torch.save({"model": trainer.model.state_dict(), "guide": trainer.guide.state_dict(),
                    "history": history}, out_dir / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same tiny run on two processes and on one."""
    root = tmp_path_factory.mktemp("ddp")
    write_fashion_mnist(root / "data", train_count=32, test_count=16)
    mp.spawn(_train_one_process, args=(_free_port(), _overrides(root / "data", root / "ddp"), root),
             nprocs=WORLD_SIZE, join=True)
    processes = [torch.load(root / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD_SIZE)]
    single_history = train(compose_config(_overrides(root / "data", root / "single")))
    single = torch.load(root / "single" / "checkpoint.pt", weights_only=False)
    return root, processes, single, single_history


def _states(result):
    return {f"{part}.{key}": value for part in ("model", "guide") for key, value in result[part].items()}


def test_both_processes_end_with_identical_parameters_and_batchnorm_statistics(runs):
    _, (first, second), _, _ = runs
    one, two = _states(first), _states(second)
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=0, msg=key)


def test_two_processes_equal_one_process_on_the_same_global_batch(runs):
    """Tolerance: the runs differ only in floating-point summation order (BatchNorm moments
    combined across shards, gradients summed per shard then averaged), relative ~1e-7 per
    operation in float32; four SGD steps keep the parameters within ~1e-6 of each other, so
    1e-5 absolute leaves a margin without hiding a missing all-reduce (whose effect is of the
    size of the updates themselves, checked to be > 1e-3 below)."""
    root, (first, _), single, single_history = runs
    distributed, reference = _states(first), _states(single)
    assert distributed.keys() == reference.keys()
    for key, value in reference.items():
        torch.testing.assert_close(distributed[key], value, rtol=0, atol=1e-5, msg=key)
    initial = _initial_states(root)
    update = max((reference[key] - initial[key]).abs().max() for key in initial if key.endswith("weight"))
    assert update > 1e-3  # trained networks are compared, not initial ones
    for ddp_record, record in zip(first["history"], single_history, strict=True):
        for key in ("train_loss", "val_mse", "val_nonzero_pct", "val_elbo", "val_kl_z"):
            assert ddp_record[key] == pytest.approx(record[key], rel=1e-5), key
    assert single_history[-1]["val_nonzero_pct"] == 100  # the decoder sees the codes z = μ(x)


def _initial_states(root):
    """The parameters before training (same seed, same construction)."""
    trainer = build_trainer(compose_config(_overrides(root / "data", root / "init")), DistributedContext())
    return _states({"model": trainer.model.state_dict(), "guide": trainer.guide.state_dict()})


def test_only_rank_zero_writes_the_run_folder(runs):
    root, *_ = runs
    assert {p.name for p in (root / "ddp").iterdir()} >= {"config.yaml", "metrics.jsonl", "checkpoint.pt"}
    checkpoint = torch.load(root / "ddp" / "checkpoint.pt", weights_only=False)
    assert len(checkpoint["process_rng"]) == WORLD_SIZE
    # the processes drew different Monte Carlo noise after the identical initialisation
    assert not torch.equal(checkpoint["process_rng"][0]["torch"], checkpoint["process_rng"][1]["torch"])
