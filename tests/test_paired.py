"""The paired bootstrap: exact per-replicate scores, pairing, seeds, precision."""

from __future__ import annotations

import numpy as np
import pytest

from noisebench.scoring import metrics, paired
from noisebench.training.runs import Predictions

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
TOLERANCE = {"f1": 1e-12, "ece": 1e-9, "entity_ece": 1e-9}
SCHEME_LABELS = {
    "IOB2": LABELS,
    "IOBES": ["O"] + [f"{p}-{t}" for t in ("PER", "LOC") for p in "BIES"],
    "BILOU": ["O"] + [f"{p}-{t}" for t in ("PER", "LOC") for p in "BILU"],
}


def random_predictions(seed: int, sentences: int = 60, gold=None, labels=LABELS) -> Predictions:
    """Random sentences whose predictions agree with gold on about 70% of words, with
    ill-formed spans (I- after O) so strict and default modes differ."""
    rng = np.random.default_rng(seed)
    lengths = np.random.default_rng(99).integers(1, 9, size=sentences)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    words = int(offsets[-1])
    if gold is None:
        entity_share = [0.4 / (len(labels) - 1)] * (len(labels) - 1)
        gold = np.random.default_rng(98).choice(len(labels), size=words, p=[0.6, *entity_share])
    logits = rng.normal(size=(words, len(labels)))
    logits[np.arange(words), gold] += 1.5 * (rng.random(words) < 0.7) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs = probs.astype(np.float32)
    probs[rng.random(words) < 0.02] = np.nan  # words cut by max_length: O, not calibrated
    tokens = [["w"] * int(n) for n in lengths]
    return Predictions(labels, tokens, gold, probs, offsets)


def resampled(predictions: Predictions, counts: np.ndarray) -> Predictions:
    """The split with sentence ``i`` repeated ``counts[i]`` times."""
    order = np.repeat(np.arange(len(counts)), counts.astype(int))
    starts, ends = predictions.offsets[:-1][order], predictions.offsets[1:][order]
    words = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)])
    lengths = ends - starts
    return Predictions(
        predictions.labels,
        [predictions.tokens[i] for i in order],
        predictions.gold[words],
        predictions.probs[words],
        np.concatenate([[0], np.cumsum(lengths)]),
    )


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("scheme", ["IOB2", "IOBES", "BILOU"])
def test_statistics_reproduce_score_split_on_the_split_and_on_a_resample(scheme, strict):
    predictions = random_predictions(1, labels=SCHEME_LABELS[scheme])
    stats = paired.sentence_stats(predictions, scheme, strict=strict, bins=10)
    expected = metrics.score_split(predictions, scheme, strict=strict, bins=10)
    for metric in paired.METRICS:
        assert stats.value(metric) == pytest.approx(expected[metric], abs=TOLERANCE[metric])
    # F1 and entity ECE count the same predicted entities, the ones span_scores counts
    spans = metrics.span_scores(
        predictions.sentences(predictions.gold),
        predictions.sentences(predictions.predicted),
        scheme,
        strict,
    )
    true_positives, predicted, gold = stats.counts.sum(0)
    assert stats.entity_bins[..., 0].sum() == predicted
    assert gold == spans["n_entities"]
    assert true_positives / predicted == pytest.approx(spans["precision"], abs=1e-12)
    weights = np.random.default_rng(5).multinomial(60, np.full(60, 1 / 60), size=3)
    for row in weights:
        again = metrics.score_split(resampled(predictions, row), scheme, strict=strict, bins=10)
        for metric in paired.METRICS:
            assert stats.value(metric, row[None].astype(float))[0] == pytest.approx(
                again[metric], abs=TOLERANCE[metric]
            )


def test_statistics_without_a_span_scheme_give_word_accuracy():
    predictions = random_predictions(2)
    stats = paired.sentence_stats(predictions, "none")
    expected = metrics.score_split(predictions, "none")
    assert stats.value("f1") == pytest.approx(expected["f1"], abs=1e-12)


def test_a_method_against_itself_differs_by_exactly_zero():
    stats = paired.sentence_stats(random_predictions(3), "IOB2")
    difference = paired.paired_difference([stats, stats], [stats, stats], "f1", replicates=50)
    assert (difference.estimate, difference.low, difference.high) == (0.0, 0.0, 0.0)
    assert not difference.significant


def test_the_interval_is_seeded_and_pairing_narrows_it():
    gold = random_predictions(0).gold
    a = [paired.sentence_stats(random_predictions(s, gold=gold), "IOB2") for s in (10, 11)]
    b = [paired.sentence_stats(random_predictions(s, gold=gold), "IOB2") for s in (20, 21)]
    one = paired.paired_difference(a, b, "f1", replicates=300, seed=4)
    two = paired.paired_difference(a, b, "f1", replicates=300, seed=4)
    assert one == two
    expected = np.mean([x.value("f1") - y.value("f1") for x, y in zip(a, b, strict=True)])
    assert one.estimate == pytest.approx(expected, abs=1e-12)
    assert one.low <= one.estimate <= one.high
    assert one.seeds == 2 and one.sentences == 60 and one.replicates == 300
    # A clearly better method (the gold labels themselves) is significantly better.
    perfect = Predictions(LABELS, [], gold, np.eye(len(LABELS), dtype=np.float32)[gold], None)
    perfect.offsets, perfect.tokens = random_predictions(0).offsets, random_predictions(0).tokens
    best = paired.sentence_stats(perfect, "IOB2")
    better = paired.paired_difference([best, best], a, "f1", replicates=300)
    assert better.significant and better.low > 0
    assert better.to_dict()["ci95"] == [better.low, better.high]


def test_unpaired_or_mismatched_runs_are_refused():
    stats = paired.sentence_stats(random_predictions(1), "IOB2")
    shorter = paired.sentence_stats(random_predictions(1, sentences=30), "IOB2")
    with pytest.raises(ValueError, match="paired runs needed: 1 against 2"):
        paired.paired_difference([stats], [stats, stats], "f1")
    with pytest.raises(ValueError, match="same test sentences"):
        paired.paired_difference([stats], [shorter], "f1")
    with pytest.raises(ValueError, match=r"no paired bootstrap for .mce. here \(metrics: f1, ece"):
        paired.paired_difference([stats], [stats], "mce")


def test_printed_precision_follows_the_interval():
    difference = paired.Difference("f1", 0.01234, -0.003, 0.027, 2, 100, 1000)
    assert paired.format_difference(difference, 100.0, 2) == "+1.2 [-0.3, +2.7]"
    narrow = paired.Difference("ece", -0.01234, -0.0131, -0.0116, 2, 100, 1000)
    assert paired.format_difference(narrow, 1.0, 4) == "-0.0123 [-0.0131, -0.0116]"
