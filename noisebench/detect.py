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
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from noisebench.errors import InputError
from noisebench.rankings import (
    Ranking,
    entity_ranking,
    measure,
    sentence_ranking,
    word_ranking,
)
from noisebench.schemes import NO_SCHEME, decode_spans, encode_spans

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
        train_predictions.offsets, given, suggested, words, clean, cost=cost or {},
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
        cost or {},
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
    from noisebench import methods

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
    from noisebench import data, train

    train_split = prepared.dataset["train"]
    if data.IGNORE_COLUMN in train_split.column_names:
        raise InputError(
            f"{prepared.config.data}: its training words carry an '{data.IGNORE_COLUMN}' column"
            " (a --fix mask output); detect on the data before the fix"
        )
    clean = clean_labels(train_split)
    if config.detector == "cv":
        return _cross_validate(prepared, config, clean, progress, started)
    run_dir = prepared.run_dir
    trainings = 0
    if not _has_artefacts(run_dir, config.dynamics_pass):
        counts = np.diff(data.flat_tags(train_split)[1])
        recorder = DynamicsRecorder(counts, prepared.config.epochs)
        results = train.train(
            prepared,
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
    from noisebench import runs

    config.check()
    if config.detector == "cv":
        raise InputError("--run: the cv detector trains its own folds; drop --run")
    if not _has_artefacts(Path(run_dir), "train"):
        raise InputError(
            f"--run {run_dir}: no {DYNAMICS_FILE} and predictions-{SUGGESTION_SPLIT}.parquet"
            " (only runs made by noisebench detect record them)"
        )
    predictions = runs.read_predictions(Path(run_dir) / f"predictions-{SUGGESTION_SPLIT}.parquet")
    dynamics = load_dynamics(Path(run_dir) / DYNAMICS_FILE)
    if "eval_seconds" in dynamics:
        cost = cost | {"eval_pass_seconds": float(dynamics["eval_seconds"])}
    try:
        return from_predictions(
            config.detector, config.word_score, predictions, dynamics, clean, cost,
            config.dynamics_pass,
        )  # fmt: skip
    except InputError as error:  # name the run whose artefacts do not fit
        raise InputError(f"--run {run_dir}: {error}") from None


def _has_artefacts(run_dir: Path, dynamics_pass: str) -> bool:
    """A finished detect run with what ``dynamics_pass`` reads (a run without the
    inference passes is trained again, to the same training-pass record, when they are
    asked for)."""
    from noisebench import runs

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
    from noisebench import data

    if "clean_tags" not in split.column_names:
        return None
    return data.flat_tags(split, "clean_tags")[0]


def _cross_validate(prepared, config: DetectConfig, clean, progress, started) -> Detection:
    import time
    from dataclasses import replace

    import datasets

    from noisebench import data, runs, train

    split = prepared.dataset["train"]
    given, offsets = data.flat_tags(split)
    folds = cv_folds(len(split), config.folds, prepared.config.seed)
    probs = np.full((len(given), len(prepared.labels)), np.nan, dtype=np.float64)
    trainings = 0
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
        for row, sentence in enumerate(held_out):
            begin, end = made.offsets[row], made.offsets[row + 1]
            probs[offsets[sentence] : offsets[sentence + 1]] = made.probs[begin:end]
    tokens = split.data.table.column("tokens").to_pylist()
    cost = {"trainings": trainings, "seconds": time.perf_counter() - started}
    return from_out_of_sample(
        config.word_score, prepared.labels, tokens, offsets, given, probs, clean, cost
    )


# ------------------------------------------------------------------------------ fixing

FIXES = ("relabel", "mask", "drop")


def apply_fix(dataset, detection: Detection, fix: str, share: float, scheme: str):
    """The data with the most suspect ``share`` fixed: words relabelled to their
    suggestions (``relabel``, written back valid in the scheme) or left out of training
    (``mask``: the ``ignore`` column), or the most suspect ``share`` of sentences dropped
    (``drop``). Validation and test stay as they are; ``clean_tags`` is kept. Returns the
    new DatasetDict and what changed."""
    import datasets
    import pyarrow as pa

    from noisebench import data

    if fix not in FIXES:
        raise InputError(f"--fix {fix}: choose one of {', '.join(FIXES)}")
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
        flagged = flagged_words(detection, share)
        offsets = pa.array(detection.offsets.astype(np.int32))
        if fix == "relabel":
            tags = reviewed_labels(detection, flagged, scheme)
            report["relabelled_words"] = int((tags != detection.given).sum())
            column = pa.ListArray.from_arrays(offsets, pa.array(tags, pa.int64()))
            train = data.make_split(tokens, column, names, clean)
        else:
            column = pa.ListArray.from_arrays(offsets, pa.array(flagged))
            given = pa.ListArray.from_arrays(offsets, pa.array(detection.given, pa.int64()))
            train = data.make_split(tokens, given, names, clean, ignore=column)
            report["masked_words"] = int(flagged.sum())
    fixed = datasets.DatasetDict({**dataset, "train": train})
    report["noise_before"] = remaining_noise(split, scheme)
    report["noise_after"] = remaining_noise(train, scheme)
    return fixed, report


def remaining_noise(split, scheme: str) -> dict | None:
    """The noise report of a training split's labels against its clean ones, over the
    words that count for training (those its ``ignore`` column keeps)."""
    from noisebench import data
    from noisebench.noise import label_noise

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
