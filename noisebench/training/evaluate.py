"""Predict with a model, score the predictions, write a run's results; rescore and
re-evaluate finished runs (``noisebench score``) with the same code, so that their numbers
are train's numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from noisebench.data import loading as data
from noisebench.data import sources
from noisebench.data.noise import label_noise
from noisebench.data.schemes import NO_SCHEME
from noisebench.errors import InputError
from noisebench.scoring import metrics
from noisebench.training import card, memory, runs
from noisebench.training.batches import Encoded, collate, encode
from noisebench.training.config import TrainConfig
from noisebench.training.precision import autocast, resolve_precision
from noisebench.training.prepare import Prepared, ignored_words, resolve_device

EVAL_BATCH_TOKENS = 16384  # padded sub-tokens per evaluation batch, at most
EVAL_PADDING = 0.05  # ... and at most this share of a batch's longest sentence is padding


def load_model(model_path: str, labels: list[str]):
    import transformers
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, use_fast=True)
        model = AutoModelForTokenClassification.from_pretrained(
            model_path,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            ignore_mismatched_sizes=True,
            trust_remote_code=False,
            dtype=torch.float32,
        )
    except (OSError, ValueError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"--model {model_path}: cannot load it: {message}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(f"--model {model_path}: needs a fast (Rust) tokenizer for word alignment")
    return model, tokenizer


@torch.inference_mode()
def predict(
    model,
    encoded: Encoded,
    tokens,
    labels: list[str],
    device,
    pad_id: int,
    precision: str | None = None,
):
    """Word-level probabilities (softmax at each word's first sub-token) for a split, the
    forward pass in ``precision`` (``auto|fp32|bf16``, ``resolve_precision``; None: the
    device's usual), the probabilities in fp32."""
    model.eval()
    precision = resolve_precision(precision, device)
    lengths = encoded.lengths()
    order = np.argsort(-lengths, kind="stable")
    word_counts = np.array([len(t) for t in encoded.tags])
    offsets = np.concatenate([[0], np.cumsum(word_counts)])
    probs = np.full((offsets[-1], len(labels)), np.nan, dtype=np.float32)
    for indices in evaluation_batches(lengths[order], EVAL_BATCH_TOKENS, EVAL_PADDING):
        indices = order[indices]
        batch = to_device(collate(encoded, indices, pad_id, with_labels=False), device)
        with autocast(precision, device):
            logits = model(**batch).logits  # (B, T, C)
        batch_probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        for row, i in enumerate(indices):
            starts = encoded.word_starts[i]
            kept = np.flatnonzero(starts >= 0)
            probs[offsets[i] + kept] = batch_probs[row, starts[kept]]
    gold = np.concatenate(encoded.tags) if encoded.tags else np.zeros(0, dtype=np.int64)
    return runs.Predictions(labels, list(tokens), gold, probs, offsets)


def evaluation_batches(lengths: np.ndarray, budget: int, padding: float) -> list[np.ndarray]:
    """Cut ``lengths`` (sorted longest first) into batches of consecutive positions, each
    at most ``budget`` padded tokens and ending before a sentence shorter than
    ``1 - padding`` of its longest: little work on padding, large matrix products.

    >>> [b.tolist() for b in evaluation_batches(np.array([10, 9, 5, 5, 4, 1]), 20, 0.25)]
    [[0, 1], [2, 3, 4], [5]]
    """
    batches, begin = [], 0
    while begin < len(lengths):
        longest = max(1, int(lengths[begin]))
        end = min(len(lengths), begin + max(1, budget // longest))
        shortest_allowed = (1 - padding) * longest
        cut = (
            begin + 1 + int(np.searchsorted(-lengths[begin + 1 : end], -shortest_allowed, "right"))
        )
        batches.append(np.arange(begin, cut))
        begin = cut
    return batches


def tokens_of(dataset) -> list[list[str]]:
    return dataset.data.table.column("tokens").to_pylist()


def to_device(batch: dict, device: torch.device) -> dict:
    """A collated batch on ``device``: through pinned memory, without blocking, on CUDA."""
    if device.type != "cuda":
        return {k: v.to(device) for k, v in batch.items()}
    return {k: pinned(v).to(device, non_blocking=True) for k, v in batch.items()}


def pinned(tensor: torch.Tensor) -> torch.Tensor:
    return tensor if tensor.is_pinned() else tensor.pin_memory()


# (folder, results) -> None: the study layer's figures of a run (studies.plots.run_figures),
# drawn before results.json marks the run complete
Figures = Callable[[Path, dict], None]


def finish(
    prepared: Prepared,
    model,
    tokenizer,
    encoded,
    pad_id,
    state,
    save_model,
    best_validation=None,
    figures: Figures | None = None,
) -> dict:
    """Predict with the best weights, write the predictions, the ``figures``, then
    results.json."""
    config, run_dir, device = prepared.config, prepared.run_dir, prepared.device
    predictions = {"validation": best_validation} if best_validation is not None else {}
    for split in ("validation", "test"):
        if split in encoded and split not in predictions:
            predictions[split] = predict(
                model,
                encoded[split],
                tokens_of(prepared.dataset[split]),
                prepared.labels,
                device,
                pad_id,
                prepared.precision,
            )
        if split in predictions:
            predictions[split] = with_review(predictions[split], prepared.dataset[split])
            runs.write_predictions(run_dir / f"predictions-{split}.parquet", predictions[split])
    if save_model:
        model.save_pretrained(run_dir / "model")
        tokenizer.save_pretrained(run_dir / "model")
        figures = with_card(figures, prepared)
    seconds = state["seconds"]
    validation_labels = (
        "reviewed"
        if config.validation_labels == "reviewed"
        else selection_labels(prepared.dataset["validation"])
    )
    scored_labels = {"validation": validation_labels}
    if "test" in prepared.dataset:
        scored_labels["test"] = selection_labels(prepared.dataset["test"])
    train_summary = {
        "epochs_run": state["epoch"],
        "best_epoch": state["best_epoch"],
        "seconds": seconds,
        "sentences_per_second": state["sentences"] / seconds if seconds else 0.0,
        "tokens_per_second": state["tokens"] / seconds if seconds else 0.0,
        "device": str(device),
        "hardware": runs.hardware(device),  # the processor and the CPU threads
        "precision": prepared.precision,  # of the forward passes; losses and scores fp32
        # MiB; "run": since this run started, "process": the process's peak (memory.py)
        "peak_memory_mb": memory.peak_mib(device),
        "peak_memory_scope": state.get("peak_memory_scope", "process"),
        "steps": state["step"],
        # the first step's wall time (start-up; compiling, with --compile), in "seconds"
        "first_step_seconds": state.get("first_step_seconds"),
        "compiled": state.get("compiled", False),
        "history": state["history"],
        "validation_labels": validation_labels,
        # what each split's scores were computed against: clean, noisy, as given or the
        # reviewed sentences (--validation-labels reviewed: they are the validation split)
        "scored_labels": scored_labels,
        # the training labels used, against their clean version (None: no clean labels)
        "label_noise": label_noise(prepared.dataset["train"], prepared.scheme),
        # words the data's ignore column left out of training (detect --fix mask)
        "ignored_words": ignored_words(prepared.dataset["train"]),
    }
    return write_results(
        run_dir, prepared.labels, prepared.scheme, config, train_summary, prepared.notes, figures
    )


def with_card(figures: Figures | None, prepared: Prepared) -> Figures:
    """``figures``, then the saved model's card (``card.py``), before results.json."""

    def draw(run_dir: Path, results: dict) -> None:
        if figures is not None:
            figures(run_dir, results)
        example = _example(prepared.dataset["test"]) if "test" in prepared.dataset else None
        card.write(run_dir / "model", results, example, data.fingerprint(prepared.dataset))

    return draw


def _example(split, longest: int = 12) -> list[str] | None:
    """The words of the split's first sentence with an entity and at most ``longest``
    words: the card's usage example, in the data's own language."""
    names = data.label_names(split)
    for tokens, tags in zip(split["tokens"], split["tags"], strict=True):
        if len(tokens) <= longest and any(names[t] != "O" for t in tags):
            return list(tokens)
    return None


def with_review(predictions: runs.Predictions, split) -> runs.Predictions:
    """``predictions`` with the split's reviewed sentences drawn at random or by a design
    (``data.ReviewSample``: a designed review's sentences carry their weights and strata)
    and their reviewed labels (review merge), so they are scored apart (``write_results``)
    as an estimate of the split's scores, and which review that is; as they were where the
    split has none. Sentences a review chose without a design (detect's list) are left
    out: their scores are not the split's."""
    if (design := data.sentence_design(split)) is not None:  # --validation-labels reviewed
        return replace(predictions, weights=design[0], strata=design[1])
    if data.REVIEWED_COLUMN not in split.column_names:
        return predictions
    sample = data.review_sample(split)
    reviewed_gold, _ = data.flat_tags(split, data.REVIEWED_TAGS_COLUMN)
    review = {
        "fingerprint": data.review_fingerprint(split),
        "left_out": sample.left_out,  # reviewed, but chosen for a reason
        "draws_recorded": sample.recorded,
        "designed": sample.designed,  # weighted by a designed review's strata
    }
    return replace(
        predictions,
        reviewed=sample.sentences,
        reviewed_gold=reviewed_gold,
        review=review,
        review_weights=sample.weights if sample.designed else None,
        review_strata=sample.strata if sample.designed else None,
    )


def selection_labels(validation) -> str:
    """Which labels chose the best epoch: ``noisy`` (they differ from the split's
    ``clean_tags``), ``clean``, or ``as given`` (no clean labels to compare with; a few
    reviewed sentences do not say which labels chose: ``--validation-labels reviewed``
    does)."""
    if "clean_tags" not in validation.column_names:
        return "as given"
    noise = label_noise(validation, NO_SCHEME)  # words only: no entity decoding needed
    return "noisy" if noise["token_error_rate"] > 0 else "clean"


def write_results(
    run_dir: Path,
    labels,
    scheme,
    config: TrainConfig,
    train_summary: dict,
    notes: list[str],
    figures: Figures | None = None,
) -> dict:
    """Score the saved predictions of ``run_dir``, draw the ``figures`` of those scores
    (the caller's: figures are the study layer's), and write ``results.json`` last.

    ``noisebench score`` calls this too, so its numbers are train's numbers.
    """
    splits, saved = {}, {}
    for split in ("validation", "test"):
        path = run_dir / f"predictions-{split}.parquet"
        if path.is_file():
            saved[split] = runs.read_predictions(path)
            splits[split] = scored_split(saved[split], scheme, config.strict, config.bins)
    calibration = None
    if config.calibrate == "temperature" and {"validation", "test"} <= set(saved):
        calibration = metrics.temperature_report(saved["validation"], saved["test"], config.bins)
    results = {
        "schema_version": runs.SCHEMA_VERSION,
        "run": run_dir.name,
        "dataset": data.dataset_name(config.data),
        "config": config.identity(),
        "labels": labels,
        "scheme": scheme,
        "strict": config.strict,
        "bins": config.bins,
        "splits": splits,
        "train": train_summary,
        "calibration": calibration,
        "notes": notes,
        # splits whose predictions are not a model's work (metrics.degeneracy), or None
        "degenerate": {s: v["degenerate"] for s, v in splits.items() if v["degenerate"]} or None,
        "versions": runs.library_versions(),  # noisebench's release among them
    }
    if figures is not None:
        figures(run_dir, results)
    runs.write_json(run_dir / runs.RESULTS, results)
    return results


def scored_split(predictions: runs.Predictions, scheme: str, strict: bool, bins: int) -> dict:
    """``metrics.score_split`` of a split, with its reviewed sentences scored apart against
    their reviewed labels (``reviewed``; weighted by a designed review's design) and which
    review that is (``review``), where the split has one."""
    scores = metrics.score_split(predictions, scheme, strict, bins)
    reviewed = predictions.reviewed_part()
    if reviewed is not None:  # the truth where the data has it: review merge
        population = len(predictions.offsets) - 1
        scores["reviewed"] = metrics.score_split(reviewed, scheme, strict, bins, population)
    if predictions.review is not None:  # which review, and what it left out
        scores["review"] = predictions.review
    return scores


def config_from_results(results: dict, **overrides) -> TrainConfig:
    return replace(TrainConfig.from_identity(results["config"]), **overrides)


def evaluate_saved_model(
    run_dir: Path,
    spec: str,
    split: str = "test",
    columns: data.Columns | None = None,
    device: str = "auto",
    figures: Figures | None = None,
    precision: str = "auto",
) -> dict:
    """Score a run's saved model (``--save-model``) on another dataset's ``split``, its
    forward pass in ``precision`` (``auto|fp32|bf16``, resolved on the device).

    Writes ``eval_dir(run_dir, spec)`` (predictions, results.json) and returns its
    results. The data's label names must be the model's (any order).
    """
    model_dir = Path(run_dir) / "model"
    stored = runs.read_json(Path(run_dir) / runs.RESULTS)
    if stored is None or not (model_dir / "config.json").is_file():
        raise InputError(f"--model {run_dir}: not a finished run saved with --save-model")
    config = config_from_results(stored)
    resolved_device = resolve_device(device)
    precision = resolve_precision(precision, resolved_device)
    dataset = data.load(spec, columns)
    if split not in dataset:
        raise InputError(f"--split {split}: {spec} has splits {', '.join(dataset)}")
    model, tokenizer = load_model(str(model_dir), stored["labels"])
    names = data.label_names(dataset[split])
    if set(names) != set(stored["labels"]):
        raise InputError(
            f"{spec}: label set {sorted(names)} differs from the model's {sorted(stored['labels'])}"
        )
    flat, offsets = data.flat_tags(dataset[split])
    to_model = np.array([stored["labels"].index(name) for name in names], dtype=np.int64)
    encoded = encode(tokenizer, dataset[split], config.max_length, sources.home() / "tokenized")
    encoded.tags = np.split(to_model[flat], offsets[1:-1])
    model.to(resolved_device)
    predictions = predict(
        model,
        encoded,
        tokens_of(dataset[split]),
        stored["labels"],
        resolved_device,
        tokenizer.pad_token_id or 0,
        precision,
    )
    # the data's reviewed sentences scored apart, as a run's own splits are (their labels
    # in the model's order, as the given ones are)
    predictions = with_review(predictions, dataset[split])
    if predictions.reviewed_gold is not None:
        predictions = replace(predictions, reviewed_gold=to_model[predictions.reviewed_gold])
    out = eval_dir(run_dir, spec)
    out.mkdir(parents=True, exist_ok=True)
    runs.write_predictions(out / f"predictions-{split}.parquet", predictions)
    scheme = data.scheme(dataset)
    scores = scored_split(predictions, scheme, config.strict, config.bins)
    results = {
        "schema_version": runs.SCHEMA_VERSION,
        "run": Path(run_dir).name,
        "data": spec,
        "labels": stored["labels"],
        "scheme": scheme,
        "strict": config.strict,
        "bins": config.bins,
        "precision": precision,
        "splits": {split: scores},
    }
    if figures is not None:
        figures(out, results)
    runs.write_json(out / runs.RESULTS, results)
    return results


def eval_dir(run_dir: Path, spec: str) -> Path:
    """Where ``evaluate_saved_model`` writes a saved model's scores on ``spec``."""
    return Path(run_dir) / "eval" / data.dataset_name(spec)


def rescore(
    run_dir: Path,
    bins: int | None = None,
    strict: bool | None = None,
    calibrate: str | None = None,
    figures: Figures | None = None,
) -> dict:
    """Recompute every score of a run from its saved predictions; rewrite results.json."""
    run_dir = Path(run_dir)
    stored = runs.read_json(run_dir / runs.RESULTS)
    if stored is None or not any(run_dir.glob("predictions-*.parquet")):
        raise InputError(
            f"{run_dir}: not a finished noisebench run (no results.json or predictions)"
        )
    if bins is not None and bins < 1:
        raise InputError(f"--bins {bins}: must be at least 1")
    overrides = {
        k: v
        for k, v in (("bins", bins), ("strict", strict), ("calibrate", calibrate))
        if v is not None
    }
    config = config_from_results(stored, **overrides)
    return write_results(
        run_dir,
        stored["labels"],
        stored["scheme"],
        config,
        stored["train"],
        stored["notes"],
        figures,
    )
