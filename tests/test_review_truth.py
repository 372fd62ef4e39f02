"""Reviewed truth that is truth (issue 35): what a merge calls reviewed was reviewed,
re-reviews and what an export holds besides labels are reported, the data's other
columns survive, malformed exports are bad input, and the consumers that need a random
sample use the randomly drawn reviewed sentences only."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import files_under, mark_reviewed, write_tagged_splits
from test_review import refused

from noisebench.cli import app
from noisebench.data import loading

VALIDATION = [
    ("John Smith went to Paris", "B-PER I-PER O O B-LOC"),
    ("Acme Corp hired Mary", "B-ORG I-ORG O B-PER"),
    ("the city of New York", "O O O B-LOC I-LOC"),
    ("Paris is big", "B-LOC O O"),
]
TRAIN = [("Euro Cup fans met John Smith", "B-MISC I-MISC O O B-PER I-PER")]


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return write_tagged_splits(tmp_path / "data", {"train": TRAIN, "valid": VALIDATION})


def run(runner, *args, code=0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def sampled(runner, data, out: Path, n: int = 100, split: str = "validation") -> list[dict]:
    run(runner, "review", "sample", data, "--split", split, "-n", n, "-o", out)
    return json.loads((out / "labelstudio.json").read_text())


def labels_span(text: str, phrase: str, type_: str) -> dict:
    at = text.index(phrase)
    value = {"start": at, "end": at + len(phrase), "text": phrase, "labels": [type_]}
    return {"from_name": "label", "to_name": "text", "type": "labels", "value": value}


def test_a_sentence_reviewed_again_is_reported_with_its_earlier_labels(runner, data_dir, tmp_path):
    first = tmp_path / "first"
    sampled(runner, data_dir, first)
    run(runner, "review", "merge", data_dir, mark_reviewed(first / "review.conll"),
        "-o", tmp_path / "m1")  # fmt: skip
    second = tmp_path / "second"
    sampled(runner, tmp_path / "m1", second)
    conll = second / "review.conll"
    blocks = conll.read_text().strip("\n").split("\n\n")
    kept = [b.replace("reviewed: no", "reviewed: yes") for b in blocks if " 3 " in b.split("\n")[0]]
    conll.write_text(kept[0].replace("Paris\tB-LOC\tB-LOC", "Paris\tB-LOC\tB-ORG") + "\n")
    args = ["review", "merge", tmp_path / "m1", conll, "-o"]
    report = json.loads(run(runner, *args, tmp_path / "m2", "--json").stdout)
    counts = report["counts"]
    assert (counts["reviewed_before"], counts["reviewed_again"]) == (4, 1)
    assert (counts["changed_again_sentences"], counts["changed_again_words"]) == (1, 1)
    assert report["reviewed_again"] == [{"sentence": 3, "changed_words": 1,
                                         "earlier": ["B-LOC", "O", "O"],
                                         "now": ["B-ORG", "O", "O"]}]  # fmt: skip
    shown = " ".join(run(runner, *args, tmp_path / "m3").stdout.split())
    assert "1 sentences were reviewed again: their new labels replace the earlier review's" in shown
    # the two merges are two truths: each names its own review
    fingerprints = [json.loads((tmp_path / m / "review.json").read_text())["review"]
                    for m in ("m1", "m2")]  # fmt: skip
    assert fingerprints[0] != fingerprints[1]
    assert [r["review"] for r in report["reviews"]] == fingerprints


def test_answers_besides_labels_and_drafts_are_kept_and_never_read_as_labels(
    runner, data_dir, tmp_path
):
    review = tmp_path / "review"
    tasks = sampled(runner, data_dir, review)
    by_row = {t["data"]["sentence"]: t for t in tasks}
    choice = {"from_name": "quality", "to_name": "text", "type": "choices",
              "value": {"choices": ["unsure"]}}  # fmt: skip
    note = {"from_name": "note", "to_name": "text", "type": "textarea",
            "value": {"text": ["odd tokenisation"]}}  # fmt: skip
    text0 = by_row[0]["data"]["text"]
    export = [
        # labels and a note: reviewed, the note kept
        {"id": 1, "data": by_row[0]["data"], "annotations": [{"result": [
            labels_span(text0, "John Smith", "PER"), labels_span(text0, "Paris", "LOC"), note]}]},
        # a choice alone: no answer about entities, not an all-O sentence
        {"id": 2, "data": by_row[1]["data"], "annotations": [{"result": [choice]}]},
        # a draft, never submitted
        {"id": 3, "data": by_row[2]["data"], "annotations": [],
         "drafts": [{"result": [], "user": "a@example.org"}]},
        # a submitted empty answer: a reviewed sentence without entities
        {"id": 4, "data": by_row[3]["data"], "annotations": [{"result": []}]},
    ]  # fmt: skip
    path = review / "export.json"
    path.write_text(json.dumps(export))
    report = json.loads(
        run(runner, "review", "merge", data_dir, path, "-o", tmp_path / "m", "--json").stdout
    )
    assert report["counts"]["reviewed_sentences"] == 2
    assert (report["counts"]["drafts_only"], report["counts"]["other_answers"]) == (1, 2)
    why = {row["task"]: row["why"] for row in report["unreviewed"]}
    assert why == {
        "task 2": "its annotations hold only other answers (choices), no entity labels",
        "task 3": "a draft only, never submitted",
    }
    kept = {"type": "textarea", "from_name": "note", "value": {"text": ["odd tokenisation"]}}
    assert report["answers"][0] == {"task": "task 1", "sentence": 0, "answers": [kept]}
    merged = loading.load(tmp_path / "m")["validation"]
    assert loading.reviewed_sentences(merged).tolist() == [True, False, False, True]
    shown = " ".join(run(runner, "review", "merge", data_dir, path, "-o", tmp_path / "m2")
                     .stdout.split())  # fmt: skip
    assert "1 tasks have only a draft, never submitted: not reviewed" in shown
    assert "2 tasks hold answers besides entity labels" in shown


def test_an_export_nobody_submitted_is_refused(runner, data_dir, tmp_path):
    review = tmp_path / "review"
    tasks = sampled(runner, data_dir, review)
    path = review / "export.json"
    path.write_text(json.dumps([{**t, "id": n, "annotations": []} for n, t in enumerate(tasks)]))
    refused(runner, "review", "merge", data_dir, path, "-o", tmp_path / "m",
            says="no task has a submitted annotation", out=tmp_path / "m")  # fmt: skip


def test_the_datas_other_columns_survive_a_merge(runner, tmp_path):
    data = tmp_path / "records.jsonl"
    rows = [{"id": f"doc-{i}", "tokens": w.split(), "tags": t.split(), "source": i % 2}
            for i, (w, t) in enumerate(VALIDATION)]  # fmt: skip
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    review = tmp_path / "review"
    sampled(runner, data, review, n=2, split="train")
    run(runner, "review", "merge", data, mark_reviewed(review / "review.conll"),
        "-o", tmp_path / "m")  # fmt: skip
    merged = loading.load(tmp_path / "m", other_columns=True)["train"]
    assert merged["id"] == [r["id"] for r in rows] and merged["source"] == [0, 1, 0, 1]
    # and a second merge keeps them too
    again = tmp_path / "again"
    sampled(runner, tmp_path / "m", again, n=1, split="train")
    run(runner, "review", "merge", tmp_path / "m", mark_reviewed(again / "review.conll"),
        "-o", tmp_path / "m2")  # fmt: skip
    assert loading.load(tmp_path / "m2", other_columns=True)["train"]["id"] == merged["id"]


def test_merge_takes_the_data_as_data_too(runner, data_dir, tmp_path):
    review = tmp_path / "review"
    sampled(runner, data_dir, review)
    conll = mark_reviewed(review / "review.conll")
    report = json.loads(run(runner, "review", "merge", "--data", data_dir, conll, "-o",
                            tmp_path / "m", "--json").stdout)  # fmt: skip
    assert report["counts"]["reviewed_sentences"] == 4 and report["data"] == str(data_dir)
    twice = ["review", "merge", tmp_path / "other", conll, "--data", data_dir, "-o"]
    refused(runner, *twice, tmp_path / "x", says="name the dataset once", out=tmp_path / "x")


def test_an_export_nested_too_deeply_is_bad_input(runner, data_dir, tmp_path):
    review = tmp_path / "review"
    sampled(runner, data_dir, review)
    path = review / "export.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    refused(runner, "review", "merge", data_dir, path, "-o", tmp_path / "m",
            says="export.json: JSON nested too deeply to read", out=tmp_path / "m")  # fmt: skip


def test_detect_replaces_its_folder_only_once_the_new_one_is_in_place(tmp_path, monkeypatch):
    """A failure while the new folder moves into place leaves the old one as it was."""
    import os

    from noisebench.detection import review
    from noisebench.detection.score import Detection

    names = ["O", "B-PER", "I-PER"]
    found = Detection(
        "retag", "retag", names, [["Ann", "met", "Bob"]], np.array([0, 3]),
        np.array([1, 0, 1]), np.array([1, 0, 0]), np.array([0.1, 0.1, 0.9]),
    )  # fmt: skip
    out = tmp_path / "detected"
    review.write(out, found, 0.5, "IOB2", {"levels": None})
    before = {p: p.read_bytes() for p in files_under(out)}
    real = {"replace": os.replace, "rename": os.rename}

    def failing(name):
        def move(source, target, *rest):
            if Path(target) == out and str(source).endswith(".tmp"):
                raise OSError("disk gone")  # the new folder cannot move into place
            return real[name](source, target, *rest)

        return move

    for name in real:
        monkeypatch.setattr(os, name, failing(name))
    with pytest.raises(OSError, match="disk gone"):
        review.write(out, found, 0.5, "IOB2", {"levels": None, "new": True})
    assert {p: p.read_bytes() for p in files_under(out)} == before


def test_consumers_of_a_random_sample_use_the_randomly_drawn_reviewed_sentences_only(
    runner, data_dir, tmp_path
):
    """Sentences 0-1 reviewed from a random sample, 2-3 from detect's list: the profile,
    the reviewed scores, --validation-labels reviewed and detect's scores use 0-1, and
    say that 2 were left out."""
    from noisebench.detection.record import reviewed_truth
    from noisebench.training import runs
    from noisebench.training.config import TrainConfig
    from noisebench.training.evaluate import with_review
    from noisebench.training.prepare import _reviewed_validation

    merged = data_dir
    for number, (kind, keep) in enumerate([("sample", {0, 1}), ("detect", {2, 3})]):
        review = tmp_path / f"review-{number}"
        sampled(runner, merged, review)
        manifest = json.loads((review / "manifest.json").read_text())
        (review / "manifest.json").write_text(json.dumps({**manifest, "kind": kind}))
        conll = review / "review.conll"
        blocks = conll.read_text().strip("\n").split("\n\n")
        marked = [b.replace("reviewed: no", "reviewed: yes") if int(b.split()[2]) in keep else b
                  for b in blocks]  # fmt: skip
        conll.write_text("\n\n".join(marked).replace("B-PER\tB-PER", "B-PER\tB-ORG") + "\n")
        out = tmp_path / f"merged-{number}"
        run(runner, "review", "merge", merged, conll, "-o", out)
        merged = out
    split = loading.load(merged)["validation"]
    assert loading.review_draws(split).tolist() == ["sample", "sample", "detect", "detect"]
    random = loading.review_sample(split)
    assert random.sentences.tolist() == [True, True, False, False] and random.left_out == 2
    # the profile: learned from 0-1, saying so
    result = run(runner, "profile", merged, "--json")
    learned = json.loads(result.stdout)
    assert learned["source"]["reviewed_sentences"] == 2
    assert learned["source"]["reviewed_left_out"] == 2
    # a run's reviewed scores: on 0-1, recording the review and what it left out
    gold, offsets = loading.flat_tags(split)
    probs = np.eye(len(loading.label_names(split)), dtype=np.float32)[gold]
    made = runs.Predictions(loading.label_names(split), split["tokens"], gold, probs, offsets)
    scored = with_review(made, split)
    assert scored.reviewed.tolist() == [True, True, False, False]
    assert scored.review == {"fingerprint": loading.review_fingerprint(split), "left_out": 2,
                             "draws_recorded": True, "designed": False}  # fmt: skip
    # --validation-labels reviewed: the best epoch chosen on 0-1, saying so
    notes: list[str] = []
    chosen = _reviewed_validation(split, TrainConfig(data=str(merged)), notes)
    assert len(chosen) == 2 and any("2 reviewed sentences chosen for a reason" in n for n in notes)
    # detect's scores: on the random sentences only
    rows, _, left_out = reviewed_truth(split)
    assert rows.tolist() == [0, 1] and left_out == 2
    # the noise of the given labels (corrupt's report, a run's label_noise): 0-1 too
    from noisebench.data.noise import reviewed_counts

    counts = reviewed_counts(split, loading.flat_tags(split)[0], loading.label_names(split), "IOB2")
    assert counts["sentences"] == 2 and counts["left_out"] == 2


def test_a_review_merged_before_draws_were_recorded_is_not_called_chosen(
    runner, data_dir, tmp_path
):
    """Data merged by an older noisebench has `reviewed` without `review_draw`; a new
    merge marks those sentences 'unrecorded', used as a random sample and said so, not
    left out as chosen."""
    import datasets

    first = tmp_path / "first"
    sampled(runner, data_dir, first, n=2)
    run(runner, "review", "merge", data_dir, mark_reviewed(first / "review.conll"),
        "-o", tmp_path / "m1")  # fmt: skip
    merged = loading.load(tmp_path / "m1")
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    old = {name: split.remove_columns([loading.REVIEW_DRAW_COLUMN])
           if loading.REVIEW_DRAW_COLUMN in split.column_names else split
           for name, split in merged.items()}  # fmt: skip
    loading.write_parquet(datasets.DatasetDict(old), legacy)
    second = tmp_path / "second"
    sampled(runner, legacy, second, n=4, split="validation")
    conll = second / "review.conll"
    blocks = conll.read_text().strip("\n").split("\n\n")
    done = set(np.flatnonzero(loading.reviewed_sentences(merged["validation"])).tolist())
    fresh = [b.replace("reviewed: no", "reviewed: yes") for b in blocks
             if int(b.split()[2]) not in done][:1]  # fmt: skip
    conll.write_text("\n\n".join(fresh) + "\n")
    run(runner, "review", "merge", legacy, conll, "-o", tmp_path / "m2")
    split = loading.load(tmp_path / "m2")["validation"]
    draws = loading.review_draws(split)
    assert sorted(d for d in draws if d) == ["sample", "unrecorded", "unrecorded"]
    random = loading.review_sample(split)
    assert int(random.sentences.sum()) == 3 and random.left_out == 0 and not random.recorded
    assert "not recorded (merged by an older noisebench)" in random.note("profile")
