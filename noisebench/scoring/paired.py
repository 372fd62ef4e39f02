"""Paired differences between two methods, with a bootstrap over test sentences and seeds.

Both methods are scored on the same resampled test sentences, so the sentences that are
hard for both cancel out of the difference. Each run becomes per-sentence sufficient
statistics once; a replicate only reweights them:

    F1  = 2 TP / (predicted + gold)        (micro, over entities; words without a scheme)
    ECE = sum_b |correct_b - confidence_b| / words      (= sum_b n_b/N |acc_b - conf_b|)
    entity ECE: the same over predicted entities (``metrics.entity_calibration``)

where the entities are those of ``metrics.entity_spans``, the ones F1 counts in
``metrics.span_scores``, whatever the scheme.

so a replicate's F1 and ECE are exactly what ``metrics.score_split`` gives on that
resample. With several seeds, a replicate also draws the seeds with replacement, paired
(a drawn seed brings both methods' runs of that seed), and takes the mean difference
over the drawn seeds: the interval then holds the seed spread as well as the test-set
sampling. The interval is the 2.5th to 97.5th percentile of the replicates.

>>> import numpy as np
>>> a = SentenceStats(np.array([[1, 1, 1], [1, 1, 1]]), np.zeros((2, 1, 3)))
>>> b = SentenceStats(np.array([[1, 1, 1], [0, 1, 1]]), np.zeros((2, 1, 3)))
>>> difference = paired_difference([a], [b], "f1", replicates=200, seed=0)
>>> round(difference.estimate, 4), difference.low >= 0.0, difference.high <= 1.0
(0.5, True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from noisebench.data.schemes import NO_SCHEME
from noisebench.scoring.metrics import bin_index, entity_spans, predicted_entities

REPLICATES = 1000
METRICS = ("f1", "ece", "entity_ece")


@dataclass
class SentenceStats:
    """One run's test split, per sentence."""

    counts: np.ndarray  # (S, 3): true positives, predicted, gold (entities or words)
    bins: np.ndarray  # (S, B, 3): per calibration bin, words, correct words, confidence sum
    # (S, B, 3): the same over predicted entities; None where the tags have no spans
    entity_bins: np.ndarray | None = None
    # a designed review's sentences: each one's weight and stratum (None: all weigh 1)
    weights: np.ndarray | None = None
    strata: np.ndarray | None = None

    def has(self, metric: str) -> bool:
        return metric != "entity_ece" or self.entity_bins is not None

    def value(self, metric: str, weights: np.ndarray | None = None) -> np.ndarray:
        """``metric`` of the whole split (``weights`` None: each sentence its design
        weight, 1 without a design) or of each row of ``weights`` (R, S): how often each
        sentence was drawn, times its design weight."""
        if weights is None and self.weights is not None:
            weights = self.weights[None, :]
            return self.value(metric, weights)[0]
        if metric == "f1":
            totals = self.counts.sum(0) if weights is None else weights @ self.counts
            return _f1(totals)
        if metric in ("ece", "entity_ece") and self.has(metric):
            table = self.bins if metric == "ece" else self.entity_bins
            flat = table.reshape(len(table), -1)
            totals = flat.sum(0) if weights is None else weights @ flat
            return _ece(totals.reshape(*totals.shape[:-1], -1, 3))
        raise ValueError(f"no paired bootstrap for '{metric}' here (metrics: {', '.join(METRICS)})")


def _f1(totals: np.ndarray) -> np.ndarray:
    true_positive, predicted, gold = totals[..., 0], totals[..., 1], totals[..., 2]
    denominator = predicted + gold
    return np.where(denominator > 0, 2 * true_positive / np.maximum(denominator, 1), 0.0)


def _ece(totals: np.ndarray) -> np.ndarray:
    words = totals[..., 0].sum(-1)
    gaps = np.abs(totals[..., 1] - totals[..., 2]).sum(-1)
    return np.where(words > 0, gaps / np.maximum(words, 1), 0.0)


def sentence_stats(
    predictions, scheme: str, strict: bool = False, bins: int = 10, probs=None
) -> SentenceStats:
    """The statistics of one run's ``runs.Predictions`` (``probs`` replaces its
    probabilities, e.g. temperature-scaled ones; the argmax and so F1 must not change)."""
    offsets = predictions.offsets
    sentence_of_word = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    gold_sentences = predictions.sentences(predictions.gold)
    pred_sentences = predictions.sentences(predictions.predicted)
    counts = np.zeros((len(offsets) - 1, 3), dtype=np.float64)
    if scheme == NO_SCHEME:
        correct = predictions.gold == predictions.predicted
        counts[:, 0] = np.bincount(sentence_of_word, correct, minlength=len(counts))
        counts[:, 1] = counts[:, 2] = np.diff(offsets)
    else:
        gold_entities = entity_spans(gold_sentences, scheme, strict)
        pred_entities = entity_spans(pred_sentences, scheme, strict)
        for row, (gold, pred) in enumerate(zip(gold_entities, pred_entities, strict=True)):
            counts[row] = (len(gold & pred), len(pred), len(gold))
    scored = predictions.scored
    all_probs = predictions.probs if probs is None else probs
    probs = np.asarray(all_probs[scored], dtype=np.float64)
    confidence = probs.max(axis=1)
    hit = (probs.argmax(axis=1) == predictions.gold[scored]).astype(np.float64)
    table = _binned(sentence_of_word[scored], confidence, hit, len(counts), bins)
    entity_table = None
    if scheme != NO_SCHEME:
        sentence, entity_confidence, right = predicted_entities(
            predictions, scheme, strict, probs=all_probs
        )
        entity_table = _binned(sentence, entity_confidence, right, len(counts), bins)
    return SentenceStats(counts, table, entity_table, predictions.weights, predictions.strata)


def _binned(sentence: np.ndarray, confidence: np.ndarray, hit: np.ndarray, sentences: int, bins):
    """(S, B, 3): per sentence and calibration bin (those of metrics.calibration_errors),
    the count, the correct ones and their confidence sum."""
    cell = sentence * bins + bin_index(confidence, bins)
    size = sentences * bins
    table = np.stack(
        [
            np.bincount(cell, minlength=size),
            np.bincount(cell, hit.astype(np.float64), minlength=size),
            np.bincount(cell, confidence, minlength=size),
        ],
        axis=-1,
    )
    return table.reshape(sentences, bins, 3).astype(np.float64)


@dataclass
class Difference:
    """``a - b`` of one metric: the estimate (mean over seeds on the full test set) and a
    95% paired bootstrap interval."""

    metric: str
    estimate: float
    low: float
    high: float
    seeds: int
    sentences: int
    replicates: int
    # with ``parts``: the 95% intervals of the sentences' part alone (seeds as run) and
    # of the seeds' part alone (every sentence as reviewed): what more of each would shrink
    parts: dict | None = None

    @property
    def significant(self) -> bool:
        """The interval excludes 0."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict:
        return {
            "metric": self.metric,
            "difference": self.estimate,
            "ci95": [self.low, self.high],
            "significant": self.significant,
            "seeds": self.seeds,
            "sentences": self.sentences,
            "replicates": self.replicates,
        } | ({"parts": self.parts} if self.parts is not None else {})


def paired_difference(
    a: list[SentenceStats],
    b: list[SentenceStats],
    metric: str,
    replicates: int = REPLICATES,
    seed: int = 0,
    parts: bool = False,
) -> Difference:
    """``metric(a) - metric(b)``; ``a[i]`` and ``b[i]`` are the runs of the same seed,
    scored on the same test sentences (a designed review's: resampled within its strata,
    ``stratified_replicates``). ``parts``: the sentences' and the seeds' part of the
    interval apart too (``Difference.parts``)."""
    if not a or len(a) != len(b):
        raise ValueError(f"paired runs needed: {len(a)} against {len(b)}")
    sentences = len(a[0].counts)
    if any(len(stats.counts) != sentences for stats in (*a, *b)):
        raise ValueError("paired runs must be scored on the same test sentences")
    rng = np.random.default_rng([seed, 7])
    if not same_design([*a, *b]):
        raise ValueError("paired runs must be scored with the same design weights")
    if a[0].weights is not None:  # a designed review: resampled within its strata
        weights = stratified_replicates(a[0].weights, a[0].strata, replicates, rng)
    else:
        weights = times_drawn(rng.integers(0, sentences, size=(replicates, sentences)), sentences)
    per_seed = np.stack(
        [x.value(metric, weights) - y.value(metric, weights) for x, y in zip(a, b, strict=True)],
        axis=1,
    )  # (R, seeds)
    sentences_only = per_seed.mean(axis=1)
    whole = np.array([x.value(metric) - y.value(metric) for x, y in zip(a, b, strict=True)])
    seeds_only = np.full(replicates, whole.mean())
    if len(a) > 1:
        drawn = rng.integers(0, len(a), size=(replicates, len(a)))
        per_seed = np.take_along_axis(per_seed, drawn, axis=1)
        seeds_only = whole[drawn].mean(axis=1)
    replicated = per_seed.mean(axis=1)
    estimate = float(whole.mean())
    low, high = np.percentile(replicated, [2.5, 97.5])
    split = None
    if parts:
        split = {
            name: [float(v) for v in np.percentile(values, [2.5, 97.5])]
            for name, values in (("sentences", sentences_only), ("seeds", seeds_only))
        }
    return Difference(
        metric, estimate, float(low), float(high), len(a), sentences, replicates, split
    )


def times_drawn(drawn: np.ndarray, units: int) -> np.ndarray:
    """(R, ``units``) float: how often each unit appears in each row of ``drawn`` (R, k),
    indices drawn with replacement: a bootstrap replicate's weights.

    >>> times_drawn(np.array([[0, 0, 2], [1, 2, 2]]), 3).tolist()
    [[2.0, 0.0, 1.0], [0.0, 1.0, 2.0]]
    """
    rows = np.arange(len(drawn))[:, None] * units
    counts = np.bincount((rows + drawn).ravel(), minlength=len(drawn) * units)
    return counts.reshape(len(drawn), units).astype(np.float64)


def same_design(stats: list[SentenceStats]) -> bool:
    """Whether every run's sentences weigh the same (the same design, or none)."""
    designs = {
        None if x.weights is None else (x.weights.tobytes(), x.strata.tobytes()) for x in stats
    }
    return len(designs) == 1


def stratified_replicates(
    weights: np.ndarray, strata: np.ndarray, replicates: int, rng: np.random.Generator
) -> np.ndarray:
    """(R, S) bootstrap weights of a stratified sample: the rescaling bootstrap (Rao and
    Wu 1988; Rao, Wu and Yue 1992), as survey packages replicate a stratified design: in
    each stratum of n_h sentences out of N_h = Σ w, n_h − 1 drawn with replacement, and
    each sentence's weight w · (1 − λ + λ · n_h / (n_h − 1) · times drawn) with λ = √(1 −
    n_h / N_h), the finite-population correction (so a stratum reviewed in full keeps its
    weights: no spread from it). A stratum of one reviewed sentence is first joined to
    another (``design.collapsed``).

    >>> rng = np.random.default_rng(0)
    >>> made = stratified_replicates(np.array([2.0, 2.0, 1.0]), np.array([0, 0, 1]), 4, rng)
    >>> made[:, 2].tolist()  # reviewed in full: 1 of N = 1
    [1.0, 1.0, 1.0, 1.0]
    >>> made[:, :2].sum(axis=1).tolist()  # each replicate keeps the stratum's total
    [4.0, 4.0, 4.0, 4.0]
    >>> sorted(set(np.round(made[:, :2].ravel(), 4).tolist()))  # λ = √(1/2): 2(1 − λ), 2(1 + λ)
    [0.5858, 3.4142]
    """
    from noisebench.scoring.design import collapsed

    weights = np.asarray(weights, dtype=np.float64)
    strata = collapsed(weights, strata)
    made = np.tile(weights, (replicates, 1))
    for h in np.unique(strata):
        members = np.flatnonzero(strata == h)
        n, size = len(members), float(weights[members].sum())
        if n < 2 or n >= round(size):
            continue
        times = times_drawn(rng.integers(0, n, size=(replicates, n - 1)), n)
        scale = math.sqrt(max(1 - n / size, 0.0))
        made[:, members] = weights[members] * (1 - scale + scale * n / (n - 1) * times)
    return made


def decimals(half_width: float, most: int) -> int:
    """Digits after the point that show an interval of ``half_width`` with two significant
    digits, at most ``most`` (no 0.01-point digits on a +-1.5-point difference).

    >>> decimals(1.5, 2), decimals(0.15, 2), decimals(15.0, 2), decimals(0.004, 4)
    (1, 2, 0, 4)
    """
    if not half_width > 0 or not math.isfinite(half_width):
        return most
    return max(0, min(most, 1 - math.floor(math.log10(half_width))))


def format_difference(difference: Difference, unit: float, most: int) -> str:
    """``+1.2 [-0.3, +2.6]`` in display units (``unit`` 100 for points of F1)."""
    low, high = difference.low * unit, difference.high * unit
    places = decimals((high - low) / 2, most)
    return f"{difference.estimate * unit:+.{places}f} [{low:+.{places}f}, {high:+.{places}f}]"
