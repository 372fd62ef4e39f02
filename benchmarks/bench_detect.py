"""Cost of ``noisebench detect``: recording dynamics against the training it rides on, and
scoring and ranking a study-sized training set, in one process.

    python benchmarks/bench_detect.py [--sentences 15000]

1. One real training step of ``minilm-l6`` (forward, CE, backward, AdamW) on batches of 32
   CoNLL-2003 sentences, against what ``--detector dynamics`` adds to it: the recorder on
   that step's logits (``--dynamics-pass train``), and for ``--dynamics-pass eval`` one
   inference pass over the same sentences (dropout off) against the epoch of training
   steps over them.
2. Scoring and ranking ``--sentences`` synthetic sentences (14 words, CoNLL-2003's 9
   labels, 3 epochs of dynamics, 8% of the words wrong): each dynamics score, retag, and
   the rankings and their measurement at the word, entity and sentence levels
   (``Detection.report``), beside cleanlab's own token-classification scoring of the
   same probabilities (what ``--detector cv`` calls once its folds are trained).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_methods import timed_step  # this folder is on the path when run as a script

from noisebench.detection.config import WORD_SCORES
from noisebench.detection.record import DynamicsRecorder
from noisebench.detection.score import Detection, cleanlab_scores, dynamics_scores, retag_scores

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def recording(sentences: int) -> None:
    from noisebench.training.batches import collate, encode, length_grouped_batches
    from noisebench.training.config import TrainConfig
    from noisebench.training.evaluate import load_model, predict, tokens_of
    from noisebench.training.loop import optimizer_and_schedule
    from noisebench.training.losses import build_loss
    from noisebench.training.prepare import prepare

    with tempfile.TemporaryDirectory() as folder:
        config = TrainConfig(loss="ce", max_train_samples=sentences)
        prepared = prepare(config, Path(folder), "cpu")
        model, tokenizer = load_model(prepared.model_path, prepared.labels)
        split = prepared.dataset["train"]
        encoded = encode(tokenizer, split, 128, None)
        batches = length_grouped_batches(encoded.lengths(), 32, np.random.default_rng(0))
        optimizer, _ = optimizer_and_schedule(model, config, len(batches))
        loss_fn = build_loss("ce")
        recorder = DynamicsRecorder(np.array([len(t) for t in encoded.tags]), 1)
        step_seconds, record_seconds = [], []
        model.train()
        started = time.perf_counter()
        for indices in batches:
            batch = collate(encoded, indices, tokenizer.pad_token_id)
            logits, seconds = timed_step(model, batch, loss_fn, optimizer)
            step_seconds.append(seconds)
            start = time.perf_counter()
            recorder(1, indices, logits, batch["labels"])
            record_seconds.append(time.perf_counter() - start)
        epoch = time.perf_counter() - started - sum(record_seconds)
        step, record = float(np.median(step_seconds[2:])), float(np.median(record_seconds[2:]))
        print(f"training step (median of {len(step_seconds) - 2}): {step * 1000:.1f} ms")
        print(
            f"recorder (--dynamics-pass train): {record * 1000:.2f} ms a step = {record / step:.2%}"
        )

        def made():
            return predict(
                model, encoded, tokens_of(split), prepared.labels, prepared.device,
                tokenizer.pad_token_id or 0,
            )  # fmt: skip

        made()  # the first pass allocates what the later ones reuse
        recorder.record_pass(1, made)
        pass_seconds = recorder.pass_seconds
        print(
            f"inference pass over the {len(encoded.tags)} sentences (--dynamics-pass eval;"
            f" the second, the first allocates): {pass_seconds:.1f} s against the epoch's"
            f" {epoch:.1f} s of training = +{pass_seconds / epoch:.1%} of a training run"
        )


def synthetic(sentences: int, seed: int = 0) -> tuple[Detection, dict, np.ndarray]:
    """A detection over ``sentences`` sentences of 14 words with plausible probabilities."""
    rng = np.random.default_rng(seed)
    words = sentences * 14
    offsets = np.arange(0, words + 1, 14)
    clean = np.where(rng.random(words) < 0.83, 0, rng.integers(1, 9, words))
    given = clean.copy()
    wrong = rng.random(words) < 0.08
    given[wrong] = (clean[wrong] + rng.integers(1, 9, int(wrong.sum()))) % 9
    logits = rng.normal(0, 1, (words, 9)).astype(np.float32)
    logits[np.arange(words), clean] += 4.0  # the model mostly knows the clean label
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    dynamics = {
        "probability": np.stack([probs[np.arange(words), given]] * 3).astype(np.float32),
        "margin": rng.normal(0, 2, (3, words)).astype(np.float32),
        "offsets": offsets,
    }
    tokens = [["w"] * 14 for _ in range(sentences)]
    suggested = probs.argmax(axis=1)
    found = Detection(
        "dynamics", "aum", LABELS, tokens, offsets, given, suggested,
        dynamics_scores(dynamics, "aum"), clean,
    )  # fmt: skip
    return found, dynamics, probs


def scoring(sentences: int) -> None:
    start = time.perf_counter()
    import sklearn.metrics  # noqa: F401  (AP and AUROC; cleanlab imports it too)

    print(
        f"\nimporting scikit-learn's metrics (once a process): {time.perf_counter() - start:.2f} s"
    )
    found, dynamics, probs = synthetic(sentences)
    words = len(found.given)
    print(f"scoring {sentences:,} sentences ({words:,} words):")
    for score in WORD_SCORES["dynamics"]:
        start = time.perf_counter()
        dynamics_scores(dynamics, score)
        print(f"  dynamics {score:12} {time.perf_counter() - start:7.3f} s")
    start = time.perf_counter()
    retag_scores(probs.astype(np.float64), found.given)
    print(f"  retag                 {time.perf_counter() - start:7.3f} s")
    start = time.perf_counter()
    report = found.report()
    ranked = time.perf_counter() - start
    entities = report["entity"]["units"]
    print(f"  rankings + measures (word, {entities:,} entity issues, sentence): {ranked:.3f} s")
    start = time.perf_counter()
    cleanlab_scores(probs, found.given, found.offsets, "self_confidence")
    seconds = time.perf_counter() - start
    print(f"  cleanlab's scores and find_label_issues (reference): {seconds:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=15_000, help="scoring part")
    parser.add_argument("--train-sentences", type=int, default=640, help="recording part")
    arguments = parser.parse_args()
    recording(arguments.train_sentences)
    scoring(arguments.sentences)


if __name__ == "__main__":
    torch.set_num_threads(torch.get_num_threads())
    main()
