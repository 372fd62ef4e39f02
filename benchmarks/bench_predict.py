"""Evaluation speed: ``predict`` with its length-bucketed batches against the previous
batching (a fixed padded-token budget from the longest sentence down), in one process.

    python benchmarks/bench_predict.py                  # CPU, minilm-l6, CoNLL-2003 validation
    python benchmarks/bench_predict.py --split test --repeats 3

Same model, same sentences, same token budget; the previous batching is ``predict`` with
``EVAL_PADDING = 1.0`` (a batch takes every sentence that fits the budget, however short).
Prints sentences/s of each, their ratio, the share of padded positions, the largest
difference between their probabilities, and whether every argmax agrees.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from noisebench.data import loading as data
from noisebench.data import sources
from noisebench.training import evaluate
from noisebench.training.batches import encode
from noisebench.training.evaluate import load_model, predict
from noisebench.training.prepare import resolve_model


def padded_share(lengths: np.ndarray, padding: float) -> float:
    order = np.sort(lengths)[::-1]
    batches = evaluate.evaluation_batches(order, evaluate.EVAL_BATCH_TOKENS, padding)
    padded = sum(len(b) * order[b[0]] for b in batches)
    return 1 - order.sum() / padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="validation")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    split = data.load("conll2003")[args.split]
    labels = data.label_names(split)
    model, tokenizer = load_model(resolve_model("minilm-l6"), labels)
    encoded = encode(tokenizer, split, 128, sources.home() / "tokenized")
    tokens = split.data.table.column("tokens").to_pylist()
    device = torch.device("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(tokens)} sentences")
    timings, predictions = {}, {}
    for name, padding in (("previous (one budget)", 1.0), ("bucketed", evaluate.EVAL_PADDING)):
        evaluate.EVAL_PADDING = padding
        predict(model, encoded, tokens, labels, device, tokenizer.pad_token_id)  # warm
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            predictions[name] = predict(
                model, encoded, tokens, labels, device, tokenizer.pad_token_id
            )
            best = min(best, time.perf_counter() - start)
        timings[name] = len(tokens) / best
        share = padded_share(encoded.lengths(), padding)
        print(f"{name:24s} {timings[name]:7.1f} sentences/s, {share:.1%} of positions padding")
    old, new = predictions["previous (one budget)"], predictions["bucketed"]
    scored = ~np.isnan(old.probs[:, 0])
    print(
        f"speed-up {timings['bucketed'] / timings['previous (one budget)']:.2f}x;"
        f" max |probability difference| {np.abs(old.probs[scored] - new.probs[scored]).max():.1e};"
        f" same predictions: {bool((old.predicted == new.predicted).all())}"
    )


if __name__ == "__main__":
    main()
