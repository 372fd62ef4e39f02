"""Rankings of one detection's units (words, entity issues, sentences) and their measures
against the truth: average precision, AUROC, precision and recall at review budgets.
``noisebench detect`` (score.py) builds them from a detector's word scores:

    noisebench detect noisebench:crowd -o review/

The entity level aligns the given and the suggested spans both ways: every given span the
suggestion does not repeat exactly is ``spurious``, ``retyped`` or ``boundary``, every
suggested span over no given one is ``missed``; each issue is scored by its worst word.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from noisebench.data.schemes import decode_spans

ENTITY_TYPES = ("missed", "spurious", "retyped", "boundary")
BUDGETS = (0.01, 0.05, 0.10)  # review budgets: shares of each level's units


# -------------------------------------------------------------------------- levels


@dataclass
class Ranking:
    """One level's units with their scores; ``truth`` where the data has clean labels."""

    level: str
    sentence: np.ndarray  # (U,) sentence of each unit
    start: np.ndarray  # (U,) first word (in the sentence)
    end: np.ndarray  # (U,) one past the last word
    score: np.ndarray  # (U,) higher = more likely wrong; NaN ranks last
    truth: np.ndarray | None = None  # (U,) the unit's given labels are wrong somewhere
    kind: list[str] = field(default_factory=list)  # entity issues: missed, spurious, ...
    positives: int | None = None  # truly wrong units in all (listed or not)

    def order(self) -> np.ndarray:
        return ranked_order(self.score)


def ranked_order(score: np.ndarray) -> np.ndarray:
    """Units from most to least suspect; ties by position (stable), NaN last."""
    key = np.where(np.isnan(score), -np.inf, score)
    return np.argsort(-key, kind="stable")


def word_ranking(scores: np.ndarray, offsets: np.ndarray, wrong: np.ndarray | None) -> Ranking:
    sentence = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    start = np.arange(len(scores)) - offsets[sentence]
    positives = None if wrong is None else int(wrong.sum())
    return Ranking("word", sentence, start, start + 1, scores, wrong, positives=positives)


def sentence_ranking(
    word_scores: np.ndarray,
    offsets: np.ndarray,
    wrong: np.ndarray | None,
    scores: np.ndarray | None = None,
) -> Ranking:
    """Each sentence by its worst word (``scores`` replaces that: cleanlab's own)."""
    sentences = len(offsets) - 1
    lengths = np.diff(offsets)
    nonempty = lengths > 0
    if scores is None:
        scores = np.full(sentences, np.nan)
        filled = np.where(np.isnan(word_scores), -np.inf, word_scores)
        scores[nonempty] = np.maximum.reduceat(filled, offsets[:-1][nonempty])
        scores[np.isneginf(scores)] = np.nan
    truth = None
    if wrong is not None:
        truth = np.zeros(sentences, dtype=bool)
        truth[nonempty] = np.logical_or.reduceat(wrong, offsets[:-1][nonempty])
    positives = None if truth is None else int(truth.sum())
    return Ranking(
        "sentence", np.arange(sentences), np.zeros(sentences, int), lengths, scores, truth,
        positives=positives,
    )  # fmt: skip


def entity_ranking(
    word_scores: np.ndarray,
    given: np.ndarray,
    suggested: np.ndarray,
    clean: np.ndarray | None,
    offsets: np.ndarray,
    names: list[str],
) -> Ranking:
    """The disagreements between the given and the suggested spans, both ways, each
    typed and scored by its worst word (module docstring)."""
    rows: list[tuple[int, int, int, float, str, bool]] = []
    positives = 0
    for row, (begin, stop) in enumerate(itertools.pairwise(offsets)):
        given_spans = decode_spans([names[t] for t in given[begin:stop]])
        suggested_spans = decode_spans([names[t] for t in suggested[begin:stop]])
        wrong = None if clean is None else given[begin:stop] != clean[begin:stop]
        if clean is not None:
            clean_spans = decode_spans([names[t] for t in clean[begin:stop]])
            positives += len(set(given_spans) - set(clean_spans))
            positives += sum(not any(_overlap(c, g) for g in given_spans) for c in clean_spans)
        for start, end, kind in _disagreements(given_spans, suggested_spans):
            words = word_scores[begin + start : begin + end]
            score = float(np.nanmax(words)) if np.isfinite(words).any() else float("nan")
            true = bool(wrong[start:end].any()) if wrong is not None else False
            rows.append((row, start, end, score, kind, true))
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        truth = np.zeros(0, bool) if clean is not None else None
        return Ranking(
            "entity", empty, empty, empty, np.zeros(0), truth,
            positives=positives if clean is not None else None,
        )  # fmt: skip
    sentence, start, end, score, kind, truth = zip(*rows, strict=True)
    return Ranking(
        "entity",
        np.array(sentence),
        np.array(start),
        np.array(end),
        np.array(score, dtype=np.float64),
        np.array(truth) if clean is not None else None,
        list(kind),
        positives if clean is not None else None,
    )


def _overlap(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _disagreements(given_spans, suggested_spans) -> list[tuple[int, int, str]]:
    """``(start, end, type)`` of every given span the suggestion does not repeat exactly
    (spurious, retyped or boundary), and every suggested span over no given one (missed).

    >>> _disagreements([(0, 2, "PER"), (3, 4, "LOC"), (5, 6, "ORG")],
    ...                [(0, 2, "PER"), (3, 4, "ORG"), (6, 8, "ORG"), (9, 10, "MISC")])
    [(3, 4, 'retyped'), (5, 6, 'spurious'), (6, 8, 'missed'), (9, 10, 'missed')]
    """
    suggested = set(suggested_spans)
    found = []
    for span in given_spans:
        if span in suggested:
            continue
        touching = [s for s in suggested_spans if _overlap(s, span)]
        if not touching:
            kind = "spurious"
        elif any(s[:2] == span[:2] for s in touching):
            kind = "retyped"
        else:
            kind = "boundary"
        found.append((span[0], span[1], kind))
    for span in suggested_spans:
        if not any(_overlap(span, g) for g in given_spans):
            found.append((span[0], span[1], "missed"))
    return sorted(found)


# ------------------------------------------------------------------------ measuring


def _ranked(score: np.ndarray) -> np.ndarray:
    """Scores with NaN (never scored) below every finite one."""
    score = np.asarray(score, dtype=np.float64)
    finite = np.isfinite(score)
    floor = score[finite].min() - 1.0 if finite.any() else 0.0
    return np.where(finite, score, floor)


def average_precision(score: np.ndarray, truth: np.ndarray, positives: int | None = None) -> float:
    """AP of a ranking (scikit-learn's step-wise definition: ties share a threshold),
    over ``positives`` truly wrong units in all (default: those ranked), so a truly wrong
    unit the detector never lists counts as missed.

    >>> average_precision(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 0, 1, 0]))
    0.8333333333333333
    >>> average_precision(np.array([0.9, 0.8]), np.array([1, 0]), positives=2)
    0.5
    """
    truth = np.asarray(truth, dtype=bool)
    listed = int(truth.sum())
    total = listed if positives is None else positives
    if total == 0 or listed == 0:
        return 0.0
    if listed == len(truth):  # every listed unit is truly wrong
        return listed / total
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(truth, _ranked(score))) * listed / total


def auroc(score: np.ndarray, truth: np.ndarray) -> float | None:
    """Area under the ROC curve (None when one class is absent)."""
    truth = np.asarray(truth, dtype=bool)
    if truth.all() or not truth.any():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, _ranked(score)))


def measure(ranking: Ranking, units: int) -> dict:
    """AP, AUROC, and precision / recall at the review budgets (shares of ``units``: the
    level's words, sentences or given entities) and at k = the truly wrong count."""
    truth, positives = ranking.truth, ranking.positives
    order = ranking.order()
    report = {
        "units": units,
        "listed": len(ranking.score),
        "truly_wrong": positives,
        "ap": average_precision(ranking.score, truth, positives),
        "auroc": auroc(ranking.score, truth) if ranking.level != "entity" else None,
        "budgets": {},
    }
    budgets = [(f"{share:.0%}", max(1, round(share * units))) for share in BUDGETS]
    for name, count in [*budgets, ("k", max(1, positives))]:
        top = order[:count]
        hits = int(truth[top].sum())
        report["budgets"][name] = {
            "reviewed": len(top),
            "precision": hits / len(top) if len(top) else 0.0,
            "recall": hits / positives if positives else 0.0,
        }
    if ranking.kind:
        kinds = np.array(ranking.kind)
        report["types"] = {
            kind: {
                "listed": int((kinds == kind).sum()),
                "truly_wrong_share": float(truth[kinds == kind].mean())
                if (kinds == kind).any()
                else None,
            }
            for kind in ENTITY_TYPES
        }
    return report
