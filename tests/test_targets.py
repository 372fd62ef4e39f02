"""Span-aware smoothing: soft targets on hand-made spans, in every scheme, and its bounds."""

import json

import numpy as np
import pytest

from noisebench.data.schemes import NO_SCHEME
from noisebench.errors import InputError
from noisebench.training.targets import check_span_smoothing, span_targets

IOB2 = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def targets_of(labels, names, scheme, eps, distance=1):
    return span_targets([names.index(x) for x in labels], names, scheme, eps, distance)


def expected(rows: list[dict[str, float]], names) -> np.ndarray:
    out = np.zeros((len(rows), len(names)))
    for word, row in enumerate(rows):
        for label, mass in row.items():
            out[word, names.index(label)] = mass
    return out


def test_an_entity_in_the_middle_spreads_eps_over_its_four_shifts():
    # (1, 3) PER: start-1 -> B I I O, start+1 -> O O B O, end-1 -> O B O O, end+1 -> O B I I
    got = targets_of(["O", "B-PER", "I-PER", "O"], IOB2, "IOB2", 0.2)
    rows = [
        {"O": 0.95, "B-PER": 0.05},
        {"B-PER": 0.9, "I-PER": 0.05, "O": 0.05},
        {"I-PER": 0.9, "B-PER": 0.05, "O": 0.05},
        {"O": 0.95, "I-PER": 0.05},
    ]
    np.testing.assert_allclose(got, expected(rows, IOB2), atol=1e-7)


def test_words_far_from_an_edge_keep_their_one_hot_target():
    labels = ["O", "O", "O", "B-PER", "I-PER", "I-PER", "I-PER", "O", "O", "O"]
    got = targets_of(labels, IOB2, "IOB2", 0.3)
    for word in (0, 1, 5, 9):  # more than one word from either edge
        assert got[word].tolist() == np.eye(len(IOB2))[IOB2.index(labels[word])].tolist()
    assert got[2, IOB2.index("O")] == pytest.approx(0.925)  # the start may move left


def test_a_one_word_entity_at_the_sentence_start_only_grows_to_the_right():
    # start-1 leaves the sentence, start+1 and end-1 empty the span: their shares stay
    got = targets_of(["B-LOC", "O"], IOB2, "IOB2", 0.4)
    np.testing.assert_allclose(
        got, expected([{"B-LOC": 1.0}, {"O": 0.9, "I-LOC": 0.1}], IOB2), atol=1e-7
    )


def test_a_word_between_two_entities_takes_a_share_from_each():
    got = targets_of(["B-PER", "O", "B-LOC"], IOB2, "IOB2", 0.4)
    rows = [{"B-PER": 1.0}, {"O": 0.8, "I-PER": 0.1, "B-LOC": 0.1}, {"B-LOC": 0.9, "I-LOC": 0.1}]
    np.testing.assert_allclose(got, expected(rows, IOB2), atol=1e-7)


def test_shifts_into_a_touching_entity_give_their_share_back():
    got = targets_of(["B-PER", "B-LOC"], IOB2, "IOB2", 0.4)
    np.testing.assert_allclose(got, np.eye(len(IOB2))[[1, 3]], atol=0)


def test_iobes_targets_use_the_scheme_s_own_tags():
    names = ["O", "S-PER", "B-PER", "I-PER", "E-PER"]
    # (1, 2): start-1 -> B E O, end+1 -> O B E; the two that empty the span stay
    got = targets_of(["O", "S-PER", "O"], names, "IOBES", 0.4)
    rows = [
        {"O": 0.9, "B-PER": 0.1},
        {"S-PER": 0.8, "E-PER": 0.1, "B-PER": 0.1},
        {"O": 0.9, "E-PER": 0.1},
    ]
    np.testing.assert_allclose(got, expected(rows, names), atol=1e-7)


def test_bilou_and_iob1_targets():
    bilou = ["O", "U-PER", "B-PER", "I-PER", "L-PER"]
    got = targets_of(["U-PER", "O"], bilou, "BILOU", 0.4)
    np.testing.assert_allclose(
        got, expected([{"U-PER": 0.9, "B-PER": 0.1}, {"O": 0.9, "L-PER": 0.1}], bilou), atol=1e-7
    )
    iob1 = ["O", "I-PER", "B-PER"]
    # (0, 2) in IOB1: start+1 -> O I O, end-1 -> I O O, end+1 -> I I I; start-1 leaves
    got = targets_of(["I-PER", "I-PER", "O"], iob1, "IOB1", 0.4)
    rows = [{"I-PER": 0.9, "O": 0.1}, {"I-PER": 0.9, "O": 0.1}, {"O": 0.9, "I-PER": 0.1}]
    np.testing.assert_allclose(got, expected(rows, iob1), atol=1e-7)


def test_a_distance_of_two_words_spreads_eps_over_eight_shifts():
    names = ["O", "B-PER", "I-PER"]
    got = targets_of(["O", "O", "B-PER", "O", "O"], names, "IOB2", 0.4, distance=2)
    # (2, 3): start-1, start-2 -> word 1 becomes B (share 0.05 each: one to B at start-1,
    # one to I at start-2); end+1, end+2 reach words 3 and 4; start+d, end-d empty it
    rows = [
        {"O": 0.95, "B-PER": 0.05},
        {"O": 0.9, "B-PER": 0.05, "I-PER": 0.05},
        {"B-PER": 0.9, "I-PER": 0.1},
        {"O": 0.9, "I-PER": 0.1},
        {"O": 0.95, "I-PER": 0.05},
    ]
    np.testing.assert_allclose(got, expected(rows, names), atol=1e-7)


def test_a_label_the_tag_set_lacks_keeps_its_share_with_the_given_span():
    names = ["O", "B-PER"]  # no I-PER: growing the span cannot be written
    got = targets_of(["O", "B-PER", "O"], names, "IOB2", 0.4)
    np.testing.assert_allclose(got, np.eye(2)[[0, 1, 0]], atol=0)


def test_an_invalid_sequence_moves_mass_away_from_the_given_labels_only():
    # I-PER without B- (label noise): decoded as the span (1, 2); its word keeps I-PER
    got = targets_of(["O", "I-PER", "O"], IOB2, "IOB2", 0.4)
    rows = [{"O": 0.9, "B-PER": 0.1}, {"I-PER": 1.0}, {"O": 0.9, "I-PER": 0.1}]
    np.testing.assert_allclose(got, expected(rows, IOB2), atol=1e-7)


@pytest.mark.parametrize("scheme", ["IOB1", "IOB2", "IOBES", "BILOU"])
def test_targets_are_distributions_for_any_labels_eps_and_distance(scheme):
    prefixes = {"IOB1": "BI", "IOB2": "BI", "IOBES": "BIES", "BILOU": "BILU"}[scheme]
    names = ["O"] + [f"{p}-{t}" for t in ("A", "B") for p in prefixes]
    rng = np.random.default_rng(0)
    for _ in range(300):
        tags = rng.integers(0, len(names), rng.integers(1, 12))
        eps, distance = rng.uniform(0, 0.99), int(rng.integers(1, 4))
        got = span_targets(tags, names, scheme, eps, distance)
        assert got.min() >= -1e-6
        np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
        assert (span_targets(tags, names, scheme, 0.0) == np.eye(len(names))[tags]).all()


@pytest.mark.parametrize(
    ("eps", "distance", "scheme", "message"),
    [
        (1.0, 1, "IOB2", r"--span-smoothing 1: give a share in \[0, 1\)"),
        (-0.1, 1, "IOB2", r"--span-smoothing -0.1"),
        (0.1, 0, "IOB2", "--span-distance 0: give a number of words, at least 1"),
        (0.1, 1, NO_SCHEME, "needs span tags"),
    ],
)
def test_bad_span_smoothing_settings_are_refused(eps, distance, scheme, message):
    with pytest.raises(InputError, match=message):
        check_span_smoothing(eps, distance, scheme)


def span_args(data, tiny_model, runs_dir, *extra):
    return [
        "train", "--data", str(data), "--model", str(tiny_model), "--runs-dir", str(runs_dir),
        "--lr", "5e-3", "--batch-size", "16", "--device", "cpu", "--epochs", "1", "--json",
        *map(str, extra),
    ]  # fmt: skip


def test_collate_lays_soft_targets_on_each_words_first_sub_token():
    import torch

    from noisebench.training.batches import Encoded, collate

    soft = [np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)]
    encoded = Encoded(
        input_ids=[np.array([101, 7, 8, 9, 102])],
        word_starts=[np.array([1, 3])],
        tags=[np.array([0, 1])],
        soft_tags=soft,
    )
    batch = collate(encoded, np.array([0]), pad_id=0)
    assert batch["labels"].tolist() == [[-100, 0, -100, 1, -100]]
    expected = torch.zeros(1, 5, 2)
    expected[0, 1], expected[0, 3] = torch.tensor([0.9, 0.1]), torch.tensor([0.2, 0.8])
    assert torch.equal(batch["soft_labels"], expected)
    assert "soft_labels" not in collate(encoded, np.array([0]), 0, with_labels=False)


def test_span_smoothing_trains_names_its_run_and_rescores(runner, ner_dir, tiny_model, tmp_path):
    from noisebench.cli import app

    plain = json.loads(
        runner.invoke(app, span_args(ner_dir, tiny_model, tmp_path, "--loss", "sgce")).stdout
    )
    result = runner.invoke(
        app,
        [*span_args(ner_dir, tiny_model, tmp_path, "--loss", "sgce"), "--span-smoothing", "0.2"],
    )
    assert result.exit_code == 0, result.output
    smoothed = json.loads(result.stdout)
    assert "-given-sgce-span0.2-seed0-" in smoothed["run_dir"]
    assert smoothed["config"]["span_smoothing"] == 0.2
    assert "span_smoothing" not in plain["config"]  # runs without it keep their identity
    assert smoothed["train"]["history"][0]["loss"] != plain["train"]["history"][0]["loss"]
    rescored = runner.invoke(app, ["score", smoothed["run_dir"], "--json"])
    assert json.loads(rescored.stdout)[0]["splits"] == smoothed["splits"]
    two = runner.invoke(
        app,
        [
            *span_args(ner_dir, tiny_model, tmp_path),
            "--span-smoothing",
            "0.2",
            "--span-distance",
            "2",
        ],
    )
    assert "-ce-span0.2d2-seed0-" in json.loads(two.stdout)["run_dir"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--span-smoothing", "1"], "--span-smoothing 1: give a share in [0, 1)"),
        (["--span-smoothing", "0.1", "--span-distance", "0"], "--span-distance 0: give a number"),
    ],
)
def test_bad_span_smoothing_exits_2_and_writes_nothing(
    runner, ner_dir, tiny_model, tmp_path, extra, message
):
    from noisebench.cli import app

    result = runner.invoke(app, [*span_args(ner_dir, tiny_model, tmp_path / "runs"), *extra])
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not (tmp_path / "runs").exists()


def test_span_smoothing_refuses_tags_without_spans(runner, tiny_model, tmp_path):
    from noisebench.cli import app

    pos = tmp_path / "pos.txt"
    pos.write_text("john NN\nate VB\n\nmary NN\nwent VB\n\nacme NN\nate VB\n")
    args = [*span_args(pos, tiny_model, tmp_path / "r"), "--span-smoothing", "0.1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--span-smoothing needs span tags" in result.stderr
    assert not (tmp_path / "r").exists()
