import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2
from torchmetrics.functional.classification import multiclass_calibration_error

from noisebench.data.schemes import encode_spans
from noisebench.scoring import metrics, paired
from noisebench.training.runs import Predictions

GOLD = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"], ["O", "B-PER"]]
PRED = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"], ["O", "I-PER"]]


def test_entity_scores_equal_a_hand_count_and_seqeval():
    scores = metrics.span_scores(GOLD, PRED, "IOB2")
    # gold: PER[0:2], LOC[3], ORG[0], PER[1] = 4; pred (conlleval): PER[0:2], ORG[3],
    # ORG[0], PER[1] (I-PER after O starts an entity) = 4; matches: PER, ORG, PER = 3.
    assert scores["precision"] == pytest.approx(3 / 4)
    assert scores["recall"] == pytest.approx(3 / 4)
    assert scores["f1"] == pytest.approx(3 / 4)
    assert scores["n_entities"] == 4
    assert scores["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert scores["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores["per_type"]["ORG"]["precision"] == pytest.approx(0.5)
    assert scores["per_type"]["ORG"]["f1"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(f1_score(GOLD, PRED))
    assert scores["precision"] == pytest.approx(precision_score(GOLD, PRED))
    assert scores["recall"] == pytest.approx(recall_score(GOLD, PRED))


def test_strict_mode_drops_ill_formed_entities():
    strict = metrics.span_scores(GOLD, PRED, "IOB2", strict=True)
    # strict IOB2: the lone I-PER is no entity, so 3 predictions, 2 matches
    assert strict["precision"] == pytest.approx(2 / 3)
    assert strict["recall"] == pytest.approx(2 / 4)
    assert strict["f1"] == pytest.approx(f1_score(GOLD, PRED, mode="strict", scheme=IOB2))


def as_bilou(sentences):
    """IOBES sentences with ``E-``/``S-`` written ``L-``/``U-``."""
    return [[{"E": "L", "S": "U"}.get(t[0], t[0]) + t[1:] for t in s] for s in sentences]


def test_bilou_counts_every_unit_and_last_tag_like_iobes():
    gold = [["S-PER", "S-PER", "B-LOC", "E-LOC", "S-LOC"]]
    pred = [["S-PER", "O", "B-LOC", "E-LOC", "O"]]
    # gold: PER[0], PER[1], LOC[2:4], LOC[4] = 4; pred: PER[0], LOC[2:4], both right
    for scheme, (g, p) in (("IOBES", (gold, pred)), ("BILOU", (as_bilou(gold), as_bilou(pred)))):
        for strict in (False, True):
            scores = metrics.span_scores(g, p, scheme, strict)
            assert (scores["precision"], scores["recall"], scores["n_entities"]) == (1, 0.5, 4)
            assert scores["f1"] == pytest.approx(2 / 3)
            assert scores["per_type"]["PER"] == {
                "precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2
            }  # fmt: skip


# The same entities written in each scheme. Sentence 1 has two touching PER entities
# (IOB1 marks the second with B-), sentence 2 a boundary error, sentence 3 touching
# entities of different types.
#   gold: PER[0:2] PER[2:3] LOC[4:5] | ORG[0:3]         | MISC[1:2]          = 5
#   pred: PER[0:2] PER[2:3] ORG[4:5] | ORG[0:2] LOC[3:4] | MISC[1:2] PER[2:3] = 7
#   both: PER[0:2] PER[2:3]          |                   | MISC[1:2]          = 3
IOB2_GOLD = [["B-PER", "I-PER", "B-PER", "O", "B-LOC", "O"], ["B-ORG", "I-ORG", "I-ORG", "O"],
             ["O", "B-MISC", "O"]]  # fmt: skip
IOB2_PRED = [["B-PER", "I-PER", "B-PER", "O", "B-ORG", "O"], ["B-ORG", "I-ORG", "O", "B-LOC"],
             ["O", "B-MISC", "B-PER"]]  # fmt: skip
IOB1_GOLD = [["I-PER", "I-PER", "B-PER", "O", "I-LOC", "O"], ["I-ORG", "I-ORG", "I-ORG", "O"],
             ["O", "I-MISC", "O"]]  # fmt: skip
IOB1_PRED = [["I-PER", "I-PER", "B-PER", "O", "I-ORG", "O"], ["I-ORG", "I-ORG", "O", "I-LOC"],
             ["O", "I-MISC", "I-PER"]]  # fmt: skip
IOBES_GOLD = [["B-PER", "E-PER", "S-PER", "O", "S-LOC", "O"], ["B-ORG", "I-ORG", "E-ORG", "O"],
              ["O", "S-MISC", "O"]]  # fmt: skip
IOBES_PRED = [["B-PER", "E-PER", "S-PER", "O", "S-ORG", "O"], ["B-ORG", "E-ORG", "O", "S-LOC"],
              ["O", "S-MISC", "S-PER"]]  # fmt: skip
SAME_ENTITIES = {
    "IOB1": (IOB1_GOLD, IOB1_PRED),
    "IOB2": (IOB2_GOLD, IOB2_PRED),
    "IOBES": (IOBES_GOLD, IOBES_PRED),
    "BILOU": (as_bilou(IOBES_GOLD), as_bilou(IOBES_PRED)),
}


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("scheme", ["IOB1", "IOB2", "IOBES", "BILOU"])
def test_every_scheme_scores_a_hand_count_and_conlleval_on_iob2(scheme, strict):
    scores = metrics.span_scores(*SAME_ENTITIES[scheme], scheme, strict)
    assert (scores["precision"], scores["recall"], scores["n_entities"]) == (3 / 7, 3 / 5, 5)
    assert scores["f1"] == pytest.approx(2 * 3 / (7 + 5))
    f1_of_type = {name: row["f1"] for name, row in scores["per_type"].items()}
    assert f1_of_type == {"LOC": 0.0, "MISC": 1.0, "ORG": 0.0, "PER": pytest.approx(0.8)}
    assert scores == conlleval_on_iob2(IOB2_GOLD, IOB2_PRED)


def conlleval_on_iob2(gold, pred) -> dict:
    """``span_scores``' answer from seqeval's default, conlleval-compatible mode, which
    knows IOB1, IOB2 and IOBES but not BILOU: the reference for sentences in IOB2."""
    with warnings.catch_warnings():  # its macro average of no entity divides by 0
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(gold, pred, output_dict=True, zero_division=0)
    rows = {
        name: {
            "precision": float(row["precision"]),
            "recall": float(row["recall"]),
            "f1": float(row["f1-score"]),
            "support": int(row["support"]),
        }
        for name, row in report.items()
        if name not in ("macro avg", "weighted avg")
    }
    micro = rows.pop("micro avg")
    n_entities = micro.pop("support")
    return {**micro, "per_type": rows, "n_entities": n_entities}


PREFIXES = {"IOB1": "BI", "IOB2": "BI", "IOBES": "BIES", "BILOU": "BILU"}
TYPES = ["PER", "LOC", "ORG"]


@st.composite
def span_set(draw, length: int):
    """Non-overlapping entity spans in a sentence of ``length`` words."""
    spans, position = [], 0
    pieces = st.tuples(st.integers(0, 2), st.integers(1, 3), st.sampled_from(TYPES))
    for gap, size, type_ in draw(st.lists(pieces, max_size=4)):
        start = position + gap
        if start + size > length:
            break
        spans.append((start, start + size, type_))
        position = start + size
    return spans


@st.composite
def corpus(draw):
    """(length, gold spans, predicted spans) per sentence."""
    lengths = draw(st.lists(st.integers(1, 9), min_size=1, max_size=6))
    return [(n, draw(span_set(n)), draw(span_set(n))) for n in lengths]


def as_predictions(sentences, scheme: str) -> Predictions:
    """The corpus as a run's predictions: one-hot probabilities of the predicted tags."""
    labels = ["O"] + [f"{p}-{t}" for t in TYPES for p in PREFIXES[scheme]]
    index = {label: i for i, label in enumerate(labels)}
    gold = [index[t] for n, spans, _ in sentences for t in encode_spans(spans, n, scheme)]
    pred = [index[t] for n, _, spans in sentences for t in encode_spans(spans, n, scheme)]
    probs = np.eye(len(labels), dtype=np.float32)[pred]
    offsets = np.cumsum([0] + [n for n, _, _ in sentences])
    return Predictions(labels, [["w"] * n for n, _, _ in sentences], np.array(gold), probs, offsets)


@settings(max_examples=60, deadline=None)
@given(sentences=corpus(), scheme=st.sampled_from(["IOB1", "IOB2", "IOBES", "BILOU"]))
def test_entity_scores_of_any_scheme_equal_conlleval_on_iob2_and_paired_counts(sentences, scheme):
    predictions = as_predictions(sentences, scheme)
    gold = predictions.sentences(predictions.gold)
    pred = predictions.sentences(predictions.predicted)
    iob2_gold = [encode_spans(spans, n, "IOB2") for n, spans, _ in sentences]
    iob2_pred = [encode_spans(spans, n, "IOB2") for n, _, spans in sentences]
    expected = [
        sum(len(set(g) & set(p)) for _, g, p in sentences),  # true positives
        sum(len(p) for _, _, p in sentences),  # predicted
        sum(len(g) for _, g, _ in sentences),  # gold
    ]
    reference = conlleval_on_iob2(iob2_gold, iob2_pred)
    for strict in (False, True):  # well-formed tags: strict mode finds the same entities
        scores = metrics.span_scores(gold, pred, scheme, strict)
        assert scores == reference
        assert scores["n_entities"] == expected[2]
        # paired statistics and entity calibration count the same entities as F1
        stats = paired.sentence_stats(predictions, scheme, strict)
        assert stats.counts.sum(0).tolist() == expected
        assert stats.value("f1") == pytest.approx(scores["f1"], abs=1e-12)
        _, _, correct = metrics.predicted_entities(predictions, scheme, strict)
        assert (correct.sum(), len(correct)) == tuple(expected[:2])


def test_tags_without_span_scheme_get_word_level_micro_f1():
    gold = [["DT", "NN", "VB"], ["NN"]]
    pred = [["DT", "VB", "VB"], ["NN"]]
    scores = metrics.span_scores(gold, pred, "none")
    assert scores["f1"] == scores["precision"] == scores["recall"] == pytest.approx(3 / 4)
    assert scores["per_type"]["VB"]["precision"] == pytest.approx(0.5)
    assert scores["per_type"]["NN"]["recall"] == pytest.approx(0.5)
    assert scores["n_entities"] == 4


def straightforward_calibration(confidence, correct, bins):
    """Bin by explicit edge comparisons, one bin at a time."""
    ece, mce, total = 0.0, 0.0, len(confidence)
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = (confidence >= lo) & ((confidence < hi) if b < bins - 1 else (confidence <= hi))
        if inside.sum() == 0:
            continue
        gap = abs(correct[inside].mean() - confidence[inside].mean())
        ece += inside.sum() / total * gap
        mce = max(mce, gap)
    return ece, mce


def random_probs(n, num_classes, bins, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(n, num_classes))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    # keep every top-label confidence at least 1e-4 away from a bin edge
    confidence = probs.max(1)
    distance = np.abs(confidence * bins - np.round(confidence * bins)) / bins
    keep = distance > 1e-4
    return probs[keep], rng.integers(0, num_classes, size=n)[keep]


@pytest.mark.parametrize("bins", [5, 10, 15])
@pytest.mark.parametrize("num_classes", [3, 9])
def test_ece_and_mce_match_two_independent_implementations(bins, num_classes):
    probs, gold = random_probs(3000, num_classes, bins, seed=bins + num_classes)
    confidence, correct = probs.max(1), probs.argmax(1) == gold
    ours = metrics.calibration_errors(confidence, correct, bins)
    ece, mce = straightforward_calibration(confidence, correct, bins)
    assert ours["ece"] == pytest.approx(ece, abs=1e-6)
    assert ours["mce"] == pytest.approx(mce, abs=1e-6)
    preds, target = torch.from_numpy(probs), torch.from_numpy(gold)
    for norm, key in (("l1", "ece"), ("max", "mce")):
        reference = multiclass_calibration_error(
            preds, target, num_classes=num_classes, n_bins=bins, norm=norm
        )
        assert ours[key] == pytest.approx(reference.item(), abs=1e-6)
    assert sum(b["count"] for b in ours["bins"]) == len(confidence)


def test_bins_are_half_open_with_the_last_closed():
    table = metrics.reliability_bins(np.array([0.0, 0.1, 0.5, 0.99, 1.0]), np.ones(5), bins=10)
    counts = [b["count"] for b in table]
    assert counts == [1, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    assert table[2]["accuracy"] is None and table[2]["confidence"] is None


def test_brier_and_nll_match_numpy():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=200)
    gold = rng.integers(0, 5, size=200)
    scores = metrics.probability_scores(probs, gold)
    onehot = np.eye(5)[gold]
    assert scores["brier"] == pytest.approx(np.mean(np.sum((probs - onehot) ** 2, 1)), abs=1e-12)
    assert scores["nll"] == pytest.approx(-np.mean(np.log(probs[np.arange(200), gold])), abs=1e-12)


def test_temperature_fit_finds_the_nll_minimum():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=4.0, size=(2000, 4))  # overconfident for these labels
    gold = np.where(rng.random(2000) < 0.6, logits.argmax(1), rng.integers(0, 4, 2000))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    temperature = metrics.fit_temperature(probs, gold)
    grid = np.linspace(0.5, 10, 2000)
    nll = [
        metrics.probability_scores(metrics.temperature_scale(probs, t), gold)["nll"] for t in grid
    ]
    assert temperature == pytest.approx(grid[int(np.argmin(nll))], abs=0.01)
    assert temperature > 1  # overconfident predictions get softened
    scaled = metrics.temperature_scale(probs, 1.0)
    np.testing.assert_allclose(scaled, probs, atol=1e-12)


def test_entity_level_calibration_against_a_hand_count():
    from noisebench.training.runs import Predictions

    labels = ["O", "B-PER", "I-PER", "B-LOC"]
    # sentence 1: PER (words 0-1) right; LOC (word 3) predicted where gold says O
    # sentence 2: PER predicted on word 0 only, gold PER spans words 0-1: wrong boundary
    gold = np.array([1, 2, 0, 0, 1, 2])
    predicted = np.array([1, 2, 0, 3, 1, 0])
    confidence = np.array([0.9, 0.8, 0.95, 0.55, 0.75, 0.6])
    probs = np.full((6, 4), 0.0, dtype=np.float64)
    for word, (label, c) in enumerate(zip(predicted, confidence, strict=True)):
        probs[word] = (1 - c) / 3
        probs[word, label] = c
    made = Predictions(
        labels, [["w"] * 4, ["w"] * 2], gold, probs.astype(np.float32), np.array([0, 4, 6])
    )
    entities = metrics.entity_calibration(made, bins=10)
    # three predicted entities: 0.72 right (bin 7), 0.55 wrong (bin 5), 0.75 wrong (bin 7)
    expected = (2 / 3) * abs(0.5 - (0.72 + 0.75) / 2) + (1 / 3) * abs(0.0 - 0.55)
    assert entities["ece"] == pytest.approx(expected, abs=1e-6)
    assert [b["count"] for b in entities["bins"]] == [0, 0, 0, 0, 0, 1, 0, 2, 0, 0]
    words = metrics.entity_word_calibration(made, bins=10)
    # entity words: all but word 2 (gold O, predicted O): 5 words
    kept = np.array([0, 1, 3, 4, 5])
    reference = metrics.calibration_errors(confidence[kept], (predicted == gold)[kept], 10)
    assert words["ece"] == pytest.approx(reference["ece"], abs=1e-6)
    scores = metrics.score_split(made, "IOB2")
    assert scores["entity_ece"] == pytest.approx(expected, abs=1e-6)
    assert metrics.score_split(made, "none")["entity_ece"] is None
    # equal-mass bins over the three entities (10 bins -> one entity each): mean |gap|
    gaps = abs(1 - 0.72) + abs(0 - 0.55) + abs(0 - 0.75)
    assert scores["entity_ece_equal_mass"] == pytest.approx(gaps / 3, abs=1e-6)


def test_equal_mass_ece_by_hand():
    confidence = np.array([0.9, 0.2, 0.5, 0.8, 0.3, 0.6, 0.99, 0.4, 0.7, 0.1])
    correct = np.array([1, 0, 1, 1, 0, 0, 1, 1, 0, 0], dtype=bool)
    # sorted: 0.1 0.2 0.3 0.4 | 0.5 0.6 0.7 | 0.8 0.9 0.99 (array_split: 4, 3, 3)
    groups = [([0.1, 0.2, 0.3, 0.4], [0, 0, 0, 1]), ([0.5, 0.6, 0.7], [1, 0, 0]),
              ([0.8, 0.9, 0.99], [1, 1, 1])]  # fmt: skip
    expected = sum(abs(np.mean(c) - np.mean(p)) * len(p) for p, c in groups) / 10
    assert metrics.equal_mass_ece(confidence, correct, bins=3) == pytest.approx(expected)
    assert metrics.equal_mass_ece(np.zeros(0), np.zeros(0, bool)) == 0.0


def test_f1_interval_covers_the_split_s_f1_from_a_random_sample():
    """A split of 3,000 sentences (skewed: most have no entity, a few many); 400 random
    samples of 150: the interval with the split as population holds the split's F1 in at
    least 93% of them; the whole split reviewed, it is the F1 itself."""
    rng = np.random.default_rng(4)
    gold_sentences, pred_sentences = [], []
    for _ in range(3000):
        entities = int(rng.choice([0, 1, 2, 6], p=[0.5, 0.3, 0.15, 0.05]))
        gold = ["B-X" if i < entities else "O" for i in range(8)]
        pred = [t if rng.random() < 0.8 else ("O" if t == "B-X" else "B-X") for t in gold]
        gold_sentences.append(gold)
        pred_sentences.append(pred)
    truth = metrics.span_scores(gold_sentences, pred_sentences, "IOB2")["f1"]
    assert metrics.f1_interval(gold_sentences, pred_sentences, "IOB2", population=3000) == [
        pytest.approx(truth),
        pytest.approx(truth),
    ]
    covered = 0
    for _ in range(400):
        rows = rng.choice(3000, 150, replace=False)
        low, high = metrics.f1_interval(
            [gold_sentences[r] for r in rows], [pred_sentences[r] for r in rows], "IOB2",
            population=3000,
        )  # fmt: skip
        covered += low <= truth <= high
    assert covered / 400 >= 0.93, covered
