"""Find the wrong labels: score every training word's label, rank words, entities and
sentences, and measure the ranking against the known corruption.

    noisebench detect noisebench:crowd -o review/            # training dynamics, one run
    noisebench detect noisebench:crowd --detector cv --folds 5 -o review-cv/

Detectors (higher score = more likely wrong; ``record.py`` trains what they read):

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

What to do with the ranking: ``fix.py`` (``--fix``) and ``review.py`` (``-o DIR``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from noisebench.data.schemes import decode_spans
from noisebench.detection.config import DETECTORS, WORD_SCORES, DetectConfig, score_choices
from noisebench.detection.rankings import (
    Ranking,
    entity_ranking,
    measure,
    sentence_ranking,
    word_ranking,
)
from noisebench.errors import InputError

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
    raise InputError(f"--score {score}: the dynamics detector scores {score_choices('dynamics')}")


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

    def on_sentences(self, rows: np.ndarray, clean: np.ndarray) -> Detection:
        """The detection restricted to sentences ``rows``, measured against ``clean`` (the
        split's flat labels, read on those sentences only): a review's truth."""
        words = np.concatenate(
            [np.arange(self.offsets[r], self.offsets[r + 1]) for r in rows]
        ).astype(np.int64)
        lengths = np.diff(self.offsets)[rows]

        def cut(values):
            return None if values is None else values[words]

        return replace(
            self,
            tokens=[self.tokens[r] for r in rows],
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            given=self.given[words],
            suggested=self.suggested[words],
            word_scores=self.word_scores[words],
            clean=clean[words],
            sentence_scores=None if self.sentence_scores is None else self.sentence_scores[rows],
            flags=cut(self.flags),
            probs=cut(self.probs),
        )

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
        raise InputError(f"--score {score}: the cv detector scores {score_choices('cv')}")
    scored = ~np.isnan(probs[:, 0])
    filled = np.where(scored[:, None], probs, 1.0 / probs.shape[1])
    words, sentences, flags = cleanlab_scores(filled, given, offsets, score)
    words[~scored] = np.nan
    suggested = np.where(scored, filled.argmax(axis=1), given)
    return Detection(
        "cv", score, labels, tokens, offsets, given, suggested, words, clean, sentences, flags,
        cost or {}, probs=probs, validation_f1=validation_f1,
    )  # fmt: skip


def flagged_words(detection: Detection, share: float) -> np.ndarray:
    """Bool per word: the most suspect ``share`` of the words (what ``--fix`` and the
    review exports act on)."""
    flagged = np.zeros(len(detection.given), dtype=bool)
    flagged[top_share(detection.rankings()["word"], share)] = True
    return flagged


def top_share(ranking: Ranking, share: float) -> np.ndarray:
    """The most suspect ``share`` of a level's listed units (at least one)."""
    count = max(1, round(share * len(ranking.score))) if len(ranking.score) else 0
    return ranking.order()[:count]


def detection_document(found: Detection, config: DetectConfig, prepared, run: Path | None) -> dict:
    """What ``detection.json`` records: the data, the detector and its settings, the
    training, the run read (``--run``, else the one trained), the cost and each level's
    scores against the truth (``levels``, None without clean labels)."""
    return {
        "data": prepared.config.data,
        "dataset": prepared.dataset_name,
        "detector": config.detector,
        "score": config.word_score,
        "folds": config.folds if config.detector == "cv" else None,
        "dynamics_pass": config.dynamics_pass if config.detector == "dynamics" else None,
        "budget": config.budget,
        "training": prepared.config.identity(),
        "run": str(run if run is not None else found.run_dir or prepared.run_dir),
        "cost": found.cost,
        "levels": found.report(),
    }
