"""`noisebench detect --fix relabel`: a suggestion is written only where it is more likely
right than the given label, the budget caps, whole spans are relabelled and stay valid,
a weak model is refused; and no command trains over a finished run."""

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from test_detect import detect_args

from noisebench.cli import app
from noisebench.data.schemes import NO_SCHEME, decode_spans, encode_spans
from noisebench.detection.fix import (
    MIN_F1,
    check_strength,
    confident_suggestions,
    disagreements,
    noise_matrix,
    relabelled,
    write_stretch,
)
from noisebench.detection.score import Detection
from noisebench.errors import InputError

NAMES = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def ids(labels: str) -> list[int]:
    return [NAMES.index(x) for x in labels.split()]


def one_hot(suggested: list[int], confidence: float) -> np.ndarray:
    """The suggestion at ``confidence``, the rest spread evenly."""
    probs = np.full((len(suggested), len(NAMES)), (1 - confidence) / (len(NAMES) - 1))
    probs[np.arange(len(suggested)), suggested] = confidence
    return probs


AGREED = "B-PER I-PER O B-LOC I-LOC O"  # every label, as the model predicts it too


def hand_made(sentences: list[tuple[str, str]], probs: np.ndarray, agreed: str = AGREED, **fields):
    """A detection of the given/suggested label strings (the word scores rank later words
    as more suspect unless given), then five sentences of ``agreed`` labels the model
    predicts confidently: the labels it has learned (least suspect, 30 words more)."""
    extra = 5 * len(agreed.split())
    sentences = [*sentences, *[(agreed, agreed)] * 5]
    probs = np.vstack([probs, *[one_hot(ids(agreed), 0.999)] * 5])
    given = np.array([t for g, _ in sentences for t in ids(g)])
    suggested = np.array([t for _, s in sentences for t in ids(s)])
    lengths = [len(g.split()) for g, _ in sentences]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    scores = fields.pop("scores", np.arange(len(given) - extra, dtype=float))
    scores = np.concatenate([scores, np.full(extra, -1.0)])
    tokens = [["w"] * n for n in lengths]
    return Detection(
        "retag", "retag", NAMES, tokens, offsets, given, suggested, scores, probs=probs, **fields
    )


def noise(rate: float) -> np.ndarray:
    """P(given | true): each label kept with 1 - rate, the rest spread evenly."""
    matrix = np.full((len(NAMES), len(NAMES)), rate / (len(NAMES) - 1))
    np.fill_diagonal(matrix, 1 - rate)
    return matrix


def valid(labels: list[str], scheme: str = "IOB2") -> bool:
    return encode_spans(decode_spans(labels), len(labels), scheme) == labels


def names_of(tags: np.ndarray, offsets: np.ndarray) -> list[list[str]]:
    return [[NAMES[t] for t in tags[a:b]] for a, b in itertools.pairwise(offsets)]


def test_a_suggestion_is_weighed_against_the_given_label_by_the_noise_rate():
    given, suggested = np.array([0, 0, 0]), np.array([1, 1, 1])
    probs = one_hot([1, 1, 1], 0.8)
    probs[1] = one_hot([1], 0.995)[0]
    probs[2] = np.nan  # a word the model never saw
    # p(B-PER) = 0.8 against p(O) = 0.05: enough where 30% of the labels are wrong ...
    assert confident_suggestions(given, suggested, probs, noise(0.3)).tolist() == [
        True, True, False,
    ]  # fmt: skip
    # ... not where 1% are (0.0025 * 0.8 < 0.99 * 0.05); 0.995 against 0.00125 is
    assert confident_suggestions(given, suggested, probs, noise(0.01)).tolist() == [
        False, True, False,
    ]  # fmt: skip
    agreeing = confident_suggestions(given, given, probs, noise(0.3))
    assert not agreeing.any()


def test_the_noise_matrix_is_cleanlabs_joint_read_per_true_label():
    from cleanlab.count import estimate_joint

    rng = np.random.default_rng(0)
    true = rng.integers(0, 3, 3000)
    given = true.copy()
    flipped = (true == 0) & (rng.random(3000) < 0.2)  # a fifth of the Os given B-PER
    given[flipped] = 1
    probs = np.full((3000, 5), 0.02)
    probs[np.arange(3000), true] = 0.92
    probs[:5] = np.nan  # never seen: left out
    matrix = noise_matrix(given, probs)
    joint = estimate_joint(given[5:], probs[5:])
    np.testing.assert_allclose(matrix[:, :3], joint[:, :3] / joint[:, :3].sum(axis=0))
    np.testing.assert_allclose(matrix[:, :3].sum(axis=0), 1.0)
    assert (matrix[:, 3:] == 0).all()  # labels never given: never suggested
    assert matrix[1, 0] == pytest.approx(0.2, abs=0.02) and matrix[0, 1] < 0.01


def test_a_suggestion_no_more_likely_than_its_label_is_not_relabelled_within_the_budget():
    sentences = [
        ("O B-PER I-PER O", "O B-LOC I-LOC O"),  # retyped, confidently: relabelled
        ("B-LOC O", "O O"),  # spurious, but only 0.6 against 0.1 at 1% noise: kept
    ]
    probs = np.vstack([one_hot(ids("O B-LOC I-LOC O"), 0.999), one_hot(ids("O O"), 0.6)])
    found = hand_made(sentences, probs, scores=np.array([0, 1, 1, 0, 9, 0.0]))
    tags, counts = relabelled(found, 1.0, "IOB2", noise(0.01))
    assert names_of(tags, found.offsets)[:2] == [["O", "B-LOC", "I-LOC", "O"], ["B-LOC", "O"]]
    assert counts == {
        "relabelled_words": 2, "relabelled_stretches": 1, "contradicted_words": 3,
        "confident_words": 2, "budget_words": 36, "unlearned_labels": [],
    }  # fmt: skip


def test_the_budget_caps_the_words_changed_most_suspect_first():
    sentences = [("O B-PER O", "O O O")] * 4 + [("O O", "O O")]  # four confident fixes
    probs = one_hot(ids("O O O " * 4 + "O O"), 0.999)
    scores = np.zeros(14)
    scores[[1, 4, 7, 10]] = [0.2, 0.9, 0.5, 0.1]  # the second sentence is the most suspect
    found = hand_made(sentences, probs, scores=scores)
    tags, counts = relabelled(found, 2 / 44, "IOB2", noise(0.05))
    assert counts["budget_words"] == 2 and counts["relabelled_words"] == 2
    assert counts["confident_words"] == 4  # more than the budget allows: a cap, not a quota
    assert np.flatnonzero(tags != found.given).tolist() == [4, 7]
    # a budget beyond what is confident changes nothing more
    everything, counts = relabelled(found, 1.0, "IOB2", noise(0.05))
    assert (everything != found.given).sum() == counts["relabelled_words"] == 4
    assert counts["budget_words"] == 44


@pytest.mark.parametrize(
    ("given", "suggested", "expected"),
    [
        # the model drops the first word of an entity: the rest becomes the entity
        ("O B-PER I-PER O", "O O I-PER O", "O O B-PER O"),
        # it extends an entity: the whole span is written, not one I- after an O
        ("B-LOC O O", "B-LOC I-LOC I-LOC", "B-LOC I-LOC I-LOC"),
        # it retypes one word of two: its own spans, each valid
        ("B-PER I-PER O", "B-LOC I-PER O", "B-LOC B-PER O"),
        # it retypes the entity inside a longer one of another type
        ("B-LOC I-LOC I-LOC", "O I-PER O", "O B-PER O"),
    ],
)
def test_relabelled_spans_are_whole_and_stay_valid_iob2(given, suggested, expected):
    probs = one_hot(ids(suggested), 0.999)
    found = hand_made([(given, suggested)], probs)
    tags, counts = relabelled(found, 1.0, "IOB2", noise(0.05))
    written = names_of(tags, found.offsets)[0]
    assert written == expected.split() and valid(written)
    assert counts["relabelled_stretches"] == 1


def test_only_the_disagreeing_stretch_changes_and_iobes_stays_valid():
    names = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "S-LOC"]
    given = ["S-PER", "O", "B-PER", "E-PER", "O"]
    suggested = ["S-LOC", "O", "B-PER", "E-PER", "S-PER"]  # retype one, miss one
    assert disagreements(given, suggested) == [(0, 1), (4, 5)]
    written = write_stretch(given, suggested, 4, 5, "IOBES")
    assert written == ["S-PER", "O", "B-PER", "E-PER", "S-PER"] and valid(written, "IOBES")
    assert all(label in names for label in written)


def test_a_stretch_next_to_a_label_invalid_in_the_given_data_is_left_alone():
    # word 1 is an I- after an O (the given data's own): writing B-PER before it would
    # merge the two into one entity the model never suggested
    sentences = [("O I-PER O", "B-PER B-PER O")]
    found = hand_made(sentences, one_hot(ids("B-PER B-PER O"), 0.999))
    assert write_stretch(["O", "I-PER", "O"], ["B-PER", "B-PER", "O"], 0, 1, "IOB2") is None
    tags, counts = relabelled(found, 1.0, "IOB2", noise(0.05))
    assert (tags == found.given).all() and counts["relabelled_words"] == 0


def test_tags_without_spans_are_relabelled_word_by_word():
    labels = ["NN", "VB", "DT"]
    given, suggested = np.array([0, 0, 2, 1, 0, 1, 2, 1]), np.array([1, 0, 2, 0, 0, 1, 2, 1])
    probs = np.array(
        [
            [0.001, 0.998, 0.001], [0.9, 0.05, 0.05], [0, 0, 1], [0.4, 0.6, 0],
            [0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0, 0, 1], [0.05, 0.9, 0.05],
        ]
    )  # fmt: skip
    found = Detection(
        "retag", "retag", labels, [["a", "b"], ["c", "d"], ["e", "f", "g", "h"]],
        np.array([0, 2, 4, 8]), given, suggested, np.arange(8.0), probs=probs,
    )  # fmt: skip
    matrix = np.full((3, 3), 0.05)
    np.fill_diagonal(matrix, 0.9)
    tags, counts = relabelled(found, 1.0, NO_SCHEME, matrix)
    assert tags.tolist() == [1, 0, 2, 1, 0, 1, 2, 1]  # the fourth word's 0.4 against 0.6: kept
    assert counts["relabelled_words"] == 1 and counts["contradicted_words"] == 2


def test_no_word_is_relabelled_from_or_to_a_label_the_model_has_not_learned():
    # the model never predicts I-PER (it splits every name in two, confidently): its
    # contradictions of I-PER say nothing about the labels
    sentences = [("O B-PER I-PER O", "O B-PER B-PER O")] * 3
    probs = np.vstack([one_hot(ids("O B-PER B-PER O"), 0.999)] * 3)
    found = hand_made(sentences, probs, agreed="B-PER O B-LOC I-LOC O")
    assert confident_suggestions(found.given, found.suggested, found.probs, noise(0.05)).any()
    tags, counts = relabelled(found, 1.0, "IOB2", noise(0.05))
    assert (tags == found.given).all() and counts["confident_words"] == 0
    assert counts["unlearned_labels"] == ["I-PER"]  # B-PER, B-LOC, I-LOC and O are learned


def test_a_weak_model_is_refused_and_the_refusal_can_be_overridden():
    found = hand_made([("O B-PER", "O O")], one_hot(ids("O O"), 0.999), validation_f1=0.31)
    with pytest.raises(InputError, match=r"validation F1 is 0\.310, below --min-f1 0\.5") as raised:
        check_strength(found, MIN_F1)
    assert "--min-f1 0 to relabel anyway" in str(raised.value)
    assert "\n" not in str(raised.value)
    check_strength(found, 0.0)  # overridden
    check_strength(hand_made([("O", "O")], one_hot([0], 0.9)), MIN_F1)  # unknown


def test_relabel_refuses_a_weak_model_writing_nothing_and_min_f1_lets_it_through(
    runner, ner_dir, tiny_model, tmp_path
):
    out = tmp_path / "fixed"
    args = [*detect_args(ner_dir, tiny_model, tmp_path), "--fix", "relabel", "-o", out]
    refused = runner.invoke(app, [*args, "--min-f1", "1"])
    assert refused.exit_code == 2, refused.output
    assert "below --min-f1 1: too weak to relabel by" in refused.stderr
    assert not out.exists()
    allowed = runner.invoke(app, [*args, "--min-f1", "0", "--json"])
    assert allowed.exit_code == 0, allowed.output
    document = json.loads(allowed.stdout)
    assert document["cost"]["trainings"] == 0  # the refused detection's training, reused
    assert document["fix"]["min_f1"] == 0 and 0 < document["fix"]["validation_f1"] < 1
    bad = runner.invoke(app, [*args, "--min-f1", "2", "--force"])
    assert bad.exit_code == 2 and "--min-f1 2: give an F1 in [0, 1]" in bad.stderr


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_detect_never_trains_over_a_finished_train_run(runner, ner_dir, tiny_model, tmp_path):
    train = [
        "train", "--data", str(ner_dir), "--model", str(tiny_model), "--runs-dir",
        str(tmp_path / "runs"), "--rate", "0.3", "--epochs", "2", "--lr", "5e-3",
        "--batch-size", "16", "--device", "cpu", "--save-model", "--json",
    ]  # fmt: skip
    trained = runner.invoke(app, train)
    assert trained.exit_code == 0, trained.output
    run_dir = Path(json.loads(trained.stdout)["run_dir"])
    before = digests(run_dir)
    assert "results.json" in before and any(name.startswith("model/") for name in before)
    found = runner.invoke(app, [*detect_args(ner_dir, tiny_model, tmp_path), "--json"])
    assert found.exit_code == 0, found.output
    document = json.loads(found.stdout)
    assert document["cost"]["trainings"] == 1
    assert Path(document["run"]) == run_dir.parent / "detect" / run_dir.name
    assert digests(run_dir) == before  # model/ and results.json byte for byte


def test_a_finished_run_is_never_deleted_and_an_incomplete_one_starts_over(tmp_path):
    from types import SimpleNamespace

    from noisebench.training import checkpoints, runs
    from noisebench.training.config import TrainConfig

    run_dir = tmp_path / "runs" / "a-run"
    prepared = SimpleNamespace(config=TrainConfig(), run_dir=run_dir, model_path="m", device="cpu")
    (run_dir / "model").mkdir(parents=True)
    (run_dir / "model" / "weights.bin").write_bytes(b"weights")
    (run_dir / runs.RESULTS).write_text("{}")
    with pytest.raises(InputError, match=r"holds a finished run \(results\.json\); refusing"):
        checkpoints.open_run_dir(prepared, False, run_dir / "checkpoint" / "state.pt")
    assert (run_dir / "model" / "weights.bin").read_bytes() == b"weights"
    (run_dir / runs.RESULTS).unlink()  # an incomplete attempt: cleared, then opened
    checkpoints.open_run_dir(prepared, False, run_dir / "checkpoint" / "state.pt")
    assert sorted(p.name for p in run_dir.iterdir()) == [runs.CONFIG]


def test_a_detection_made_in_trains_folder_before_is_reused(runner, ner_dir, tiny_model, tmp_path):
    args = [*detect_args(ner_dir, tiny_model, tmp_path), "--json"]
    first = json.loads(runner.invoke(app, args).stdout)
    own = Path(first["run"])
    legacy = own.parent.parent / own.name  # where detect trained before it had folders
    own.rename(legacy)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    reused = json.loads(again.stdout)
    assert reused["run"] == str(legacy) and reused["cost"]["trainings"] == 0
    assert reused["levels"] == first["levels"] and not own.exists()


def test_the_model_based_noise_estimate_profiles_the_given_labels_against_its_fixes():
    """One entity the model confidently retypes; ten it agrees with: of the 11 (estimated)
    true entities one was given with the wrong type, 2 of the 40 words are wrong."""
    from noisebench.detection.estimate import estimated_noise

    sentences = [("O B-PER I-PER O", "O B-LOC I-LOC O")]
    found = hand_made(sentences, one_hot(ids("O B-LOC I-LOC O"), 0.999))
    estimate = estimated_noise(found, "IOB2")
    assert estimate["word_error_rate"] == 2 / 34
    assert estimate["outcomes"] == {
        "kept": 10 / 11, "missed": 0.0, "retyped": 1 / 11, "boundary": 0.0
    }  # fmt: skip
    assert estimate["dominant_error"] == "retyped" and "model-based" in estimate["estimate"]
    assert estimated_noise(found, "none") is None  # tags without spans: no entity profile
