"""Cost of ``--method`` per training step, against the step itself, in one process.

    python benchmarks/bench_methods.py

One real training step of ``minilm-l6`` (forward, CE, backward, AdamW) on batches of 32
CoNLL-2003 sentences, against what a method adds to it: ``WordSelection.select`` on that
step's logits (softmax, groups, thresholds, counts) for each method, and one Beta-mixture
refit over the disagreeing confidences of 5,000 sentences (72,000 words). Span smoothing
(``--span-smoothing 0.1``): its targets for the training sentences (once per run, scaled
to 5,000 sentences), and per step the soft-target loss's forward and backward against
the hard-target CE's on the same logits, and collating the soft targets.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from noisebench.training import methods


def timed_step(model, batch: dict, loss_fn, optimizer) -> tuple[torch.Tensor, float]:
    """One training step (forward, loss, backward, optimizer) on a collated batch: its
    logits (detached) and seconds. ``bench_detect.py`` times its steps with it too."""
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
    start = time.perf_counter()
    logits = model(**inputs).logits
    loss_fn(logits, batch["labels"]).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return logits.detach(), time.perf_counter() - start


def main() -> None:
    from noisebench.training.batches import collate, encode, length_grouped_batches
    from noisebench.training.config import TrainConfig
    from noisebench.training.evaluate import load_model
    from noisebench.training.loop import optimizer_and_schedule
    from noisebench.training.losses import build_loss
    from noisebench.training.prepare import prepare

    with tempfile.TemporaryDirectory() as folder:
        config = TrainConfig(loss="ce", max_train_samples=640, rate=0.3)
        prepared = prepare(config, Path(folder), "cpu")
        model, tokenizer = load_model(prepared.model_path, prepared.labels)
        encoded = encode(tokenizer, prepared.dataset["train"], 128, None)
        batches = length_grouped_batches(encoded.lengths(), 32, np.random.default_rng(0))
        optimizer, _ = optimizer_and_schedule(model, config, len(batches))
        loss_fn = build_loss("ce")
        collated = [collate(encoded, b, tokenizer.pad_token_id) for b in batches]
        step_seconds, all_logits = [], []
        model.train()
        for batch in collated:
            logits, seconds = timed_step(model, batch, loss_fn, optimizer)
            step_seconds.append(seconds)
            all_logits.append((logits, batch["labels"], batch["clean_labels"]))
        step = float(np.median(step_seconds[2:]))
        print(f"training step (median of {len(step_seconds) - 2}): {step * 1000:.1f} ms")
        outside = prepared.labels.index("O")
        for method in ("mask-missing", "mask-entity", "mask-all", "oracle-mask-disagree"):
            selection = methods.WordSelection(method, outside, 10**6, 0.0)
            start = time.perf_counter()
            for repeat in range(5):
                for logits, labels, clean in all_logits:
                    selection.select(logits, labels, clean, 10 + repeat)
            per_step = (time.perf_counter() - start) / (5 * len(all_logits))
            print(f"{method:22} {per_step * 1000:6.2f} ms a step = {per_step / step:6.2%}")
        span_smoothing(prepared, encoded, batches, collated, all_logits, step, tokenizer)
        confidences = np.random.default_rng(0).beta(2, 5, 72_000)
        start = time.perf_counter()
        methods.mixture_threshold(methods.fit_beta_mixture(confidences))
        print(f"Beta-mixture refit over 72,000 confidences: {time.perf_counter() - start:.3f} s")


def span_smoothing(prepared, encoded, batches, collated, all_logits, step, tokenizer) -> None:
    from dataclasses import replace

    from noisebench.training import targets
    from noisebench.training.batches import collate
    from noisebench.training.losses import build_loss

    start = time.perf_counter()
    soft = targets.sentence_targets(encoded.tags, prepared.labels, prepared.scheme, 0.1, 1)
    once = time.perf_counter() - start
    per_5000 = once / len(encoded.tags) * 5000
    print(
        f"span-smoothing targets: {once:.3f} s for {len(soft)} sentences = {per_5000:.2f} s/5,000"
    )
    smoothed = replace(encoded, soft_tags=soft)
    start = time.perf_counter()
    soft_batches = [collate(smoothed, b, tokenizer.pad_token_id) for b in batches]
    collate_soft = (time.perf_counter() - start) / len(batches)
    start = time.perf_counter()
    for b in batches:
        collate(encoded, b, tokenizer.pad_token_id)
    collate_plain = (time.perf_counter() - start) / len(batches)
    hard, soft_loss = build_loss("ce"), build_loss("ce")
    timings = {"hard": 0.0, "soft": 0.0}
    for _ in range(5):
        for (logits, labels, _), batch in zip(all_logits, soft_batches, strict=True):
            for kind in timings:
                leaf = logits.clone().requires_grad_(True)
                start = time.perf_counter()
                if kind == "hard":
                    hard(leaf, labels).backward()
                else:
                    soft_loss(leaf, labels, batch["soft_labels"]).backward()
                timings[kind] += time.perf_counter() - start
    extra = (
        (timings["soft"] - timings["hard"]) / (5 * len(all_logits)) + collate_soft - collate_plain
    )
    print(
        f"span smoothing, extra per step (loss + collate): {extra * 1000:6.2f} ms"
        f" = {extra / step:6.2%}"
    )


if __name__ == "__main__":
    torch.set_num_threads(torch.get_num_threads())
    main()
