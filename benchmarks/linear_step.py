"""Training-step time of the linear model: Pyro path vs. plain-PyTorch floor vs. roofline.

For each guide (``thresh``, ``thresh_gamma`` and the Gaussian baseline), J ∈ {1, 20} and
objective ∈ {max, avg} at batch 100 (and, for comparison, ``thresh`` with Pyro's stock
``TraceMeanField_ELBO``, ``avg_pyro``), three paths are timed in the same process, interleaved
repetition by repetition in a rotating order, after a warm-up:

* the Pyro path: the library's own ``Trainer.train_step`` as a run uses it (zero grads, the Pyro
  ELBO's loss — replayed from its recording, ``capture=true``, where the objective allows — and
  backward, the divergence check, both optimizers and schedules, the warm-up counter);
* the same with ``capture=false``: the Pyro program evaluated eagerly at every step;
* the plain-PyTorch floor (``benchmarks.linear_floor``: same loss and gradients, same optimizers).

Printed and written (JSON + Markdown, ``benchmarks/results/``): median ms/step and the spread
(min-max over repetitions) of each, the ratios to the floor (paired: the median over repetitions
of the ratio within a repetition, whose paths ran back to back, so that load drifting between
repetitions on a shared machine cancels, which it does not in a ratio of medians), and the ratio
of the Pyro path to the roofline bound (the step's matmul FLOPs over this machine's best
measured matmul throughput). Then the ``thresh_gamma`` and ``thresh`` Pyro steps (``elbo=max``,
J = 1 and 20) are timed against each other in the same way, for the paired ratio of the learned
threshold's step to the fixed one's. Profiles of the ``thresh`` and ``thresh_gamma`` J = 20 Pyro
steps show where the time beyond the bound goes.

Each case is timed in ``--processes`` fresh Python processes (default 3), run in rounds over
all cases so that one case's processes are minutes apart; their paired ratios are combined by
their median and shown with their range. On this shared machine the paired ratio of one case
moved by up to ±6% from one process to the next, more than the effects the targets are about.
With ``--processes 1`` everything runs in this process.

Run: ``python -m benchmarks.linear_step [--processes 3 --repeats 10 --steps 20 --threads 2]``.
"""

import argparse
import copy
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyro
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from benchmarks.linear_floor import LinearFloor, constants_from
from benchmarks.roofline import linear_step_flops, matmul_throughput
from pyro_vsc.config import compose_config
from pyro_vsc.run import build_optimizers, build_run, runtime_settings
from pyro_vsc.train.trainer import Trainer

RESULTS = Path(__file__).resolve().parent / "results"
CASES = [(guide, j, objective) for guide in ("thresh", "thresh_gamma", "gaussian")
         for j in (1, 20) for objective in ("max", "avg")] + [("thresh", 1, "avg_pyro"), ("thresh", 20, "avg_pyro")]
PROFILED = [("thresh", 20, "max"), ("thresh_gamma", 20, "max")]
#: Guides whose Pyro steps are also timed against each other in the same repetitions, and at
#: which numbers of particles.
PAIRED_GUIDES = ("thresh_gamma", "thresh")
PAIRED_J = (1, 20)


def build_case(guide, num_particles, objective, batch=100, capture=True):
    """The Pyro path (a Trainer) and the floor (its own copies of the networks) of one case."""
    cfg = compose_config(["experiment=paper", f"guide={guide}", f"elbo={objective}",
                          f"elbo.num_particles={num_particles}",
                          "data.num_train=4000", "data.num_val=100", f"batch_size={batch}",
                          "progress=false", f"capture={capture}"])
    built = build_run(cfg, torch.device("cpu"))
    model, guide_module = built["model"], built["guide"]
    steps_per_epoch = 4000 // batch
    trainer = Trainer(model=model, guide=guide_module, objective=built["step"],
                      optimizers=build_optimizers(cfg, model, guide_module, steps_per_epoch),
                      batches=None, epochs=cfg.epochs)
    encoder = copy.deepcopy(guide_module.encoder)
    dictionary = copy.deepcopy(model.decoder)
    kl_weights = OmegaConf.to_container(cfg.kl_weights, resolve=True)
    floor = LinearFloor(encoder, dictionary.weight, guide, num_particles, "max" if objective == "max" else "avg",
                        constants_from(model, guide_module, kl_weights))
    optimizers = [
        (instantiate(cfg.model.optim.model.optimizer)(dictionary.parameters()),),
        (instantiate(cfg.model.optim.guide.optimizer)(encoder.parameters()),),
    ]
    optimizers = [(opt, instantiate(cfg.model.optim[name].scheduler)(opt, steps_per_epoch, cfg.epochs))
                  for (opt,), name in zip(optimizers, ("model", "guide"))]
    state = {"step": 0}

    def floor_step(x):
        for opt, _ in optimizers:
            opt.zero_grad(set_to_none=True)
        loss = floor.loss(x, state["step"])
        loss.backward()
        for opt, sched in optimizers:
            opt.step()
            sched.step()
        state["step"] += 1
        return loss.detach()

    data = built["data"].train
    widths = [cfg.model.backbone.input_dim, *cfg.model.backbone.hidden]
    flops = linear_step_flops(batch, num_particles, cfg.model.data_dim, cfg.model.latent_dim,
                              widths, heads=len(guide_module.encoder.heads))
    return trainer.train_step, floor_step, data, flops


def time_steps(step, batches):
    start = time.perf_counter()
    for x in batches:
        step(x)
    return (time.perf_counter() - start) / len(batches) * 1e3


def paired_ratio(times, reference):
    """Median over repetitions of the ratio of two paths timed in the same repetition."""
    return statistics.median(t / r for t, r in zip(times, reference))


def profile_step(step, batches, rows=15):
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for x in batches:
            step(x)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def run(repeats=10, steps=20, warmup=20, threads=2, batch=100, processes=3):
    torch.set_num_threads(threads)
    with runtime_settings(compose_config()):  # the training runtime: validation off, etc.
        return _run(repeats, steps, warmup, threads, batch, processes)


def _run(repeats, steps, warmup, threads, batch, processes):
    peak, shapes = matmul_throughput()
    settings = {"repeats": repeats, "steps": steps, "warmup": warmup, "threads": threads, "batch": batch}
    jobs = [("case", f"{guide}:{j}:{objective}") for guide, j, objective in CASES]
    jobs += [("pair", str(j)) for j in PAIRED_J]
    measured = in_processes(processes, jobs, settings)
    rows = []
    for guide, j, objective in CASES:
        runs = measured[("case", f"{guide}:{j}:{objective}")]
        flops = runs[0]["flops"]
        bound = flops / (peak * 1e9) * 1e3
        row = {"guide": guide, "J": j, "objective": objective, "roofline_ms": bound,
               "gflop": flops / 1e9}
        for name in runs[0]["times"]:
            values = [t for run_ in runs for t in run_["times"][name]]
            row.update({f"{name}_ms": statistics.median(values), f"{name}_min": min(values),
                        f"{name}_max": max(values)})
        # paired: each repetition times every path back to back, so the ratio within a
        # repetition cancels the machine's drift (other tenants, clock changes) between them;
        # then the median over processes, with their range
        for key, path in (("ratio_floor", "pyro"), ("ratio_eager_floor", "eager")):
            row[key], row[f"{key}_processes"] = paired_over_processes(runs, path, "floor")
        row["ratio_roofline"] = row["pyro_ms"] / bound
        rows.append(row)
        print(f"{guide:13s} J={j:2d} {objective:8s}: pyro {row['pyro_ms']:.2f} ms "
              f"[{row['pyro_min']:.2f}-{row['pyro_max']:.2f}], eager {row['eager_ms']:.2f} ms, "
              f"floor {row['floor_ms']:.2f} ms [{row['floor_min']:.2f}-{row['floor_max']:.2f}], "
              f"ratio {row['ratio_floor']:.3f} {_spread(row['ratio_floor_processes'])}"
              f"(eager {row['ratio_eager_floor']:.3f}), "
              f"roofline {bound:.2f} ms (x{row['ratio_roofline']:.2f})", flush=True)
    pairs = []
    first, second = PAIRED_GUIDES
    for j in PAIRED_J:
        runs = measured[("pair", str(j))]
        row = {"J": j, **{f"{guide}_ms": statistics.median(t for run_ in runs for t in run_["times"][guide])
                          for guide in PAIRED_GUIDES}}
        row["ratio"], row["ratio_processes"] = paired_over_processes(runs, first, second)
        print(f"{first} / {second} J={j:2d} max (paired): {row[f'{first}_ms']:.2f} / "
              f"{row[f'{second}_ms']:.2f} ms, ratio {row['ratio']:.3f} {_spread(row['ratio_processes'])}",
              flush=True)
        pairs.append(row)
    profiles = {}
    for guide, j, objective in PROFILED:
        pyro_step, _, data, _ = build_case(guide, j, objective, batch)
        batches = sample_batches(data, steps, batch)
        for x in batches:
            pyro_step(x)
        profiles[f"{guide}, J={j}, {objective}"] = profile_step(pyro_step, batches[:10])
    meta = {"machine": platform.platform(), "processor": platform.processor(), "threads": threads,
            "torch": torch.__version__, "pyro": pyro.__version__, "batch": batch, "repeats": repeats,
            "steps_per_repeat": steps, "processes": processes, "matmul_gflops": peak,
            "matmul_shapes": shapes}
    return meta, rows, pairs, profiles


def paired_over_processes(runs, path, reference):
    """``(median, per-process list)`` of the paired ratio of ``path`` to ``reference`` in each
    process's times."""
    per_process = [paired_ratio(run_["times"][path], run_["times"][reference]) for run_ in runs]
    return statistics.median(per_process), per_process


def sample_batches(data, steps, batch):
    """The ``steps`` minibatches every path of a case runs (the same for every process)."""
    generator = torch.Generator().manual_seed(0)
    return [data[torch.randint(0, len(data), (batch,), generator=generator)] for _ in range(steps)]


def time_case(guide, num_particles, objective, repeats, steps, warmup, batch):
    """One process's timing of a case: ``{"times": path → ms/step per repetition, "flops"}``."""
    pyro_step, floor_step, data, flops = build_case(guide, num_particles, objective, batch)
    eager_step = build_case(guide, num_particles, objective, batch, capture=False)[0]
    paths = {"pyro": pyro_step, "eager": eager_step, "floor": floor_step}
    return {"times": time_interleaved(paths, sample_batches(data, steps, batch), repeats, warmup),
            "flops": flops}


def in_processes(processes, jobs, settings):
    """``job → [result of each process]`` for ``jobs`` of :func:`_measure`, each measured in
    ``processes`` fresh processes (all in this one for ``processes=1``). The processes run in
    rounds over every job, so that the measurements of one job are minutes apart and a passing
    load on the machine does not bias all of them."""
    measured = {job: [] for job in jobs}
    for round_ in range(processes):
        for kind, case in jobs:
            started = time.perf_counter()
            measured[kind, case].append(_measure(kind, case, settings) if processes == 1
                                        else _in_a_process(kind, case, settings))
            print(f"[{round_ + 1}/{processes}] {kind} {case}: {time.perf_counter() - started:.0f} s",
                  flush=True)
    return measured


def _in_a_process(kind, case, settings):
    command = [sys.executable, "-m", "benchmarks.linear_step", f"--worker-{kind}", case,
               *(f"--{key}={value}" for key, value in settings.items())]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[2:])} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def _measure(kind, case, settings):
    """One timing: ``kind="case"`` with ``case="guide:J:objective"`` (:func:`time_case`) or
    ``kind="pair"`` with ``case="J"`` (:func:`time_guides_against_each_other`)."""
    timing = {key: settings[key] for key in ("repeats", "steps", "warmup", "batch")}
    if kind == "pair":
        return time_guides_against_each_other(int(case), **timing)
    guide, j, objective = case.split(":")
    return time_case(guide, int(j), objective, **timing)


def time_interleaved(paths, batches, repeats, warmup):
    """name → ms/step of each repetition: every path runs the same batches, the paths of a
    repetition back to back in an order that rotates between repetitions, after a warm-up."""
    for x in batches[:warmup]:
        for step in paths.values():
            step(x)
    times = {name: [] for name in paths}
    order = list(paths)
    for _ in range(repeats):
        for name in order:
            times[name].append(time_steps(paths[name], batches))
        order = order[1:] + order[:1]
    return times


def time_guides_against_each_other(num_particles, repeats, steps, warmup, batch):
    """The Pyro steps of ``thresh_gamma`` and ``thresh`` (``elbo=max``) timed in the same
    repetitions (``{"times": guide → ms/step per repetition}``), for the paired ratio of the
    cost of learning the threshold (§3.2) over a fixed one, free of the drift between the
    separate cases of the table."""
    paths = {guide: build_case(guide, num_particles, "max", batch)[0] for guide in PAIRED_GUIDES}
    data = build_case("thresh", num_particles, "max", batch)[2]
    return {"times": time_interleaved(paths, sample_batches(data, steps, batch), repeats, warmup)}


def _spread(values):
    """``[min-max] `` of the per-process ratios (nothing for one process)."""
    return f"[{min(values):.3f}-{max(values):.3f}] " if len(values) > 1 else ""


def markdown(meta, rows, pairs=()):
    lines = [f"Linear model, batch {meta['batch']}, {meta['threads']} threads, torch {meta['torch']}, "
             f"pyro {meta['pyro']}; best matmul {meta['matmul_gflops']:.1f} GFLOP/s; medians over "
             f"{meta['processes']} processes × {meta['repeats']} × {meta['steps_per_repeat']} steps "
             "(min-max); ratios to the floor are medians of the ratios within a repetition (paired), "
             "then the median over the processes [their range].", "",
             "| guide | J | objective | Pyro ms/step | Pyro eager (capture=false) | floor ms/step "
             "| Pyro / floor | eager / floor | roofline ms | Pyro / roofline |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['guide']} | {r['J']} | {r['objective']} | {r['pyro_ms']:.2f} "
                     f"({r['pyro_min']:.2f}-{r['pyro_max']:.2f}) | {r['eager_ms']:.2f} "
                     f"({r['eager_min']:.2f}-{r['eager_max']:.2f}) | {r['floor_ms']:.2f} "
                     f"({r['floor_min']:.2f}-{r['floor_max']:.2f}) | {r['ratio_floor']:.3f} {_spread(r['ratio_floor_processes'])}| "
                     f"{r['ratio_eager_floor']:.3f} | {r['roofline_ms']:.2f} | {r['ratio_roofline']:.2f} |")
    if pairs:
        first, second = PAIRED_GUIDES
        lines += ["", f"`{first}` against `{second}` (`elbo=max`, the Pyro steps timed in the same "
                  "repetitions; ratio paired):", "",
                  f"| J | {first} ms/step | {second} ms/step | {first} / {second} |", "|---|---|---|---|"]
        lines += [f"| {r['J']} | {r[f'{first}_ms']:.2f} | {r[f'{second}_ms']:.2f} | {r['ratio']:.3f} "
                  f"{_spread(r['ratio_processes'])}|"
                  for r in pairs]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=3,
                        help="fresh processes per case (1: all in this one)")
    parser.add_argument("--repeats", type=int, default=10, help="repetitions per process")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=100)
    worker = parser.add_mutually_exclusive_group()  # one process of in_processes: prints JSON
    worker.add_argument("--worker-case", metavar="GUIDE:J:OBJECTIVE", help=argparse.SUPPRESS)
    worker.add_argument("--worker-pair", metavar="J", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker_case or args.worker_pair:
        torch.set_num_threads(args.threads)
        kind, case = ("case", args.worker_case) if args.worker_case else ("pair", args.worker_pair)
        settings = {"repeats": args.repeats, "steps": args.steps, "warmup": args.warmup, "batch": args.batch}
        with runtime_settings(compose_config()):
            print(json.dumps(_measure(kind, case, settings)))
        return
    meta, rows, pairs, profiles = run(args.repeats, args.steps, args.warmup, args.threads,
                                      args.batch, args.processes)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "linear_step.json").write_text(json.dumps({"meta": meta, "rows": rows, "pairs": pairs}, indent=2))
    table = markdown(meta, rows, pairs)
    profile_text = "".join(f"\nProfile of the {case} Pyro step (10 steps):\n\n```\n{text}```\n"
                           for case, text in profiles.items())
    (RESULTS / "linear_step.md").write_text(table + profile_text)
    print(table)
    print(profile_text)


if __name__ == "__main__":
    main()
