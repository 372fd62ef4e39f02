"""`noisebench detect`: scores on hand-made dynamics and probabilities, the rankings and
their measurement by hand, cleanlab as the reference, and the command end to end."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from noisebench.cli import app
from noisebench.detection import rankings, review
from noisebench.detection.fix import reviewed_labels
from noisebench.detection.record import DYNAMICS_FILE, DynamicsRecorder, load_dynamics
from noisebench.detection.score import Detection, cleanlab_scores, dynamics_scores, retag_scores
from noisebench.errors import InputError

NAMES = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_the_recorder_maps_scored_positions_to_words_and_records_margins():
    recorder = DynamicsRecorder(np.array([3, 2]), epochs=2)
    # batch of sentences [1, 0]; sentence 0's third word was cut off by max_length
    labels = torch.tensor([[-100, 1, -100, 0, -100], [-100, 0, 3, -100, -100]])
    logits = torch.zeros(2, 5, 5)
    logits[0, 1] = torch.tensor([0.0, 2.0, 0.0, 0.0, 0.0])  # word 3: given B-PER, agreed
    logits[0, 3] = torch.tensor([0.0, 0.0, 0.0, 3.0, 0.0])  # word 4: given O, says B-LOC
    logits[1, 1] = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0])  # word 0: O, agreed
    logits[1, 2] = torch.tensor([0.0, 1.0, 0.0, 0.5, 0.0])  # word 1: B-LOC, says B-PER
    recorder(1, np.array([1, 0]), logits, labels)
    p = torch.softmax(logits, -1)
    np.testing.assert_allclose(
        recorder.probability[0],
        [p[1, 1, 0], p[1, 2, 3], np.nan, p[0, 1, 1], p[0, 3, 0]],
        rtol=1e-6,
    )
    np.testing.assert_allclose(recorder.margin[0], [1.0, -0.5, np.nan, 2.0, -3.0], rtol=1e-6)
    assert recorder.predicted[0].tolist() == [0, 1, -1, 1, 3]
    assert np.isnan(recorder.probability[1]).all()  # epoch 2 not yet seen


def test_recording_a_step_never_waits_for_the_device():
    """On the meta device any read of a value raises: recording keeps everything there
    until the recorder is read (or ``FLUSH_EVERY`` batches pile up)."""
    recorder = DynamicsRecorder(np.array([3, 2]), epochs=1)
    labels = torch.tensor([[-100, 1, 0], [0, 3, -100]], device="meta")
    recorder(1, np.array([1, 0]), torch.zeros(2, 3, 5, device="meta"), labels)
    assert len(recorder.pending) == 1
    with pytest.raises(NotImplementedError):
        recorder.probability  # noqa: B018 (the read brings the values to the host)


def test_dynamics_scores_from_hand_made_epochs():
    dynamics = {
        "probability": np.array([[0.9, 0.2, np.nan], [0.7, 0.6, np.nan]]),
        "margin": np.array([[2.0, -1.0, np.nan], [1.0, 0.5, np.nan]]),
    }
    np.testing.assert_allclose(dynamics_scores(dynamics, "aum")[:2], [-1.5, 0.25])
    np.testing.assert_allclose(dynamics_scores(dynamics, "confidence")[:2], [0.2, 0.6])
    np.testing.assert_allclose(dynamics_scores(dynamics, "variability")[:2], [0.1, 0.2])
    np.testing.assert_allclose(dynamics_scores(dynamics, "early")[:2], [0.1, 0.8])
    assert np.isnan(dynamics_scores(dynamics, "aum")[2])  # never seen: ranks last


def test_the_inference_pass_records_the_given_labels_probability_and_margin(tmp_path):
    class Made:  # what evaluate.predict returns, reduced to what the recorder reads
        probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [np.nan] * 3], dtype=np.float32)
        gold = np.array([0, 2, 1])

    recorder = DynamicsRecorder(np.array([2, 1]), epochs=2)
    recorder.record_pass(2, lambda: Made)
    np.testing.assert_allclose(recorder.eval_probability[1][:2], [0.7, 0.3], rtol=1e-6)
    margins = [np.log(0.7 / 0.2), np.log(0.3 / 0.6)]  # log p(given) - log max other
    np.testing.assert_allclose(recorder.eval_margin[1][:2], margins, rtol=1e-6)
    assert recorder.eval_predicted[1].tolist() == [0, 1, -1]  # -1: a word never seen
    assert np.isnan(recorder.eval_probability[0]).all() and recorder.pass_seconds >= 0
    recorder.save(tmp_path / "d.npz", epochs_run=2)
    stored = load_dynamics(tmp_path / "d.npz")
    np.testing.assert_array_equal(stored["eval_margin"], recorder.eval_margin)
    np.testing.assert_allclose(
        dynamics_scores(stored, "early", "eval")[:2], [np.nan, np.nan]
    )  # epoch 1 had no pass
    np.testing.assert_allclose(dynamics_scores(stored, "aum", "eval")[:2], -np.array(margins))
    plain = DynamicsRecorder(np.array([2, 1]), epochs=1)
    plain.save(tmp_path / "plain.npz", epochs_run=1)
    with pytest.raises(InputError, match="--dynamics-pass eval"):
        dynamics_scores(load_dynamics(tmp_path / "plain.npz"), "aum", "eval")


def test_retag_ranks_contradicted_words_first_by_confidence():
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.45, 0.55], [0.6, 0.4]])
    scores = retag_scores(probs, np.array([0, 0, 0, 0]))
    assert np.argsort(-scores).tolist() == [1, 2, 3, 0]
    np.testing.assert_allclose(scores, [0.1, 1.7, 1.55, 0.4])


def test_cv_scores_are_cleanlabs_own():
    from cleanlab.token_classification.filter import find_label_issues
    from cleanlab.token_classification.rank import get_label_quality_scores

    rng = np.random.default_rng(0)
    offsets = np.array([0, 4, 7, 12])
    probs = rng.dirichlet(np.ones(3), size=12)
    given = probs.argmax(1)
    given[[1, 5, 9]] = (given[[1, 5, 9]] + 1) % 3  # three words the model contradicts
    labels = [given[a:b].tolist() for a, b in itertools.pairwise(offsets)]
    pred = [probs[a:b] for a, b in itertools.pairwise(offsets)]
    for method in ("self_confidence", "normalized_margin"):
        words, sentences, flags = cleanlab_scores(probs, given, offsets, method)
        expected_sentences, expected_words = get_label_quality_scores(
            labels, pred, token_score_method=method
        )
        np.testing.assert_allclose(words, 1 - np.concatenate(expected_words))
        np.testing.assert_allclose(sentences, 1 - expected_sentences)
    expected_flags = {offsets[s] + w for s, w in find_label_issues(labels, pred)}
    assert set(np.flatnonzero(flags)) == expected_flags


def ids(labels: str) -> list[int]:
    return [NAMES.index(x) for x in labels.split()]


def test_entity_issues_are_aligned_both_ways_typed_scored_and_checked():
    #            0     1     2     3     4     5
    given = ids("B-PER I-PER O     B-LOC O     O")
    suggested = ids("B-PER I-PER O B-PER O B-LOC")
    clean = ids("B-PER I-PER O     B-LOC O     B-LOC")
    #   second sentence: a spurious entity that is truly wrong, and a boundary one
    given += ids("B-LOC O B-PER I-PER")
    suggested += ids("O O B-PER O")
    clean += ids("O O B-PER I-PER")
    offsets = np.array([0, 6, 10])
    scores = np.arange(10, dtype=float) / 10
    ranking = rankings.entity_ranking(
        scores, np.array(given), np.array(suggested), np.array(clean), offsets, NAMES
    )
    issues = list(
        zip(
            ranking.sentence.tolist(),
            ranking.start.tolist(),
            ranking.end.tolist(),
            ranking.kind,
            strict=True,
        )
    )
    assert issues == [(0, 3, 4, "retyped"), (0, 5, 6, "missed"), (1, 0, 1, "spurious"),
                      (1, 2, 4, "boundary")]  # fmt: skip
    assert ranking.truth.tolist() == [False, True, True, False]
    np.testing.assert_allclose(ranking.score, [0.3, 0.5, 0.6, 0.9])  # the worst word
    # truly wrong entities: the missed LOC (sentence 0) and the spurious LOC (sentence 1)
    assert ranking.positives == 2
    report = rankings.measure(ranking, units=4)
    # ranked by score: boundary (F), spurious (T), missed (T), retyped (F)
    assert report["ap"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert report["budgets"]["k"] == {"reviewed": 2, "precision": 0.5, "recall": 0.5}
    assert report["types"]["missed"] == {"listed": 1, "truly_wrong_share": 1.0}


def test_average_precision_and_budgets_against_scikit_learn_and_by_hand():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(1)
    truth = rng.random(200) < 0.1
    score = truth * 0.5 + rng.random(200)
    assert rankings.average_precision(score, truth) == pytest.approx(
        average_precision_score(truth, score)
    )
    assert rankings.auroc(score, truth) == pytest.approx(roc_auc_score(truth, score))
    # a detector that lists only some units: the unlisted wrong ones count as missed
    assert rankings.average_precision(score, truth, positives=2 * truth.sum()) == pytest.approx(
        average_precision_score(truth, score) / 2
    )
    ranking = rankings.word_ranking(score, np.array([0, 100, 200]), truth)
    report = rankings.measure(ranking, units=200)
    top10 = np.argsort(-score)[:10]
    assert report["budgets"]["5%"] == {
        "reviewed": 10,
        "precision": truth[top10].mean(),
        "recall": truth[top10].sum() / truth.sum(),
    }


def test_sentences_rank_by_their_worst_word_and_nan_words_rank_last():
    offsets = np.array([0, 2, 4, 5])
    scores = np.array([0.1, 0.7, np.nan, 0.2, np.nan])
    wrong = np.array([False, True, False, False, False])
    ranking = rankings.sentence_ranking(scores, offsets, wrong)
    np.testing.assert_allclose(ranking.score[:2], [0.7, 0.2])
    assert np.isnan(ranking.score[2]) and ranking.order().tolist() == [0, 1, 2]
    assert ranking.truth.tolist() == [True, False, False]


def test_reviewed_labels_apply_the_suggestions_and_stay_valid():
    given = np.array(ids("O B-PER I-PER O"))
    suggested = np.array(ids("O B-LOC I-PER O"))  # retype the first word only: invalid
    found = Detection(
        "retag", "retag", NAMES, [["a", "b", "c", "d"]], np.array([0, 4]), given, suggested,
        np.zeros(4),
    )  # fmt: skip
    flagged = np.array([False, True, False, False])
    reviewed = reviewed_labels(found, flagged, "IOB2")
    assert [NAMES[t] for t in reviewed] == ["O", "B-LOC", "B-PER", "O"]


def detect_args(data, tiny_model, tmp_path, *extra):
    return [
        "detect", str(data), "--model", str(tiny_model), "--runs-dir", str(tmp_path / "runs"),
        "--rate", "0.3", "--epochs", "2", "--lr", "5e-3", "--batch-size", "16",
        "--device", "cpu", *map(str, extra),
    ]  # fmt: skip


@pytest.mark.slow
def test_detect_trains_once_scores_against_the_truth_and_writes_a_review(
    runner, ner_dir, tiny_model, tmp_path
):
    out = tmp_path / "review"
    result = runner.invoke(app, [*detect_args(ner_dir, tiny_model, tmp_path), "-o", out, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["cost"]["trainings"] == 1 and document["detector"] == "dynamics"
    for level in ("word", "entity", "sentence"):
        scores = document["levels"][level]
        assert 0 <= scores["ap"] <= 1 and scores["truly_wrong"] > 0
    assert document["levels"]["word"]["units"] == sum(
        len(s.split("\n")) for s in (ner_dir / "train.txt").read_text().strip().split("\n\n")
    )
    rows = [json.loads(line) for line in (out / "issues.jsonl").read_text().splitlines()]
    import pyarrow.parquet as pq

    assert pq.read_table(out / "issues.parquet").to_pylist() == rows
    words = [r for r in rows if r["level"] == "word"]
    assert len(words) == round(0.1 * document["levels"]["word"]["units"])
    assert [r["rank"] for r in words] == list(range(1, len(words) + 1))
    assert all(r["truly_wrong"] is not None for r in rows)
    sentences = [r["sentence"] for r in rows if r["level"] == "sentence"]
    conll = (out / "review.conll").read_text().split("\n\n")
    assert len([block for block in conll if block.strip()]) == len(sentences)
    tasks = json.loads((out / "labelstudio.json").read_text())
    assert [t["data"]["sentence"] for t in tasks] == sentences
    for task in tasks:
        for entity in task["predictions"][0]["result"]:
            value = entity["value"]
            assert task["data"]["text"][value["start"] : value["end"]] == value["text"]
    # reusing the run trains nothing and gives the same scores
    run_dir = document["run"]
    again = runner.invoke(
        app, ["detect", "--run", run_dir, "--runs-dir", str(tmp_path / "runs"), "--json"]
    )
    assert again.exit_code == 0, again.output
    reused = json.loads(again.stdout)
    assert reused["cost"]["trainings"] == 0 and reused["levels"] == document["levels"]
    retag = runner.invoke(app, ["detect", "--run", run_dir, "--detector", "retag", "--json"])
    assert json.loads(retag.stdout)["detector"] == "retag"


@pytest.mark.slow
def test_cross_validation_trains_k_folds_and_scores_with_cleanlab(
    runner, ner_dir, tiny_model, tmp_path
):
    args = [*detect_args(ner_dir, tiny_model, tmp_path), "--detector", "cv", "--folds", "2"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["cost"]["trainings"] == 2 and document["score"] == "self_confidence"
    assert len(list((tmp_path / "runs" / "cv").iterdir())) == 2
    again = json.loads(runner.invoke(app, [*args, "--json"]).stdout)  # folds reused
    assert again["cost"]["trainings"] == 0 and again["levels"] == document["levels"]


@pytest.mark.slow
def test_the_eval_pass_is_the_models_own_prediction_and_leaves_training_alone(
    runner, ner_dir, tiny_model, tmp_path
):
    from noisebench.training import runs

    args = detect_args(ner_dir, tiny_model, tmp_path)
    plain = json.loads(runner.invoke(app, [*args, "--dynamics-pass", "train", "--json"]).stdout)
    # a run without the pass cannot be rescored from it: one line
    refused = runner.invoke(app, ["detect", "--run", plain["run"], "--dynamics-pass", "eval"])
    assert refused.exit_code == 2
    assert "recorded the training passes only; rescore with --dynamics-pass train" in (
        refused.stderr
    )
    with_pass = runner.invoke(app, [*args, "--json"])  # eval: the default
    assert with_pass.exit_code == 0, with_pass.output
    document = json.loads(with_pass.stdout)
    assert document["cost"]["trainings"] == 1 and document["cost"]["eval_pass_seconds"] > 0
    assert document["dynamics_pass"] == "eval" and plain["dynamics_pass"] == "train"
    run_dir = Path(document["run"])
    dynamics = load_dynamics(run_dir / DYNAMICS_FILE)
    # the training passes are recorded exactly as without the extra pass (same weights)
    # trained again into a folder of its own: the training-pass run is kept as it was
    assert Path(plain["run"]).name == f"{run_dir.name}-train-pass"
    assert run_dir.parent.name == "detect" and (Path(plain["run"]) / "results.json").is_file()
    train_pass = ["detect", "--run", str(run_dir), "--dynamics-pass", "train", "--json"]
    assert json.loads(runner.invoke(app, train_pass).stdout)["levels"] == plain["levels"]
    # and a training-pass detection now reuses the run with both records
    again = json.loads(runner.invoke(app, [*args, "--dynamics-pass", "train", "--json"]).stdout)
    assert again["run"] == document["run"] and again["cost"]["trainings"] == 0
    assert again["levels"] == plain["levels"]
    # the pass after the best epoch is the best weights' prediction of the training words
    best = runs.read_json(run_dir / runs.RESULTS)["train"]["best_epoch"]
    made = runs.read_predictions(run_dir / "predictions-train.parquet")
    rows = np.arange(len(made.gold))
    np.testing.assert_allclose(
        dynamics["eval_probability"][best - 1], made.probs[rows, made.gold], rtol=1e-5
    )
    assert (dynamics["eval_predicted"][best - 1] == made.predicted).all()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--detector", "oracle"], "--detector 'oracle': choose one of dynamics, retag, cv"),
        (["--score", "self_confidence"], "--score self_confidence: the dynamics detector"),
        (["--budget", "0"], "--budget 0: give a share in (0, 1]"),
        (["--budget", "lots"], "--budget 'lots': give a share such as 5% or 0.05"),
        (["--detector", "cv", "--folds", "1"], "--folds 1: cross-validation needs at least 2"),
        (["--dynamics-pass", "dropout"], "--dynamics-pass dropout: choose one of train, eval"),
        (["--method", "mask-some"], "--method 'mask-some': choose one of none, mask-missing"),
        (["--method", "oracle-clean"], "--method oracle-clean: an oracle trains on the clean"),
    ],
)
def test_bad_detect_options_exit_2_and_write_nothing(
    runner, ner_dir, tiny_model, tmp_path, extra, message
):
    out = tmp_path / "review"
    result = runner.invoke(app, [*detect_args(ner_dir, tiny_model, tmp_path), *extra, "-o", out])
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_detect_trains_with_a_method_and_suggests_from_the_treated_model(
    runner, ner_dir, tiny_model, tmp_path
):
    args = [*detect_args(ner_dir, tiny_model, tmp_path), "--detector", "retag", "--json"]
    plain = json.loads(runner.invoke(app, args).stdout)
    result = runner.invoke(app, [*args, "--method", "mask-missing"])
    assert result.exit_code == 0, result.output
    treated = json.loads(result.stdout)
    assert treated["training"]["method"] == "mask-missing" and "method" not in plain["training"]
    assert treated["run"] != plain["run"] and "mask-missing" in Path(treated["run"]).name
    results = json.loads((Path(treated["run"]) / "results.json").read_text())
    masking = [epoch["masking"] for epoch in results["train"]["history"]]
    assert [m["method"] for m in masking] == ["mask-missing"] * 2
    assert treated["cost"]["trainings"] == 1


def test_run_without_recorded_dynamics_is_refused(runner, ner_dir, tiny_model, tmp_path):
    train = [
        "train", "--data", str(ner_dir), "--model", str(tiny_model), "--runs-dir",
        str(tmp_path), "--epochs", "1", "--device", "cpu", "--json",
    ]  # fmt: skip
    run_dir = json.loads(runner.invoke(app, train).stdout)["run_dir"]
    result = runner.invoke(app, ["detect", "--run", run_dir])
    assert result.exit_code == 2
    assert "no dynamics.npz and predictions-train.parquet" in result.stderr


def test_a_review_written_twice_replaces_the_first(tmp_path):
    found = Detection(
        "retag", "retag", NAMES, [["a", "b"]], np.array([0, 2]), np.array([0, 1]),
        np.array([1, 1]), np.array([0.9, 0.1]),
    )  # fmt: skip
    out = tmp_path / "review"
    review.write(out, found, 0.5, "IOB2", {"levels": None})
    (out / "stale.txt").write_text("from before")
    rows = review.write(out, found, 0.5, "IOB2", {"levels": None})
    assert not (out / "stale.txt").exists() and rows[0]["suggested"] == ["B-PER"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["review"]


def test_collate_leaves_ignored_words_out_of_the_loss():
    from noisebench.training.batches import Encoded, collate

    encoded = Encoded(
        input_ids=[np.array([101, 7, 8, 9, 102])],
        word_starts=[np.array([1, 2, 3])],
        tags=[np.array([1, 0, 3])],
        ignore=[np.array([False, True, False])],
    )
    assert collate(encoded, np.array([0]), 0)["labels"].tolist() == [[-100, 1, -100, 3, -100]]


@pytest.mark.parametrize("fix", ["relabel", "mask", "drop"])
def test_each_fix_writes_a_dataset_that_trains_and_reports_the_noise_left(
    runner, ner_dir, tiny_model, tmp_path, fix
):
    from noisebench.data import loading as data

    out = tmp_path / "fixed"
    args = [*detect_args(ner_dir, tiny_model, tmp_path), "--fix", fix, "--budget", "5%", "-o", out]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    report = document["fix"]
    before, after = report["noise_before"], report["noise_after"]
    assert before["token_error_rate"] > 0 and 0 <= after["token_error_rate"] <= 1
    fixed = data.load(str(out))
    assert (
        set(fixed) == {"train", "validation", "test"}
        and "clean_tags" in fixed["train"].column_names
    )
    words = document["levels"]["word"]["units"]
    rows = [json.loads(line) for line in (out / "issues.jsonl").read_text().splitlines()]
    if fix == "drop":
        assert len(fixed["train"]) == 160 - round(0.05 * 160) == 160 - report["dropped_sentences"]
    elif fix == "mask":
        assert report["masked_words"] == round(0.05 * words)
        ignored = np.concatenate([np.array(x) for x in fixed["train"]["ignore"]])
        assert ignored.sum() == report["masked_words"] == after["ignored_words"]
        # what it leaves in training is scored over the words that count
        tags, _ = data.flat_tags(fixed["train"])
        clean, _ = data.flat_tags(fixed["train"], "clean_tags")
        assert after["token_error_rate_counted"] == pytest.approx((tags != clean)[~ignored].mean())
        trained = runner.invoke(
            app,
            ["train", "--data", str(out), "--model", str(tiny_model), "--epochs", "1",
             "--device", "cpu", "--runs-dir", str(tmp_path / "again"), "--json"],
        )  # fmt: skip
        assert trained.exit_code == 0, trained.output
        results = json.loads(trained.stdout)
        assert results["train"]["ignored_words"] == report["masked_words"]
        assert any("left out of training" in note for note in results["notes"])
    else:
        # relabelled: at most the budget, where the model is confident, valid IOB2
        from noisebench.data.schemes import decode_spans, encode_spans
        from noisebench.training import runs

        tags, offsets = data.flat_tags(fixed["train"])
        given = runs.read_predictions(Path(document["run"]) / "predictions-train.parquet").gold
        assert (tags != given).sum() == report["relabelled_words"] > 0
        assert report["relabelled_words"] <= report["budget_words"] == round(0.05 * words)
        assert report["confident_words"] <= report["contradicted_words"]
        names = data.label_names(fixed["train"])
        for a, b in itertools.pairwise(offsets):
            labels = [names[t] for t in tags[a:b]]
            assert encode_spans(decode_spans(labels), b - a, "IOB2") == labels
    assert any(r["level"] == "word" for r in rows)


def test_fix_needs_an_output_folder_and_a_known_kind(runner, ner_dir, tiny_model, tmp_path):
    result = runner.invoke(app, [*detect_args(ner_dir, tiny_model, tmp_path), "--fix", "mask"])
    assert (
        result.exit_code == 2 and "--fix writes a dataset: give the folder with -o" in result.stderr
    )
    result = runner.invoke(
        app, [*detect_args(ner_dir, tiny_model, tmp_path), "--fix", "erase", "-o", tmp_path / "o"]
    )
    assert (
        result.exit_code == 2 and "--fix erase: choose one of relabel, mask, drop" in result.stderr
    )
    assert not (tmp_path / "runs").exists() and not (tmp_path / "o").exists()


def hand_made_detection(detector: str, score_name: str, noise: float, seed: int):
    """200 sentences of 5 words, 10% truly wrong; scores = truth + noise (seeded)."""
    rng = np.random.default_rng(seed)
    offsets = np.arange(0, 1001, 5)
    given = np.random.default_rng(98).integers(0, 3, 1000)  # the same data for both
    clean = given.copy()
    wrong = np.random.default_rng(99).random(1000) < 0.1
    clean[wrong] = (given[wrong] + 1) % 3
    scores = wrong + noise * rng.standard_normal(1000)
    tokens = [["w"] * 5 for _ in range(200)]
    return Detection(
        detector, score_name, ["O", "B-PER", "B-LOC"], tokens, offsets, given, clean, scores,
        clean, cost={"trainings": 1, "seconds": 2.0},
    )  # fmt: skip


def test_leaderboard_shows_detectors_against_cleanlabs_default_paired(runner, tmp_path):
    from sklearn.metrics import average_precision_score

    from noisebench.detection import detections

    made = {
        "dyn": hand_made_detection("dynamics", "aum", noise=0.3, seed=1),
        "cv": hand_made_detection("cv", "self_confidence", noise=0.6, seed=2),
    }
    for name, found in made.items():
        document = {
            "dataset": "toy", "detector": found.detector, "score": found.score_name,
            "folds": 5 if name == "cv" else None, "cost": found.cost, "levels": found.report(),
        }  # fmt: skip
        review.write(tmp_path / name, found, 0.1, "IOB2", document)
    result = runner.invoke(app, ["leaderboard", str(tmp_path), "--json", "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    rows = {(r["detector"], r["level"]): r for r in json.loads(result.stdout)["detect"]}
    assert set(rows) == {
        (d, level) for d in ("dynamics (aum)", "cv k=5 (self_confidence)")
        for level in ("word", "entity", "sentence")
    }  # fmt: skip
    word = rows[("dynamics (aum)", "word")]
    truth = made["dyn"].wrong
    ap = {n: average_precision_score(truth, f.word_scores) for n, f in made.items()}
    assert word["ap"] == pytest.approx(ap["dyn"])
    versus = word["vs_cleanlab"]
    assert versus["difference"] == pytest.approx(ap["dyn"] - ap["cv"])
    assert versus["ci95"][0] < versus["difference"] < versus["ci95"][1] and versus["significant"]
    assert rows[("cv k=5 (self_confidence)", "word")]["vs_cleanlab"] is None
    assert rows[("dynamics (aum)", "entity")]["vs_cleanlab"] is None
    # against the best on the same words: the best (dyn) faces the runner-up (cv)
    best = rows[("dynamics (aum)", "word")]["vs_best"]
    assert best["best"] and best["against"] == "cv k=5 (self_confidence)"
    assert best["difference"] == pytest.approx(versus["difference"])
    behind = rows[("cv k=5 (self_confidence)", "sentence")]["vs_best"]
    assert not behind["best"] and behind["against"] == "dynamics (aum)"
    assert behind["difference"] == pytest.approx(
        -rows[("dynamics (aum)", "sentence")]["vs_cleanlab"]["difference"]
    )
    assert rows[("dynamics (aum)", "entity")]["vs_best"] is None
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "detection.json").write_text("{not json")
    shown = runner.invoke(app, ["leaderboard", str(tmp_path), "--bootstrap", "50"])
    text = shown.stdout
    assert "detect: finding the wrong labels" in text and "toy" in text
    assert (
        f"note: skipped an unreadable detection: {broken / 'detection.json'}: JSONDecodeError"
        in (shown.stderr.replace("\n", ""))
    )
    order = np.argsort(-made["dyn"].word_scores)
    assert detections._weighted_ap(order, truth, np.ones(1000)) == pytest.approx(ap["dyn"])


def test_tags_without_spans_rank_words_and_sentences_only_said_once(runner, tiny_model, tmp_path):
    pos = tmp_path / "pos.txt"
    pos.write_text("john NN\nate VB\n\nmary NN\nwent VB\n\nacme NN\nate VB\n" * 4)
    args = [
        "detect", str(pos), "--model", str(tiny_model), "--runs-dir", str(tmp_path / "runs"),
        "--epochs", "1", "--device", "cpu", "--rate", "0.3",
    ]  # fmt: skip
    result = runner.invoke(app, [*args, "--json", "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("no entity spans") == 1
    assert "word and sentence levels only" in result.stderr
    document = json.loads(result.stdout)
    assert set(document["levels"]) == {"word", "sentence"}
    rows = [json.loads(r) for r in (tmp_path / "o" / "issues.jsonl").read_text().splitlines()]
    assert {r["level"] for r in rows} <= {"word", "sentence"}


def test_an_existing_output_folder_needs_force(runner, ner_dir, tiny_model, tmp_path):
    out = tmp_path / "review"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    result = runner.invoke(app, [*detect_args(ner_dir, tiny_model, tmp_path), "-o", out])
    assert result.exit_code == 2
    assert f"-o {out}: exists; give --force to replace it" in result.stderr
    assert (out / "mine.txt").read_text() == "keep me" and not (tmp_path / "runs").exists()
    forced = runner.invoke(app, [*detect_args(ner_dir, tiny_model, tmp_path), "-o", out, "--force"])
    assert forced.exit_code == 0, forced.output
    assert (out / "detection.json").is_file() and not (out / "mine.txt").exists()


def test_a_treated_detection_is_named_by_its_method_and_is_never_the_baseline():
    from noisebench.detection import detections

    plain = {"detector": "retag", "score": "retag", "training": {"loss": "ce"}}
    treated = {**plain, "training": {"loss": "ce", "method": "mask-missing"}}
    cv = {"detector": "cv", "score": "self_confidence", "folds": 5, "training": {}}
    cv_treated = {**cv, "training": {"method": "mask-missing"}}
    assert detections.name_of(plain) == "retag (retag)"
    assert detections.name_of(treated) == "retag (retag) +mask-missing"
    assert detections.name_of(cv_treated) == "cv k=5 (self_confidence) +mask-missing"
    assert detections.is_reference(cv) and not detections.is_reference(cv_treated)
    assert not detections.is_reference(treated)
