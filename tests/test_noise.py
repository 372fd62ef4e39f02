import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noisebench.data import loading as data
from noisebench.data import noise
from noisebench.data.schemes import decode_spans
from noisebench.errors import InputError

NAMES = ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER"]


def binomial_tolerance(p: float, n: int, sigmas: float = 5.0) -> float:
    return sigmas * math.sqrt(max(p * (1 - p), 1e-12) / n)


def synthetic_iob2(n_sentences: int = 10_000, seed: int = 123):
    """~100k tokens of valid IOB2: entities of 1-3 words separated by O runs."""
    rng = np.random.default_rng(seed)
    index = {n: i for i, n in enumerate(NAMES)}
    tags, offsets = [], [0]
    for _ in range(n_sentences):
        sentence = []
        while len(sentence) < 10:
            sentence += ["O"] * int(rng.integers(1, 4))
            type_ = ["LOC", "ORG", "PER"][rng.integers(3)]
            size = int(rng.integers(1, 4))
            sentence += [f"B-{type_}"] + [f"I-{type_}"] * (size - 1)
        tags += [index[t] for t in sentence]
        offsets.append(len(tags))
    return np.array(tags, dtype=np.int64), np.array(offsets, dtype=np.int64)


def as_dataset_dict(splits: dict[str, tuple[np.ndarray, np.ndarray]]):
    import datasets

    result = {}
    for name, (tags, offsets) in splits.items():
        offset_array = pa.array(offsets.astype(np.int32))
        tokens = pa.array([f"w{i}" for i in range(len(tags))])
        result[name] = data.make_split(
            pa.ListArray.from_arrays(offset_array, tokens),
            pa.ListArray.from_arrays(offset_array, pa.array(tags)),
            NAMES,
        )
    return datasets.DatasetDict(result)


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.4, 0.9, 1.0])
def test_uniform_realised_rate_and_replacement_distribution(rate):
    tags, _ = synthetic_iob2()
    noisy = noise.uniform_noise(tags, len(NAMES), rate, np.random.default_rng(0))
    changed = noisy != tags
    assert abs(changed.mean() - rate) <= binomial_tolerance(rate, len(tags))
    # a flipped tag is uniform over the C - 1 other tags
    from_o = noisy[changed & (tags == 0)]
    if len(from_o) > 1000:
        shares = np.bincount(from_o, minlength=len(NAMES))[1:] / len(from_o)
        expected = 1 / (len(NAMES) - 1)
        assert np.all(np.abs(shares - expected) <= binomial_tolerance(expected, len(from_o)))
        assert np.bincount(from_o, minlength=len(NAMES))[0] == 0


@settings(max_examples=100, deadline=None)
@given(
    tags=st.lists(st.integers(0, 6), min_size=0, max_size=200),
    rate=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_uniform_properties(tags, rate, seed):
    tags = np.array(tags, dtype=np.int64)
    noisy = noise.uniform_noise(tags, len(NAMES), rate, np.random.default_rng(seed))
    again = noise.uniform_noise(tags, len(NAMES), rate, np.random.default_rng(seed))
    assert np.array_equal(noisy, again)
    assert noisy.shape == tags.shape and noisy.dtype == tags.dtype
    assert np.all((noisy >= 0) & (noisy < len(NAMES)))
    if rate == 0:
        assert np.array_equal(noisy, tags)
    if rate == 1:
        assert np.all(noisy != tags)


def test_pair_flips_only_to_the_documented_partner_at_the_requested_rate():
    tags, _ = synthetic_iob2()
    pairs = noise.default_pairs(NAMES)
    assert pairs == {
        "B-LOC": "B-ORG",
        "B-ORG": "B-PER",
        "B-PER": "B-LOC",
        "I-LOC": "I-ORG",
        "I-ORG": "I-PER",
        "I-PER": "I-LOC",
    }
    noisy = noise.matrix_noise(tags, noise.pair_matrix(NAMES, 0.3), np.random.default_rng(0))
    entity = tags != 0
    assert np.array_equal(noisy[~entity], tags[~entity])
    changed = noisy != tags
    assert abs(changed[entity].mean() - 0.3) <= binomial_tolerance(0.3, int(entity.sum()))
    for clean, flipped in zip(tags[changed], noisy[changed], strict=True):
        assert pairs[NAMES[clean]] == NAMES[flipped]


def test_pair_without_span_scheme_cycles_labels():
    assert noise.default_pairs(["NN", "VB", "DT"]) == {"DT": "NN", "NN": "VB", "VB": "DT"}
    with pytest.raises(InputError, match="at least 2 entity types"):
        noise.default_pairs(["O", "B-X", "I-X"])


def test_matrix_noise_draws_from_each_row():
    tags, _ = synthetic_iob2()
    rows = {"O": {"O": 0.9, "B-PER": 0.1}, "B-PER": {"B-PER": 0.5, "B-ORG": 0.3, "O": 0.2}}
    matrix = noise.matrix_array(rows, NAMES)
    noisy = noise.matrix_noise(tags, matrix, np.random.default_rng(0))
    for true_label, row in rows.items():
        where = tags == NAMES.index(true_label)
        for noisy_label, probability in row.items():
            share = np.mean(noisy[where] == NAMES.index(noisy_label))
            assert abs(share - probability) <= binomial_tolerance(probability, int(where.sum()))
    untouched = np.isin(tags, [NAMES.index(n) for n in NAMES if n not in rows])
    assert np.array_equal(noisy[untouched], tags[untouched])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"B-FOO": {"O": 1.0}}, r"--matrix: unknown label 'B-FOO' \(labels: O, B-LOC"),
        ({"O": {"B-BAR": 1.0}}, r"--matrix: unknown label 'B-BAR'"),
        ({"O": {"O": 0.5, "B-PER": 0.4}}, r"--matrix: row 'O' sums to 0.9, not 1"),
        ({"O": {"O": 1.5, "B-PER": -0.5}}, r"row 'O': P\(O\) = 1.5 is not in \[0, 1\]"),
    ],
)
def test_invalid_matrix_is_rejected(rows, message):
    with pytest.raises(InputError, match=message):
        noise.matrix_array(rows, NAMES)


def test_matrix_rows_within_1e_6_are_accepted():
    matrix = noise.matrix_array({"O": {"O": 0.7, "B-PER": 0.3 + 5e-7}}, NAMES)
    assert matrix[0].sum() == pytest.approx(1.0, abs=1e-15)


def is_valid_iob2(labels: list[str]) -> bool:
    previous = "O"
    for label in labels:
        if label.startswith("I-") and previous[2:] != label[2:]:
            return False
        previous = label
    return True


@pytest.mark.parametrize("rate", [0.2, 0.6])
def test_entity_noise_hits_the_requested_share_of_entities_and_keeps_iob2(rate):
    tags, offsets = synthetic_iob2(3000)
    noisy, counts = noise.entity_noise(
        tags, offsets, NAMES, "IOB2", rate, noise.DEFAULT_ENTITY_MIX, np.random.default_rng(0)
    )
    n_entities = sum(
        len(decode_spans([NAMES[t] for t in tags[offsets[i] : offsets[i + 1]]]))
        for i in range(len(offsets) - 1)
    )
    events = sum(counts[e] for e in noise.ENTITY_EVENTS) + counts["skipped"]
    assert abs(events / n_entities - rate) <= binomial_tolerance(rate, n_entities)
    mix_total = sum(noise.DEFAULT_ENTITY_MIX.values())
    for event, weight in noise.DEFAULT_ENTITY_MIX.items():
        share = counts[event] / events
        assert (
            abs(share - weight / mix_total) <= binomial_tolerance(weight / mix_total, events) + 0.01
        )
    for i in range(len(offsets) - 1):
        assert is_valid_iob2([NAMES[t] for t in noisy[offsets[i] : offsets[i + 1]]])


def test_entity_noise_missed_only_removes_exactly_the_hit_entities():
    tags, offsets = synthetic_iob2(2000)
    mix = noise.parse_entity_mix("missed=1")
    noisy, counts = noise.entity_noise(
        tags, offsets, NAMES, "IOB2", 0.5, mix, np.random.default_rng(0)
    )
    gold = noisy_count = 0
    for i in range(len(offsets) - 1):
        clean_spans = decode_spans([NAMES[t] for t in tags[offsets[i] : offsets[i + 1]]])
        noisy_spans = decode_spans([NAMES[t] for t in noisy[offsets[i] : offsets[i + 1]]])
        assert set(noisy_spans) <= set(clean_spans)
        gold += len(clean_spans)
        noisy_count += len(noisy_spans)
    assert gold - noisy_count == counts["missed"]
    assert counts["retyped"] == counts["boundary"] == counts["spurious"] == 0


def test_entity_noise_refuses_tags_without_spans():
    with pytest.raises(InputError, match="no span scheme"):
        noise.entity_noise(
            np.array([0]),
            np.array([0, 1]),
            ["NN"],
            "none",
            0.5,
            noise.DEFAULT_ENTITY_MIX,
            np.random.default_rng(0),
        )


def test_parse_entity_mix():
    assert noise.parse_entity_mix("missed=2, spurious=1") == {
        "missed": 2.0,
        "retyped": 0.0,
        "boundary": 0.0,
        "spurious": 1.0,
    }
    with pytest.raises(InputError, match="unknown event 'dropped'"):
        noise.parse_entity_mix("dropped=1")
    with pytest.raises(InputError, match="at least one weight must be positive"):
        noise.parse_entity_mix("missed=0")


def test_hand_counted_report():
    # sentence 1: B-PER I-PER O B-LOC   sentence 2: O B-PER
    index = {n: i for i, n in enumerate(NAMES)}
    clean = np.array([index[t] for t in ["B-PER", "I-PER", "O", "B-LOC", "O", "B-PER"]])
    offsets = np.array([0, 4, 6])
    dataset_dict = as_dataset_dict({"train": (clean, offsets), "test": (clean, offsets)})
    rows = {"B-PER": {"B-ORG": 1.0}}  # every B-PER becomes B-ORG, nothing else moves
    config = noise.NoiseConfig(noise="matrix", matrix=rows)
    noisy, report = noise.corrupt(dataset_dict, config)
    names = data.label_names(noisy["train"])
    assert [[names[t] for t in row] for row in noisy["train"]["tags"]] == [
        ["B-ORG", "I-PER", "O", "B-LOC"],
        ["O", "B-ORG"],
    ]
    assert noisy["test"]["tags"] == noisy["test"]["clean_tags"] == dataset_dict["test"]["tags"]
    assert noisy["train"]["clean_tags"] == dataset_dict["train"]["tags"]
    # 2 of 6 words changed; 2 of 6 clean words are B-PER, so the expected rate is 2/6 too.
    assert report.realised_token_error_rate == pytest.approx(2 / 6)
    assert report.expected_token_error_rate == pytest.approx(2 / 6)
    # clean: PER[0:2], LOC[3:4], PER[1:2] -> noisy (conlleval): ORG[0:1], PER[1:2], LOC, ORG
    # 1 match (LOC) of 3 gold and 4 noisy entities: F1 = 2/7
    train = report.splits["train"]
    assert (train["gold_entities"], train["noisy_entities"], train["matching_entities"]) == (
        3,
        4,
        1,
    )
    assert report.entity_noise_level == pytest.approx(1 - 2 / 7)
    assert report.splits["test"]["entity_noise_level"] == 0.0
    assert report.splits["test"]["corrupted"] is False
    assert report.confusion == {
        "O": {"O": 2},
        "B-LOC": {"B-LOC": 1},
        "B-PER": {"B-ORG": 2},
        "I-PER": {"I-PER": 1},
    }
    assert report.scheme == "IOB2"


def test_splits_are_honoured_and_independent_of_each_other():
    tags, offsets = synthetic_iob2(500)
    dataset_dict = as_dataset_dict({"train": (tags, offsets), "validation": (tags, offsets)})
    only_train, _ = noise.corrupt(dataset_dict, noise.NoiseConfig(rate=0.5))
    both, report = noise.corrupt(
        dataset_dict, noise.NoiseConfig(rate=0.5, splits=("train", "validation"))
    )
    assert only_train["validation"]["tags"] == dataset_dict["validation"]["tags"]
    assert both["validation"]["tags"] != dataset_dict["validation"]["tags"]
    assert both["train"]["tags"] == only_train["train"]["tags"]
    assert both["validation"]["tags"] != both["train"]["tags"]  # one generator per split
    assert report.corrupted_splits == ["train", "validation"]
    with pytest.raises(
        InputError, match=r"--splits: no split 'test' \(splits: train, validation\)"
    ):
        noise.corrupt(dataset_dict, noise.NoiseConfig(rate=0.5, splits=("test",)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 1.5}, r"--rate 1.5: must be a probability in \[0, 1\]"),
        ({"rate": -0.1}, r"--rate -0.1: must be"),
        ({"rate": float("nan")}, r"--rate nan: must be"),
        ({}, r"--rate is required"),
        ({"noise": "gaussian", "rate": 0.1}, r"--noise 'gaussian': choose one of uniform"),
        ({"noise": "matrix"}, r"--noise matrix needs --matrix FILE"),
        ({"noise": "matrix", "matrix": {}, "rate": 0.2}, r"--rate has no effect with --matrix"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(InputError, match=message):
        noise.NoiseConfig(**kwargs)
