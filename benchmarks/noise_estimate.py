"""How good is detect's model-based noise estimate (no review) against the truth?

    python benchmarks/noise_estimate.py --variants crowd,expert,crowdbest,distant,weak,llm

For each NoiseBench variant, ``detect`` (default detector, the given budget) estimates the
training labels' noise from the model's confident contradictions
(``detection.estimate``); the truth is the same sentences' given labels profiled against
their clean labels (``data.profiles.learn``). Prints a Markdown table: word error rate,
entity noise level and each outcome's share, estimated against true, and whether the
dominant error type (missed, retyped or boundary) is right.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import noisebench as nb
from noisebench.data import loading, profiles
from noisebench.detection.estimate import ERRORS


def truth(spec: str, sentences: int) -> dict:
    """The first ``sentences`` training sentences' given labels against their clean ones."""
    train = loading.load(spec)["train"]
    train = train.select(range(min(sentences, len(train))))
    names = loading.label_names(train)
    pair = profiles.Pair(
        train["tokens"],
        [[names[t] for t in s] for s in train["tags"]],
        [[names[t] for t in s] for s in train["clean_tags"]],
    )
    profile = profiles.learn(pair)
    outcomes = profile["summary"]["outcomes"]
    errors = {kind: outcomes[kind] for kind in ERRORS}
    return {
        "word_error_rate": profile["token_error_rate"],
        "entity_noise_level": profile["entity_noise_level"],
        "outcomes": outcomes,
        "dominant_error": max(errors, key=errors.get),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="crowd,expert,crowdbest,distant,weak,llm")
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--runs-dir", type=Path, default=None)
    args = parser.parse_args()
    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="noise-estimate-"))
    print("| variant | word error rate (est. / true) | entity noise | missed | retyped |"
          " boundary | dominant error (est. / true) | seconds |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---:|")
    for variant in args.variants.split(","):
        spec = f"noisebench:{variant}"
        started = time.perf_counter()
        found = nb.detect(spec, max_train_samples=args.sentences, epochs=args.epochs,
                          lr=args.lr, runs_dir=runs_dir)  # fmt: skip
        estimate, true = found.document["estimated_noise"], truth(spec, args.sentences)

        def pair(key: str, est=estimate, tru=true) -> str:
            return f"{est[key]:.1%} / {tru[key]:.1%}"

        outcome = {
            kind: f"{estimate['outcomes'][kind]:.1%} / {true['outcomes'][kind]:.1%}"
            for kind in ERRORS
        }
        right = "right" if estimate["dominant_error"] == true["dominant_error"] else "WRONG"
        print(f"| {variant} | {pair('word_error_rate')} | {pair('entity_noise_level')} |"
              f" {outcome['missed']} | {outcome['retyped']} | {outcome['boundary']} |"
              f" {estimate['dominant_error']} / {true['dominant_error']} ({right}) |"
              f" {time.perf_counter() - started:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
