"""Forward + backward time of every loss against ``F.cross_entropy``, in one process.

    python benchmarks/bench_losses.py              # CPU; CUDA too when a GPU is present
    python benchmarks/bench_losses.py --tokens 16384 --repeats 300

For each device and C in {9, 37} (CoNLL-2003 tags; a fine-grained tag set), times the
loss's forward and backward on the same (N, C) float32 logits and prints the median
time and its ratio to ``F.cross_entropy``. ``gce (autograd)`` and ``sgce (autograd)``
are the straightforward implementations of the same formulas, for comparison with the
closed-form backward. On CUDA, GCE and SGCE run as compiled kernels
(``losses.FUSED_DEVICES``); their ``(eager)`` rows are the closed form without them.

Small-tensor timings on CPU depend on glibc's allocator: a fresh (N, C) buffer above its
mmap threshold is page-faulted in on every call, which can cost more than the arithmetic
and makes runs disagree by 2x. The script therefore runs its measurements twice, in
child processes: with the default allocator settings, and with
``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` raised ("steady allocator"), which
is what a training loop sees once its large tensors have raised glibc's dynamic
threshold. Both tables are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from noisebench.training import losses
from noisebench.training.losses import build_loss


def autograd_sgce(q: float, s: float):
    def loss(logits, targets):
        log_p = torch.log_softmax(logits.float(), dim=-1)
        weights = torch.full_like(log_p, s / (logits.shape[-1] - 1))
        weights.scatter_(1, targets[:, None], 1 - s)
        return (weights * (1 - torch.exp(q * log_p)) / q).sum(1).mean()

    return loss


def eager(loss):
    """``loss`` with the compiled GCE/SGCE kernels switched off (the CPU's path)."""

    def call(logits, targets):
        fused, losses.FUSED_DEVICES = losses.FUSED_DEVICES, set()
        try:
            return loss(logits, targets)
        finally:
            losses.FUSED_DEVICES = fused

    return call


def candidates(device: str):
    rows = {
        "F.cross_entropy": F.cross_entropy,
        "ce": build_loss("ce"),
        "mae": build_loss("mae"),
        "gce q=0.7": build_loss("gce", q=0.7),
        "sgce q=0.7 s=0.1": build_loss("sgce", q=0.7, s=0.1),
        "sce": build_loss("sce"),
        "nce+rce": build_loss("nce+rce"),
        "gce (autograd)": autograd_sgce(0.7, 0.0),
        "sgce (autograd)": autograd_sgce(0.7, 0.1),
    }
    if device in losses.FUSED_DEVICES:
        rows["gce q=0.7 (eager)"] = eager(build_loss("gce", q=0.7))
        rows["sgce q=0.7 s=0.1 (eager)"] = eager(build_loss("sgce", q=0.7, s=0.1))
    return rows


def median_seconds(loss, logits, targets, repeats: int) -> float:
    def step():
        logits.grad = None
        loss(logits, targets).backward()

    for _ in range(10):
        step()
    times = []
    for _ in range(repeats):
        if logits.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if logits.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--child", choices=["default", "steady"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is None:
        steady = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
        for mode, extra in (("default", {}), ("steady", steady)):
            command = [
                sys.executable,
                __file__,
                "--child",
                mode,
                "--tokens",
                str(args.tokens),
                "--repeats",
                str(args.repeats),
            ]
            subprocess.run(command, env=os.environ | extra, check=True)
        return
    print(f"\n=== {args.child} allocator ===")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, N = {args.tokens}")
    for device in devices:
        for num_classes in (9, 37):
            generator = torch.Generator().manual_seed(0)
            logits = (3 * torch.randn(args.tokens, num_classes, generator=generator)).to(device)
            logits.requires_grad_(True)
            targets = torch.randint(0, num_classes, (args.tokens,), generator=generator)
            targets = targets.to(device)
            # interleave the candidates over rounds so machine noise hits all alike
            rounds = {name: [] for name in candidates(device)}
            for _ in range(3):
                for name, loss in candidates(device).items():
                    rounds[name].append(median_seconds(loss, logits, targets, args.repeats // 3))
            baseline = statistics.median(rounds["F.cross_entropy"])
            print(f"\n{device}, C = {num_classes}")
            print(f"  {'loss':26} {'fwd+bwd (us)':>12} {'vs F.cross_entropy':>19}")
            for name, seconds in rounds.items():
                value = statistics.median(seconds)
                print(f"  {name:26} {value * 1e6:12.0f} {value / baseline:18.2f}x")


if __name__ == "__main__":
    main()
