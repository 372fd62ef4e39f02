"""The GPU check of the performance issue, in one call: one process, many processes per
GPU, and the losses, each figure printed next to its baseline.

    python benchmarks/gpu_check.py                       # on a machine with a CUDA GPU
    python benchmarks/gpu_check.py --processes 1,6,12 --sentences 4000

1. One ``noisebench train`` process (``--model``, batch 32, one epoch on the first
   ``--sentences`` training sentences, bf16 autocast on CUDA): sentences/s, against 766
   sentences/s measured on an H200 before the loop stopped reading the loss every step;
   then the same with ``--compile``: its first step (compiling) and its sentences/s after
   it, against the plain process.
2. ``k`` concurrent ``noisebench train`` processes on the same GPU for each ``k`` in
   ``--processes`` (different seeds; each gets its share of the cores): the sum of their
   sentences/s, the curve's best point, and from it the training time of the ``study``
   preset (243 runs x 3 epochs x 14,041 sentences; evaluation not included), against the
   15-minute target.
3. ``benchmarks/bench_losses.py`` (CUDA rows when a GPU is present): every loss against
   ``F.cross_entropy``, target GCE/SGCE <= 1.5x.

Without a GPU it runs the same steps on the CPU (``--device cpu``), which is how CI keeps
it working; the figures are then CPU figures and say so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINE_ONE_PROCESS = 766.0  # sentences/s, H200, minilm-l6, batch 32, bf16, before issue 11
STUDY_SENTENCES = 243 * 3 * 14_041  # the study preset's training sentences
STUDY_TARGET_MINUTES = 15.0


def train_command(args, runs_dir: Path, seed: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "noisebench", "train", "--loss", "ce", "--epochs", "1",
        "--data", args.data, "--model", args.model, "--max-train-samples",
        str(args.sentences), "--batch-size", "32", "--lr", "1e-4", "--seed", str(seed),
        "--device", args.device, "--runs-dir", str(runs_dir), "--json", *extra,
    ]  # fmt: skip


def concurrent(args, runs_dir: Path, processes: int, *extra: str) -> tuple[list[dict], float]:
    """Start ``processes`` trainings at once; each one's ``train`` summary and the wall
    time."""
    environment = dict(os.environ)
    environment["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // processes))
    started = time.perf_counter()
    children = [
        subprocess.Popen(
            train_command(args, runs_dir / f"k{processes}", seed, *extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for seed in range(processes)
    ]
    speeds = []
    for child in children:
        out, err = child.communicate()
        if child.returncode != 0:
            sys.exit(f"noisebench train failed: {err.strip().splitlines()[-1:]}")
        speeds.append(json.loads(out)["train"])
    return speeds, time.perf_counter() - started


def after_first_step(summary: dict, batch: int = 32) -> float:
    """Sentences/s of a run without its first step (compiling, with --compile)."""
    sentences = summary["seconds"] * summary["sentences_per_second"]
    rest = summary["seconds"] - summary["first_step_seconds"]
    return (sentences - batch) / rest if sentences > batch and rest > 0 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if any)")
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--data", default="conll2003")
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--processes", default="1,4,8,12")
    parser.add_argument("--loss-tokens", type=int, default=16384)
    parser.add_argument("--loss-repeats", type=int, default=100)
    args = parser.parse_args()
    import torch

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    card = torch.cuda.get_device_name() if args.device == "cuda" else "CPU (no GPU: a CPU run)"
    print(f"device: {card}; torch {torch.__version__}; {os.cpu_count()} cores")
    counts = [int(k) for k in args.processes.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        runs_dir = Path(folder)
        (plain,), _ = concurrent(args, runs_dir / "one", 1)
        single = plain["sentences_per_second"]
        print(
            f"1. one process: {single:.0f} sentences/s, {after_first_step(plain):.0f} after"
            f" its first step (baseline {BASELINE_ONE_PROCESS:.0f} on an H200 before;"
            f" target >= 4x = {4 * BASELINE_ONE_PROCESS:.0f})"
        )
        (compiled,), _ = concurrent(args, runs_dir / "compiled", 1, "--compile")
        state = "compiled" if compiled["compiled"] else "compiling FAILED, ran plain"
        print(
            f"   with --compile ({state}): first step {compiled['first_step_seconds']:.1f} s,"
            f" then {after_first_step(compiled):.0f} sentences/s"
            f" ({after_first_step(compiled) / after_first_step(plain):.2f}x the plain process)"
        )
        print("2. processes  per process  total sentences/s  wall s")
        best = 0.0
        for processes in counts:
            summaries, wall = concurrent(args, runs_dir, processes)
            total = sum(summary["sentences_per_second"] for summary in summaries)
            best = max(best, total)
            print(f"   {processes:9d}  {total / processes:11.0f}  {total:17.0f}  {wall:6.1f}")
        minutes = STUDY_SENTENCES / best / 60
        print(
            f"   study preset, training only, at the best total: {minutes:.1f} min"
            f" (target <= {STUDY_TARGET_MINUTES:.0f}; {STUDY_SENTENCES:,} sentences)"
        )
    print("3. losses against F.cross_entropy (target GCE/SGCE <= 1.5x):", flush=True)
    bench = Path(__file__).with_name("bench_losses.py")
    subprocess.run(
        [
            sys.executable,
            str(bench),
            "--tokens",
            str(args.loss_tokens),
            "--repeats",
            str(args.loss_repeats),
        ],
        check=True,
    )


if __name__ == "__main__":
    main()
