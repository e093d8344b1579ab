"""Training throughput of the Fashion-MNIST DNN generator (images/second).

The library's own training step (``Trainer.train_step``: Pyro max-ELBO loss and backward, Adam,
one-cycle schedule, warm-up counter) of ``experiment=fmnist`` (decoder of Table 5, conv
encoder, thresholded Gaussian + Gamma guide, batch 512, J = 20, latent dimension 256) on random
images of the Fashion-MNIST shape, after a warm-up. On a CPU: float32 (``amp=false``). On CUDA
(when available): float32, bf16 and fp16 autocast (the network parts only, as in a run; fp16
with the gradient scaler). Printed and written to ``benchmarks/results/dnn_step.{json,md}``:
median ms/step, spread (min-max over repetitions) and images/s.

Run: ``python -m benchmarks.dnn_step [--steps 3 --repeats 3 --threads 2 --device cpu]``.
A CPU step takes tens of seconds on 2 cores; the defaults keep the whole run to a few minutes.
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import pyro
import torch

from pyro_vsc.config import compose_config
from pyro_vsc.run import build_optimizers, build_run, runtime_settings, wrap_networks
from pyro_vsc.train.distributed import DistributedContext
from pyro_vsc.train.optimizer_set import OptimizerSet
from pyro_vsc.train.precision import autocast_dtype, grad_scaler
from pyro_vsc.train.trainer import Trainer

RESULTS = Path(__file__).resolve().parent / "results"
STEPS_PER_EPOCH = 117  # 60,000 images / 512 (sets the one-cycle schedule's length)


class _NoData:
    """Stands for the dataset: the benchmark feeds random images, build_run must not load any."""


def build_step(device, amp):
    """The training step of ``experiment=fmnist`` on ``device`` with mixed precision ``amp``,
    its config and the model's image shape."""
    cfg = compose_config(["experiment=fmnist", f"amp={amp}", "progress=false"])
    context = DistributedContext(device=device)
    amp_dtype = autocast_dtype(cfg.amp, device)
    scaler = grad_scaler(amp_dtype, device)
    built = build_run(cfg, device, grad_scaler=scaler, data=_NoData())
    model, guide = built["model"], built["guide"]
    wrap_networks(model, guide, context, amp_dtype)
    trainer = Trainer(model=model, guide=guide, objective=built["step"],
                      optimizers=OptimizerSet(build_optimizers(cfg, model, guide, STEPS_PER_EPOCH), scaler),
                      batches=None, epochs=cfg.epochs, context=context)
    return trainer.train_step, cfg, model.image_shape


def _synchronise(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_case(device, amp, steps, repeats, warmup):
    step, cfg, image_shape = build_step(device, amp)
    generator = torch.Generator().manual_seed(0)
    batch = cfg.batch_size
    images = [torch.rand(batch, *image_shape, generator=generator).to(device)
              for _ in range(steps)]
    for x in images[:warmup]:
        step(x)
    _synchronise(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for x in images:
            step(x)
        _synchronise(device)
        times.append((time.perf_counter() - start) / steps * 1e3)
    median = statistics.median(times)
    return {"device": str(device), "amp": str(amp), "batch": batch, "J": cfg.elbo.num_particles,
            "latent_dim": cfg.model.latent_dim, "ms": median, "ms_min": min(times),
            "ms_max": max(times), "images_per_s": batch / median * 1e3}


def markdown(meta, rows):
    lines = [f"Fashion-MNIST generator (`experiment=fmnist`), batch {rows[0]['batch']}, "
             f"J = {rows[0]['J']}, d = {rows[0]['latent_dim']}; {meta['threads']} CPU threads, "
             f"torch {meta['torch']}, pyro {meta['pyro']}; medians over {meta['repeats']} × "
             f"{meta['steps']} steps (min-max).", "",
             "| device | amp | ms/step | images/s |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['device']} | {r['amp']} | {r['ms']:.1f} ({r['ms_min']:.1f}-"
                     f"{r['ms_max']:.1f}) | {r['images_per_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="steps per repetition")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when available (all three precisions), and the CPU")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = []
    if args.device in ("auto", "cuda") and torch.cuda.is_available():
        cases += [(torch.device("cuda"), amp) for amp in ("false", "bf16", "fp16")]
    elif args.device == "cuda":
        parser.error("--device cuda: CUDA is not available")
    if args.device in ("auto", "cpu"):
        cases.append((torch.device("cpu"), "false"))
    rows = []
    with runtime_settings(compose_config()):
        for device, amp in cases:
            row = time_case(device, amp, args.steps, args.repeats, args.warmup)
            print(f"{row['device']:5s} amp={row['amp']:5s}: {row['ms']:.1f} ms/step "
                  f"[{row['ms_min']:.1f}-{row['ms_max']:.1f}], {row['images_per_s']:.1f} images/s",
                  flush=True)
            rows.append(row)
    meta = {"machine": platform.platform(), "threads": args.threads, "torch": torch.__version__,
            "pyro": pyro.__version__, "steps": args.steps, "repeats": args.repeats,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dnn_step.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    table = markdown(meta, rows)
    (RESULTS / "dnn_step.md").write_text(table)
    print(table)
    return rows


if __name__ == "__main__":
    main()
