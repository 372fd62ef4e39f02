"""Does a profile learned from n reviewed sentences cover the truth? Its intervals checked.

    python benchmarks/profile_coverage.py --data noisebench:crowd --split train --n 100,200,500

A simulated review: n sentences of the split drawn at random, their clean labels taken
as the reviewer's; the profile of the given labels against them, with
``data.profiles.intervals`` (95% bootstrap over the reviewed sentences, with the
finite-population correction as ``noisebench profile`` gives it), is compared with
the profile of the whole split. For each n: each outcome rate's mean absolute error and
how often its interval covers the whole split's rate (goal: near 95%), over ``--draws``.
"""

from __future__ import annotations

import argparse

import numpy as np

from noisebench.data import loading, profiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="noisebench:crowd")
    parser.add_argument("--split", default="train")
    parser.add_argument("--n", default="100,200,500")
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    split = loading.load(args.data)[args.split]
    names = loading.label_names(split)
    given = [[names[t] for t in s] for s in split["tags"]]
    clean = [[names[t] for t in s] for s in split["clean_tags"]]
    whole = profiles.Pair(split["tokens"], given, clean)
    truth = profiles.learn(whole)["summary"]["outcomes"]
    print(f"{args.data} {args.split}: {len(given):,} sentences; the whole split's rates: "
          + ", ".join(f"{k} {v:.1%}" for k, v in truth.items()))  # fmt: skip
    print("| reviewed sentences | " + " | ".join(f"{k}: error, covered" for k in truth) + " |")
    print("|---:|" + "---:|" * len(truth))
    rng = np.random.default_rng(args.seed)
    for n in (int(x) for x in args.n.split(",")):
        errors = {k: [] for k in truth}
        covered = {k: 0 for k in truth}
        for draw in range(args.draws):
            rows = rng.choice(len(given), size=n, replace=False)
            # as `noisebench profile` makes it of a random review: weights N / n, one stratum
            pair = profiles.Pair(
                [whole.tokens[r] for r in rows], [given[r] for r in rows],
                [clean[r] for r in rows], [len(given) / n] * n, [0] * n,
            )  # fmt: skip
            try:
                rates = profiles.learn(pair)["summary"]["outcomes"]
            except Exception:  # a sample without entities
                continue
            found = profiles.intervals(pair, seed=draw)["outcomes"]
            for kind, value in truth.items():
                errors[kind].append(abs(rates[kind] - value))
                low, high = found[kind]
                covered[kind] += low <= value <= high
        cells = [
            f"{np.mean(errors[k]):.1%}, {covered[k] / max(1, len(errors[k])):.0%}" for k in truth
        ]
        print(f"| {n:,} | " + " | ".join(cells) + " |")
    print(f"({args.draws} draws per n, 1000 bootstrap replicates each, seed {args.seed})")


if __name__ == "__main__":
    main()
