"""Throughput of the Gamma threshold sampler alone: ``VectorizedGamma`` against torch's ``Gamma``.

The threshold posterior of ``guide=thresh_gamma`` draws J × B × K variates per step from
parameters of shape (B, K) expanded along the particle dimension (batch B = 100, K = 256
latents). For J ∈ {1, 20} and shapes α drawn around a few typical values (α = a·exp(0.3 ξ),
ξ ~ N(0, 1); rate β = exp(0.3 ξ')), each sampler is timed forward (``rsample`` without gradient)
and forward + backward (``rsample`` then backpropagating a random cotangent into α and β),
interleaved repetition by repetition in a rotating order, after a warm-up. Printed and written
(JSON + Markdown, ``benchmarks/results/``): median milliseconds and million draws per second of
each, and the speed-up over torch.

Run: ``python -m benchmarks.gamma_sampler [--repeats 15 --calls 10 --threads 2 --device cpu]``.
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch

from pyro_vsc.distributions import VectorizedGamma

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLERS = {"VectorizedGamma": VectorizedGamma, "torch Gamma": dist.Gamma}
BATCH, LATENTS = 100, 256


def make_case(num_particles, alpha, device, seed=0):
    generator = torch.Generator().manual_seed(seed)
    log_alpha = torch.log(torch.tensor(alpha)) + 0.3 * torch.randn(BATCH, LATENTS, generator=generator)
    log_rate = 0.3 * torch.randn(BATCH, LATENTS, generator=generator)
    shape = (num_particles, BATCH, LATENTS)
    cotangent = torch.randn(shape, generator=generator)
    return [t.to(device) for t in (log_alpha, log_rate, cotangent)], shape


def make_call(sampler, tensors, shape, backward):
    log_alpha, log_rate, cotangent = tensors
    log_alpha, log_rate = log_alpha.clone().requires_grad_(backward), log_rate.clone().requires_grad_(backward)

    def call():
        draws = sampler(log_alpha.exp(), log_rate.exp()).expand(shape).rsample()
        if backward:
            draws.backward(cotangent)
            log_alpha.grad = log_rate.grad = None

    return call


def time_calls(call, calls, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / calls * 1e3


def run(repeats=15, calls=10, threads=2, device="cpu", alphas=(0.3, 1.0, 3.0, 100.0), particles=(1, 20)):
    torch.set_num_threads(threads)
    torch.distributions.Distribution.set_default_validate_args(False)  # as in a training run
    device = torch.device(device)
    rows = []
    for num_particles in particles:
        for alpha in alphas:
            tensors, shape = make_case(num_particles, alpha, device)
            paths = {(name, backward): make_call(sampler, tensors, shape, backward)
                     for name, sampler in SAMPLERS.items() for backward in (False, True)}
            for call in paths.values():  # warm-up
                time_calls(call, 2, device)
            times = {key: [] for key in paths}
            order = list(paths)
            for _ in range(repeats):
                for key in order:
                    times[key].append(time_calls(paths[key], calls, device))
                order = order[1:] + order[:1]
            draws = shape[0] * shape[1] * shape[2]
            row = {"J": num_particles, "alpha": alpha, "draws": draws}
            for (name, backward), values in times.items():
                key = f"{name} {'fwd+bwd' if backward else 'fwd'}"
                median = statistics.median(values)
                row[key + " ms"] = median
                row[key + " Mdraws/s"] = draws / median / 1e3
            for mode in ("fwd", "fwd+bwd"):
                row[f"speed-up {mode}"] = row[f"torch Gamma {mode} ms"] / row[f"VectorizedGamma {mode} ms"]
            rows.append(row)
            print(f"J={num_particles:2d} α≈{alpha:g}: "
                  + ", ".join(f"{mode} {row[f'VectorizedGamma {mode} ms']:.2f} ms vs torch "
                              f"{row[f'torch Gamma {mode} ms']:.2f} ms (x{row[f'speed-up {mode}']:.1f})"
                              for mode in ("fwd", "fwd+bwd")), flush=True)
    meta = {"machine": platform.platform(), "processor": platform.processor(), "threads": threads,
            "device": str(device), "torch": torch.__version__, "pyro": pyro.__version__,
            "repeats": repeats, "calls_per_repeat": calls}
    return meta, rows


def markdown(meta, rows):
    lines = [f"Gamma sampler, {meta['device']}, {meta['threads']} threads, torch {meta['torch']}; "
             f"medians over {meta['repeats']} × {meta['calls_per_repeat']} calls; B = {BATCH}, "
             f"K = {LATENTS}, α = a·exp(0.3ξ).", "",
             "| J | a | draws | Vectorized fwd ms (Mdraws/s) | torch fwd ms (Mdraws/s) | speed-up fwd "
             "| Vectorized fwd+bwd ms (Mdraws/s) | torch fwd+bwd ms (Mdraws/s) | speed-up fwd+bwd |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = []
        for mode in ("fwd", "fwd+bwd"):
            for name in SAMPLERS:
                cells.append(f"{r[f'{name} {mode} ms']:.2f} ({r[f'{name} {mode} Mdraws/s']:.1f})")
            cells.append(f"{r[f'speed-up {mode}']:.1f}")
        lines.append(f"| {r['J']} | {r['alpha']:g} | {r['draws']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    meta, rows = run(args.repeats, args.calls, args.threads, args.device)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gamma_sampler.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    table = markdown(meta, rows)
    (RESULTS / "gamma_sampler.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
