"""Which epoch to keep, chosen on n reviewed validation sentences or on the noisy ones: the
test F1 each choice gives, on data whose truth is known.

    python benchmarks/review_epochs.py --data noisebench:crowd --epochs 5
    python benchmarks/review_epochs.py --data noisebench:crowd --method mask-missing

Trains one run (``noisebench train``'s loop; its settings below) and keeps, after every
epoch, its predictions of the validation and the test split (``loop.train(observe_epoch=)``).
Each epoch's test F1 against the clean test labels is what a choice of that epoch gives.
The noisy choice takes the epoch with the best validation F1 on the labels as given (what
``--validation-labels noisy`` keeps); the reviewed choice, for ``--draws`` uniform random
samples of n validation sentences, the best F1 on those sentences' clean labels (what
``--validation-labels reviewed`` keeps after a review of n); all clean validation labels
are the oracle. Ties keep the earlier epoch, as the loop does.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from review_simulation import clean_gold, stats_against, subset  # benchmarks/ is on the path

from noisebench.training.config import TrainConfig
from noisebench.training.loop import train
from noisebench.training.prepare import prepare


def per_epoch_predictions(config: TrainConfig, runs_dir: Path) -> dict[str, list]:
    """Each epoch's predictions of validation and test (the run trains every epoch)."""
    made = {"validation": [], "test": []}

    def keep(epoch, predict):
        for split in made:
            made[split].append(predict(split))

    train(prepare(config, runs_dir), observe_epoch=keep)
    return made


def best(scores) -> int:
    """The epoch (0-based) with the highest score; ties: the earliest."""
    return int(np.argmax(np.asarray(scores)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="noisebench:crowd")
    parser.add_argument("--method", default="none")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--max-train-samples", type=int, default=2000)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", default="50,100,200,500,all")
    parser.add_argument("--draws", type=int, default=400)
    args = parser.parse_args()
    started = time.perf_counter()
    config = TrainConfig(
        data=args.data, method=args.method, epochs=args.epochs, lr=args.lr, seed=args.seed,
        max_train_samples=args.max_train_samples, patience=args.epochs, loss_warmup=0.2,
        precision=args.precision,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        made = per_epoch_predictions(config, Path(folder) / "runs")
    first = made["validation"][0]
    scheme_gold = {s: clean_gold(args.data, s, first.labels) for s in made}
    scheme = scheme_gold["validation"][1]
    clean = {s: [stats_against(p, scheme_gold[s][0], scheme) for p in made[s]] for s in made}
    noisy = [stats_against(p, p.gold, scheme) for p in made["validation"]]
    test_f1 = np.array([100 * t.value("f1") for t in clean["test"]])
    noisy_choice = best([v.value("f1") for v in noisy])
    oracle_choice = best([v.value("f1") for v in clean["validation"]])
    print(f"{args.data}, ce{'' if args.method == 'none' else ' + ' + args.method}, minilm-l6,"
          f" first {args.max_train_samples} training sentences, {args.epochs} epochs at lr"
          f" {args.lr:g}, seed {args.seed}")  # fmt: skip
    print("| epoch | validation F1, noisy labels | validation F1, clean labels | test F1 (clean) |")
    print("|---:|---:|---:|---:|")
    for epoch in range(args.epochs):
        given, right = noisy[epoch].value("f1"), clean["validation"][epoch].value("f1")
        print(f"| {epoch + 1} | {100 * given:.2f} | {100 * right:.2f} | {test_f1[epoch]:.2f} |")
    sentences = len(noisy[0].counts)
    print(f"\nkept on the noisy validation labels: epoch {noisy_choice + 1}, test F1"
          f" {test_f1[noisy_choice]:.2f}; on all {sentences:,} clean ones (oracle): epoch"
          f" {oracle_choice + 1}, {test_f1[oracle_choice]:.2f}; best possible"
          f" {test_f1.max():.2f}")  # fmt: skip
    print("| reviewed validation sentences | mean test F1 of the epoch kept | kept the oracle's"
          " epoch | better than the noisy labels' choice | worse |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|")
    for size in args.n.split(","):
        n = sentences if size == "all" else min(int(size), sentences)
        draws = 1 if n == sentences else args.draws
        rng = np.random.default_rng([args.seed, n])
        kept = []
        for _ in range(draws):
            rows = rng.choice(sentences, size=n, replace=False)
            kept.append(best([subset(v, rows).value("f1") for v in clean["validation"]]))
        chosen = test_f1[np.array(kept)]
        print(f"| {n:,} | {chosen.mean():.2f} | {np.mean(np.array(kept) == oracle_choice):.0%} |"
              f" {np.mean(chosen > test_f1[noisy_choice]):.0%} |"
              f" {np.mean(chosen < test_f1[noisy_choice]):.0%} |")  # fmt: skip
    print(f"({args.draws} draws per n, seed {args.seed}; {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
