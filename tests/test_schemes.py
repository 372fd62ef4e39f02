import numpy as np
import pytest
from seqeval.metrics.sequence_labeling import get_entities

from noisebench.data.schemes import decode_spans, detect_scheme, encode_spans

TYPES = ["PER", "LOC", "ORG"]


def random_sequence(rng, prefixes, length):
    labels = []
    for _ in range(length):
        prefix = prefixes[rng.integers(len(prefixes))]
        labels.append("O" if prefix == "O" else f"{prefix}-{TYPES[rng.integers(3)]}")
    return labels


AS_IOBES = {"L": "E", "U": "S"}  # BILOU's last and unit tags, which seqeval's default mode lacks


@pytest.mark.parametrize(
    "prefixes", [["O", "B", "I"], ["O", "B", "I", "E", "S"], ["O", "I"], ["O", "B", "I", "L", "U"]]
)
def test_decode_matches_seqeval_default_mode_on_arbitrary_sequences(prefixes):
    rng = np.random.default_rng(0)
    for _ in range(500):
        labels = random_sequence(rng, prefixes, int(rng.integers(1, 12)))
        written = [AS_IOBES.get(label[0], label[0]) + label[1:] for label in labels]
        expected = [(start, end + 1, type_) for type_, start, end in get_entities(written)]
        assert sorted(decode_spans(labels)) == sorted(expected), labels


def test_decoding_then_encoding_writes_any_scheme_as_iob2():
    iob2 = ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG"]
    for labels in (
        ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"],  # IOB1
        ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "S-ORG"],  # IOBES
        ["B-PER", "L-PER", "U-PER", "O", "U-LOC", "U-ORG"],  # BILOU
    ):
        assert encode_spans(decode_spans(labels), len(labels), "IOB2") == iob2, labels


@pytest.mark.parametrize("scheme", ["IOB1", "IOB2", "IOBES", "BILOU"])
def test_encode_then_decode_round_trips(scheme):
    rng = np.random.default_rng(1)
    for _ in range(300):
        length = int(rng.integers(1, 15))
        spans, position = [], 0
        while position < length:
            position += int(rng.integers(0, 3))
            size = int(rng.integers(1, 4))
            if position + size > length:
                break
            spans.append((position, position + size, TYPES[rng.integers(3)]))
            position += size
        labels = encode_spans(spans, length, scheme)
        assert decode_spans(labels) == spans, (scheme, labels)


def detect(names, sentences):
    index = {n: i for i, n in enumerate(names)}
    tags = np.array([index[t] for s in sentences for t in s], dtype=np.int64)
    offsets = np.cumsum([0] + [len(s) for s in sentences])
    return detect_scheme(names, tags, offsets)


def test_detect_scheme():
    iob = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert detect(iob, [["B-PER", "I-PER", "O"], ["B-LOC"]]) == "IOB2"
    assert detect(iob, [["I-PER", "I-PER", "O"]]) == "IOB1"
    # an I- tag at a sentence start is IOB1 even when the previous sentence ended in-entity
    assert detect(iob, [["B-PER", "I-PER"], ["I-PER"]]) == "IOB1"
    assert detect(iob, [["B-PER", "I-LOC"]]) == "IOB1"
    assert detect(["O", "B-PER", "E-PER", "S-PER", "I-PER"], [["S-PER"]]) == "IOBES"
    assert detect(["O", "U-PER", "B-PER", "L-PER"], [["U-PER"]]) == "BILOU"
    assert detect(["NN", "VB", "DT"], [["DT", "NN", "VB"]]) == "none"
    assert detect(["O"], [["O"]]) == "none"
