"""`noisebench review sample` and `review merge`: the files written for review, a Label
Studio export written here as Label Studio writes one (ids of its own, changed, added and
deleted spans, several reviewers, a cancelled annotation, a task without annotation),
the CoNLL path, every bad input, and the merged data read everywhere."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import files_under, mark_reviewed, write_ner_split, write_tagged_splits

from noisebench.cli import app
from noisebench.data import loading
from noisebench.data.review.sampling import Origin
from noisebench.data.schemes import decode_spans, detect_scheme, encode_spans

VALIDATION = [
    ("John Smith went to Paris", "B-PER I-PER O O B-LOC"),
    ("Acme Corp hired Mary", "B-ORG I-ORG O B-PER"),
    ("the city of New York", "O O O B-LOC I-LOC"),
    ("Berlin and Paris are cities", "B-LOC O B-LOC O O"),
    ("Mary visited Acme", "B-PER O B-ORG"),
    ("Mary and John left", "B-PER O B-PER O"),
    ("Paris is big", "B-LOC O O"),
    ("nothing to see", "O O O"),
]
TRAIN = [
    ("Euro Cup fans met John Smith", "B-MISC I-MISC O O B-PER I-PER"),
    ("Acme Corp left New York", "B-ORG I-ORG O B-LOC I-LOC"),
    ("German fans", "B-MISC O"),
]
TEST = [("Mary Jones saw Berlin", "B-PER I-PER O B-LOC")]


def in_scheme(sentences, scheme):
    """The sentences' labels written in ``scheme`` (IOBES, BILOU)."""
    return [
        (words, " ".join(encode_spans(decode_spans(tags.split()), len(tags.split()), scheme)))
        for words, tags in sentences
    ]


def write_data(folder: Path, scheme: str = "IOB2") -> Path:
    splits = {"train": TRAIN, "valid": VALIDATION, "test": TEST}
    if scheme != "IOB2":
        splits = {name: in_scheme(sentences, scheme) for name, sentences in splits.items()}
    return write_tagged_splits(folder, splits)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return write_data(tmp_path / "data")


def run(runner, *args, code=0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def sample(runner, data, out, *extra):
    result = run(runner, "review", "sample", data, "-o", out, "--json", *extra)
    return json.loads(result.stdout)


def refused(runner, *args, says: str, out: Path):
    """Exit 2 with one line on stderr that says ``says``, and nothing written."""
    before = files_under(out.parent)
    result = run(runner, *args, code=2)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert says in result.stderr, result.stderr
    assert not out.exists() and files_under(out.parent) == before
    return result.stderr


# ------------------------------------------------------------------------------ sample


def test_a_sample_is_seeded_uniform_and_without_replacement(runner, ner_dir, tmp_path):
    first = sample(runner, ner_dir, tmp_path / "a", "-n", 10, "--seed", 3)["manifest"]
    again = sample(runner, ner_dir, tmp_path / "b", "-n", 10, "--seed", 3)["manifest"]
    other = sample(runner, ner_dir, tmp_path / "c", "-n", 10, "--seed", 4)["manifest"]
    more = sample(runner, ner_dir, tmp_path / "d", "-n", 20, "--seed", 3)["manifest"]
    assert first["sentences"] == again["sentences"] != other["sentences"]
    assert len(set(first["sentences"])) == 10 and all(0 <= s < 40 for s in first["sentences"])
    expected = np.random.default_rng(3).permutation(40)[:10].tolist()
    assert first["sentences"] == expected
    assert more["sentences"][:10] == first["sentences"]  # a bigger sample extends a smaller
    assert (tmp_path / "a" / "labelstudio.json").read_bytes() == (
        tmp_path / "b" / "labelstudio.json"
    ).read_bytes()


def test_every_file_of_a_sample(runner, data_dir, tmp_path):
    out = tmp_path / "review"
    shown = sample(runner, data_dir, out, "-n", 3, "--seed", 1)
    manifest = json.loads((out / "manifest.json").read_text())
    assert shown["manifest"] == manifest
    loaded = loading.load(data_dir)
    rows = np.random.default_rng(1).permutation(len(VALIDATION))[:3].tolist()
    assert manifest == {
        "schema_version": 1,
        "kind": "sample",
        "data": str(data_dir),
        "dataset": "data",
        "fingerprint": loading.fingerprint(loaded),
        "split": "validation",
        "sentences": rows,
        "seed": 1,
        "n": 3,
        "labels": loading.label_names(loaded["validation"]),
        "scheme": "IOB2",
    }
    tasks = json.loads((out / "labelstudio.json").read_text())
    assert [t["data"]["sentence"] for t in tasks] == rows
    for task, row in zip(tasks, rows, strict=True):
        words, tags = VALIDATION[row]
        assert task["data"] == {"text": words, "sentence": row, "split": "validation"}
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == "noisebench-given-labels"
        spans = [
            (r["value"]["text"], r["value"]["labels"][0], r["from_name"], r["to_name"], r["type"])
            for r in prediction["result"]
        ]
        expected = [
            (" ".join(words.split()[s:e]), t, "label", "text", "labels")
            for s, e, t in decode_spans(tags.split())
        ]
        assert spans == expected
        for r in prediction["result"]:
            assert words[r["value"]["start"] : r["value"]["end"]] == r["value"]["text"]
    assert (out / "labelstudio-config.xml").read_text() == (
        '<View>\n  <Labels name="label" toName="text">\n    <Label value="LOC"/>\n'
        '    <Label value="MISC"/>\n    <Label value="ORG"/>\n    <Label value="PER"/>\n'
        '  </Labels>\n  <Text name="text" value="$text"/>\n</View>\n'
    )
    blocks = (out / "review.conll").read_text().strip("\n").split("\n\n")
    for block, row in zip(blocks, rows, strict=True):
        header, *lines = block.split("\n")
        words, tags = VALIDATION[row]
        assert header == f"# sentence {row} reviewed: no"
        assert lines == [f"{w}\t{t}\t{t}" for w, t in zip(words.split(), tags.split(), strict=True)]
    # the untouched CoNLL file reviews nothing: refused, nothing written
    refused(runner, "review", "merge", data_dir, out / "review.conll", "-o", tmp_path / "m",
            says="no block is marked 'reviewed: yes'", out=tmp_path / "m")  # fmt: skip
    # each block marked reviewed (the labels confirmed as given) merges back unchanged
    merged = run(
        runner, "review", "merge", data_dir, mark_reviewed(out / "review.conll"), "-o",
        tmp_path / "m", "--json",
    )  # fmt: skip
    counts = json.loads(merged.stdout)["counts"]
    assert (counts["reviewed_sentences"], counts["changed_words"]) == (3, 0)


def test_a_sample_bigger_than_the_split_lists_it_all_sorted(runner, data_dir, tmp_path):
    shown = sample(runner, data_dir, tmp_path / "all", "-n", 50, "--split", "test")
    assert shown["manifest"]["sentences"] == [0] and shown["manifest"]["n"] == 50
    assert "all of them are listed" in shown["notes"][0]
    shown = sample(runner, data_dir, tmp_path / "all8", "-n", 8)
    assert shown["manifest"]["sentences"] == list(range(8))


def test_a_bad_split_or_size_is_refused_in_one_line(runner, data_dir, tmp_path):
    out = tmp_path / "review"
    args = ["review", "sample", data_dir, "-o", out]
    refused(runner, *args, "--split", "dev2", says="--split dev2", out=out)
    refused(runner, *args, "-n", 0, says="-n 0", out=out)
    out.mkdir()
    result = run(runner, *args, code=2)
    assert "exists; give --force" in result.stderr
    run(runner, *args, "--force")
    assert (out / "manifest.json").is_file()


@pytest.mark.parametrize("scheme", ["IOBES", "BILOU"])
def test_iobes_and_bilou_data_keep_valid_labels(runner, tmp_path, scheme):
    data = write_data(tmp_path / "data", scheme)
    out = tmp_path / "review"
    sample(runner, data, out, "-n", 8)
    tasks = json.loads((out / "labelstudio.json").read_text())
    for task, (words, tags) in zip(tasks, VALIDATION, strict=True):
        result = task["predictions"][0]["result"]
        found = [(r["value"]["text"], r["value"]["labels"][0]) for r in result]
        spans = decode_spans(tags.split())
        assert found == [(" ".join(words.split()[s:e]), t) for s, e, t in spans]
    # review: "the city" becomes a two-word LOC, "Paris" (one word) an ORG
    conll = mark_reviewed(out / "review.conll").read_text()
    conll = conll.replace("the\tO\tO\ncity\tO\tO", "the\tO\tB-LOC\ncity\tO\tI-LOC")
    conll = conll.replace(
        "# sentence 6 reviewed: yes\nParis\tB-LOC\tB-LOC",
        "# sentence 6 reviewed: yes\nParis\tB-LOC\tB-ORG",
    )
    conll = conll.replace(
        "# sentence 6 reviewed: yes\nParis\tU-LOC\tU-LOC",
        "# sentence 6 reviewed: yes\nParis\tU-LOC\tB-ORG",
    )
    conll = conll.replace(
        "# sentence 6 reviewed: yes\nParis\tS-LOC\tS-LOC",
        "# sentence 6 reviewed: yes\nParis\tS-LOC\tB-ORG",
    )
    (out / "review.conll").write_text(conll)
    run(runner, "review", "merge", data, out / "review.conll", "-o", tmp_path / "merged")
    merged = loading.load(tmp_path / "merged")["validation"]
    names = loading.label_names(merged)
    reviewed, offsets = loading.flat_tags(merged, "reviewed_tags")
    assert detect_scheme(names, reviewed, offsets) == scheme
    sentences = [[names[t] for t in reviewed[a:b]] for a, b in itertools.pairwise(offsets)]
    single, begin, _, last = ("S", "B", "I", "E") if scheme == "IOBES" else "UBIL"
    assert sentences[2][:2] == [f"{begin}-LOC", f"{last}-LOC"]
    assert sentences[6][0] == f"{single}-ORG"


def test_tags_without_a_scheme_are_reviewed_word_by_word(runner, tmp_path):
    data = tmp_path / "pos.conll"
    data.write_text("the DT\ncat NN\nsat VB\n\na DT\ndog NN\n")
    out = tmp_path / "review"
    sample(runner, data, out, "--split", "train", "-n", 2)
    assert '<Label value="DT"/>' in (out / "labelstudio-config.xml").read_text()
    (task, _) = json.loads((out / "labelstudio.json").read_text())
    result = task["predictions"][0]["result"]
    assert [r["value"]["labels"] for r in result] == [["DT"], ["NN"], ["VB"]]
    conll = mark_reviewed(out / "review.conll").read_text().replace("sat\tVB\tVB", "sat\tVB\tNN")
    (out / "review.conll").write_text(conll)
    run(runner, "review", "merge", data, out / "review.conll", "-o", tmp_path / "merged")
    merged = loading.load(tmp_path / "merged")["train"]
    names = loading.label_names(merged)
    assert [names[t] for t in merged[0]["reviewed_tags"]] == ["DT", "NN", "NN"]


# --------------------------------------------------------------- a Label Studio export

INTENDED = {  # the labels each rule should give (None: not reviewed)
    "latest": {
        0: "B-PER I-PER O O B-ORG",  # retyped
        1: "B-ORG O O O",  # reviewer 2, later: shortened Acme Corp, deleted Mary
        2: "O B-MISC O B-LOC I-LOC",  # added
        3: "B-LOC O B-ORG O O",  # reviewer 3 (created last, never updated)
        5: "B-PER O O O",  # deleted
    },
    "majority": {
        0: "B-PER I-PER O O B-ORG",
        2: "O B-MISC O B-LOC I-LOC",
        3: "B-LOC O B-ORG O O",  # 3 of 3 and 2 of 3
        5: "B-PER O O O",
    },
    "annotator:1": {
        0: "B-PER I-PER O O B-ORG",
        1: "B-ORG I-ORG O B-PER",
        3: "B-LOC O B-LOC O O",
        5: "B-PER O O O",
    },
}


def span(text: str, phrase: str, type_: str, number: int = 0, start=None, end=None) -> dict:
    """A labelled span as Label Studio exports it."""
    at = text.index(phrase) if start is None else start
    end = at + len(phrase) if end is None else end
    return {
        "value": {"start": at, "end": end, "text": text[at:end], "labels": [type_]},
        "id": f"Xy{number}z",
        "from_name": "label",
        "to_name": "text",
        "type": "labels",
        "origin": "manual",
    }


def annotation(
    number, user, result, updated=None, created="2024-05-01T10:00:00.000000Z", cancelled=False
) -> dict:
    return {
        "id": number,
        "completed_by": user,
        "result": result,
        "was_cancelled": cancelled,
        "ground_truth": False,
        "created_at": created,
        "updated_at": updated,
        "draft_created_at": None,
        "lead_time": 21.5,
        "prediction": {},
        "result_count": len(result),
        "unique_id": f"u-{number}",
        "import_id": None,
        "last_action": None,
        "task": None,
        "project": 3,
        "updated_by": user if isinstance(user, int) else user["id"],
        "parent_prediction": 1,
        "parent_annotation": None,
        "last_created_by": None,
    }


def task(task_id: int, data: dict, annotations: list) -> dict:
    return {
        "id": task_id,
        "annotations": annotations,
        "file_upload": "c0ffee-labelstudio.json",
        "drafts": [],
        "predictions": [task_id * 10],
        "data": data,
        "meta": {},
        "created_at": "2024-05-01T09:00:00.000000Z",
        "updated_at": "2024-05-03T09:00:00.000000Z",
        "inner_id": task_id - 200,
        "total_annotations": len([a for a in annotations if not a["was_cancelled"]]),
        "cancelled_annotations": len([a for a in annotations if a["was_cancelled"]]),
        "total_predictions": 1,
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": 3,
        "updated_by": None,
        "comment_authors": [],
    }


def label_studio_export(tasks_file: Path) -> list[dict]:
    """The review of the whole validation split, as Label Studio exports it."""
    data = {t["data"]["sentence"]: t["data"] for t in json.loads(tasks_file.read_text())}
    text = {row: d["text"] for row, d in data.items()}
    user_three = {"id": 3, "first_name": "", "last_name": "", "email": "c@example.org"}
    return [
        task(201, data[0], [annotation(1, 1, [
            span(text[0], "John Smith", "PER", 1), span(text[0], "Paris", "ORG", 2),
        ], updated="2024-05-02T10:00:00.000000Z")]),
        task(202, data[1], [
            annotation(2, 1, [span(text[1], "Acme Corp", "ORG"), span(text[1], "Mary", "PER")],
                       updated="2024-05-02T10:00:00.000000Z"),
            annotation(3, 2, [span(text[1], "Acme", "ORG")], updated="2024-05-03T10:00:00Z"),
            annotation(4, 3, [span(text[1], "Acme", "LOC")], updated="2024-05-04T10:00:00Z",
                       cancelled=True),
        ]),
        task(203, data[2], [annotation(5, 2, [
            span(text[2], "city", "MISC"), span(text[2], "New York", "LOC"),
        ])]),
        task(204, data[3], [
            annotation(6, 1, [span(text[3], "Berlin", "LOC"), span(text[3], "Paris", "LOC")],
                       updated="2024-05-05T10:00:00+00:00"),
            annotation(7, 2, [span(text[3], "Berlin", "LOC"), span(text[3], "Paris", "ORG")],
                       updated="2024-05-04T10:00:00+00:00"),
            annotation(8, user_three, [span(text[3], "Berlin", "LOC"),
                                       span(text[3], "Paris", "ORG")],
                       created="2024-05-06T10:00:00+00:00"),
        ]),
        task(205, data[4], []),
        task(206, data[5], [annotation(9, 1, [span(text[5], "Mary", "PER")])]),
        task(207, data[6], [annotation(10, 2, [], cancelled=True)]),
    ]  # fmt: skip


@pytest.fixture
def reviewed(runner, data_dir, tmp_path) -> Path:
    """The whole validation split sampled, and reviewed in Label Studio."""
    out = tmp_path / "review"
    sample(runner, data_dir, out, "-n", 100)
    export = out / "project-3-at-2024-05-06.json"
    export.write_text(json.dumps(label_studio_export(out / "labelstudio.json"), indent=2))
    return export


def merge(runner, data, export, out, *extra) -> dict:
    result = run(runner, "review", "merge", data, export, "-o", out, "--json", *extra)
    return json.loads(result.stdout)


def reviewed_labels(folder: Path) -> tuple[dict, list]:
    """The merged validation split's reviewed sentences' labels, and the whole split."""
    split = loading.load(folder)["validation"]
    names = loading.label_names(split)
    labels = {
        row: " ".join(names[t] for t in split[row]["reviewed_tags"])
        for row in range(len(split))
        if split[row]["reviewed"]
    }
    return labels, split


@pytest.mark.parametrize("rule", list(INTENDED))
def test_merge_gives_the_intended_labels_word_by_word(runner, data_dir, reviewed, tmp_path, rule):
    out = tmp_path / "merged"
    report = merge(runner, data_dir, reviewed, out, "--resolve", rule)
    labels, split = reviewed_labels(out)
    assert labels == INTENDED[rule]
    names = loading.label_names(split)
    for row, (_, tags) in enumerate(VALIDATION):  # the given labels stay where they were
        assert " ".join(names[t] for t in split[row]["tags"]) == tags
        if row not in labels:
            assert split[row]["reviewed_tags"] == split[row]["tags"]
    assert "clean_tags" not in split.column_names
    assert report["resolve"] == rule and report["split"] == "validation"
    unreviewed = {row["task"]: row["why"] for row in report["unreviewed"]}
    expected_unreviewed = {"task 205": "no annotation", "task 207": "every annotation cancelled"}
    if rule == "annotator:1":
        expected_unreviewed["task 203"] = "no annotation by 1"
    if rule == "majority":  # two reviewers, three spans, each held by one: no answer
        expected_unreviewed["task 202"] = (
            "no majority on words 1–4: (0, 1, ORG) 1, (0, 2, ORG) 1, (3, 4, PER) 1"
        )
    assert unreviewed == expected_unreviewed


def test_merge_counts_and_agreement_by_hand(runner, data_dir, reviewed, tmp_path):
    report = merge(runner, data_dir, reviewed, tmp_path / "merged")
    assert report["counts"] == {
        "manifest_sentences": 8,
        "tasks": 7,
        "annotations": 8,
        "cancelled": 2,
        "drafts_only": 0,
        "other_answers": 0,
        "multiply_annotated": 2,
        "unreviewed_tasks": 2,
        "tied_spans": 0,
        "reviewed_sentences": 5,
        "reviewed_before": 0,
        "reviewed_in_split": 5,
        "reviewed_words": 5 + 4 + 5 + 5 + 4,
        "changed_words": 1 + 2 + 1 + 1 + 1,
        "changed_sentences": 5,
        "reviewed_again": 0,
        "changed_again_sentences": 0,
        "changed_again_words": 0,
    }
    # task 202: {Acme Corp ORG, Mary PER} against {Acme ORG}: 3 spans, none exact, the
    # two ORG overlap; task 204, three pairs of two spans each: Berlin always agrees,
    # Paris LOC/ORG/ORG agrees in one pair
    agreement = report["agreement"]
    assert (agreement["tasks"], agreement["pairs"], agreement["spans"]) == (2, 4, 15)
    assert agreement["exact"] == pytest.approx(8 / 15)
    assert agreement["overlap"] == pytest.approx(10 / 15)
    assert agreement["by_type"] == {
        "LOC": {"spans": 8, "exact": 0.75, "overlap": 0.75},
        "ORG": {"spans": 6, "exact": pytest.approx(2 / 6), "overlap": pytest.approx(4 / 6)},
        "PER": {"spans": 1, "exact": 0.0, "overlap": 0.0},
    }
    assert agreement["by_annotators"] == [
        {"annotators": ["1", "2"], "tasks": 2, "spans": 7, "exact": 2 / 7, "overlap": 4 / 7},
        {"annotators": ["1", "3"], "tasks": 1, "spans": 4, "exact": 0.5, "overlap": 0.5},
        {"annotators": ["2", "3"], "tasks": 1, "spans": 4, "exact": 1.0, "overlap": 1.0},
    ]
    written = json.loads((tmp_path / "merged" / "review.json").read_text())
    assert written["counts"] == report["counts"] and written["agreement"] == agreement
    assert written["manifest"]["kind"] == "sample" and written["reviewed_file"] == str(reviewed)


def test_majority_lists_its_ties_and_an_annotator_can_be_named_by_email(
    runner, data_dir, reviewed, tmp_path
):
    report = merge(runner, data_dir, reviewed, tmp_path / "majority", "--resolve", "majority")
    assert report["counts"]["tied_spans"] == 3 and report["counts"]["unreviewed_tasks"] == 3
    assert report["ties"] == [
        {
            "task": "task 202",
            "sentence": 1,
            "spans": [
                {"start": 0, "end": 1, "type": "ORG", "text": "Acme"},
                {"start": 0, "end": 2, "type": "ORG", "text": "Acme Corp"},
                {"start": 3, "end": 4, "type": "PER", "text": "Mary"},
            ],
        }
    ]
    by_email = tmp_path / "by-email"
    merge(runner, data_dir, reviewed, by_email, "--resolve", "annotator:c@example.org")
    assert reviewed_labels(by_email)[0] == {3: "B-LOC O B-ORG O O"}
    shown = run(
        runner,
        "review",
        "merge",
        data_dir,
        reviewed,
        "-o",
        tmp_path / "shown",
        "--resolve",
        "majority",
    )
    assert "Agreement on spans" in shown.stdout and "tie: task 202" in shown.stdout
    assert "not reviewed: task 202 (sentence 1): no majority on words 1–4" in shown.stdout
    assert "not reviewed: task 205" in shown.stdout


def test_the_merged_data_loads_and_a_second_merge_adds_to_the_first(
    runner, data_dir, reviewed, tmp_path
):
    out = tmp_path / "merged"
    merge(runner, data_dir, reviewed, out)
    loaded = loading.load(out)
    assert set(loaded) == {"train", "validation", "test"}
    assert loaded["validation"].column_names == [
        "tokens", "tags", "reviewed", "reviewed_tags", "review_draw"
    ]  # fmt: skip
    assert loaded["train"].column_names == ["tokens", "tags"]
    assert loading.fingerprint(loaded) == loading.fingerprint(loading.load(data_dir))
    # a second review of the same data (a sample of the merged folder) adds to the first
    second = tmp_path / "second"
    sample(runner, out, second, "-n", 100)
    (second / "review.conll").write_text(
        "# sentence 7 reviewed: yes\nnothing\tO\tO\nto\tO\tO\nsee\tO\tB-MISC\n"
    )
    report = merge(runner, out, second / "review.conll", tmp_path / "twice")
    labels, _ = reviewed_labels(tmp_path / "twice")
    assert labels == {**INTENDED["latest"], 7: "O O B-MISC"}
    assert report["counts"]["reviewed_before"] == 5 and report["counts"]["reviewed_in_split"] == 6


def test_merge_keeps_a_corrupted_datasets_clean_labels(runner, data_dir, tmp_path):
    corrupted = tmp_path / "noisy"
    run(runner, "corrupt", data_dir, "--rate", 0.5, "--splits", "train,validation", "-o", corrupted)
    out = tmp_path / "review"
    sample(runner, corrupted, out, "-n", 3)
    conll = mark_reviewed(out / "review.conll").read_text().split("\n")
    conll = [f"{line.rsplit(chr(9), 1)[0]}\tO" if "\t" in line else line for line in conll]
    (out / "review.conll").write_text("\n".join(conll))
    merge(runner, corrupted, out / "review.conll", tmp_path / "merged")
    before, after = loading.load(corrupted), loading.load(tmp_path / "merged")
    for split in before:
        assert after[split]["clean_tags"] == before[split]["clean_tags"]
        assert after[split]["tags"] == before[split]["tags"]
    # corrupt reads the merged folder (its review columns are not carried further)
    run(runner, "corrupt", tmp_path / "merged", "--rate", 0.1, "-o", tmp_path / "again")
    assert loading.load(tmp_path / "again")["train"].num_rows == len(TRAIN)


def test_the_edited_conll_file_merges_like_an_export(runner, data_dir, tmp_path):
    out = tmp_path / "review"
    sample(runner, data_dir, out, "-n", 100)
    blocks = (out / "review.conll").read_text().strip("\n").split("\n\n")
    kept = []
    for block in blocks:
        header = block.split("\n")[0].replace("reviewed: no", "reviewed: yes")
        row = int(header.split()[2])
        if row in INTENDED["latest"]:
            words = VALIDATION[row][0].split()
            given = VALIDATION[row][1].split()
            labels = INTENDED["latest"][row].split()
            kept.append(
                "\n".join(
                    [header]
                    + [
                        f"{w}\t{g}\t{label}" + ("\t*" if g != label else "")
                        for w, g, label in zip(words, given, labels, strict=True)
                    ]
                )
            )
    (out / "review.conll").write_text("\n\n".join(kept) + "\n")
    report = merge(runner, data_dir, out / "review.conll", tmp_path / "merged")
    assert reviewed_labels(tmp_path / "merged")[0] == INTENDED["latest"]
    assert report["counts"]["changed_words"] == 6 and report["agreement"]["tasks"] == 0


# ------------------------------------------------------------------------- bad input


def edited(export: Path, change) -> Path:
    tasks = json.loads(export.read_text())
    change(tasks)
    export.write_text(json.dumps(tasks))
    return export


def first_result(tasks, task_index=0):
    return tasks[task_index]["annotations"][0]["result"]


BAD_EXPORTS = [
    ("sentence", lambda t: t[1]["data"].update(sentence=9), "task 202: sentence 9 of validation is not in the manifest"),  # noqa: E501
    ("split", lambda t: t[1]["data"].update(split="train"), "task 202: split 'train' is not the manifest's"),  # noqa: E501
    ("no sentence", lambda t: t[1]["data"].pop("sentence"), "task 202: no sentence number"),
    ("boundary start", lambda t: first_result(t)[1]["value"].update(start=20, text="aris"), "task 201: span 20–24 ('aris') does not fall on word boundaries"),  # noqa: E501
    ("boundary end", lambda t: first_result(t)[0]["value"].update(end=7, text="John Sm"), "task 201: span 0–7 ('John Sm') does not fall on word boundaries"),  # noqa: E501
    ("label", lambda t: first_result(t)[0]["value"].update(labels=["PERSON"]), "task 201: unknown label 'PERSON'"),  # noqa: E501
    ("two labels", lambda t: first_result(t)[0]["value"].update(labels=["PER", "ORG"]), "task 201: span 0–10 needs one label"),  # noqa: E501
    ("span text", lambda t: first_result(t)[0]["value"].update(text="Jon Smith"), "task 201: span 0–10 says 'Jon Smith'"),  # noqa: E501
    ("word", lambda t: t[0]["data"].update(text="John Smith went to Pariss"), "task 201: its text differs from sentence 0's words in the data: word 5 is 'Pariss', not 'Paris'"),  # noqa: E501
    ("overlap", lambda t: first_result(t).append(span(t[0]["data"]["text"], "Smith went", "ORG")), "task 201: overlapping spans in annotation 1 ('John Smith went')"),  # noqa: E501
    ("no data", lambda t: t[2].pop("data"), "task 203: no 'data'"),
    ("duplicate", lambda t: t[4].update(data=t[0]["data"]), "task 205: sentence 0 is also task 201"),  # noqa: E501
    ("time", lambda t: t[0]["annotations"][0].update(updated_at="yesterday"), "task 201: 'yesterday' is not an ISO time"),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "says"), [b[1:] for b in BAD_EXPORTS], ids=[b[0] for b in BAD_EXPORTS]
)
def test_a_bad_export_is_refused_naming_the_task(
    runner, data_dir, reviewed, tmp_path, change, says
):
    out = tmp_path / "merged"
    edited(reviewed, change)
    refused(runner, "review", "merge", data_dir, reviewed, "-o", out, says=says, out=out)


def test_an_export_of_another_dataset_or_sample_is_refused(
    runner, data_dir, ner_dir, reviewed, tmp_path
):
    out = tmp_path / "merged"
    args = ["review", "merge", ner_dir, reviewed, "-o", out]
    refused(runner, *args, says="manifest.json: drawn from another dataset", out=out)
    other = write_data(tmp_path / "other")
    (other / "valid.txt").write_text((other / "valid.txt").read_text().replace("Mary", "Marie"))
    args = ["review", "merge", other, reviewed, "-o", out]
    refused(runner, *args, says="drawn from another dataset", out=out)
    # a smaller sample's manifest does not hold the export's sentences
    small = tmp_path / "small"
    sample(runner, data_dir, small, "-n", 2, "--seed", 5)
    args = ["review", "merge", data_dir, reviewed, "-o", out, "--manifest", small / "manifest.json"]
    refused(runner, *args, says="is not in the manifest", out=out)
    missing = ["review", "merge", data_dir, reviewed, "-o", out, "--manifest", tmp_path / "x.json"]
    refused(runner, *missing, says="x.json: no manifest", out=out)


def test_malformed_files_and_options_are_refused_naming_the_line(
    runner, data_dir, reviewed, tmp_path
):
    out = tmp_path / "merged"
    broken = reviewed.with_name("broken.json")
    broken.write_text('[\n {"id": 1,\n  "data": {"sentence": 0,}\n }\n]')
    args = ["review", "merge", data_dir, broken, "-o", out]
    refused(runner, *args, says="broken.json:3:", out=out)
    broken.write_text('{"tasks": []}')
    refused(runner, *args, says="not a Label Studio JSON export", out=out)
    args = ["review", "merge", data_dir, reviewed, "-o", out]
    refused(runner, *args, "--resolve", "newest", says="--resolve 'newest'", out=out)
    refused(runner, *args, "--resolve", "annotator:", says="--resolve 'annotator:'", out=out)
    out.mkdir()
    assert "exists; give --force" in run(runner, *args, code=2).stderr


CONLL_EDITS = [
    ("line", "Smith\tI-PER\tI-PER\n", "Smith I-PER I-PER\n", ":3: expected '# sentence N"),
    ("flag", "Smith\tI-PER\tI-PER\n", "Smith\tI-PER\tI-PER\tx\n", ":3: expected"),
    ("word", "Smith\tI-PER\tI-PER\n", "Smyth\tI-PER\tI-PER\n", ":3: word 'Smyth' is not sentence 0's 'Smith'"),  # noqa: E501
    ("label", "Smith\tI-PER\tI-PER\n", "Smith\tI-PER\tI-PERSON\n", ":3: unknown label 'I-PERSON'"),
    ("bad tag", "Smith\tI-PER\tI-PER\n", "Smith\tI-PER\tPER\n", ":3: unknown label 'PER'"),
    ("length", "Smith\tI-PER\tI-PER\n", "", ":1: sentence 0 has 5 words in the data, 4 here"),
    ("header", "# sentence 0 reviewed: no\n", "# sentence 9 reviewed: yes\n", "line 1: sentence 9 of validation is not in the manifest"),  # noqa: E501
    ("orphan", "# sentence 0 reviewed: no\n", "", ":1: expected '# sentence N reviewed: yes|no'"),
    ("mark", "# sentence 0 reviewed: no\n", "# sentence 0 reviewed: done\n", ":1: 'reviewed: done': write yes"),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "says"), [e[1:] for e in CONLL_EDITS], ids=[e[0] for e in CONLL_EDITS]
)
def test_a_bad_conll_file_is_refused_naming_the_line(runner, data_dir, tmp_path, old, new, says):
    review = tmp_path / "review"
    sample(runner, data_dir, review, "-n", 100)
    conll = review / "review.conll"
    conll.write_text(conll.read_text().replace(old, new, 1))
    out = tmp_path / "merged"
    refused(
        runner,
        "review",
        "merge",
        data_dir,
        conll,
        "-o",
        out,
        says=f"review.conll{says}" if says.startswith(":") else says,
        out=out,
    )


def test_a_label_the_label_set_lacks_is_refused_naming_the_task(runner, ner_dir, tmp_path):
    review = tmp_path / "review"
    sample(runner, ner_dir, review, "-n", 1)
    (task,) = json.loads((review / "labelstudio.json").read_text())
    text = task["data"]["text"]
    two_words = " ".join(text.split()[:2])  # ner_dir has B- tags only: no I-LOC
    export = [
        {
            "id": 9,
            "data": task["data"],
            "annotations": [annotation(1, 1, [span(text, two_words, "LOC")])],
        }
    ]
    (review / "export.json").write_text(json.dumps(export))
    out = tmp_path / "merged"
    args = ["review", "merge", ner_dir, review / "export.json", "-o", out]
    refused(runner, *args, says="task 9: its labels need 'I-LOC'", out=out)


# ------------------------------------------------------------------ detect's review folder

NAMES = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_detects_review_folder_has_the_manifest_and_the_same_tasks(tmp_path):
    from noisebench.detection import review
    from noisebench.detection.score import Detection

    tokens = [["Ann", "met", "Bob"], ["in", "Rome"], ["Bob", "Lee", "left"]]
    found = Detection(
        "retag", "retag", NAMES, tokens, np.array([0, 3, 5, 8]),
        np.array([1, 0, 1, 0, 3, 1, 2, 0]), np.array([1, 0, 0, 0, 3, 3, 4, 0]),
        np.array([0.1, 0.1, 0.9, 0.1, 0.2, 0.8, 0.7, 0.1]),
    )  # fmt: skip
    review.write(tmp_path / "plain", found, 0.5, "IOB2", {"levels": None})
    origin = Origin("my-data", "f" * 64, NAMES, "IOB2")
    source = review.Source(origin, np.array([4, 7, 9]))
    review.write(tmp_path / "mapped", found, 0.5, "IOB2", {"levels": None}, source=source)
    plain = json.loads((tmp_path / "plain" / "labelstudio.json").read_text())
    # the two most suspect sentences (worst word 0.9, 0.8) with their flagged words'
    # suggestions (Bob -> O; Bob Lee -> LOC) as pre-annotations
    assert plain == [
        {
            "data": {"text": "Ann met Bob", "sentence": 0},
            "predictions": [{
                "model_version": "noisebench-detect-retag", "score": 0.9,
                "result": [{
                    "id": "s0e0", "from_name": "label", "to_name": "text", "type": "labels",
                    "value": {"start": 0, "end": 3, "text": "Ann", "labels": ["PER"]},
                }],
            }],
        },
        {
            "data": {"text": "Bob Lee left", "sentence": 2},
            "predictions": [{
                "model_version": "noisebench-detect-retag", "score": 0.8,
                "result": [{
                    "id": "s2e0", "from_name": "label", "to_name": "text", "type": "labels",
                    "value": {"start": 0, "end": 7, "text": "Bob Lee", "labels": ["LOC"]},
                }],
            }],
        },
    ]  # fmt: skip
    assert not (tmp_path / "plain" / "manifest.json").exists()
    mapped = json.loads((tmp_path / "mapped" / "labelstudio.json").read_text())
    assert [t["data"] for t in mapped] == [
        {"text": "Ann met Bob", "sentence": 4, "split": "train"},
        {"text": "Bob Lee left", "sentence": 9, "split": "train"},
    ]
    for task in mapped:  # the same pre-annotations, named by the data's rows
        for entity in task["predictions"][0]["result"]:
            entity["id"] = entity["id"].replace("s4", "s0").replace("s9", "s2")
    assert [t["predictions"] for t in mapped] == [t["predictions"] for t in plain]
    assert (tmp_path / "mapped" / "review.conll").read_text() == (
        "# sentence 4 reviewed: no\nAnn\tB-PER\tB-PER\nmet\tO\tO\nBob\tB-PER\tO\t*\n\n"
        "# sentence 9 reviewed: no\nBob\tB-PER\tB-LOC\t*\nLee\tI-PER\tI-LOC\t*\nleft\tO\tO\n\n"
    )
    manifest = json.loads((tmp_path / "mapped" / "manifest.json").read_text())
    assert manifest == {
        "schema_version": 1, "kind": "detect", "data": "my-data", "dataset": "my-data",
        "fingerprint": "f" * 64, "split": "train", "sentences": [4, 9], "seed": None, "n": 2,
        "labels": NAMES, "scheme": "IOB2",
    }  # fmt: skip
    assert '<Label value="LOC"/>' in (tmp_path / "mapped" / "labelstudio-config.xml").read_text()


def test_detects_sentences_are_the_datas_rows_where_validation_was_carved(tiny_model, tmp_path):
    from noisebench.detection import review
    from noisebench.training.config import TrainConfig
    from noisebench.training.prepare import prepare

    data = tmp_path / "only-train"
    data.mkdir()
    write_ner_split(data / "train.txt", 30, seed=4)
    config = TrainConfig(data=str(data), model=str(tiny_model), max_train_samples=20)
    prepared = prepare(config, tmp_path / "runs", "cpu")
    source = review.source_of(prepared)
    loaded = loading.load(data)
    assert source.origin.fingerprint == loading.fingerprint(loaded)
    assert len(source.rows) == len(prepared.dataset["train"]) == 20
    for position, row in enumerate(source.rows):
        assert prepared.dataset["train"][position]["tokens"] == loaded["train"][int(row)]["tokens"]
    assert source.rows.tolist() != list(range(20))  # a validation share came out of them


# --------------------------------------------------------------------- train on OUT


@pytest.mark.slow
def test_train_and_detect_read_the_merged_data(runner, ner_dir, tiny_model, tmp_path):
    review = tmp_path / "review"
    sample(runner, ner_dir, review, "-n", 10)
    out = tmp_path / "merged"
    run(runner, "review", "merge", ner_dir, mark_reviewed(review / "review.conll"), "-o", out)
    common = [
        "--model",
        tiny_model,
        "--runs-dir",
        tmp_path / "runs",
        "--epochs",
        1,
        "--lr",
        "5e-3",
        "--batch-size",
        16,
        "--device",
        "cpu",
    ]
    trained = json.loads(run(runner, "train", "--data", out, *common, "--json").stdout)
    assert trained["splits"]["test"]["f1"] is not None
    detected = tmp_path / "detected"
    run(runner, "detect", out, *common, "-o", detected)
    manifest = json.loads((detected / "manifest.json").read_text())
    assert manifest["kind"] == "detect" and manifest["data"] == str(out)
    assert manifest["fingerprint"] == loading.fingerprint(loading.load(out))
    # detect's suggestions come back untouched: nobody reviewed them, nothing is merged
    refused(runner, "review", "merge", out, detected / "review.conll", "-o", tmp_path / "x",
            says="no block is marked 'reviewed: yes'", out=tmp_path / "x")  # fmt: skip
    # a reviewer accepts detect's suggestions in Label Studio: they merge back into train
    tasks = json.loads((detected / "labelstudio.json").read_text())
    export = [
        {"id": 500 + n, "data": t["data"],
         "annotations": [annotation(n, 1, t["predictions"][0]["result"])]}
        for n, t in enumerate(tasks)
    ]  # fmt: skip
    (detected / "export.json").write_text(json.dumps(export))
    report = merge(runner, out, detected / "export.json", tmp_path / "accepted")
    assert report["split"] == "train" and report["counts"]["reviewed_sentences"] == len(tasks)
    merged = loading.load(tmp_path / "accepted")
    review_columns = ["reviewed", "reviewed_tags", "review_draw"]
    assert merged["validation"].column_names[-3:] == review_columns
    assert merged["train"].column_names[-3:] == review_columns
    draws = loading.review_draws(merged["train"])
    assert set(draws[loading.reviewed_sentences(merged["train"])]) == {"detect"}
