"""Scores of token-classification predictions, as pure functions on NumPy arrays.

Entity precision / recall / F1 are micro averages over entities, counted from one set of
entities per sentence (``entity_spans``) that entity calibration and the paired
statistics share: ``schemes.decode_spans``, conlleval-compatible (seqeval's default mode)
for IOB1, IOB2, IOBES and BILOU alike, or with ``strict=True`` seqeval's strict mode for
the run's scheme, where an entity counts only if its tags are well formed. Tag sets
without a span scheme (POS tags, chunk-free labels) are scored by word-level micro F1,
which for single-label words equals accuracy.

Calibration is measured on words, with the top-label confidence of each scored word:
equal-width bins over [0, 1], bin ``b`` = [b/B, (b+1)/B) and the last bin closed, and

    ECE = sum_b (n_b / N) |acc_b - conf_b|        MCE = max over non-empty b |acc_b - conf_b|

Brier score and NLL use the full probability vector: ``mean_w sum_c (p_wc - [c = y_w])^2``
and ``mean_w -log p_w,y_w``. All scores are fractions in [0, 1] (F1 too, not percent).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from noisebench.data.schemes import NO_SCHEME, Span, decode_spans

NLL_FLOOR = 1e-12  # a probability of exactly 0 for the gold label costs -log(1e-12)
# the direction of every score a split records: what "better" means in tables, plots, gates
HIGHER_IS_BETTER = {
    "f1": True,
    "precision": True,
    "recall": True,
    "ece": False,
    "mce": False,
    "brier": False,
    "nll": False,
    "entity_ece": False,  # predicted entities' joint confidence against exact match
    "entity_mce": False,
    "entity_word_ece": False,  # words whose prediction or gold label is an entity
    "ece_equal_mass": False,  # equal-count bins (adaptive ECE)
    "entity_ece_equal_mass": False,
}
# the same scores on a split's reviewed sentences alone, against their reviewed labels
# (``results.json``: ``splits[split]["reviewed"]``; noisebench review merge)
REVIEWED = "reviewed_"
HIGHER_IS_BETTER |= {REVIEWED + name: higher for name, higher in HIGHER_IS_BETTER.items()}
PERCENT_METRICS = {"f1", "precision", "recall"}
PERCENT_METRICS |= {REVIEWED + name for name in PERCENT_METRICS}
# shown beside the given labels' scores wherever a split has reviewed sentences
REVIEWED_SHOWN = (REVIEWED + "f1", REVIEWED + "entity_ece")


def metric_title(metric: str) -> str:
    """A metric as tables name it.

    >>> metric_title("f1"), metric_title("reviewed_entity_ece")
    ('f1', 'entity_ece on the reviewed sentences')
    """
    if metric.startswith(REVIEWED):
        return f"{metric[len(REVIEWED) :]} on the reviewed sentences"
    return metric


def metric_value(split_scores: dict, metric: str) -> float | None:
    """A metric of a ``results.json`` split entry; ``reviewed_*`` from its reviewed part.

    >>> metric_value({"f1": 0.5, "reviewed": {"f1": 0.75}}, "reviewed_f1")
    0.75
    >>> metric_value({"f1": 0.5}, "reviewed_f1") is None
    True
    """
    if metric.startswith(REVIEWED):
        return (split_scores.get("reviewed") or {}).get(metric[len(REVIEWED) :])
    return split_scores.get(metric)


def scale(metric: str) -> float:
    """Display and gate unit: percentage points for F1/P/R, fractions otherwise."""
    return 100.0 if metric in PERCENT_METRICS else 1.0


def span_scores(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str,
    strict: bool = False, weights: np.ndarray | None = None,
) -> dict:  # fmt: skip
    """Micro precision, recall and F1 over entities (or words, without a span scheme),
    with per-type scores and the gold entity count; ``weights`` (one per sentence, a
    designed review's) weigh each sentence's entities: the counts are the split's
    estimated totals, and F1 their ratio.

    Entities are those of ``entity_spans`` for every scheme, so ``U-``/``L-`` tags count
    like ``S-``/``E-``; per type and micro, with TP the entities in both:

        precision = TP / predicted        recall = TP / gold        F1 = 2 P R / (P + R)

    (0 where a denominator is 0, as seqeval's ``zero_division=0``).

    >>> scores = span_scores([["B-PER", "I-PER", "O", "B-LOC"]],
    ...                      [["B-PER", "I-PER", "O", "B-ORG"]], "IOB2")
    >>> scores["precision"], scores["recall"], scores["f1"], scores["n_entities"]
    (0.5, 0.5, 0.5, 2)
    >>> gold = [["U-PER", "U-PER", "B-LOC", "L-LOC", "U-LOC"]]
    >>> pred = [["U-PER", "O", "B-LOC", "L-LOC", "O"]]
    >>> scores = span_scores(gold, pred, "BILOU")  # 4 gold entities, 2 predicted, both right
    >>> round(scores["f1"], 4), scores["n_entities"]
    (0.6667, 4)
    """
    if scheme == NO_SCHEME:
        return word_scores(gold, pred, weights)
    gold_spans, pred_spans = entity_spans(gold, scheme, strict), entity_spans(pred, scheme, strict)
    counts = entity_counts(gold_spans, pred_spans, weights)
    micro = _precision_recall_f1(*np.sum([[0, 0, 0], *counts.values()], axis=0).tolist())
    per_type = {type_: _precision_recall_f1(*row) for type_, row in counts.items()}
    support = micro["support"]
    if weights is not None:  # the counts stay the sentences' own, the scores the split's
        raw = entity_counts(gold_spans, pred_spans)
        for type_, row in raw.items():
            per_type[type_]["support"] = row[2]
        support = sum(row[2] for row in raw.values())
    return {
        "precision": micro["precision"],
        "recall": micro["recall"],
        "f1": micro["f1"],
        "per_type": per_type,
        "n_entities": support,
    }


def entity_spans(
    sentences: Sequence[Sequence[str]], scheme: str, strict: bool = False
) -> list[set[Span]]:
    """Per sentence, the entities that every entity score counts (F1, its paired
    statistics, entity calibration): ``schemes.decode_spans`` (conlleval-compatible, for
    every scheme), or with ``strict`` seqeval's strict mode for ``scheme``, where only a
    well-formed entity counts.

    >>> sorted(entity_spans([["U-PER", "B-LOC", "L-LOC"]], "BILOU")[0])
    [(0, 1, 'PER'), (1, 3, 'LOC')]
    >>> entity_spans([["O", "I-PER", "B-LOC"]], "IOB2", strict=True)
    [{(2, 3, 'LOC')}]
    """
    if not strict:
        return [set(decode_spans(sentence)) for sentence in sentences]
    from seqeval.scheme import Entities

    found = Entities([list(s) for s in sentences], _seqeval_scheme(scheme)).entities
    return [{(e.start, e.end, e.tag) for e in sentence} for sentence in found]


def entity_counts(
    gold: Sequence[set[Span]], pred: Sequence[set[Span]], weights: np.ndarray | None = None
) -> dict[str, list]:
    """``{type: [true positives, predicted, gold]}`` over paired per-sentence entity sets,
    for every type that gold or the prediction has, in sorted order; each sentence's
    entities count ``weights[s]`` (1 without)."""
    counts: dict[str, list] = {}
    for row, (gold_spans, pred_spans) in enumerate(zip(gold, pred, strict=True)):
        weight = 1 if weights is None else float(weights[row])
        for column, spans in ((0, gold_spans & pred_spans), (1, pred_spans), (2, gold_spans)):
            for _, _, type_ in spans:
                counts.setdefault(type_, [0, 0, 0])[column] += weight
    return dict(sorted(counts.items()))


def _seqeval_scheme(scheme: str):
    from seqeval import scheme as schemes

    return {
        "IOB1": schemes.IOB1,
        "IOB2": schemes.IOB2,
        "IOBES": schemes.IOBES,
        "BILOU": schemes.BILOU,
    }[scheme]


def _precision_recall_f1(true_positive: float, predicted: float, gold: float) -> dict:
    precision = true_positive / predicted if predicted else 0.0
    recall = true_positive / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": gold}


def word_scores(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], weights: np.ndarray | None = None
) -> dict:
    """Word-level micro F1 (= accuracy) with per-label precision / recall / F1; each
    word weighs its sentence's ``weights`` (1 without)."""
    gold_flat = np.array([t for s in gold for t in s], dtype=object)
    pred_flat = np.array([t for s in pred for t in s], dtype=object)
    weight = np.ones(len(gold_flat)) if weights is None else np.repeat(
        np.asarray(weights, np.float64), [len(s) for s in gold]
    )  # fmt: skip
    correct = gold_flat == pred_flat
    accuracy = float(weight[correct].sum() / weight.sum()) if len(correct) else 0.0
    per_type = {}
    for label in sorted(set(gold_flat.tolist()) | set(pred_flat.tolist())):
        true_positive = float(weight[correct & (gold_flat == label)].sum())
        predicted = float(weight[pred_flat == label].sum())
        support = float(weight[gold_flat == label].sum())
        per_type[label] = _precision_recall_f1(true_positive, predicted, support)
        per_type[label]["support"] = int(np.sum(gold_flat == label))  # the words' own count
    return {
        "precision": accuracy,
        "recall": accuracy,
        "f1": accuracy,
        "per_type": per_type,
        "n_entities": len(gold_flat),
    }


def bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    """The equal-width bin of each confidence: [b/B, (b+1)/B), the last bin closed."""
    return np.minimum(np.floor(confidence * bins).astype(np.int64), bins - 1)


def reliability_bins(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 10, weights: np.ndarray | None = None
) -> list[dict]:
    """Per equal-width bin: edges, word count, accuracy and mean confidence (None if
    empty); with ``weights`` (one per word), weighted: the count is the split's estimate."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    weight = np.ones(len(confidence)) if weights is None else np.asarray(weights, np.float64)
    index = bin_index(confidence, bins)
    counts = np.bincount(index, weights=weight, minlength=bins)
    hits = np.bincount(index, weights=correct * weight, minlength=bins)
    confidence_sums = np.bincount(index, weights=confidence * weight, minlength=bins)
    return [
        {
            "lo": b / bins,
            "hi": (b + 1) / bins,
            "count": int(counts[b]) if weights is None else float(counts[b]),
            "accuracy": float(hits[b] / counts[b]) if counts[b] else None,
            "confidence": float(confidence_sums[b] / counts[b]) if counts[b] else None,
        }
        for b in range(bins)
    ]


def calibration_errors(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 10, weights: np.ndarray | None = None
) -> dict:
    """``{"ece", "mce", "bins"}`` for top-label ``confidence`` (N,) and ``correct`` (N,),
    each weighing ``weights`` (N,; 1 without).

    >>> errors = calibration_errors(np.array([0.95, 0.95, 0.65, 0.62]),
    ...                             np.array([True, False, True, True]))
    >>> round(errors["ece"], 6), round(errors["mce"], 6)
    (0.4075, 0.45)
    """
    table = reliability_bins(confidence, correct, bins, weights)
    total = sum(b["count"] for b in table)
    gaps = [abs(b["accuracy"] - b["confidence"]) for b in table if b["count"]]
    weights = [b["count"] / total for b in table if b["count"]]
    return {
        "ece": float(np.dot(weights, gaps)) if total else 0.0,
        "mce": float(max(gaps)) if gaps else 0.0,
        "bins": table,
    }


def equal_mass_ece(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 10, weights: np.ndarray | None = None
) -> float:
    """ECE over ``bins`` bins of (nearly) equal count instead of equal width (adaptive
    ECE, Nixon et al. 2019): the bins follow the confidences, so a model whose confidences
    crowd near 1 is not judged on one or two bins. With ``weights`` (one per value), bins
    of (nearly) equal weight: value i, sorted, goes to bin ⌊bins · W_before(i) / W⌋.

    >>> round(equal_mass_ece(np.array([0.95, 0.95, 0.65, 0.62]),
    ...                      np.array([True, False, True, True]), bins=2), 6)
    0.4075
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    if not len(confidence):
        return 0.0
    order = np.argsort(confidence, kind="stable")
    if weights is not None and np.ptp(weights) > 0:  # equal weights: the count rule below
        weight = np.asarray(weights, np.float64)[order]
        before = np.concatenate([[0.0], np.cumsum(weight)[:-1]])
        group = np.minimum((before / weight.sum() * bins).astype(np.int64), bins - 1)
        sums = [np.bincount(group, v * weight, bins) for v in (correct[order], confidence[order])]
        return float(np.abs(sums[0] - sums[1]).sum() / weight.sum())
    total = 0.0
    for group in np.array_split(order, min(bins, len(order))):
        total += abs(np.mean(correct[group]) - np.mean(confidence[group])) * len(group)
    return float(total / len(confidence))


def top_label_calibration(
    probs: np.ndarray, gold: np.ndarray, bins: int = 10, weights: np.ndarray | None = None
) -> dict:
    """``calibration_errors`` of the top label of ``probs`` (N, C) against ``gold`` (N,)."""
    return calibration_errors(probs.max(axis=1), probs.argmax(axis=1) == gold, bins, weights)


def probability_scores(
    probs: np.ndarray, gold: np.ndarray, weights: np.ndarray | None = None
) -> dict:
    """Brier score and NLL of ``probs`` (N, C) for gold label ids ``gold`` (N,), means
    weighted by ``weights`` (N,; equal without).

    >>> scores = probability_scores(np.array([[0.8, 0.2], [0.4, 0.6]]), np.array([0, 0]))
    >>> round(scores["brier"], 6), round(scores["nll"], 6)
    (0.4, 0.569717)
    """
    probs = np.asarray(probs, dtype=np.float64)
    if len(gold) == 0:
        return {"brier": 0.0, "nll": 0.0}
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(gold)), gold] = 1.0
    gold_probability = probs[np.arange(len(gold)), gold]
    return {
        "brier": float(np.average(np.sum((probs - onehot) ** 2, axis=1), weights=weights)),
        "nll": float(np.average(-np.log(np.maximum(gold_probability, NLL_FLOOR)), weights=weights)),
    }


def temperature_scale(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)``: temperature scaling applied to probabilities (N, C)."""
    with np.errstate(divide="ignore"):
        scaled = np.log(np.asarray(probs, dtype=np.float64)) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_temperature(
    probs: np.ndarray, gold: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """The temperature T minimising the NLL of ``softmax(log p / T)`` on (probs, gold),
    each word weighing ``weights`` (a designed review's; equal without).

    NLL is convex in 1/T, so a golden-section search over 1/T in [0.02, 50] finds it.
    """
    if len(gold) == 0:
        return 1.0
    inverse_ratio = (np.sqrt(5) - 1) / 2
    low, high = np.log(0.02), np.log(50.0)  # search log(1/T)

    def nll(log_beta: float) -> float:
        scaled = temperature_scale(probs, 1 / np.exp(log_beta))
        return probability_scores(scaled, gold, weights)["nll"]

    a = high - inverse_ratio * (high - low)
    b = low + inverse_ratio * (high - low)
    value_a, value_b = nll(a), nll(b)
    for _ in range(60):
        if value_a < value_b:
            high, b, value_b = b, a, value_a
            a = high - inverse_ratio * (high - low)
            value_a = nll(a)
        else:
            low, a, value_a = a, b, value_b
            b = low + inverse_ratio * (high - low)
            value_b = nll(b)
    return float(1 / np.exp((low + high) / 2))


DEGENERATE_SHARE = 0.99  # one label for at least this share of the scored words ...
DEGENERATE_GOLD_SHARE = 0.95  # ... where the gold labels give it at most this share


def degeneracy(predictions, scheme: str) -> dict | None:
    """Why a split's predictions are not a model's work (a *degenerate* run), or None.

    Degenerate: no entity predicted while the gold labels have some (span schemes), or one
    label predicted for at least 99% of the scored words while the gold labels give that
    label at most 95% of them (the all-``O`` solution on NER, where gold has ~83% ``O``).

    >>> from noisebench.training.runs import Predictions
    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]], dtype=np.float32)
    >>> p = Predictions(["O", "B-PER"], [["a", "b", "c"]], np.array([1, 0, 1]), probs,
    ...                 np.array([0, 3]))
    >>> degeneracy(p, "IOB2")["reason"]
    "no entity predicted (gold has 2); 'O' for 100.0% of words (gold: 33.3%)"
    """
    scored = predictions.scored
    predicted, gold = predictions.predicted[scored], predictions.gold[scored]
    if len(predicted) == 0:
        return None
    counts = np.bincount(predicted, minlength=len(predictions.labels))
    top = int(counts.argmax())
    share, gold_share = counts[top] / len(predicted), float(np.mean(gold == top))
    label = predictions.labels[top]
    info = {"label": label, "share": float(share), "gold_share": gold_share}
    reasons = []
    if scheme != NO_SCHEME:
        gold_entities = _entity_count(predictions.sentences(predictions.gold))
        predicted_entities = _entity_count(predictions.sentences(predictions.predicted))
        info |= {"predicted_entities": predicted_entities, "gold_entities": gold_entities}
        if gold_entities and not predicted_entities:
            reasons.append(f"no entity predicted (gold has {gold_entities:,})")
    if share >= DEGENERATE_SHARE and gold_share <= DEGENERATE_GOLD_SHARE:
        reasons.append(f"'{label}' for {share:.1%} of words (gold: {gold_share:.1%})")
    return {"reason": "; ".join(reasons), **info} if reasons else None


def _entity_count(sentences: Sequence[Sequence[str]]) -> int:
    return sum(len(decode_spans(sentence)) for sentence in sentences)


def entity_word_calibration(predictions, bins: int = 10) -> dict | None:
    """Top-label calibration over the scored words whose prediction or gold label is an
    entity (not ``O``): token ECE is dominated by the ~83% of ``O`` words a model gets
    right with near-certainty. None without an ``O`` label.

    >>> from noisebench.training.runs import Predictions
    >>> probs = np.array([[0.9, 0.1], [0.38, 0.62], [0.25, 0.75]], dtype=np.float32)
    >>> p = Predictions(["O", "B-PER"], [["a", "b", "c"]], np.array([0, 0, 1]), probs,
    ...                 np.array([0, 3]))
    >>> round(entity_word_calibration(p)["ece"], 6)  # b: wrong at 0.62, c: right at 0.75
    0.435
    """
    if "O" not in predictions.labels:
        return None
    outside = predictions.labels.index("O")
    scored = predictions.scored
    probs = predictions.probs[scored].astype(np.float64)
    gold, predicted = predictions.gold[scored], probs.argmax(axis=1)
    kept = (gold != outside) | (predicted != outside)
    weights = predictions.word_weights()
    weights = None if weights is None else weights[kept]
    return calibration_errors(probs[kept].max(axis=1), predicted[kept] == gold[kept], bins, weights)


def entity_calibration(
    predictions, bins: int = 10, scheme: str = "IOB2", strict: bool = False
) -> dict:
    """Calibration of the predicted entities (those ``span_scores`` counts with ``scheme``
    and ``strict``; ``scheme`` matters only with ``strict``): each one's confidence is the
    product of its words' top-label probabilities (their joint probability, words
    independent given the sentence), correct when gold has exactly that span and type.

    >>> from noisebench.training.runs import Predictions
    >>> probs = np.array([[0.2, 0.8, 0.0], [0.1, 0.0, 0.9], [0.7, 0.3, 0.0]], np.float32)
    >>> p = Predictions(["O", "B-PER", "I-PER"], [["a", "b", "c"]], np.array([1, 2, 1]),
    ...                 probs, np.array([0, 3]))
    >>> errors = entity_calibration(p)   # one entity, words a-b, 0.8 x 0.9, correct
    >>> round(errors["ece"], 6), errors["bins"][7]["count"]
    (0.28, 1)
    """
    _, confidence, correct = predicted_entities(predictions, scheme, strict)
    return calibration_errors(confidence, correct, bins)


def predicted_entities(
    predictions, scheme: str = "IOB2", strict: bool = False, probs: np.ndarray | None = None
):
    """Every predicted entity (of ``entity_spans``, as ``span_scores`` counts them): its
    sentence, its confidence (the product of its words' top-label probabilities; ``probs``
    replaces the predictions', e.g. temperature-scaled, with the same argmax) and whether
    gold has exactly that span and type."""
    top = (predictions.probs if probs is None else probs).max(axis=1)
    gold = entity_spans(predictions.sentences(predictions.gold), scheme, strict)
    predicted = entity_spans(predictions.sentences(predictions.predicted), scheme, strict)
    sentence, confidences, correct = [], [], []
    for row, (begin, gold_spans, pred_spans) in enumerate(
        zip(predictions.offsets[:-1], gold, predicted, strict=True)
    ):
        for start, stop, type_ in sorted(pred_spans):
            sentence.append(row)
            confidences.append(float(np.prod(top[begin + start : begin + stop], dtype=np.float64)))
            correct.append((start, stop, type_) in gold_spans)
    return (
        np.array(sentence, dtype=np.int64),
        np.array(confidences, dtype=np.float64),
        np.array(correct, dtype=bool),
    )


def score_split(
    predictions, scheme: str, strict: bool = False, bins: int = 10, population: int | None = None
) -> dict:
    """Every score of one split's ``runs.Predictions``: the ``results.json`` split entry.
    ``population``: the sentences of the split these are a random sample of (reviewed
    sentences), for ``f1_interval``."""
    gold_sentences = predictions.sentences(predictions.gold)
    pred_sentences = predictions.sentences(predictions.predicted)
    sentence_weights = predictions.weights  # a designed review's (None: all weigh the same)
    spans = span_scores(gold_sentences, pred_sentences, scheme, strict, sentence_weights)
    interval = f1_interval(
        gold_sentences, pred_sentences, scheme, strict, population,
        design=None if sentence_weights is None else (sentence_weights, predictions.strata),
    )  # fmt: skip
    scored = predictions.scored
    probs = predictions.probs[scored].astype(np.float64)
    gold = predictions.gold[scored]
    weights = predictions.word_weights()
    calibration = top_label_calibration(probs, gold, bins, weights)
    confident, right = probs.max(axis=1), probs.argmax(axis=1) == gold
    return {
        "f1": spans["f1"],
        "precision": spans["precision"],
        "recall": spans["recall"],
        "f1_interval": interval,
        "per_type": spans["per_type"],
        "ece": calibration["ece"],
        "mce": calibration["mce"],
        "ece_equal_mass": equal_mass_ece(confident, right, bins, weights),
        **probability_scores(probs, gold, weights),
        "n_sentences": len(predictions.offsets) - 1,
        "n_words": len(predictions.gold),
        "n_entities": spans["n_entities"],
        "n_unscored_words": int((~scored).sum()),
        "reliability": calibration["bins"],
        "degenerate": degeneracy(predictions, scheme),
        **_entity_calibration_scores(predictions, scheme, strict, bins),
    }


def f1_interval(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str,
    strict: bool = False, population: int | None = None, level: float = 0.95,
    design: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[float] | None:  # fmt: skip
    """The ``level`` interval of entity F1 with the sentences as a random sample: of
    sentences like them (``population`` None), or of a split of ``population`` sentences
    (reviewed ones; finite-population correction 1 − n/N). F1 = 2·TP / (P + G) is a ratio
    of sums over sentences; its variance is that of the linearised values z(s) = (2·tp(s)
    − F1·(p(s) + g(s))) / (P + G), n/(n − 1)·Σ z², and the interval F1 ± t(n − 1)·SE held
    to [0, 1] (Taylor; as ``scoring.design`` with one stratum). None without entities to
    count (no span scheme, or fewer than two sentences).

    ``design``: ``(weights, strata)`` per sentence, a designed review's (``weights`` =
    N_h / n_h): F1 = 2·Σ w·tp / Σ w·(p + g), z(s) = (2·tp(s) − F1·(p(s) + g(s))) / Σ w·(p
    + g), the variance Σ_h N_h² (1 − n_h/N_h) s²_h(z) / n_h and Satterthwaite's degrees
    of freedom; None where a stratum not reviewed in full has fewer than two sentences.

    >>> gold = [["B-X"], ["B-X"], ["O"], ["B-X"]]
    >>> f1_interval(gold, gold, "IOB2")  # every entity right in every sentence: exactly 1
    [1.0, 1.0]
    >>> [round(v, 4) for v in f1_interval(gold, [["B-X"], ["O"], ["B-X"], ["B-X"]], "IOB2")]
    [0.0, 1.0]
    """
    from noisebench.scoring.design import t_quantile

    if scheme == NO_SCHEME or len(gold) < 2:
        return None
    gold_spans, pred_spans = entity_spans(gold, scheme, strict), entity_spans(pred, scheme, strict)
    correct = np.array([len(g & p) for g, p in zip(gold_spans, pred_spans, strict=True)], float)
    sizes = np.array([len(g) + len(p) for g, p in zip(gold_spans, pred_spans, strict=True)], float)
    if not sizes.sum():
        return None
    if design is not None:
        return _stratified_f1_interval(correct, sizes, *design, level)
    f1 = float(2 * correct.sum() / sizes.sum())
    z = (2 * correct - f1 * sizes) / sizes.sum()
    n = len(z)
    correction = 1 - n / population if population else 1.0
    error = math.sqrt(max(correction, 0.0) * n / (n - 1) * float(np.sum(z**2)))
    half = t_quantile(n - 1, level) * error
    return [max(f1 - half, 0.0), min(f1 + half, 1.0)]


def _stratified_f1_interval(correct, sizes, weights, strata, level: float) -> list[float] | None:
    from noisebench.scoring.design import collapsed, t_half_width

    weights = np.asarray(weights, dtype=np.float64)
    strata = collapsed(weights, strata)
    denominator = float(weights @ sizes)
    f1 = 2 * float(weights @ correct) / denominator
    # each sentence's weighted linearised value: within a stratum of equal weights N/n,
    # n/(n − 1)·Σ(u − ū)² is N²·s²(z)/n; a collapsed stratum's weights differ
    u = weights * (2 * correct - f1 * sizes) / denominator
    parts = []
    for h in np.unique(strata):
        inside = strata == h
        n, size = int(inside.sum()), float(weights[inside].sum())
        if n >= round(size):
            continue  # reviewed in full: known exactly
        if n < 2:
            return None
        parts.append(((1 - n / size) * n * float(u[inside].var(ddof=1)), n - 1))
    half = t_half_width(parts, level)[2]
    return [max(f1 - half, 0.0), min(f1 + half, 1.0)]


def _entity_calibration_scores(predictions, scheme: str, strict: bool, bins: int) -> dict:
    """``entity_word_ece``, ``entity_ece`` / ``entity_mce`` and ``entity_ece_equal_mass``
    where the tags have spans."""
    if scheme == NO_SCHEME:
        return {
            "entity_word_ece": None,
            "entity_ece": None,
            "entity_mce": None,
            "entity_ece_equal_mass": None,
        }
    words = entity_word_calibration(predictions, bins)
    sentence, confidence, correct = predicted_entities(predictions, scheme, strict)
    weights = None if predictions.weights is None else predictions.weights[sentence]
    entities = calibration_errors(confidence, correct, bins, weights)
    return {
        "entity_word_ece": words["ece"] if words else None,
        "entity_ece": entities["ece"],
        "entity_mce": entities["mce"],
        "entity_ece_equal_mass": equal_mass_ece(confidence, correct, bins, weights),
    }


def fit_on_validation(validation) -> float:
    """``fit_temperature`` on a split's scored words, each weighing its sentence's design
    weight where it has one (``runs.Predictions.word_weights``)."""
    scored = validation.scored
    return fit_temperature(
        validation.probs[scored], validation.gold[scored], validation.word_weights()
    )


def temperature_report(validation, test, bins: int = 10) -> dict:
    """Fit one temperature on validation NLL (weighted where the validation sentences are
    a designed review's alone); test ECE / MCE / NLL before and after."""
    temperature = fit_on_validation(validation)
    probs = test.probs[test.scored].astype(np.float64)
    gold = test.gold[test.scored]
    report = {"method": "temperature", "temperature": temperature, "fitted_on": "validation"}
    for when, scaled in (("before", probs), ("after", temperature_scale(probs, temperature))):
        errors = top_label_calibration(scaled, gold, bins)
        report[f"ece_{when}"] = errors["ece"]
        report[f"mce_{when}"] = errors["mce"]
        report[f"nll_{when}"] = probability_scores(scaled, gold)["nll"]
    return report
