"""Issue 29's conclusions check: does a change (a speed lever, another precision, another
machine) change what a study concludes? Two runs folders of the same study, before and
after the change, compared cell by cell and verdict by verdict.

    python benchmarks/conclusions.py OLD_RUNS NEW_RUNS

- **Cells**: each setting's losses' test F1 and entity ECE, the mean over seeds and the
  seeds' sample standard deviation, before and after; a cell moves *beyond its seed
  spread* where |new − old| exceeds the larger of its two standard deviations. Both
  studies must hold the same seeds; a cell of one seed is not judged. Where a change
  only re-draws the runs (another random stream, another order of additions), a cell of
  two seeds fails this by chance in exactly 1 of 3 cases: with normal scores the mean's
  move and the two spreads are three independent |N(0, σ²)|, and the move is the largest
  of them with probability 1/3.
- **Verdicts**: each loss against CE in its setting (the leaderboard's verdict: a paired
  bootstrap over test sentences and seeds, 95% percentile intervals), before and after;
  the check asks for the same sign and the same significance (the interval excluding 0
  or not) in every one.

Prints both tables in Markdown and a last line: passed, or what failed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from noisebench.studies import verdict as verdicts
from noisebench.studies.leaderboard.records import collect

METRICS = {"f1": ("test F1", 100.0, 2), "entity_ece": ("entity ECE", 1.0, 3)}


def study(folder: Path) -> tuple[dict, dict]:
    """Per (setting title, loss label): each metric's test value per seed (None where a
    run has none); per (title, loss label, metric): the verdict's difference to CE (None
    where the verdict has none)."""
    collected = collect([folder], "test", ["f1"])
    cells, differences = {}, {}
    # verdicts() gives one setting per group, in groups()' order
    settings = verdicts.verdicts(collected)["settings"]
    for group, setting in zip(verdicts.groups(collected), settings, strict=True):
        for label, seeds in group.methods.items():
            tests = {seed: json.loads((d / "results.json").read_text()).get("splits", {})
                     .get("test") or {} for seed, d in seeds.items()}  # fmt: skip
            cells[(group.title, label)] = {
                m: {seed: test.get(m) for seed, test in sorted(tests.items())} for m in METRICS
            }
        for label, by_metric in (setting.get("vs_ce") or {}).items():
            for metric in METRICS:
                differences[(group.title, label, metric)] = by_metric.get(metric)
    return cells, differences


def shown(values: list[float], scale: float, places: int) -> str:
    """The mean over seeds ± their sample standard deviation (none for one seed)."""
    if len(values) < 2:
        return f"{scale * np.mean(values):.{places}f} (1 seed)"
    return f"{scale * np.mean(values):.{places}f} ± {scale * np.std(values, ddof=1):.{places}f}"


def interval(difference: dict | None, scale: float, places: int) -> str:
    if difference is None:
        return "—"
    value, low, high = (
        f"{scale * v:+.{places}f}" for v in (difference["difference"], *difference["ci95"])
    )
    return f"{value} [{low}, {high}]"


def compare(old: Path, new: Path) -> tuple[list[str], list[str]]:
    """The two tables' lines and what failed."""
    old_cells, old_differences = study(old)
    new_cells, new_differences = study(new)
    lines, failed = [], []
    lines += ["| setting | loss | metric | old (mean ± seed std) | new | new − old |"
              " inside the seed spread |", "|---|---|---|---:|---:|---:|---|"]  # fmt: skip
    for key in sorted(old_cells.keys() & new_cells.keys()):
        for metric, (name, scale, places) in METRICS.items():
            before, after = old_cells[key][metric], new_cells[key][metric]
            where = f"{key[0]} {key[1]} {name}"
            if set(before) != set(after):
                failed.append(f"{where}: seeds {sorted(before)} against {sorted(after)}")
                continue
            if None in [*before.values(), *after.values()]:
                if {*before.values(), *after.values()} != {None}:
                    failed.append(f"{where}: in one study only")
                continue
            before, after = list(before.values()), list(after.values())
            moved = float(np.mean(after) - np.mean(before))
            if len(before) < 2:
                judged = "not judged (1 seed)"
            else:
                inside = abs(moved) <= max(np.std(before, ddof=1), np.std(after, ddof=1))
                judged = "yes" if inside else "**no**"
                failed += [] if inside else [f"{where} beyond its seed spread"]
            lines.append(f"| {key[0]} | {key[1]} | {name} | {shown(before, scale, places)} |"
                         f" {shown(after, scale, places)} | {scale * moved:+.{places}f} |"
                         f" {judged} |")  # fmt: skip
    lines += ["", "| setting | loss − CE | metric | old | new | same sign and significance |",
              "|---|---|---|---:|---:|---|"]  # fmt: skip
    order = list(METRICS)
    for key in sorted(old_differences.keys() | new_differences.keys(),
                      key=lambda k: (k[0], k[1], order.index(k[2]))):  # fmt: skip
        name, scale, places = METRICS[key[2]]
        before, after = old_differences.get(key), new_differences.get(key)
        if before is None and after is None:
            continue
        if before is None or after is None:
            same = False
            failed.append(f"{key[0]} {key[1]} − CE {name}: a verdict in one study only")
        else:
            same = (np.sign(before["difference"]) == np.sign(after["difference"])
                    and before["significant"] == after["significant"])  # fmt: skip
            failed += [] if same else [f"{key[0]} {key[1]} − CE {name}: verdict changed"]
        shown_pair = f"{interval(before, scale, places)} | {interval(after, scale, places)}"
        lines.append(f"| {key[0]} | {key[1]} | {name} | {shown_pair} |"
                     f" {'yes' if same else '**no**'} |")  # fmt: skip
    missing = sorted(set(old_cells) ^ set(new_cells))
    failed += [f"{title} {label}: in one study only" for title, label in missing]
    return lines, failed


def hardware_of(folder: Path) -> list[str]:
    """The processors and CPU threads a study's runs recorded (``train.hardware``)."""
    found = set()
    for results in folder.glob("*/results.json"):
        hardware = (json.loads(results.read_text()).get("train") or {}).get("hardware")
        found.add("unrecorded" if not hardware else
                  f"{hardware.get('processor')}, {hardware.get('threads')} threads")  # fmt: skip
    return sorted(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args()
    lines, failed = compare(args.old, args.new)
    for name, folder in (("old", args.old), ("new", args.new)):
        print(f"{name}: {folder}, trained on {'; '.join(hardware_of(folder))}")
    print()
    print("\n".join(lines))
    print("\npassed" if not failed else "\nfailed: " + "; ".join(failed))


if __name__ == "__main__":
    main()
