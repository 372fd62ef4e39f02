"""Record what the detectors read: train on the data (or reuse a finished training) and
keep each training word's dynamics, the trained model's predictions on its own training
words, or out-of-sample probabilities from K folds.

    noisebench detect noisebench:crowd -o review/            # one run: runs/detect/<name>
    noisebench detect noisebench:crowd --detector cv --folds 5 -o review-cv/  # runs/cv/

``dynamics`` and ``retag`` read one training (``runs/detect/<run name>``, never
``train``'s own folder): its ``dynamics.npz`` (the given label's probability, margin and
the predicted label per epoch and word, from the training passes and, with
``--dynamics-pass eval``, one inference pass per epoch) and its
``predictions-train.parquet``. ``cv`` trains one run per fold
(``runs/cv/<run name>-fold<k>of<K>``), each predicting the fold it held out.
``score.py`` turns what is recorded into word scores.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from noisebench.detection.config import DetectConfig
from noisebench.detection.score import Detection, from_out_of_sample, from_predictions
from noisebench.errors import InputError

DYNAMICS_FILE = "dynamics.npz"
SUGGESTION_SPLIT = "train"  # predictions-train.parquet: the trained model on its own data
DETECT_RUNS = "detect"  # runs/detect/<run name>: detect's own trainings, beside train's
HELDOUT_SPLIT = "heldout"  # predictions-heldout.parquet: a cv fold on the sentences it held out


# ---------------------------------------------------------------- recording dynamics


class DynamicsRecorder:
    """Per epoch and training word: the given label's probability and margin, and the
    predicted label, from the training forward passes (``train(observe=...)``).

    A batch's scored positions are, row by row, the first words of each sentence (words
    past ``max_length`` are cut from the end), so they map to words without the
    tokenisation: ``word_counts`` (words per training sentence) is all it needs. The
    values stay on the model's device, computed for every position (no boolean
    indexing, which waits for the device), and come to the host every ``FLUSH_EVERY``
    batches or when read: on CUDA a step does not wait for the recording."""

    FLUSH_EVERY = 64

    def __init__(self, word_counts: np.ndarray, epochs: int) -> None:
        counts = np.asarray(word_counts, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        words = int(self.offsets[-1])
        self._probability = np.full((epochs, words), np.nan, dtype=np.float32)
        self._margin = np.full((epochs, words), np.nan, dtype=np.float32)
        self._predicted = np.full((epochs, words), -1, dtype=np.int16)
        self.pending: list[tuple] = []  # (epoch, sentence indices, (B, T, 4) on the device)
        self.eval_probability = self.eval_margin = self.eval_predicted = None
        self.pass_seconds = 0.0

    def __call__(self, epoch: int, indices: np.ndarray, logits, labels) -> None:
        import torch

        with torch.no_grad():
            scored = logits.float()  # (B, T, C)
            given = labels.clamp(min=0)[..., None]  # -100 (not scored) read as 0, dropped later
            log_p = torch.log_softmax(scored, dim=-1)
            p_given = log_p.gather(-1, given).squeeze(-1).exp()
            z_given = scored.gather(-1, given).squeeze(-1)
            others = scored.scatter(-1, given, float("-inf")).amax(dim=-1)
            valid = (labels != -100).float()
            values = torch.stack([p_given, z_given - others, scored.argmax(-1).float(), valid], -1)
        self.pending.append((epoch, np.asarray(indices), values))
        if len(self.pending) >= self.FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Bring the pending batches' values to the host (one transfer) and file them."""
        if not self.pending:
            return
        import torch

        flat = torch.cat([v.reshape(-1, 4) for *_, v in self.pending]).cpu().numpy()
        start = 0
        for epoch, indices, values in self.pending:
            rows, width = values.shape[:2]
            block = flat[start : start + rows * width].reshape(rows, width, 4)
            start += rows * width
            valid = block[..., 3] > 0  # (B, T): each kept word's first sub-token, row-major
            kept = valid.sum(axis=1)
            positions = [self.offsets[i] + np.arange(n) for i, n in zip(indices, kept, strict=True)]
            words = np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)
            row, seen = epoch - 1, block[valid]
            self._probability[row, words] = seen[:, 0]
            self._margin[row, words] = seen[:, 1]
            self._predicted[row, words] = seen[:, 2].astype(np.int16)
        self.pending = []

    @property
    def probability(self) -> np.ndarray:
        self.flush()
        return self._probability

    @property
    def margin(self) -> np.ndarray:
        self.flush()
        return self._margin

    @property
    def predicted(self) -> np.ndarray:
        self.flush()
        return self._predicted

    def record_pass(self, epoch: int, predict) -> None:
        """``--dynamics-pass eval``: after epoch ``epoch``, ``predict()`` (the training
        split with dropout off, ``train(observe_epoch=...)``) gives every word's
        probabilities; the given label's probability and its log-probability margin over
        the largest other (equal to the logit margin; probabilities floored at 1e-30)."""
        import time

        started = time.perf_counter()
        made = predict()
        self.pass_seconds += time.perf_counter() - started
        if self.eval_probability is None:
            shape = self.probability.shape
            self.eval_probability = np.full(shape, np.nan, dtype=np.float32)
            self.eval_margin = np.full(shape, np.nan, dtype=np.float32)
            self.eval_predicted = np.full(shape, -1, dtype=np.int16)
        probability, margin, predicted = pass_values(made.probs, made.gold)
        row = epoch - 1
        self.eval_probability[row] = probability
        self.eval_margin[row] = margin
        self.eval_predicted[row] = predicted

    def save(self, path: Path, epochs_run: int) -> None:
        temporary = path.with_name(path.name + ".tmp.npz")
        arrays = {
            "probability": self.probability[:epochs_run],
            "margin": self.margin[:epochs_run],
            "predicted": self.predicted[:epochs_run],
            "offsets": self.offsets,
        }
        if self.eval_probability is not None:
            arrays |= {
                "eval_probability": self.eval_probability[:epochs_run],
                "eval_margin": self.eval_margin[:epochs_run],
                "eval_predicted": self.eval_predicted[:epochs_run],
                "eval_seconds": np.float64(self.pass_seconds),
            }
        np.savez_compressed(temporary, **arrays)
        temporary.replace(path)


def pass_values(probs: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per word of an inference pass: the given label's probability, its log-probability
    margin over the largest other label, and the predicted label (-1 and NaN for words
    the pass never saw).

    >>> probs = np.array([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]], dtype=np.float32)
    >>> p, m, k = pass_values(probs, np.array([0, 1]))
    >>> [round(float(v), 4) for v in (*p, *m)], k.tolist()
    ([0.7, 0.25, 1.2528, -0.6931], [0, 2])
    """
    seen = ~np.isnan(probs).any(axis=1)
    safe = np.where(seen[:, None], probs, 1.0).astype(np.float64)
    rows = np.arange(len(given))
    log_p = np.log(np.maximum(safe, 1e-30))
    given_log = log_p[rows, given]
    others = log_p.copy()
    others[rows, given] = -np.inf
    margin = given_log - others.max(axis=1)
    probability = np.exp(given_log)
    predicted = safe.argmax(axis=1)
    return (
        np.where(seen, probability, np.nan).astype(np.float32),
        np.where(seen, margin, np.nan).astype(np.float32),
        np.where(seen, predicted, -1).astype(np.int16),
    )


def load_dynamics(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as stored:
        return {key: stored[key] for key in stored.files}


# ------------------------------------------------------------- detect's own runs


def run_detection(prepared, config: DetectConfig, progress=None) -> Detection:
    """Train what ``config.detector`` needs on ``prepared`` (reusing finished trainings
    that recorded it) and score every training word."""
    import time

    config.check()
    started = time.perf_counter()
    from noisebench.data import loading as data
    from noisebench.training import loop as train

    train_split = prepared.dataset["train"]
    if data.IGNORE_COLUMN in train_split.column_names:
        raise InputError(
            f"{prepared.config.data}: its training words carry an '{data.IGNORE_COLUMN}' column"
            " (a --fix mask output); detect on the data before the fix"
        )
    clean = clean_labels(train_split)
    if config.detector == "cv":
        return _cross_validate(prepared, config, clean, progress, started)
    run_dir = detection_dir(prepared.run_dir, config.dynamics_pass)
    trainings = 0
    if not _has_artefacts(run_dir, config.dynamics_pass):
        counts = np.diff(data.flat_tags(train_split)[1])
        recorder = DynamicsRecorder(counts, prepared.config.epochs)
        results = train.train(
            replace(prepared, run_dir=run_dir),
            progress=progress,
            observe=recorder,
            observe_epoch=recorder.record_pass if config.dynamics_pass == "eval" else None,
            extra_predictions={SUGGESTION_SPLIT: train_split},
        )
        recorder.save(run_dir / DYNAMICS_FILE, results["train"]["epochs_run"])
        trainings = 1
    return detection_of_run(
        run_dir,
        config,
        clean,
        {"trainings": trainings, "seconds": time.perf_counter() - started},
    )


def detection_of_run(run_dir: Path, config: DetectConfig, clean, cost: dict) -> Detection:
    """``dynamics`` or ``retag`` from a finished run's artefacts (``--run``)."""
    from noisebench.training import runs

    config.check()
    if config.detector == "cv":
        raise InputError("--run: the cv detector trains its own folds; drop --run")
    if not _has_artefacts(Path(run_dir), "train"):
        raise InputError(
            f"--run {run_dir}: no {DYNAMICS_FILE} and predictions-{SUGGESTION_SPLIT}.parquet"
            " (only runs made by noisebench detect record them)"
        )
    run_dir = Path(run_dir)
    predictions = runs.read_predictions(run_dir / f"predictions-{SUGGESTION_SPLIT}.parquet")
    dynamics = load_dynamics(run_dir / DYNAMICS_FILE)
    if "eval_seconds" in dynamics:
        cost = cost | {"eval_pass_seconds": float(dynamics["eval_seconds"])}
    try:
        found = from_predictions(
            config.detector, config.word_score, predictions, dynamics, clean, cost,
            config.dynamics_pass,
        )  # fmt: skip
    except InputError as error:  # name the run whose artefacts do not fit
        raise InputError(f"--run {run_dir}: {error}") from None
    return replace(found, validation_f1=run_validation_f1(run_dir), run_dir=run_dir)


def prepared_of_run(run: Path, device: str):
    """``--run``: the settings of a finished run, prepared again (nothing trains)."""
    from noisebench.training import runs
    from noisebench.training.evaluate import config_from_results
    from noisebench.training.prepare import prepare

    stored = runs.read_json(Path(run) / runs.RESULTS)
    if stored is None:
        raise InputError(f"--run {run}: not a finished noisebench run (no results.json)")
    return prepare(config_from_results(stored), Path(run).parent, device)


def run_validation_f1(run_dir: Path) -> float | None:
    """A finished run's validation F1 (None where it has none)."""
    from noisebench.training import runs

    results = runs.read_json(Path(run_dir) / runs.RESULTS) or {}
    return (results.get("splits", {}).get("validation") or {}).get("f1")


def detection_dir(run_dir: Path, dynamics_pass: str) -> Path:
    """The folder a detection reuses or trains into: ``runs/detect/<run name>``, never
    ``train``'s ``runs/<run name>`` of the same settings, so a finished ``train`` run (its
    results, its ``model/``) is never trained over. That folder records the inference
    passes (the default) and with them the training passes, so ``--dynamics-pass train``
    reuses it; without it, that pass trains into ``<run name>-train-pass``. A detection
    made in ``runs/<run name>`` (before detect had folders of its own) is reused."""
    own = run_dir.parent / DETECT_RUNS / run_dir.name
    training_pass = own.with_name(f"{own.name}-train-pass")
    if dynamics_pass == "train":
        reusable, fresh = [own, training_pass, run_dir], training_pass
    else:
        reusable, fresh = [own, run_dir], own
    return next((d for d in reusable if _has_artefacts(d, dynamics_pass)), fresh)


def _has_artefacts(run_dir: Path, dynamics_pass: str) -> bool:
    """A finished detect run with what ``dynamics_pass`` reads (a run without the
    inference passes is trained again, to the same training-pass record, when they are
    asked for)."""
    from noisebench.training import runs

    stored = run_dir / DYNAMICS_FILE
    if not (
        runs.is_complete(run_dir)
        and stored.is_file()
        and (run_dir / f"predictions-{SUGGESTION_SPLIT}.parquet").is_file()
    ):
        return False
    if dynamics_pass == "train":
        return True
    with np.load(stored) as arrays:
        return "eval_probability" in arrays.files


def reviewed_truth(split) -> tuple[np.ndarray, np.ndarray, int] | None:
    """The split's reviewed sentences drawn at random (``review merge`` of a ``review
    sample``: a detector graded on the sentences it chose itself would be graded on its
    own picks), its flat ``reviewed_tags`` (read on those sentences only), and how many
    reviewed sentences were left out as chosen; None where it has none."""
    from noisebench.data import loading as data

    if data.REVIEWED_COLUMN not in split.column_names:
        return None
    # AP and precision at a budget rank the units of the sample, not totals of the split:
    # a designed review's sentences (weighted by their design) are left out, and said
    random = data.review_sample(split, designed=False)
    rows = np.flatnonzero(random.sentences)
    if not len(rows) and not random.left_out:
        return None
    return rows, data.flat_tags(split, data.REVIEWED_TAGS_COLUMN)[0], random.left_out


def clean_labels(split) -> np.ndarray | None:
    """The split's flat ``clean_tags`` (None without them)."""
    from noisebench.data import loading as data

    if "clean_tags" not in split.column_names:
        return None
    return data.flat_tags(split, "clean_tags")[0]


# -------------------------------------------------------------- cross-validation


def cv_folds(sentences: int, folds: int, seed: int) -> list[np.ndarray]:
    """``folds`` disjoint sets of sentence indices (sorted) covering all, seeded.

    >>> [f.tolist() for f in cv_folds(5, 2, 0)]
    [[1, 2, 3], [0, 4]]
    """
    if folds < 2:
        raise InputError(f"--folds {folds}: cross-validation needs at least 2 folds")
    if folds > sentences:
        raise InputError(f"--folds {folds}: more folds than the {sentences} training sentences")
    order = np.random.default_rng([seed, 18]).permutation(sentences)
    return [np.sort(order[f::folds]) for f in range(folds)]


def _cross_validate(prepared, config: DetectConfig, clean, progress, started) -> Detection:
    """``cv``: every training sentence's probabilities from the fold that held it out,
    scored by cleanlab; the validation F1 is the folds' mean (None where one has none)."""
    import time

    from noisebench.data import loading as data
    from noisebench.training import runs

    split = prepared.dataset["train"]
    given, offsets = data.flat_tags(split)
    folds = cv_folds(len(split), config.folds, prepared.config.seed)
    probs = np.full((len(given), len(prepared.labels)), np.nan, dtype=np.float64)
    trainings, fold_f1 = 0, []
    for number, held_out in enumerate(folds, start=1):
        fold_dir, trained = _train_fold(prepared, held_out, number, config.folds, progress)
        trainings += trained
        made = runs.read_predictions(fold_dir / f"predictions-{HELDOUT_SPLIT}.parquet")
        fold_f1.append(run_validation_f1(fold_dir))
        for row, sentence in enumerate(held_out):
            begin, end = made.offsets[row], made.offsets[row + 1]
            probs[offsets[sentence] : offsets[sentence + 1]] = made.probs[begin:end]
    tokens = split.data.table.column("tokens").to_pylist()
    cost = {"trainings": trainings, "seconds": time.perf_counter() - started}
    f1 = None if None in fold_f1 else float(np.mean(fold_f1))
    return from_out_of_sample(
        config.word_score, prepared.labels, tokens, offsets, given, probs, clean, cost, f1
    )


def _train_fold(prepared, held_out: np.ndarray, number: int, folds: int, progress):
    """Fold ``number`` of ``folds``: a training on the other sentences that predicts the
    ``held_out`` ones, in ``runs/cv/<run name>-fold<k>of<K>`` (reused when finished).
    Returns its folder and the trainings it took (0 or 1)."""
    import datasets

    from noisebench.training import loop as train
    from noisebench.training import runs

    split = prepared.dataset["train"]
    name = f"{prepared.run_dir.name}-fold{number}of{folds}"
    fold_dir = prepared.run_dir.parent / "cv" / name
    if runs.is_complete(fold_dir) and (fold_dir / f"predictions-{HELDOUT_SPLIT}.parquet").is_file():
        return fold_dir, 0
    others = np.setdiff1d(np.arange(len(split)), held_out)
    fold = replace(
        prepared,
        dataset=datasets.DatasetDict(
            train=split.select(others).flatten_indices(),
            validation=prepared.dataset["validation"],
        ),
        run_dir=fold_dir,
        notes=[*prepared.notes, f"cross-validation fold {number} of {folds}"],
    )
    if progress is not None:
        progress({"event": "fold", "fold": number, "folds": folds})
    train.train(
        fold,
        progress=progress,
        extra_predictions={HELDOUT_SPLIT: split.select(held_out).flatten_indices()},
    )
    return fold_dir, 1
