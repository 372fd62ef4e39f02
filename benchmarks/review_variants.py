"""The simulated review of ``review_simulation.py`` over several label sets and methods, one
row per comparison: is a verdict from n reviewed sentences ever confidently wrong, how many
sentences a random and a focused sample need to rank right in 90% of draws, and is the
verdict's "needs about N reviewed sentences" near the n at which draws resolve it.

    python benchmarks/review_variants.py RUNS_DIR --variants crowd,distant,weak,llm

``RUNS_DIR`` holds, for each NoiseBench variant, CE and CE with each of ``--methods``
(``noisebench sweep --losses ce --methods none,mask-missing,...``); each method is
compared with CE on ``--split`` (the validation split by default: what a user reviews).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from review_simulation import clean_gold, simulate, simulate_focused, stats_against

from noisebench.scoring import paired
from noisebench.training import runs

SIZES = (25, 50, 100, 150, 200, 300, 500, 750)


def find_run(runs_dir: Path, variant: str, method: str) -> Path:
    """The finished CE run (with ``method``) on ``noisebench:<variant>`` in ``runs_dir``."""
    for results in sorted(runs_dir.glob("*/results.json")):
        config = json.loads(results.read_text())["config"]
        if (config["data"], config["loss"]) == (f"noisebench:{variant}", "ce") and config.get(
            "method", "none"
        ) == method:
            return results.parent
    raise SystemExit(f"{runs_dir}: no CE run with --method {method} on noisebench:{variant}")


def first_reaching(rows: list[dict], key: str, goal: float = 0.9) -> int | None:
    """The smallest n whose ``key`` share reaches ``goal`` and stays there for larger n."""
    reached = None
    for row in reversed(rows):
        if row[key] < goal:
            break
        reached = row["n"]
    return reached


def compare(a, b, gold, scheme, args) -> dict:
    clean_a, clean_b = stats_against(a, gold, scheme), stats_against(b, gold, scheme)
    noisy_a, noisy_b = stats_against(a, a.gold, scheme), stats_against(b, b.gold, scheme)
    sentences = len(clean_a.counts)
    truth = float(clean_a.value("f1") - clean_b.value("f1"))
    full = paired.paired_difference([clean_a], [clean_b], "f1", args.replicates, args.seed)
    given = paired.paired_difference([noisy_a], [noisy_b], "f1", args.replicates, args.seed)
    differ = np.array([
        not np.array_equal(a.predicted[s:e], b.predicted[s:e])
        for s, e in zip(a.offsets[:-1], a.offsets[1:], strict=True)
    ])  # fmt: skip
    rows = []
    for n in [*(n for n in SIZES if n < sentences), sentences]:
        draws = 1 if n == sentences else args.draws
        found = simulate(clean_a, clean_b, truth, n, draws, args.replicates, args.seed)
        focused = simulate_focused(clean_a, clean_b, truth, differ, n, draws, args.seed)
        rows.append(found | {"focused_right": focused["right"],
                             "focused_significant": focused["significant"],
                             "focused_wrong": focused["confidently_wrong"]})  # fmt: skip
    significant = sum(r["significant"] for r in rows[:-1])
    wrong = sum(r["confidently_wrong"] for r in rows[:-1])
    focused_significant = sum(r["focused_significant"] for r in rows[:-1])
    focused_wrong = sum(r["focused_wrong"] for r in rows[:-1])
    resolved = first_reaching(rows, "significant", 0.5)
    at_200 = next((r for r in rows if r["n"] >= 200), rows[-1])
    return {
        "sentences": sentences,
        "differ": int(differ.sum()),
        "truth": full,
        "given": given,
        "given_agrees": bool(np.sign(given.estimate) == np.sign(truth)),
        "random_90": first_reaching(rows, "right"),
        "focused_90": first_reaching(rows, "focused_right"),
        "wrong_of_significant": wrong / significant if significant else 0.0,
        "focused_wrong": focused_wrong / focused_significant if focused_significant else 0.0,
        "half_resolved_at": resolved,
        # the verdict says it only where the difference is not resolved yet
        "needs_at_200": None if at_200["significant"] >= 0.5 else at_200["needed_median"],
    }


def points(entry) -> str:
    return f"{100 * entry.estimate:+.2f} [{100 * entry.low:+.2f}, {100 * entry.high:+.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--variants", default="crowd,distant,weak,llm")
    parser.add_argument("--methods", default="mask-missing,mask-entity,oracle-clean")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--replicates", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    print("| labels | method − CE | all clean labels | given labels | random: 90% right from n |"
          " focused: 90% right from n | random: wrong of significant | focused: wrong of"
          " significant | half of the random draws resolve it from n |"
          " 'needs about N' at n = 200 |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for variant in args.variants.split(","):
        ce = runs.read_predictions(find_run(args.runs_dir, variant, "none")
                                   / f"predictions-{args.split}.parquet")  # fmt: skip
        gold, scheme = clean_gold(f"noisebench:{variant}", args.split, ce.labels)
        for method in args.methods.split(","):
            other = runs.read_predictions(find_run(args.runs_dir, variant, method)
                                          / f"predictions-{args.split}.parquet")  # fmt: skip
            row = compare(other, ce, gold, scheme, args)

            def shown(n):
                return "—" if n is None else f"{n:,}"

            needs = row["needs_at_200"]
            needs = "resolved" if needs is None else f"{needs:,.0f}"
            agree = "" if row["given_agrees"] else " (sign wrong)"
            print(f"| {variant} | {method} | {points(row['truth'])} |"
                  f" {points(row['given'])}{agree} | {shown(row['random_90'])} |"
                  f" {shown(row['focused_90'])} | {row['wrong_of_significant']:.0%} |"
                  f" {row['focused_wrong']:.0%} | {shown(row['half_resolved_at'])} |"
                  f" {needs} |", flush=True)  # fmt: skip
    print(f"({args.split} split; {args.draws} draws per n of {', '.join(map(str, SIZES))} and"
          f" all; {args.replicates} bootstrap replicates; seed {args.seed};"
          f" {time.perf_counter() - started:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
