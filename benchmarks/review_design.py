"""A designed review against a random one, on runs whose truth is known: each run's F1 on
the split estimated from n reviewed sentences (``scoring.design``), a look after every 25,
stopping at the first decision, against the clean labels of the whole split.

    python benchmarks/review_design.py RUNS_DIR --variants crowd,distant,weak,llm

``RUNS_DIR`` holds CE runs on ``noisebench:<variant>`` with and without each of
``--methods`` (``noisebench sweep --losses ce --methods none,mask-missing ...``). Per
label set and method (against CE), and once among all of ``--many``'s runs on the first
label set: how often each design decides by ``--max-n``, how often a decision is wrong,
the median n of a right decision, and how often one look's 95% intervals of each F1 and
of the difference cover the truth.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from noisebench.data import loading
from noisebench.scoring import design
from noisebench.scoring.metrics import entity_spans
from noisebench.studies import focus
from noisebench.training import runs

STEP = 25


def find_run(runs_dir: Path, variant: str, method: str) -> Path:
    """The run on ``noisebench:<variant>`` with ``method`` (CE), or ``loss:method``."""
    loss, _, method = method.rpartition(":")
    for results in sorted(runs_dir.glob("*/results.json")):
        config = json.loads(results.read_text())["config"]
        if (config["data"], config["loss"], config.get("method", "none")) == (
            f"noisebench:{variant}",
            loss or "ce",
            method,
        ):
            return results.parent
    raise SystemExit(f"{runs_dir}: no {loss or 'ce'} run with --method {method} on {variant}")


def truth_of(run_dirs: list[Path], variant: str, split: str):
    """The population (strata and counts from the runs' predictions) and, against the
    clean labels, each run's right entities and the gold entities per sentence."""
    data = loading.load(f"noisebench:{variant}")[split]
    names = loading.label_names(data)
    column = "clean_tags" if "clean_tags" in data.column_names else "tags"
    gold = entity_spans([[names[t] for t in s] for s in data[column]], "IOB2")
    labels = [
        (p := runs.read_predictions(d / f"predictions-{split}.parquet")).sentences(p.predicted)
        for d in run_dirs
    ]
    stratum, counts = focus.strata(labels, "IOB2")
    words = np.array([len(t) for t in data["tokens"]])
    population = design.Population(stratum, words, counts, focus.label_ids(labels))
    found = [entity_spans(run, "IOB2") for run in labels]
    correct = np.array([[len(a & g) for a, g in zip(run, gold, strict=True)] for run in found])
    sizes = np.array([len(g) for g in gold])
    truth = 2 * correct.sum(axis=1) / (counts.sum(axis=1) + sizes.sum())
    return population, correct, sizes, truth


def review(
    population, correct, gold, truth, designed: bool, max_n: int, draws: int, seed: int,
    neyman: bool = True, observe=None,
):  # fmt: skip
    """``draws`` reviews growing by ``STEP`` sentences up to ``max_n``, each stopping at
    its first decision (the best run ahead of every other at the look's level); a
    designed one by the fixed allocation at first, then (``neyman``) as ``--continue``
    draws. ``observe(rows, estimates)``, if given, sees each review's last look."""
    rng = np.random.default_rng(seed)
    strata = population.stratum if designed else np.zeros_like(population.stratum)
    sizes = np.bincount(strata)
    shown = design.Population(strata, population.words, population.predicted, population.labels)
    best = int(np.argmax(truth))
    decided, wrong, right_at, chosen = 0, 0, [], []
    for _ in range(draws):
        order = [rng.permutation(np.flatnonzero(strata == h)) for h in range(len(sizes))]
        allocation = np.zeros(len(sizes), dtype=int)
        made, looks = None, []
        for n in range(STEP, max_n + 1, STEP):
            if not designed:
                allocation = np.array([n])
            elif made is None or not neyman:
                allocation = np.maximum(allocation, focus.allocate(sizes, n))
            else:  # as --continue draws: toward Neyman on the leading difference's spreads
                allocation = focus.grow(sizes, allocation, STEP, focus.leading_spreads(made))
            rows = np.concatenate([o[:k] for o, k in zip(order, allocation, strict=True)])
            looks.append(len(rows))
            made = design.estimate(shown, design.Reviewed(rows, correct[:, rows], gold[rows]),
                                   *focus.levels(looks, len(strata), len(correct)))  # fmt: skip
            verdict = focus.decision(made, len(strata))
            if verdict["decided"]:
                decided += 1
                wrong += verdict["best"] != best
                if verdict["best"] == best:
                    right_at.append(len(rows))
                break
        chosen.append(int(np.argmax([f.estimate for f in made.f1])))
        if observe is not None:
            observe(rows, made)
    within = np.mean([truth[best] - truth[c] <= 0.005 for c in chosen])
    return {
        "decided": decided / draws,
        "decisions": decided,
        "wrong_decisions": wrong,
        "wrong_of_decided": wrong / max(decided, 1),
        "median_n_right": float(np.median(right_at)) if right_at else None,
        "chosen_within_half_point": float(within),
    }


def coverage(population, correct, gold, truth, n: int, draws: int, seed: int) -> dict:
    """One look at n designed sentences, 95%: how often each F1's and each difference's
    interval covers the truth."""
    rng = np.random.default_rng([seed, n])
    sizes = np.bincount(population.stratum)
    allocation = focus.allocate(sizes, n)
    f1_hits, difference_hits = [], []
    for _ in range(draws):
        rows = np.concatenate([
            rng.choice(np.flatnonzero(population.stratum == h), k, replace=False)
            for h, k in enumerate(allocation) if k
        ])  # fmt: skip
        made = design.estimate(population, design.Reviewed(rows, correct[:, rows], gold[rows]))
        f1_hits.append([f.low <= t <= f.high for f, t in zip(made.f1, truth, strict=True)])
        difference_hits.append([
            d.low <= truth[a] - truth[b] <= d.high for (a, b), d in made.differences.items()
        ])  # fmt: skip
    return {"f1": float(np.mean(f1_hits)), "differences": float(np.mean(difference_hits))}


def row(label: str, population, correct, gold, truth, args) -> str:
    designed = review(population, correct, gold, truth, True, args.max_n, args.draws, args.seed,
                      args.allocation == "neyman")  # fmt: skip
    uniform = review(population, correct, gold, truth, False, args.max_n, args.draws, args.seed)
    covered = {n: coverage(population, correct, gold, truth, n, args.draws, args.seed)
               for n in (50, 100, 200)}  # fmt: skip

    def shown(found):
        median = found["median_n_right"]
        counts = f"{found['wrong_decisions']} of {found['decisions']}"
        return (f"{found['decided']:.0%} | {found['wrong_of_decided']:.1%} ({counts}) |"
                f" {'—' if median is None else f'{median:.0f}'} |"
                f" {found['chosen_within_half_point']:.0%}")  # fmt: skip

    coverage_text = " / ".join(f"{c['f1']:.0%}, {c['differences']:.0%}" for c in covered.values())
    sizes = "/".join(str(s) for s in np.bincount(population.stratum, minlength=3))
    return f"| {label} | {sizes} | {shown(designed)} | {shown(uniform)} | {coverage_text} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--variants", default="crowd,distant,weak,llm")
    parser.add_argument("--methods", default="mask-missing")
    parser.add_argument(
        "--many", default="mask-missing,mask-entity,oracle-clean",
        help="The runs beside CE to choose among on the first label set: METHOD (a CE run)"
        " or LOSS:METHOD, e.g. gce:none.",
    )  # fmt: skip
    parser.add_argument("--split", default="validation")
    parser.add_argument("--max-n", type=int, default=500)
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allocation", choices=("neyman", "fixed"), default="neyman")
    args = parser.parse_args()
    started = time.perf_counter()
    print("| labels, runs | strata none/agree/disagree | designed: decided by max n |"
          " wrong of decided | median n, right | chosen within 0.5 | random: decided |"
          " wrong of decided | median n, right | chosen within 0.5 |"
          " one look covers F1, difference at n = 50 / 100 / 200 |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    variants = args.variants.split(",")
    for variant in variants:
        for method in args.methods.split(","):
            dirs = [
                find_run(args.runs_dir, variant, "none"),
                find_run(args.runs_dir, variant, method),
            ]
            found = truth_of(dirs, variant, args.split)
            label = f"{variant}: CE, CE + {method} ({100 * (found[3][1] - found[3][0]):+.2f})"
            print(row(label, *found, args), flush=True)
    many = ["none", *args.many.split(",")]
    dirs = [find_run(args.runs_dir, variants[0], m) for m in many]
    found = truth_of(dirs, variants[0], args.split)
    shown = ", ".join(f"{m} {100 * t:.1f}" for m, t in zip(many, found[3], strict=True))
    print(row(f"{variants[0]}: {shown}", *found, args))
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
