"""Reviewed sentences decide (issue 28, item 3, first part): a run scores each split's
reviewed sentences apart, against their reviewed labels; ``--validation-labels reviewed``
chooses the best epoch on the reviewed validation sentences; leaderboards show the
reviewed scores beside the scores against the given labels."""

import json
from pathlib import Path

import numpy as np
import pytest

from noisebench.cli import app
from noisebench.scoring import metrics
from noisebench.training import runs

LABELS = ["O", "B-PER", "I-PER", "B-LOC"]


def predictions_with_review() -> runs.Predictions:
    """Three sentences; the second and third reviewed, the third's reviewed labels differ
    from the given ones (the given PER entity is really a LOC)."""
    gold = np.array([1, 2, 0, 0, 1, 0, 3, 0])
    reviewed_gold = np.array([1, 2, 0, 0, 1, 0, 3, 0])
    reviewed_gold[4] = 3  # "the given B-PER of sentence 2 is a LOC"
    predicted = np.array([1, 2, 0, 0, 3, 0, 3, 0])
    probs = np.full((8, 4), 0.1, dtype=np.float32)
    probs[np.arange(8), predicted] = 0.7
    return runs.Predictions(
        labels=LABELS,
        tokens=[["a", "b", "c"], ["d", "e", "f"], ["g", "h"]],
        gold=gold,
        probs=probs,
        offsets=np.array([0, 3, 6, 8]),
        reviewed=np.array([False, True, True]),
        reviewed_gold=reviewed_gold,
    )


def test_the_reviewed_part_is_its_sentences_against_their_reviewed_labels(tmp_path):
    made = predictions_with_review()
    part = made.reviewed_part()
    assert part.tokens == [["d", "e", "f"], ["g", "h"]]
    assert part.gold.tolist() == [0, 3, 0, 3, 0] and part.offsets.tolist() == [0, 3, 5]
    # by hand: the model's two LOCs are both right against the reviewed labels (F1 1.0),
    # while against the given labels one of them is a PER it missed (F1 2/3 there)
    assert metrics.score_split(part, "IOB2", False, 10)["f1"] == 1.0
    given = runs.Predictions(LABELS, made.tokens[1:], made.gold[3:], made.probs[3:],
                             np.array([0, 3, 5]))  # fmt: skip
    assert abs(metrics.score_split(given, "IOB2", False, 10)["f1"] - 0.5) < 1e-9
    # the columns survive the predictions file
    runs.write_predictions(tmp_path / "p.parquet", made)
    back = runs.read_predictions(tmp_path / "p.parquet")
    assert back.reviewed.tolist() == [False, True, True]
    assert back.reviewed_gold.tolist() == made.reviewed_gold.tolist()
    assert (
        runs.Predictions(LABELS, [], np.zeros(0), np.zeros((0, 4)), np.array([0])).reviewed_part()
        is None
    )


def test_a_metric_on_the_reviewed_sentences_reads_their_part():
    scores = {"f1": 0.5, "entity_ece": 0.2, "reviewed": {"f1": 0.8, "entity_ece": 0.1}}
    assert metrics.metric_value(scores, "reviewed_f1") == 0.8
    assert metrics.metric_value(scores, "f1") == 0.5
    assert metrics.HIGHER_IS_BETTER["reviewed_f1"] and metrics.scale("reviewed_f1") == 100.0
    assert not metrics.HIGHER_IS_BETTER["reviewed_entity_ece"]


def run(runner, *args, code=0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def review_per_as_loc(runner, data, split: str, n: int, review: Path, out: Path) -> None:
    """Sample ``n`` sentences of ``split``, have the reviewer relabel every B-PER as B-LOC
    in the CoNLL file, and merge the review into ``out``."""
    run(runner, "review", "sample", data, "--split", split, "-n", n, "-o", review)
    conll = review / "review.conll"
    lines = conll.read_text().splitlines()
    changed = [
        "\t".join([*line.split("\t")[:2], "B-LOC"]) if line.endswith("\tB-PER") else line
        for line in lines
    ]
    changed = [line.replace(" reviewed: no", " reviewed: yes") for line in changed]
    conll.write_text("\n".join(changed) + "\n")
    run(runner, "review", "merge", data, conll, "-o", out)


def reviewed_copy(runner, data: Path, tmp_path: Path) -> Path:
    """``data`` with 10 validation and 10 test sentences reviewed, the reviewer changing
    every sentence's first entity label to B-LOC where it was B-PER."""
    merged = data
    for split in ("validation", "test"):
        out = tmp_path / f"merged-{split}"
        review_per_as_loc(runner, merged, split, 10, tmp_path / f"review-{split}", out)
        merged = out
    return merged


@pytest.mark.slow
def test_reviewed_sentences_choose_the_epoch_and_are_scored_apart(
    runner, ner_dir, tiny_model, tmp_path
):
    data = reviewed_copy(runner, ner_dir, tmp_path)
    common = ["--data", data, "--model", tiny_model, "--runs-dir", tmp_path / "runs",
              "--epochs", 2, "--lr", "5e-3", "--batch-size", 16, "--device", "cpu",
              "--json"]  # fmt: skip
    result = run(runner, "train", *common, "--validation-labels", "reviewed")
    assert "best epoch is chosen on 10 reviewed validation sentences" in result.stderr
    document = json.loads(result.stdout)
    assert document["train"]["validation_labels"] == "reviewed"
    # scored against the reviewed labels, not "clean" (they sit in clean_tags too)
    assert document["train"]["scored_labels"]["validation"] == "reviewed"
    assert document["splits"]["validation"]["n_sentences"] == 10  # the reviewed ones only
    test = document["splits"]["test"]
    assert test["reviewed"]["n_sentences"] == 10 and test["n_sentences"] > 10
    # the reviewed part is the run's own predictions scored against the reviewed labels
    saved = runs.read_predictions(Path(document["run_dir"]) / "predictions-test.parquet")
    split_size = len(saved.offsets) - 1  # the reviewed sentences estimate the split's F1
    assert test["reviewed"] == metrics.score_split(
        saved.reviewed_part(), "IOB2", False, 10, population=split_size
    )
    # data without reviewed validation sentences is refused in one line
    refused = run(runner, "train", *common[:-1], "--data", ner_dir, "--validation-labels",
                  "reviewed", code=2)  # fmt: skip
    assert "has no validation sentences reviewed from a random sample" in refused.stderr
    # a run choosing on the given labels is another run; the leaderboard shows both, with
    # the reviewed scores in tables of their own
    run(runner, "train", *common)
    board = json.loads(run(runner, "leaderboard", tmp_path / "runs", "--json").stdout)
    reviewed_f1 = [e for e in board["entries"] if e["metric"] == "reviewed_f1"]
    assert len(reviewed_f1) == 2
    assert {e["settings"].get("validation_labels") for e in reviewed_f1} == {"noisy", "reviewed"}
    verdict = next(s for s in board["verdict"]["settings"] if s["reviewed"])
    assert verdict["reviewed"]["sentences"] == 10
    assert verdict["text"][1].startswith("On 10 reviewed test sentences (their reviewed labels)")
    run(runner, "leaderboard", tmp_path / "runs", "--out", tmp_path / "lb")
    written = "\n".join(p.read_text() for p in (tmp_path / "lb").glob("*.md"))
    assert "### f1 on the reviewed sentences (percent, higher is better)" in written


def write_reviewed_run(
    folder: Path,
    method: str,
    predicted_type: str,
    data="toyner",
    review: dict | None = None,
    located: tuple[int, ...] = (),
) -> Path:
    """A complete run on 40 one-entity test sentences whose given labels say PER and whose
    first 30, reviewed, are really LOC; the model predicts ``predicted_type`` everywhere."""
    from noisebench.training.config import TrainConfig

    config = TrainConfig(data=str(data), method=method)
    run_dir = folder / runs.run_name(config.identity(), "toyner")
    run_dir.mkdir(parents=True)
    sentences = 40
    gold = np.tile([LABELS.index("B-PER"), 0], sentences)
    reviewed_gold = gold.copy()
    reviewed_gold[0 : 2 * 30 : 2] = LABELS.index("B-LOC")
    predicted = np.tile([LABELS.index(predicted_type), 0], sentences)
    predicted[[2 * s for s in located]] = LABELS.index("B-LOC")  # right there, by the review
    probs = np.full((2 * sentences, len(LABELS)), 0.05, dtype=np.float32)
    probs[np.arange(2 * sentences), predicted] = 0.85
    made = runs.Predictions(
        LABELS, [["w", "x"]] * sentences, gold, probs, np.arange(0, 2 * sentences + 1, 2),
        reviewed=np.arange(sentences) < 30, reviewed_gold=reviewed_gold, review=review,
    )  # fmt: skip
    return finish_run(run_dir, made, config)


def finish_run(run_dir: Path, made: runs.Predictions, config) -> Path:
    """``run_dir`` a complete run: ``made`` as its validation and test predictions, scored
    (results.json) and its config written."""
    from noisebench.training.evaluate import write_results

    for split in ("validation", "test"):
        runs.write_predictions(run_dir / f"predictions-{split}.parquet", made)
    write_results(run_dir, LABELS, "IOB2", config, {"validation_labels": "noisy"}, [])
    (run_dir / runs.CONFIG).write_text(json.dumps({"config": config.identity()}))
    return run_dir


def test_the_verdict_ranks_by_the_reviewed_sentences_and_says_when_the_given_labels_differ(
    tmp_path,
):
    from noisebench.studies import board as boards
    from noisebench.studies.leaderboard.records import collect

    write_reviewed_run(tmp_path, "none", "B-PER")  # right by the given labels
    write_reviewed_run(tmp_path, "mask-missing", "B-LOC")  # right by the reviewed ones
    collected = collect([tmp_path], "test", ["f1"])
    setting = boards.verdict_of(collected, "test", 200)["settings"][0]
    reviewed = setting["reviewed"]
    assert reviewed["sentences"] == 30 and reviewed["best_f1"] == "ce +mask-missing"
    assert setting["best_f1"] == "ce" and reviewed["given_labels_differ"]
    # by hand: on the reviewed sentences CE finds no LOC (F1 0), mask-missing all 30 (F1 1)
    assert reviewed["f1"] == {"ce": 0.0, "ce +mask-missing": 1.0}
    entry = reviewed["vs_ce"]["ce +mask-missing"]
    assert entry["difference"] == 1.0 and entry["significant"]
    assert entry["sentences_needed"] is None
    text = setting["text"]
    assert text[1] == (
        "On 30 reviewed test sentences (their reviewed labels): best is ce +mask-missing"
        " (100.0), +100.00 [+100.00, +100.00] points over CE: significant."
    ), text
    assert text[2].startswith("The given labels rank otherwise: on them the best is ce;")
    assert reviewed["drawn"] is None  # no review.json beside "toyner": said, not assumed
    assert text[3].startswith("How the reviewed test sentences were drawn is not recorded")
    # the F1 line after the reviewed ones is against the test labels as given
    assert text[4].startswith("F1 against the test labels as given: CE is best"), text
    # every method's reviewed difference to CE, not only the best's: CE best on them
    write_reviewed_run(tmp_path, "mask-entity", "O")  # finds nothing: F1 0 on them too
    setting = boards.verdict_of(collect([tmp_path], "test", ["f1"]), "test", 200)["settings"][0]
    assert "Against CE on them (points, paired 95% interval): ce +mask-entity +0.00" in " ".join(
        setting["text"]
    )


def test_where_ce_is_best_on_the_reviewed_sentences_every_method_has_its_interval(tmp_path):
    """The issue's case: CE best on the reviewed sentences, a method best on the given test
    labels. The F1 line says it is against the labels as given, and every method's reviewed
    difference to CE comes with its paired interval, not only where the best is not CE."""
    from noisebench.studies import board as boards
    from noisebench.studies.leaderboard.records import collect

    write_reviewed_run(tmp_path, "none", "B-LOC")  # right by the reviewed labels
    write_reviewed_run(tmp_path, "mask-missing", "B-PER")  # right by the given ones
    write_reviewed_run(tmp_path, "mask-entity", "O")  # finds nothing
    setting = boards.verdict_of(collect([tmp_path], "test", ["f1"]), "test", 200)["settings"][0]
    text = setting["text"]
    assert text[1] == "On 30 reviewed test sentences (their reviewed labels): best is ce (100.0)."
    # by hand: both find none of the 30 reviewed LOC entities, CE all of them: -100 points
    assert text[2] == (
        "Against CE on them (points, paired 95% interval): ce +mask-entity -100.00 [-100.00,"
        " -100.00] (significant); ce +mask-missing -100.00 [-100.00, -100.00] (significant)."
    ), text
    given = next(line for line in text if "test labels as given" in line)
    assert given.startswith("F1 against the test labels as given: best is ce +mask-missing")


def test_a_verdict_on_sentences_not_drawn_at_random_says_so(runner, ner_dir, tmp_path):
    """review merge records how each review's sentences were drawn; where the reviewed
    test sentences were not drawn at random (a focused or detect's sample) the verdict
    says their F1 is not the split's instead of asking to trust them."""
    from noisebench.data.review.history import how_drawn
    from noisebench.studies import board as boards
    from noisebench.studies.leaderboard.records import collect

    merged = reviewed_copy(runner, ner_dir, tmp_path)  # random samples of validation and test
    reviews = json.loads((merged / "review.json").read_text())["reviews"]
    for review in reviews:  # each names the truth it left, as runs scored on it record
        assert len(review.pop("review")) == 64
    assert reviews == [{"split": "validation", "kind": "sample", "sentences": 10},
                       {"split": "test", "kind": "sample", "sentences": 10}]  # fmt: skip
    assert how_drawn(merged, "test") == "random" and how_drawn(ner_dir, "test") is None
    focused = tmp_path / "focused"
    focused.mkdir()
    (focused / "review.json").write_text(json.dumps({"reviews": [
        {"split": "test", "kind": "compare", "sentences": 30}]}))  # fmt: skip
    assert how_drawn(focused, "test") == "chosen" and how_drawn(focused, "validation") is None
    runs_dir = tmp_path / "runs"
    write_reviewed_run(runs_dir, "none", "B-PER", data=focused)
    write_reviewed_run(runs_dir, "mask-missing", "B-LOC", data=focused)
    setting = boards.verdict_of(collect([runs_dir], "test", ["f1"]), "test", 200)["settings"][0]
    assert setting["reviewed"]["drawn"] == "chosen"
    assert setting["text"][2].startswith(
        "These reviewed test sentences were not drawn at random (review sample --compare)"
    )
    assert not any("trust the reviewed sentences" in line for line in setting["text"])


def test_a_profile_of_reviewed_data_is_learned_from_the_reviewed_sentences(
    runner, ner_dir, tmp_path
):
    """The reviewer relabelled every PER as LOC: against the reviewed labels, those gold
    LOC entities were given as PER (retyped); every other entity was kept."""
    from noisebench.data import loading
    from noisebench.data.schemes import decode_spans

    data = reviewed_copy(runner, ner_dir, tmp_path)
    document = json.loads(
        run(runner, "profile", data, "-o", tmp_path / "own.json", "--json").stdout
    )
    merged = loading.load(data)
    retyped = entities = sentences = 0
    for split in ("validation", "test"):
        names = loading.label_names(merged[split])
        for row in merged[split]:
            if row["reviewed"]:
                sentences += 1
                given = decode_spans([names[t] for t in row["tags"]])
                entities += len(given)
                retyped += sum(span[2] == "PER" for span in given)
    assert document["sentences"] == sentences == 20 and document["entities"] == entities
    outcomes = document["summary"]["outcomes"]
    assert outcomes["retyped"] == retyped / entities and outcomes["kept"] == 1 - retyped / entities
    assert document["source"]["reviewed_sentences"] == 20
    low, high = document["intervals"]["outcomes"]["retyped"]
    assert low <= retyped / entities <= high and document["intervals"]["sentences"] == 20
    shown = run(runner, "profile", data).stdout
    assert "On 20 reviewed sentences, 95% bootstrap intervals" in shown
    # the profile is a profile: corrupt takes it
    run(runner, "corrupt", ner_dir, "--profile", tmp_path / "own.json", "-o", tmp_path / "c")


@pytest.mark.slow
def test_detection_is_scored_on_the_reviewed_training_sentences(
    runner, ner_dir, tiny_model, tmp_path
):
    """Without clean labels, detect scores its ranking against the reviewed training
    sentences: their words whose given label the reviewer changed are the truly wrong."""
    from noisebench.data import loading

    data = tmp_path / "reviewed"
    review_per_as_loc(runner, ner_dir, "train", 20, tmp_path / "review", data)
    train = loading.load(data)["train"]
    wrong = sum(
        a != b
        for row in train
        if row["reviewed"]
        for a, b in zip(row["tags"], row["reviewed_tags"], strict=True)
    )
    assert wrong > 0
    settings = ["--model", tiny_model, "--runs-dir", tmp_path / "runs", "--epochs", 2,
                "--lr", "5e-3", "--batch-size", 16, "--device", "cpu"]  # fmt: skip
    document = json.loads(run(runner, "detect", data, *settings, "--json").stdout)
    assert document["levels"] is None  # no clean labels for the whole split
    reviewed = document["reviewed"]
    assert reviewed["sentences"] == 20
    assert reviewed["levels"]["word"]["truly_wrong"] == wrong
    shown = run(runner, "detect", data, *settings).stdout
    assert "Against the reviewed labels, on 20 reviewed sentences" in shown


def test_the_training_labels_noise_is_measured_on_the_reviewed_sentences():
    """No clean labels: train.label_noise of a run is measured on the reviewed sentences."""
    import pyarrow as pa

    from noisebench.data import loading
    from noisebench.data.noise import label_noise

    names = ["O", "B-PER", "B-LOC"]
    tokens = pa.array([["a", "b"], ["c", "d"], ["e", "f"]], type=pa.list_(pa.string()))
    tags = pa.array([[1, 0], [1, 0], [2, 0]], type=pa.list_(pa.int64()))
    reviewed_tags = pa.array([[2, 0], [1, 0], [2, 0]], type=pa.list_(pa.int64()))
    split = loading.make_split(
        tokens, tags, names, reviewed=pa.array([True, True, False]), reviewed_tags=reviewed_tags
    )
    noise = label_noise(split, "IOB2")
    # on the two reviewed sentences: 1 of 4 words changed; entities: 1 of 2 kept (F1 1/2)
    assert noise == {"token_error_rate": 0.25, "entity_noise_level": 0.5, "reviewed_sentences": 2}
    unreviewed = loading.make_split(tokens, tags, names)
    assert label_noise(unreviewed, "IOB2") is None


def test_review_edge_cases_from_the_maintainers_read(tmp_path):
    """A few reviewed sentences do not decide which labels chose the epoch; one reviewed
    unit has no known spread; a bootstrap replicate without entities has no rates; runs
    reviewed on other sentences are not ranked together."""
    import pyarrow as pa

    from noisebench.data import loading, profiles
    from noisebench.detection.fix import remaining_noise
    from noisebench.scoring import design
    from noisebench.studies import board as boards
    from noisebench.studies.leaderboard.records import collect
    from noisebench.training.evaluate import selection_labels

    names = ["O", "B-PER", "B-LOC"]
    tokens = pa.array([["a", "b"], ["c", "d"]], type=pa.list_(pa.string()))
    tags = pa.array([[1, 0], [2, 0]], type=pa.list_(pa.int64()))
    split = loading.make_split(
        tokens, tags, names, reviewed=pa.array([True, False]), reviewed_tags=tags,
        ignore=pa.array([[False, True], [False, False]], type=pa.list_(pa.bool_())),
    )  # fmt: skip
    assert selection_labels(split) == "as given"
    assert remaining_noise(split, "IOB2")["reviewed_sentences"] == 1  # no crash
    one = design.estimate(  # one reviewed sentence of a stratum of 50: no decision
        design.Population(np.zeros(50, dtype=int), np.full(50, 4), np.ones((2, 50))),
        design.Reviewed(np.array([0]), np.array([[1], [0]]), np.array([1])),
    )
    assert not one.differences[(0, 1)].significant
    missed = profiles.Pair([["a"]] * 5, [["O"]] * 5, [["B-X"]] * 5)
    assert profiles.intervals(missed)["outcomes"]["missed"] == [1.0, 1.0]
    # two runs whose reviewed test sentences differ: no reviewed verdict for them
    write_reviewed_run(tmp_path, "none", "B-PER")
    other = write_reviewed_run(tmp_path, "mask-missing", "B-LOC")
    path = other / "predictions-test.parquet"
    made = runs.read_predictions(path)
    runs.write_predictions(path, replace_reviewed(made, np.arange(40) < 20))
    setting = boards.verdict_of(collect([tmp_path], "test", ["f1"]), "test", 100)["settings"][0]
    assert setting["reviewed"] is None


def replace_reviewed(made: runs.Predictions, reviewed: np.ndarray) -> runs.Predictions:
    from dataclasses import replace

    return replace(made, reviewed=reviewed)


def test_corrupting_reviewed_data_keeps_the_review_and_reports_against_it(runner, ner_dir,
                                                                         tmp_path):  # fmt: skip
    """``corrupt`` keeps the reviewed columns (the reviewed sentences stay the known truth)
    and reports the noise on them against their reviewed labels: the given noise (the
    reviewer's PER -> LOC) and the noise added."""
    from noisebench.data import loading

    data = tmp_path / "reviewed"
    review_per_as_loc(runner, ner_dir, "train", 20, tmp_path / "review", data)
    out = tmp_path / "noisy"
    shown = run(runner, "corrupt", "--data", data, "--rate", 0.3, "--seed", 1, "--out", out)
    corrupted = loading.load(out)["train"]
    assert corrupted["reviewed"] == loading.load(data)["train"]["reviewed"]
    assert corrupted["reviewed_tags"] == loading.load(data)["train"]["reviewed_tags"]
    report = json.loads((out / "noise.json").read_text())
    against = report["report"]["splits"]["train"]["reviewed"]
    # by hand: the corrupted tags against the reviewed labels, on the reviewed sentences
    pairs = [(a, b) for row in corrupted if row["reviewed"]
             for a, b in zip(row["tags"], row["reviewed_tags"], strict=True)]  # fmt: skip
    assert against["sentences"] == 20 and against["tokens"] == len(pairs)
    assert against["changed_tokens"] == sum(a != b for a, b in pairs) > 0
    assert "train, on 20 reviewed sentences against their reviewed labels" in shown.stdout
    assert "reviewed" not in report["report"]["splits"]["validation"]  # no review there


@pytest.mark.slow
def test_oracles_on_reviewed_data_know_the_reviewed_sentences(runner, ner_dir, tiny_model,
                                                              tmp_path):  # fmt: skip
    """Without clean labels, oracle-clean trains on the reviewed labels of the reviewed
    training sentences and the masking oracles leave out their wrong words; data without
    a review is refused in one line."""
    data = tmp_path / "reviewed"
    review_per_as_loc(runner, ner_dir, "train", 20, tmp_path / "review", data)
    common = ["--data", data, "--model", tiny_model, "--runs-dir", tmp_path / "runs",
              "--epochs", 1, "--lr", "5e-3", "--batch-size", 16, "--device", "cpu",
              "--json"]  # fmt: skip
    clean = run(runner, "train", *common, "--method", "oracle-clean")
    assert "oracle-clean: trained on the reviewed labels of the 20 reviewed training" in (
        clean.stderr.replace("\n", " ")
    )
    # it trained on the reviewed labels: none of its reviewed sentences is wrong any more
    noise = json.loads(clean.stdout)["train"]["label_noise"]
    assert noise["token_error_rate"] == 0.0 and noise["reviewed_sentences"] == 20
    masked = run(runner, "train", *common, "--method", "oracle-mask")
    assert "oracle-mask: knows the wrong words of the 20 reviewed training sentences" in (
        masked.stderr.replace("\n", " ")
    )
    history = json.loads(masked.stdout)["train"]["history"]
    from noisebench.data import loading

    train = loading.load(data)["train"]
    wrong = sum(a != b for row in train if row["reviewed"]
                for a, b in zip(row["tags"], row["reviewed_tags"], strict=True))  # fmt: skip
    masking = history[0]["masking"]  # exactly the reviewed wrong words left out
    assert round(masking["left_out_share"] * masking["scored_words"]) == wrong > 0
    assert masking["precision"] == masking["recall"] == 1.0
    refused = run(runner, "train", *common[:1], ner_dir, *common[2:], "--method",
                  "oracle-mask", code=2)  # fmt: skip
    assert "no reviewed training sentences" in refused.stderr


def test_masking_on_data_without_clean_labels_measures_no_precision(runner, ner_dir, tiny_model,
                                                                  tmp_path):  # fmt: skip
    """Only the oracles read a review as the truth: mask-missing on data without clean
    labels reports no precision or recall of its leaving out (nothing to measure them by)."""
    document = json.loads(run(runner, "train", "--data", ner_dir, "--model", tiny_model,
                              "--runs-dir", tmp_path / "runs", "--epochs", 1, "--lr", "5e-3",
                              "--batch-size", 16, "--device", "cpu", "--method", "mask-missing",
                              "--mask-warmup", 0, "--json").stdout)  # fmt: skip
    masking = document["train"]["history"][0]["masking"]
    assert masking["precision"] is None and masking["recall"] is None


def test_the_verdict_pairs_only_runs_scored_against_the_same_review(tmp_path):
    """Runs scored against two merges of the test sentences (the same sentences, other
    labels) are not compared on them; each run records the review it was scored against,
    and what it left out as chosen for a reason."""
    from noisebench.studies import board as boards
    from noisebench.studies.leaderboard.records import collect

    first = {"fingerprint": "a" * 64, "left_out": 4, "draws_recorded": True}
    ce = write_reviewed_run(tmp_path, "none", "B-PER", review=first)
    written = json.loads((ce / "results.json").read_text())["splits"]["test"]["review"]
    assert written == first
    masked = write_reviewed_run(tmp_path, "mask-missing", "B-LOC", review=first)
    setting = boards.verdict_of(collect([tmp_path], "test", ["f1"]), "test", 200)["settings"][0]
    assert setting["reviewed"]["sentences"] == 30 and setting["reviewed"]["drawn"] == "random"
    assert any(line.startswith("4 more reviewed test sentences were chosen for a reason")
               for line in setting["text"])  # fmt: skip
    import shutil

    shutil.rmtree(masked)
    write_reviewed_run(tmp_path, "mask-missing", "B-LOC", review={**first, "fingerprint": "b" * 64})
    setting = boards.verdict_of(collect([tmp_path], "test", ["f1"]), "test", 200)["settings"][0]
    assert setting["reviewed"]["sentences"] is None and setting["reviewed"]["reviews"] == 2
    assert setting["text"][1].startswith("The runs were scored against 2 different reviews")
    # a run scored before reviews were recorded knows none: compared with the known one
    shutil.rmtree(next(p for p in tmp_path.iterdir() if "mask-missing" in p.name))
    write_reviewed_run(tmp_path, "mask-missing", "B-LOC")
    setting = boards.verdict_of(collect([tmp_path], "test", ["f1"]), "test", 200)["settings"][0]
    assert setting["reviewed"]["sentences"] == 30


def test_sentences_needed_is_capped_at_the_split(tmp_path):
    """Two runs that differ on three reviewed sentences (mask-missing right on two, CE on
    one): unresolved, and no review of the 40 test sentences would resolve it."""
    from noisebench.studies import board as boards
    from noisebench.studies.leaderboard.records import collect

    write_reviewed_run(tmp_path, "none", "B-PER", located=(2,))
    write_reviewed_run(tmp_path, "mask-missing", "B-PER", located=(0, 1))
    setting = boards.verdict_of(collect([tmp_path], "test", ["f1"]), "test", 200)["settings"][0]
    entry = setting["reviewed"]["vs_ce"]["ce +mask-missing"]
    assert not entry["significant"] and entry["sentences_needed"] == 40
    text = " ".join(setting["text"])
    assert "is not resolved by all 40 test sentences" in text
    assert "highest is ce +mask-missing" in text and "best is ce +mask-missing" not in text
