"""Achievable float32 matmul throughput and the floating-point work of one linear-model step."""

import time

import torch


def matmul_throughput(sizes=((100, 1024, 512), (2000, 256, 256), (512, 512, 512)), repeats=30):
    """Best float32 GFLOP/s over ``torch.mm`` of representative shapes (m, k, n), in this process.

    Each shape is timed ``repeats`` times after a warm-up; the best per-call time of the best
    shape is the "achievable" throughput the roofline uses (an optimistic bound on purpose).
    """
    best = 0.0
    details = {}
    for m, k, n in sizes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(5):
            torch.mm(a, b)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - start)
        gflops = 2 * m * k * n / min(times) / 1e9
        details[f"{m}x{k}x{n}"] = gflops
        best = max(best, gflops)
    return best, details


def linear_step_flops(batch, num_particles, data_dim, dict_size, encoder_widths, heads):
    """Matmul FLOPs of one training step of the linear model (forward and backward).

    Encoder: every Linear layer costs 2·B·in·out forward and twice that backward (input and weight
    gradients); the first layer's input gradient is not needed but is counted (an upper bound
    within 1%). Heads: ``heads`` layers of feature_dim × K. Decoder z Aᵀ for J·B codes: 2·J·B·K·D
    forward, twice that backward. Element-wise work (sampling, thresholding, KLs, optimizer
    updates) is not counted: it is memory-bound and is what the profile shows beyond the bound.
    """
    widths = list(encoder_widths)
    linear = sum(a * b for a, b in zip(widths[:-1], widths[1:])) + heads * widths[-1] * dict_size
    encoder = 6 * batch * linear
    decoder = 6 * num_particles * batch * dict_size * data_dim
    return encoder + decoder
