"""How many reviewed sentences does a decision need? A simulated review on data whose
truth is known.

    python benchmarks/review_simulation.py RUN_A RUN_B --data noisebench:crowd

``RUN_A`` and ``RUN_B`` are finished runs on the same data (e.g. CE and CE +
``mask-missing`` on ``noisebench:crowd``). Their saved predictions of ``--split`` are
scored against the split's clean labels (``clean_tags``), first on all its sentences (the
answer a full review would give), then on ``--draws`` uniform random samples of n
sentences for each n of ``--n``: what a review of n random sentences would have said.
For each n it reports how often the sample ranks the two runs as all clean labels do, how
often its paired bootstrap interval (the verdict's: ``scoring.paired``) calls the
difference significant, how often it is significant *and* wrong (confidently wrong), and
the median over all draws of the verdict's "a difference this size needs about N
reviewed sentences" (``studies.verdict.sentences_needed``), to set against the n at which
half the draws resolve it. The runs' own noisy labels give the answer without review, for
comparison.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from noisebench.data import loading
from noisebench.scoring import paired
from noisebench.studies.verdict import sentences_needed
from noisebench.training import runs


def stats_against(predictions: runs.Predictions, gold: np.ndarray, scheme: str):
    return paired.sentence_stats(replace(predictions, gold=gold), scheme)


def clean_gold(spec: str, split: str, labels: list[str]) -> tuple[np.ndarray, str]:
    """The split's clean labels as ids into the runs' label list, and the data's scheme."""
    dataset = loading.load(spec)
    names = loading.label_names(dataset[split])
    flat, _ = loading.flat_tags(dataset[split], "clean_tags")
    to_runs = np.array([labels.index(name) for name in names])
    return to_runs[flat], loading.scheme(dataset)


def subset(stats: paired.SentenceStats, rows: np.ndarray) -> paired.SentenceStats:
    entity = None if stats.entity_bins is None else stats.entity_bins[rows]
    return paired.SentenceStats(stats.counts[rows], stats.bins[rows], entity)


def simulate(a, b, truth: float, n: int, draws: int, replicates: int, seed: int) -> dict:
    """``draws`` random samples of ``n`` sentences: how each one's verdict came out."""
    rng = np.random.default_rng([seed, n])
    sentences = len(a.counts)
    right = significant = wrong = 0
    needed = []
    for draw in range(draws):
        rows = rng.choice(sentences, size=n, replace=False)
        entry = paired.paired_difference(
            [subset(a, rows)], [subset(b, rows)], "f1", replicates, seed + draw
        ).to_dict()
        agrees = np.sign(entry["difference"]) == np.sign(truth)
        right += bool(agrees)
        significant += entry["significant"]
        wrong += entry["significant"] and not agrees
        # the verdict's estimate, taken on every draw (resolved ones included, so the
        # median is not only that of the draws that happened to come out small)
        needed.append(sentences_needed(entry | {"significant": False}, n) or np.inf)
    return {
        "n": n,
        "right": right / draws,
        "significant": significant / draws,
        "confidently_wrong": wrong / draws,
        "needed_median": float(np.median(needed)) if needed else None,
    }


def stratum_total(sampled: np.ndarray, pool: int) -> tuple[float, float | None]:
    """Issue 28's focused estimator, kept here to reproduce the tables it made (review
    merge now estimates each run's F1 by ``scoring.design``): the stratum's total ``pool ·
    mean`` and its without-replacement standard error (0 from equal values: the defect
    issue 36 names)."""
    n = len(sampled)
    total = float(pool * sampled.mean())
    if n >= pool:
        return total, 0.0
    if n < 2:
        return total, None
    return total, pool * math.sqrt((1 - n / pool) * float(sampled.var(ddof=1)) / n)


def simulate_focused(a, b, truth: float, differ: np.ndarray, n: int, draws: int, seed: int):
    """``draws`` samples of ``n`` of the sentences where the runs disagree (``review sample
    --compare``): the unbiased estimate of the difference in correctly found entities
    (``studies.focus``), its sign against the full truth, and its 95% interval."""
    rng = np.random.default_rng([seed, n, 1])
    values = a.counts[differ, 0] - b.counts[differ, 0]  # tp_A - tp_B per sentence
    n = min(n, len(values))
    right = significant = wrong = 0
    for _ in range(draws):
        total, error = stratum_total(values[rng.choice(len(values), n, replace=False)],
                                     len(values))  # fmt: skip
        agrees = np.sign(total) == np.sign(truth)
        resolved = error is not None and abs(total) > 1.96 * error
        right, significant = right + bool(agrees), significant + resolved
        wrong += resolved and not agrees
    return {"right": right / draws, "significant": significant / draws,
            "confidently_wrong": wrong / draws}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs=2, type=Path)
    parser.add_argument("--data", required=True, help="The runs' data, with clean_tags.")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--n", default="100,200,500,all")
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    a, b = (runs.read_predictions(r / f"predictions-{args.split}.parquet") for r in args.runs)
    gold, scheme = clean_gold(args.data, args.split, a.labels)
    clean_a, clean_b = stats_against(a, gold, scheme), stats_against(b, gold, scheme)
    noisy_a, noisy_b = stats_against(a, a.gold, scheme), stats_against(b, b.gold, scheme)
    sentences = len(clean_a.counts)
    truth = float(clean_a.value("f1") - clean_b.value("f1"))
    given = float(noisy_a.value("f1") - noisy_b.value("f1"))
    differ = np.array([
        not np.array_equal(a.predicted[s:e], b.predicted[s:e])
        for s, e in zip(a.offsets[:-1], a.offsets[1:], strict=True)
    ])  # fmt: skip
    full = paired.paired_difference([clean_a], [clean_b], "f1", args.replicates, args.seed)
    print(f"{args.runs[0].name} - {args.runs[1].name}, {args.split}, {sentences} sentences"
          f" ({differ.sum()} where the two predict differently)")  # fmt: skip
    print(f"all clean labels: {100 * truth:+.2f} [{100 * full.low:+.2f}, {100 * full.high:+.2f}]"
          f" F1 points; the noisy labels as given: {100 * given:+.2f}")  # fmt: skip
    print("| reviewed sentences | random: ranks as all clean labels | significant | significant"
          " and wrong | median 'needs about N' | focused: ranks right | significant |"
          " significant and wrong |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    sizes = [sentences if x == "all" else min(int(x), sentences) for x in args.n.split(",")]
    for n in sizes:
        draws = 1 if n == sentences else args.draws
        found = simulate(clean_a, clean_b, truth, n, draws, args.replicates, args.seed)
        needed = "—" if found["needed_median"] is None else f"{found['needed_median']:,.0f}"
        focused = simulate_focused(clean_a, clean_b, truth, differ, n, draws, args.seed)
        print(f"| {n:,} | {found['right']:.0%} | {found['significant']:.0%} |"
              f" {found['confidently_wrong']:.0%} | {needed} | {focused['right']:.0%} |"
              f" {focused['significant']:.0%} | {focused['confidently_wrong']:.0%} |")  # fmt: skip
    print(f"({args.draws} draws per n, {args.replicates} bootstrap replicates, seed"
          f" {args.seed}; {time.perf_counter() - started:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
