"""The given labels as a control variate for a designed review (what ``ppi-python``'s
prediction-powered inference would add): how much of the variance of a difference in F1
between two runs, per stratum, the runs' scores against the *given* (noisy) labels
explain, and what that would save.

    python benchmarks/review_control.py RUNS_DIR --variants crowd,distant,weak,llm

Every sentence's given labels are known without a review, so each run's right entities
against them, tp~_r(s), and the given entities g~(s) are known on the whole split, and
with them the linearised values z~ of each run's F1 against the given labels (z of
``scoring.design`` with tp~, g~ and the given labels' F1). The estimator with a control
variate adds to the design's linearised total the known total of λ·z~ and takes the
reviewed residual z − λ·z~ in each stratum (the difference estimator for λ = 1, unbiased;
PPI++ tunes λ): its variance is that of the residual. Computed here on the whole split
against its clean labels, with λ = Cov(z, z~) / Var(z~) per stratum taken from the truth
itself, a best case (a λ estimated from the sample does worse). Near a census of a
stratum the variance barely moves n: the table gives, for the standard error of reviewing
k of the disagreeing sentences plainly, how many the tuned control variate needs
(within-stratum 1/n − 1/N scales by the variance ratio; "—" where k is the whole
stratum).

``--many METHODS`` (as ``review_design.py``'s) measures the many-runs goal with it: the
designed reviews of ``review_design.py`` among CE and those runs on the first label set,
up to 200 sentences, and at each review's last look which run has the highest F1
estimate, plainly and with the control variate on the same rows (λ = 1, and λ tuned on
the reviewed sentences of each stratum).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from review_design import find_run, review, truth_of

from noisebench.data import loading
from noisebench.scoring.metrics import entity_spans
from noisebench.training import runs


def linearised(correct, gold, predicted):
    """(R, S) linearised values of each run's F1 (``scoring.design``'s z)."""
    denominators = predicted.sum(axis=1) + gold.sum()
    f1 = 2 * correct.sum(axis=1) / denominators
    return (2 * correct - f1[:, None] * gold) / denominators[:, None]


def equivalent(k: int, size: int, ratio: float) -> int:
    """Sentences n' with ratio·(1/n' − 1/N) = 1/k − 1/N: the same standard error."""
    return int(np.ceil(1 / ((1 / k - 1 / size) / ratio + 1 / size)))


def given_scores(dirs: list[Path], variant: str, split: str):
    """``review_design.truth_of``'s population, right entities, gold entities and truth,
    and against the given labels: each run's right entities and the given entities per
    sentence, and whether each sentence's given entities are its clean ones."""
    population, correct, gold, truth = truth_of(dirs, variant, split)
    data = loading.load(f"noisebench:{variant}")[split]
    names = loading.label_names(data)
    if "clean_tags" not in data.column_names:
        raise SystemExit(f"noisebench:{variant}: no clean labels to measure against")
    given = entity_spans([[names[t] for t in s] for s in data["tags"]], "IOB2")
    clean = entity_spans([[names[t] for t in s] for s in data["clean_tags"]], "IOB2")
    found = [
        entity_spans((p := runs.read_predictions(d / f"predictions-{split}.parquet"))
                     .sentences(p.predicted), "IOB2")
        for d in dirs
    ]  # fmt: skip
    given_correct = np.array(
        [[len(a & g) for a, g in zip(run, given, strict=True)] for run in found], dtype=float
    )
    given_gold = np.array([len(g) for g in given], dtype=float)
    right = np.array([a == b for a, b in zip(given, clean, strict=True)])
    return population, correct, gold, truth, given_correct, given_gold, right


def controlled_f1(population, rows, correct, gold, given_correct, given_gold, tuned: bool):
    """Each run's F1 on the split from the reviewed ``rows``, every total estimated as
    λ·(its total against the given labels) + Σ_h N_h · mean of the reviewed residuals
    (λ = 1, or per stratum Cov/Var of the reviewed sentences where there are 3 or more)."""
    sizes = np.bincount(population.stratum)
    reviewed_strata = population.stratum[rows]

    def total(values, given_values, h):
        sample = rows[reviewed_strata == h]
        y, x = values[sample], given_values[sample]
        lam = 1.0
        if tuned and len(sample) >= 3 and np.var(x) > 0:
            lam = np.cov(y, x)[0, 1] / np.var(x, ddof=1)
        known = given_values[population.stratum == h].sum()
        return lam * known + sizes[h] * float(np.mean(y - lam * x))

    strata = range(len(sizes))
    tp = np.array([sum(total(correct[r], given_correct[r], h) for h in strata)
                   for r in range(len(correct))])  # fmt: skip
    gold_total = sum(total(gold, given_gold, h) for h in strata)
    return 2 * tp / (population.predicted.sum(axis=1) + gold_total)


def many_runs(args) -> None:
    """The many-runs goal, plainly and with the control variate on the same reviews."""
    variant = args.variants.split(",")[0]
    methods = ["none", *args.many.split(",")]
    dirs = [find_run(args.runs_dir, variant, m) for m in methods]
    population, correct, gold, truth, given_correct, given_gold, _ = given_scores(
        dirs, variant, args.split
    )
    chosen = {"plain": [], "λ = 1": [], "λ tuned": []}

    def observe(rows, made):
        chosen["plain"].append(int(np.argmax([f.estimate for f in made.f1])))
        for name, tuned in (("λ = 1", False), ("λ tuned", True)):
            f1 = controlled_f1(population, rows, correct, gold, given_correct, given_gold, tuned)
            chosen[name].append(int(np.argmax(f1)))

    review(population, correct, gold, truth, True, 200, args.draws, args.seed, observe=observe)
    best = int(np.argmax(truth))
    sizes = "/".join(str(s) for s in np.bincount(population.stratum))
    shown = ", ".join(f"{m} {100 * f:.2f}" for m, f in zip(methods, truth, strict=True))
    print(f"\n{variant}: {shown}; strata {sizes}; {args.draws} designed reviews of at most 200")
    for name, picks in chosen.items():
        within = np.mean([truth[best] - truth[c] <= 0.005 for c in picks])
        print(f"- {name}: the chosen run within 0.5 F1 of the best in {within:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--variants", default="crowd,distant,weak,llm")
    parser.add_argument("--method", default="mask-missing")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--many", help="METHOD or LOSS:METHOD runs beside CE, comma-separated")
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| labels | sentences whose given labels are clean: all, disagreeing |"
          " variance left, λ = 1:"
          " none / agree / disagree | tuned λ | disagreeing sentences for the standard error"
          " of 100 / 150 / 250 plain |")  # fmt: skip
    print("|---|---:|---|---|---|")
    for variant in args.variants.split(","):
        dirs = [find_run(args.runs_dir, variant, m) for m in ("none", args.method)]
        population, correct, gold, _, given_correct, given_gold, right = given_scores(
            dirs, variant, args.split
        )
        z = linearised(correct, gold, population.predicted)
        z_given = linearised(given_correct, given_gold, population.predicted)
        d, d_given = z[1] - z[0], z_given[1] - z_given[0]
        plain, tuned, lambdas = [], [], []
        for h in range(3):
            inside = population.stratum == h
            v = d[inside].var()
            covariance = np.cov(d[inside], d_given[inside])  # ddof 1 for both
            lam = covariance[0, 1] / max(covariance[1, 1], 1e-30)
            plain.append((d - d_given)[inside].var() / max(v, 1e-30))
            tuned.append((d - lam * d_given)[inside].var() / max(v, 1e-30))
            lambdas.append(lam)
        size = int((population.stratum == 2).sum())
        needed = " / ".join(
            str(equivalent(k, size, tuned[2])) if k < size else "—" for k in (100, 150, 250)
        )
        disagreeing = f"{right[population.stratum == 2].mean():.0%}"
        with_lambda = " / ".join(
            f"{lam:.2f} ({r:.2f})" for lam, r in zip(lambdas, tuned, strict=True)
        )
        left = " / ".join(f"{r:.2f}" for r in plain)
        print(f"| {variant} | {right.mean():.0%}, {disagreeing} | {left} |"
              f" {with_lambda} | {needed} (of {size}) |", flush=True)  # fmt: skip
    if args.many:
        many_runs(args)


if __name__ == "__main__":
    main()
