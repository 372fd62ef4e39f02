"""Find the wrong labels: score every training word's label, rank words, entities and
sentences, and measure the ranking against the known corruption.

    noisebench detect noisebench:crowd -o review/            # training dynamics, one run
    noisebench detect noisebench:crowd --detector cv --folds 5 -o review-cv/

Detectors (higher score = more likely wrong):

``dynamics`` (default): one training run records each training word's probability and
margin of its given label in every epoch, from one inference pass over the training
words after the epoch (dropout off; ``--dynamics-pass eval``, the default: it ranks
better, at about a sixth of a training run more) or from the training forward passes
themselves (dropout on, no extra pass; ``--dynamics-pass train``, recorded either way).
Word scores: ``aum`` (area under the margin, Pleiss et al. 2020: minus the
mean over epochs of the given label's logit minus the largest other logit; default),
``confidence`` (one minus the mean probability of the given label: data maps, Swayamdipta
et al. 2020), ``variability`` (its standard deviation over epochs) and ``early`` (one
minus that probability in the first epoch: errors not yet memorised).

``retag``: the trained model's prediction on its own training words; words it
contradicts first, by the prediction's confidence, then the rest by one minus the given
label's probability.

``cv``: out-of-sample probabilities by K-fold cross-validation (K trainings, each on the
other folds), scored by cleanlab's own token-classification functions: self-confidence
(or normalised margin) per word, the worst word (``min``) per sentence, and cleanlab's
confident-learning flags (``find_label_issues``).

Levels: ``word``; ``sentence`` (the sentence's worst word; for ``cv`` cleanlab's sentence
score); ``entity``: the given spans and the spans of the suggested labels aligned both
ways, each disagreement an issue typed ``missed`` (a suggested span where the given
labels have none), ``spurious`` (a given span with no suggested span over it),
``retyped`` (same words, another type) or ``boundary`` (overlapping, other edges), scored
by its worst word. The suggested labels are the trained model's predictions (for ``cv``,
the argmax of the out-of-sample probabilities).

Against the truth, where the data has ``clean_tags``: a word is wrong when its given
label differs from its clean one, a sentence when one of its words is, an entity issue
when one of its words is (the truly wrong entities: given spans that are not clean spans,
and clean spans that no given span touches). Scores: average precision over the whole
ranking (AP; candidates the detector never lists count as misses), precision and recall
at review budgets (1%, 5%, 10% of the level's units, and at k = the number of truly
wrong ones), and AUROC beside them (word and sentence levels, where every unit is
ranked). AP, not AUROC, is the headline: with 1-10% of words wrong, AUROC looks
excellent long before the top of the ranking is worth a reviewer's time.

Fixes (``--fix``, ``-o DIR``): ``relabel`` writes the suggested spans over a stretch of a
sentence where the given and suggested spans disagree, only where the suggestion of every
word the model contradicts there is more likely right than the given label (the model's
probabilities weighed by a noise matrix that confident learning estimates from them), at
most ``--budget`` of the words, and refuses a model below ``--min-f1`` validation F1;
``mask`` leaves the most suspect ``--budget`` of the words out of training, ``drop`` the
most suspect sentences.

    noisebench detect noisebench:crowd --fix relabel --budget 5% -o fixed/
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from noisebench.data.schemes import NO_SCHEME, decode_spans, encode_spans
from noisebench.detection.rankings import (
    Ranking,
    entity_ranking,
    measure,
    ranked_order,
    sentence_ranking,
    word_ranking,
)
from noisebench.errors import InputError

DETECTORS = ("dynamics", "retag", "cv")
DYNAMICS_PASSES = ("train", "eval")  # recorded in the training passes, or one more per epoch
WORD_SCORES = {
    "dynamics": ("aum", "confidence", "variability", "early"),
    "retag": ("retag",),
    "cv": ("self_confidence", "normalized_margin"),
}
LEVELS = ("word", "entity", "sentence")
DYNAMICS_FILE = "dynamics.npz"
SUGGESTION_SPLIT = "train"  # predictions-train.parquet: the trained model on its own data


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


# -------------------------------------------------------------------------- scores


def dynamics_scores(
    dynamics: dict[str, np.ndarray], score: str, dynamics_pass: str = "train"
) -> np.ndarray:
    """Per word, higher = more likely wrong (module docstring), from the training passes
    (``train``) or the per-epoch inference passes (``eval``). Words never seen in a pass
    (cut off by ``max_length``) score NaN and rank last."""
    prefix = "eval_" if dynamics_pass == "eval" else ""
    if f"{prefix}probability" not in dynamics:
        raise InputError(
            "this run recorded the training passes only; rescore with --dynamics-pass train,"
            " or detect again with --dynamics-pass eval to record the inference passes"
        )
    probability, margin = dynamics[f"{prefix}probability"], dynamics[f"{prefix}margin"]
    with np.errstate(invalid="ignore"), _quiet_nan_means():
        if score == "aum":
            return -np.nanmean(margin, axis=0)
        if score == "confidence":
            return 1.0 - np.nanmean(probability, axis=0)
        if score == "variability":
            return np.nanstd(probability, axis=0)
        if score == "early":
            return 1.0 - probability[0]
    raise InputError(f"--score {score}: the dynamics detector scores {_choices('dynamics')}")


def retag_scores(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Words the model contradicts first (1 + its confidence), then the others by one
    minus the given label's probability (in [0, 1))."""
    predicted = probs.argmax(axis=1)
    p_given = probs[np.arange(len(given)), given]
    contradicted = predicted != given
    return np.where(contradicted, 1.0 + probs.max(axis=1), 1.0 - p_given)


def cleanlab_scores(
    probs: np.ndarray, given: np.ndarray, offsets: np.ndarray, score: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cleanlab's word and (worst-word) sentence scores turned into "higher = more likely
    wrong" (one minus its label quality), and its confident-learning flags per word."""
    from cleanlab.token_classification.filter import find_label_issues
    from cleanlab.token_classification.rank import get_label_quality_scores

    labels = [given[a:b].tolist() for a, b in itertools.pairwise(offsets)]
    pred_probs = [probs[a:b] for a, b in itertools.pairwise(offsets)]
    sentence_quality, word_quality = get_label_quality_scores(
        labels, pred_probs, token_score_method=score, sentence_score_method="min"
    )
    words = 1.0 - np.concatenate([np.asarray(w, dtype=np.float64) for w in word_quality])
    flags = np.zeros(len(given), dtype=bool)
    for sentence, word in find_label_issues(labels, pred_probs):
        flags[offsets[sentence] + word] = True
    return words, 1.0 - np.asarray(sentence_quality, dtype=np.float64), flags


def _choices(detector: str) -> str:
    return ", ".join(WORD_SCORES[detector])


class _quiet_nan_means:
    """``np.nanmean`` of an all-NaN column (a word never scored) warns; it is NaN here."""

    def __enter__(self):
        import warnings

        self.catcher = warnings.catch_warnings()
        self.catcher.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self.catcher.__exit__(*exc)


# ------------------------------------------------------------------------ detecting


@dataclass
class Detection:
    """Every training word's score and suggested label, and what the rankings need."""

    detector: str
    score_name: str
    labels: list[str]
    tokens: list[list[str]]
    offsets: np.ndarray  # (S + 1,)
    given: np.ndarray  # (W,) the training labels as given
    suggested: np.ndarray  # (W,) the model's labels for them
    word_scores: np.ndarray  # (W,) higher = more likely wrong
    clean: np.ndarray | None = None  # (W,) where the data has clean labels
    sentence_scores: np.ndarray | None = None  # cleanlab's own (cv), else the worst word
    flags: np.ndarray | None = None  # cleanlab's confident-learning flags (cv)
    cost: dict = field(default_factory=dict)  # trainings, seconds
    spans: bool = True  # False: tags without entity spans (word and sentence levels only)
    probs: np.ndarray | None = None  # (W, C) the model's probabilities (NaN: never seen)
    validation_f1: float | None = None  # the detecting model's (mean over folds for cv)
    run_dir: Path | None = None  # the training it was read from (dynamics, retag)
    _rankings: dict | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def wrong(self) -> np.ndarray | None:
        return None if self.clean is None else self.given != self.clean

    def rankings(self) -> dict[str, Ranking]:
        """Each level's ranking, made once (the entity level walks every sentence; the
        report, the issues, the review files and a fix all read them)."""
        if self._rankings is None:
            self._rankings = self._rank()
        return self._rankings

    def _rank(self) -> dict[str, Ranking]:
        wrong = self.wrong
        rankings = {"word": word_ranking(self.word_scores, self.offsets, wrong)}
        if self.spans:
            rankings["entity"] = entity_ranking(
                self.word_scores, self.given, self.suggested, self.clean, self.offsets, self.labels
            )
        rankings["sentence"] = sentence_ranking(
            self.word_scores, self.offsets, wrong, self.sentence_scores
        )
        return rankings

    def units(self) -> dict[str, int]:
        entities = self.spans and sum(
            len(decode_spans([self.labels[t] for t in self.given[a:b]]))
            for a, b in itertools.pairwise(self.offsets)
        )
        return {"word": len(self.given), "entity": entities, "sentence": len(self.offsets) - 1}

    def report(self) -> dict | None:
        """Each level measured against the clean labels (None without them)."""
        if self.clean is None:
            return None
        units = self.units()
        return {level: measure(r, units[level]) for level, r in self.rankings().items()}


def from_predictions(
    detector: str,
    score: str,
    train_predictions,
    dynamics: dict | None = None,
    clean: np.ndarray | None = None,
    cost: dict | None = None,
    dynamics_pass: str = "train",
) -> Detection:
    """A ``dynamics`` or ``retag`` detection from one run's artefacts: its predictions on
    its own training words (``predictions-train.parquet``) and, for ``dynamics``, the
    recorded dynamics (of the training passes or the inference passes)."""
    probs = train_predictions.probs.astype(np.float64)
    given = train_predictions.gold
    scored = train_predictions.scored
    suggested = np.where(scored, train_predictions.predicted, given)
    if detector == "dynamics":
        if dynamics is None:
            raise InputError("the dynamics detector needs the run's dynamics.npz")
        if len(dynamics["offsets"]) != len(train_predictions.offsets) or not np.array_equal(
            dynamics["offsets"], train_predictions.offsets
        ):
            raise InputError("dynamics.npz and predictions-train.parquet describe other words")
        words = dynamics_scores(dynamics, score, dynamics_pass)
    elif detector == "retag":
        words = np.full(len(given), np.nan)
        words[scored] = retag_scores(probs[scored], given[scored])
    else:
        raise InputError(f"--detector {detector}: choose one of {', '.join(DETECTORS)}")
    return Detection(
        detector, score, list(train_predictions.labels), train_predictions.tokens,
        train_predictions.offsets, given, suggested, words, clean, cost=cost or {}, probs=probs,
    )  # fmt: skip


def from_out_of_sample(
    score: str,
    labels: list[str],
    tokens: list[list[str]],
    offsets: np.ndarray,
    given: np.ndarray,
    probs: np.ndarray,
    clean: np.ndarray | None = None,
    cost: dict | None = None,
    validation_f1: float | None = None,
) -> Detection:
    """A ``cv`` detection from out-of-sample probabilities, scored by cleanlab. Words cut
    off by ``max_length`` (NaN probabilities) get a uniform distribution for cleanlab
    and rank last."""
    if score not in WORD_SCORES["cv"]:
        raise InputError(f"--score {score}: the cv detector scores {_choices('cv')}")
    scored = ~np.isnan(probs[:, 0])
    filled = np.where(scored[:, None], probs, 1.0 / probs.shape[1])
    words, sentences, flags = cleanlab_scores(filled, given, offsets, score)
    words[~scored] = np.nan
    suggested = np.where(scored, filled.argmax(axis=1), given)
    return Detection(
        "cv", score, labels, tokens, offsets, given, suggested, words, clean, sentences, flags,
        cost or {}, probs=probs, validation_f1=validation_f1,
    )  # fmt: skip


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


def flagged_words(detection: Detection, share: float) -> np.ndarray:
    """Bool per word: the most suspect ``share`` of the words (what ``--fix`` and the
    review exports act on)."""
    flagged = np.zeros(len(detection.given), dtype=bool)
    flagged[top_share(detection.rankings()["word"], share)] = True
    return flagged


def reviewed_labels(detection: Detection, flagged: np.ndarray, scheme: str) -> np.ndarray:
    """The given labels with the ``flagged`` words (bool per word) set to their suggested
    labels, each sentence then written back in its scheme (``encode(decode())``), so the
    result is a valid tag sequence whatever the suggestions were (tags without spans
    take the suggestions as they are)."""
    index = {name: i for i, name in enumerate(detection.labels)}
    out = detection.given.copy()
    out[flagged] = detection.suggested[flagged]
    if scheme == NO_SCHEME:
        return out
    for begin, end in itertools.pairwise(detection.offsets):
        if not flagged[begin:end].any():
            continue
        names = [detection.labels[t] for t in out[begin:end]]
        written = encode_spans(decode_spans(names), end - begin, scheme)
        if all(label in index for label in written):
            out[begin:end] = [index[label] for label in written]
    return out


def top_share(ranking: Ranking, share: float) -> np.ndarray:
    """The most suspect ``share`` of a level's listed units (at least one)."""
    count = max(1, round(share * len(ranking.score))) if len(ranking.score) else 0
    return ranking.order()[:count]


# -------------------------------------------------------------------------- running


@dataclass(frozen=True)
class DetectConfig:
    detector: str = "dynamics"
    score: str | None = None  # None: the detector's first (aum, retag, self_confidence)
    folds: int = 5
    budget: float = 0.10  # share of each level's units listed as issues for review
    # eval (default): also one inference pass per epoch, dropout off (it ranks better: README);
    # train: the training forward passes only, no extra pass
    dynamics_pass: str = "eval"

    @property
    def word_score(self) -> str:
        return self.score or WORD_SCORES[self.detector][0]

    def check(self) -> None:
        if self.detector not in DETECTORS:
            raise InputError(f"--detector '{self.detector}': choose one of {', '.join(DETECTORS)}")
        if self.word_score not in WORD_SCORES[self.detector]:
            raise InputError(
                f"--score {self.word_score}: the {self.detector} detector scores"
                f" {_choices(self.detector)}"
            )
        if not 0.0 < self.budget <= 1.0:
            raise InputError(f"--budget {self.budget:g}: give a share in (0, 1], e.g. 0.05")
        if self.dynamics_pass not in DYNAMICS_PASSES:
            raise InputError(
                f"--dynamics-pass {self.dynamics_pass}: choose one of {', '.join(DYNAMICS_PASSES)}"
            )
        if self.detector == "cv" and self.folds < 2:
            raise InputError(f"--folds {self.folds}: cross-validation needs at least 2 folds")


def check_method(method: str) -> None:
    """A detection trains with any ``--method`` but an oracle's: an oracle sees the clean
    labels the detection is scored against (an unknown method is ``prepare``'s to refuse,
    as for ``train``)."""
    from noisebench.training import methods

    if methods.is_bound(method):
        raise InputError(
            f"--method {method}: an oracle trains on the clean labels the detection is"
            " scored against; choose none or a mask-* method"
        )


def parse_share(text: str) -> float:
    """``"5%"`` or ``"0.05"`` -> 0.05.

    >>> parse_share("5%"), parse_share("0.1")
    (0.05, 0.1)
    """
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise InputError(f"--budget '{text}': give a share such as 5% or 0.05") from None
    return value


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


def run_validation_f1(run_dir: Path) -> float | None:
    """A finished run's validation F1 (None where it has none)."""
    from noisebench.training import runs

    results = runs.read_json(Path(run_dir) / runs.RESULTS) or {}
    return (results.get("splits", {}).get("validation") or {}).get("f1")


DETECT_RUNS = "detect"  # runs/detect/<run name>: detect's own trainings, beside train's


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


def clean_labels(split) -> np.ndarray | None:
    """The split's flat ``clean_tags`` (None without them)."""
    from noisebench.data import loading as data

    if "clean_tags" not in split.column_names:
        return None
    return data.flat_tags(split, "clean_tags")[0]


def _cross_validate(prepared, config: DetectConfig, clean, progress, started) -> Detection:
    import time

    import datasets

    from noisebench.data import loading as data
    from noisebench.training import loop as train
    from noisebench.training import runs

    split = prepared.dataset["train"]
    given, offsets = data.flat_tags(split)
    folds = cv_folds(len(split), config.folds, prepared.config.seed)
    probs = np.full((len(given), len(prepared.labels)), np.nan, dtype=np.float64)
    trainings, fold_f1 = 0, []
    for number, held_out in enumerate(folds, start=1):
        others = np.setdiff1d(np.arange(len(split)), held_out)
        name = f"{prepared.run_dir.name}-fold{number}of{config.folds}"
        fold_dir = prepared.run_dir.parent / "cv" / name
        predictions_file = fold_dir / "predictions-heldout.parquet"
        if not (runs.is_complete(fold_dir) and predictions_file.is_file()):
            fold = replace(
                prepared,
                dataset=datasets.DatasetDict(
                    train=split.select(others).flatten_indices(),
                    validation=prepared.dataset["validation"],
                ),
                run_dir=fold_dir,
                notes=[*prepared.notes, f"cross-validation fold {number} of {config.folds}"],
            )
            if progress is not None:
                progress({"event": "fold", "fold": number, "folds": config.folds})
            train.train(
                fold,
                progress=progress,
                extra_predictions={"heldout": split.select(held_out).flatten_indices()},
            )
            trainings += 1
        made = runs.read_predictions(predictions_file)
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


# ------------------------------------------------------------------------------ fixing

FIXES = ("relabel", "mask", "drop")
MIN_F1 = 0.5  # --fix relabel refuses suggestions from a model below this validation F1


def apply_fix(
    dataset, detection: Detection, fix: str, share: float, scheme: str, min_f1: float = MIN_F1
):
    """The data fixed: at most ``share`` of the words relabelled to their suggestions
    where those are more likely right (``relabel``: ``relabelled``), or the most suspect
    ``share`` of the words left out of training (``mask``: the ``ignore`` column) or of
    the sentences dropped (``drop``). Validation and test stay as they are; ``clean_tags``
    is kept. Returns the new DatasetDict and what changed."""
    import datasets
    import pyarrow as pa

    from noisebench.data import loading as data

    if fix not in FIXES:
        raise InputError(f"--fix {fix}: choose one of {', '.join(FIXES)}")
    if fix == "relabel":
        check_strength(detection, min_f1)
    split = dataset["train"]
    table = split.data.table
    tokens = table.column("tokens").combine_chunks()
    clean = table.column("clean_tags").combine_chunks() if detection.clean is not None else None
    names = detection.labels
    rankings = detection.rankings()
    report: dict = {"fix": fix, "budget": share}
    if fix == "drop":
        dropped = np.sort(top_share(rankings["sentence"], share))
        kept = np.setdiff1d(np.arange(len(split)), dropped)
        train = split.select(kept).flatten_indices()
        report["dropped_sentences"] = len(dropped)
    else:
        offsets = pa.array(detection.offsets.astype(np.int32))
        if fix == "relabel":
            if detection.probs is None:
                raise InputError("--fix relabel: this detection has no probabilities to weigh")
            matrix = noise_matrix(detection.given, detection.probs)
            tags, counts = relabelled(detection, share, scheme, matrix)
            report |= counts | {"validation_f1": detection.validation_f1, "min_f1": min_f1}
            column = pa.ListArray.from_arrays(offsets, pa.array(tags, pa.int64()))
            train = data.make_split(tokens, column, names, clean)
        else:
            flagged = flagged_words(detection, share)
            column = pa.ListArray.from_arrays(offsets, pa.array(flagged))
            given = pa.ListArray.from_arrays(offsets, pa.array(detection.given, pa.int64()))
            train = data.make_split(tokens, given, names, clean, ignore=column)
            report["masked_words"] = int(flagged.sum())
    fixed = datasets.DatasetDict({**dataset, "train": train})
    report["noise_before"] = remaining_noise(split, scheme)
    report["noise_after"] = remaining_noise(train, scheme)
    return fixed, report


def check_strength(detection: Detection, min_f1: float) -> None:
    """A model below ``min_f1`` validation F1 suggests too many wrong labels to write
    them over the given ones (and the estimate of which suggestions are more likely
    right comes from the same model): refused, one line, with the way past it."""
    f1 = detection.validation_f1
    if f1 is not None and f1 < min_f1:
        raise InputError(
            f"--fix relabel: the detecting model's validation F1 is {f1:.3f}, below --min-f1"
            f" {min_f1:g}: too weak to relabel by (train longer or on more data, use --fix"
            " mask or drop, or give --min-f1 0 to relabel anyway)"
        )


def noise_matrix(given: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``P(given label i | true label j)``, (C, C), each column summing to one (a label
    never given: zeros), from confident learning's estimate of the joint distribution of
    given and true labels (cleanlab's calibrated confident joint: per-class thresholds,
    the average probability of each label on the words given it) over the words the
    model saw."""
    from cleanlab.count import estimate_joint

    seen = ~np.isnan(probs[:, 0])
    joint = estimate_joint(given[seen], probs[seen].astype(np.float64))  # (given, true)
    totals = joint.sum(axis=0, keepdims=True)
    return np.divide(joint, totals, out=np.zeros_like(joint), where=totals > 0)


def confident_suggestions(
    given: np.ndarray, suggested: np.ndarray, probs: np.ndarray, matrix: np.ndarray
) -> np.ndarray:
    """Bool per word: its suggestion ``s`` differs from its given label ``g`` and is the
    more likely of the two to be its true label. With the model's probabilities ``p`` as
    P(true | words) and ``matrix`` as P(given | true), P(true = c | words, given = g) is
    proportional to ``matrix[g, c] * p[c]``: the test is ``matrix[g, s] * p[s] >
    matrix[g, g] * p[g]``. A relabel that passes lowers the expected number of wrong words
    (by the difference of the two posteriors); any other raises it. With 1% of the labels
    wrong the suggestion needs some 100 times the given label's probability; a word the
    model never saw (NaN) is never relabelled.

    >>> matrix = np.array([[0.9, 0.3], [0.1, 0.7]])  # P(given | true): columns sum to 1
    >>> probs = np.array([[0.3, 0.7], [0.05, 0.95], [0.6, 0.4]])
    >>> confident_suggestions(np.array([0, 0, 1]), np.array([1, 1, 0]), probs, matrix).tolist()
    [False, True, False]
    """
    rows = np.arange(len(given))
    seen = ~np.isnan(probs[:, 0])
    p = np.where(seen[:, None], probs, 0.0)
    for_suggested = matrix[given, suggested] * p[rows, suggested]
    for_given = matrix[given, given] * p[rows, given]
    return seen & (suggested != given) & (for_suggested > for_given)


def disagreements(given: list[str], suggested: list[str]) -> list[tuple[int, int]]:
    """A sentence's stretches ``(start, end)`` where its given and suggested spans differ:
    each group of spans chained by overlap (given with suggested) that is not the same on
    both sides. A stretch never cuts a span of either side.

    >>> disagreements("B-PER I-PER O B-LOC".split(), "B-ORG O B-LOC I-LOC".split())
    [(0, 2), (2, 4)]
    >>> disagreements("B-PER I-PER O O".split(), "B-PER I-PER O B-LOC".split())
    [(3, 4)]
    """
    given_spans, suggested_spans = decode_spans(given), decode_spans(suggested)
    members = sorted(
        [(*span, 0) for span in given_spans] + [(*span, 1) for span in suggested_spans]
    )
    stretches: list[tuple[int, int]] = []
    group: list[tuple] = []
    for member in [*members, (len(given), len(given), "", 0)]:  # a sentinel closes the last
        if group and member[0] >= max(m[1] for m in group):
            sides = [{m[:3] for m in group if m[3] == side} for side in (0, 1)]
            if sides[0] != sides[1]:
                stretches.append((group[0][0], max(m[1] for m in group)))
            group = []
        group.append(member)
    return stretches


def write_stretch(
    current: list[str], suggested: list[str], start: int, end: int, scheme: str
) -> list[str] | None:
    """``current`` (a sentence's labels) with the suggested spans inside ``start:end``,
    written in the scheme, and its other labels kept; None where the sentence would not
    then decode to exactly its spans outside the stretch and the suggested ones inside
    (next to a label left invalid in the given data, say).

    >>> write_stretch("O B-PER I-PER O".split(), "O B-LOC I-PER O".split(), 1, 3, "IOB2")
    ['O', 'B-LOC', 'B-PER', 'O']
    """
    inside = [s for s in decode_spans(suggested) if start <= s[0] and s[1] <= end]
    outside = [s for s in decode_spans(current) if s[1] <= start or s[0] >= end]
    intended = sorted(outside + inside)
    encoded = encode_spans(intended, len(current), scheme)
    written = [*current[:start], *encoded[start:end], *current[end:]]
    return written if decode_spans(written) == intended else None


def relabelled(
    detection: Detection, share: float, scheme: str, matrix: np.ndarray
) -> tuple[np.ndarray, dict]:
    """The given labels with the suggestions written over the stretches where they are
    more likely right (``confident_suggestions`` with the noise ``matrix``, between
    labels the model has learned, ``learned_labels``: for every word the model
    contradicts there), the most suspect stretch first (its worst word's score), while at
    most ``share`` of the words change: the budget is a cap, not a quota. Spans are
    relabelled whole (``disagreements``, ``write_stretch``: valid in the scheme, the other
    words keep their labels); tags without spans word by word. Returns the labels and
    the counts."""
    given, suggested, probs = detection.given, detection.suggested, detection.probs
    seen = ~np.isnan(probs[:, 0])  # the words the model saw
    learned = learned_labels(given, suggested, seen, len(detection.labels))
    confident = confident_suggestions(given, suggested, probs, matrix)
    confident &= learned[given] & learned[suggested]
    cap = max(1, round(share * len(given)))
    stretches = _stretches(detection, scheme)  # (sentence, first word, one past the last)
    worst = np.array(
        [np.nanmax(detection.word_scores[a:b], initial=-np.inf) for _, a, b in stretches]
    )
    out, index = given.copy(), {name: i for i, name in enumerate(detection.labels)}
    changed = written_stretches = 0
    for k in ranked_order(np.where(np.isneginf(worst), np.nan, worst)):
        sentence, begin, end = stretches[k]
        contradicted = suggested[begin:end] != given[begin:end]
        if not confident[begin:end][contradicted].all():
            continue
        first, last = detection.offsets[sentence], detection.offsets[sentence + 1]
        names = [detection.labels[t] for t in out[first:last]]
        if scheme == NO_SCHEME:
            written = [*names[: begin - first], detection.labels[suggested[begin]]]
            written += names[end - first :]
        else:
            proposal = [detection.labels[t] for t in suggested[first:last]]
            written = write_stretch(names, proposal, begin - first, end - first, scheme)
        if written is None or any(label not in index for label in written):
            continue
        ids = np.array([index[label] for label in written])
        more = int((ids != out[first:last]).sum())
        if changed + more > cap:
            continue
        out[first:last] = ids
        changed, written_stretches = changed + more, written_stretches + 1
    return out, {
        "relabelled_words": int((out != given).sum()),
        "relabelled_stretches": written_stretches,
        "contradicted_words": int((seen & (suggested != given)).sum()),
        "confident_words": int(confident.sum()),
        "budget_words": cap,
        "unlearned_labels": [detection.labels[k] for k in np.flatnonzero(~learned)],
    }


def learned_labels(
    given: np.ndarray, suggested: np.ndarray, seen: np.ndarray, labels: int
) -> np.ndarray:
    """Bool per label (``labels`` of them): the model predicts it for at least half of
    the training words given it (of those it saw). Confident learning assumes every label
    is right more often than not, so a label the model contradicts on most of its own
    training words is one it has not learned, and its contradictions there say nothing
    about the labels: no word is relabelled from or to it. A label never given is not
    learned either.

    >>> given, suggested = np.array([0, 0, 1, 1, 1, 2]), np.array([0, 1, 1, 2, 2, 2])
    >>> learned_labels(given, suggested, np.ones(6, dtype=bool), 4).tolist()
    [True, False, True, False]
    """
    agreed = np.bincount(given[seen & (given == suggested)], minlength=labels)
    words = np.bincount(given[seen], minlength=labels)
    return (words > 0) & (2 * agreed >= words)


def _stretches(detection: Detection, scheme: str) -> list[tuple[int, int, int]]:
    """``(sentence, first word, one past the last)``, flat word positions, of every
    disagreement (``disagreements``; each word apart for tags without spans)."""
    names = np.array(detection.labels, dtype=object)
    found = []
    for sentence, (first, last) in enumerate(itertools.pairwise(detection.offsets)):
        given, suggested = detection.given[first:last], detection.suggested[first:last]
        if scheme == NO_SCHEME:
            found += [
                (sentence, first + w, first + w + 1) for w in np.flatnonzero(given != suggested)
            ]
        elif (given != suggested).any():
            pairs = disagreements(list(names[given]), list(names[suggested]))
            found += [(sentence, first + a, first + b) for a, b in pairs]
    return found


def remaining_noise(split, scheme: str) -> dict | None:
    """The noise report of a training split's labels against its clean ones, over the
    words that count for training (those its ``ignore`` column keeps)."""
    from noisebench.data import loading as data
    from noisebench.data.noise import label_noise

    report = label_noise(split, scheme)
    if report is None or data.IGNORE_COLUMN not in split.column_names:
        return report
    tags, _ = data.flat_tags(split)
    clean, _ = data.flat_tags(split, "clean_tags")
    counted = ~data.ignored(split)
    wrong = tags != clean
    return {
        **report,
        "token_error_rate_counted": float(wrong[counted].mean()) if counted.any() else 0.0,
        "ignored_words": int((~counted).sum()),
        "ignored_truly_wrong": int(wrong[~counted].sum()),
    }
