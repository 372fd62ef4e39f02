import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import CONLL_TEST, CONLL_TRAIN
from hypothesis import given, settings
from hypothesis import strategies as st

from noisebench.data import loading as data
from noisebench.errors import InputError

NAMES = ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-PER"]
TRAIN_TOKENS = [
    ["EU", "rejects", "German", "call"],
    ["Peter", "Blackburn"],
    ["BRUSSELS", "1996-08-22"],
]
TRAIN_TAGS = [["B-ORG", "O", "B-MISC", "O"], ["B-PER", "I-PER"], ["B-LOC", "O"]]


def tags_as_strings(dataset, column="tags"):
    names = data.label_names(dataset)
    return [[names[i] for i in row] for row in dataset[column]]


def test_conll_folder_with_split_names_normalised(conll_dir):
    loaded = data.load(conll_dir)
    assert list(loaded) == ["train", "validation", "test"]
    assert data.label_names(loaded["train"]) == NAMES
    assert loaded["train"]["tokens"] == TRAIN_TOKENS
    assert tags_as_strings(loaded["train"]) == TRAIN_TAGS
    assert loaded["test"]["tokens"] == [["Japan", "won"], ["Nadim", "Ladki"]]
    assert data.scheme(loaded) == "IOB2"


def test_conll_single_file_tab_separated_with_tag_and_token_columns(tmp_path):
    path = tmp_path / "sample.conll"
    path.write_text("a\tX\tB-PER\nb\tY\tI-PER\n\n\nc\tZ\tO\n")
    loaded = data.load(path)
    assert list(loaded) == ["train"]
    assert loaded["train"]["tokens"] == [["a", "b"], ["c"]]
    assert tags_as_strings(loaded["train"]) == [["B-PER", "I-PER"], ["O"]]
    pos = data.load(path, data.Columns(tag="1"))
    assert data.label_names(pos["train"]) == ["X", "Y", "Z"]
    assert data.scheme(pos) == "none"
    by_pos = data.load(path, data.Columns(token="1", tag="-1"))
    assert by_pos["train"]["tokens"] == [["X", "Y"], ["Z"]]


def test_original_conll_file_names_map_to_splits(tmp_path):
    (tmp_path / "eng.train").write_text(CONLL_TRAIN)
    (tmp_path / "eng.testa").write_text(CONLL_TEST)
    (tmp_path / "eng.testb").write_text(CONLL_TEST)
    (tmp_path / "README.md").write_text("not data")
    assert list(data.load(tmp_path)) == ["train", "validation", "test"]


def test_jsonl_with_named_columns_and_integer_tags_with_labels(tmp_path):
    path = tmp_path / "dev.jsonl"
    rows = [{"words": ["a", "b"], "ner_tags": [1, 0]}, {"words": ["c"], "ner_tags": [2]}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    loaded = data.load(path, data.Columns(labels=("O", "B-X", "B-Y")))
    assert list(loaded) == ["validation"]
    assert loaded["validation"]["tokens"] == [["a", "b"], ["c"]]
    assert tags_as_strings(loaded["validation"]) == [["B-X", "O"], ["B-Y"]]


def test_json_list_and_data_object(tmp_path):
    rows = [{"tokens": ["a"], "labels": ["B-X"]}, {"tokens": ["b", "c"], "labels": ["O", "O"]}]
    (tmp_path / "train.json").write_text(json.dumps(rows))
    (tmp_path / "test.json").write_text(json.dumps({"data": rows}))
    loaded = data.load(tmp_path)
    assert loaded["train"]["tokens"] == loaded["test"]["tokens"] == [["a"], ["b", "c"]]
    assert data.label_names(loaded["train"]) == ["O", "B-X"]


def test_given_labels_fix_the_order_of_string_tags(conll_dir):
    order = ("O", "B-PER", "I-PER", "B-ORG", "B-LOC", "B-MISC")
    loaded = data.load(conll_dir, data.Columns(labels=order))
    assert data.label_names(loaded["train"]) == list(order)
    assert tags_as_strings(loaded["train"]) == TRAIN_TAGS


def test_parquet_round_trip_keeps_label_names(conll_dir, tmp_path):
    loaded = data.load(
        conll_dir, data.Columns(labels=("O", "B-PER", "I-PER", "B-ORG", "B-LOC", "B-MISC"))
    )
    out = tmp_path / "out"
    out.mkdir()
    data.write_parquet(loaded, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "test.parquet",
        "train.parquet",
        "validation.parquet",
    ]
    reread = data.load(out)
    assert data.label_names(reread["train"]) == data.label_names(loaded["train"])
    assert reread["train"]["tags"] == loaded["train"]["tags"]
    assert data.fingerprint(reread) == data.fingerprint(loaded)
    single = data.load(out / "train.parquet")
    assert single["train"]["tokens"] == TRAIN_TOKENS


def test_parquet_without_metadata_and_integer_tags_needs_labels(tmp_path):
    path = tmp_path / "train.parquet"
    pq.write_table(pa.table({"tokens": [["a", "b"]], "ner_tags": [[0, 1]]}), path)
    with pytest.raises(InputError, match=r"integer tags but no label names.*--labels O,B-PER"):
        data.load(path)
    loaded = data.load(path, data.Columns(labels=("O", "B-X")))
    assert tags_as_strings(loaded["train"]) == [["O", "B-X"]]


def test_save_to_disk_folder_with_classlabel_names(tmp_path):
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "words": datasets.List(datasets.Value("string")),
            "ner_tags": datasets.List(datasets.ClassLabel(names=["O", "B-A", "I-A"])),
        }
    )
    dataset = datasets.Dataset.from_dict(
        {"id": ["0", "1"], "words": [["x", "y"], ["z"]], "ner_tags": [[1, 2], [0]]},
        features=features,
    )
    datasets.DatasetDict({"train": dataset, "dev": dataset}).save_to_disk(tmp_path / "hf")
    loaded = data.load(tmp_path / "hf")
    assert list(loaded) == ["train", "validation"]
    assert data.label_names(loaded["validation"]) == ["O", "B-A", "I-A"]
    assert tags_as_strings(loaded["train"]) == [["B-A", "I-A"], ["O"]]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.txt", "a B-X\nb c I-X\n", r"bad.txt:2: expected 2 columns like line 1, found 3"),
        ("bad.txt", "a\n", r"bad.txt:1: expected a word and a tag"),
        (
            "bad.jsonl",
            '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": [\n',
            r"bad.jsonl:2:\d+: invalid JSON",
        ),
        (
            "bad.json",
            '[{"tokens": ["a", "b"], "tags": ["O"]}]',
            r"bad.json: row 0: 2 tokens but 1 tags",
        ),
        ("bad.json", '[{"text": ["a"], "tags": ["O"]}]', r"bad.json: none of the columns"),
        ("bad.json", '{"a": 1}', r"bad.json: expected a list of records"),
        ("empty.txt", "-DOCSTART- O\n\n", r"empty.txt: no sentences found"),
        ("bad.csv", "a,b\n", r"bad.csv: unknown format '.csv'"),
        ("bad.parquet", "not parquet", r"bad.parquet: not a readable Parquet file"),
    ],
)
def test_bad_files_raise_one_line_naming_the_place(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=message) as caught:
        data.load(path)
    assert "\n" not in str(caught.value)


def test_undecodable_bytes_name_the_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(b"a O\n\nb\xff O\n")
    with pytest.raises(InputError, match=r"train.txt:3: not valid UTF-8 \(byte 0xff"):
        data.load(path)


def test_unknown_column_and_unknown_label(conll_dir, tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"tokens": ["a"], "tags": ["B-Q"]}\n')
    with pytest.raises(
        InputError, match=r"no column 'ner' \(--tag-column\); columns: tokens, tags"
    ):
        data.load(path, data.Columns(tag="ner"))
    with pytest.raises(InputError, match=r"tag 'B-Q' in 'tags' is not one of the label names"):
        data.load(path, data.Columns(labels=("O", "B-X")))
    with pytest.raises(InputError, match=r"--tag-column 'ner': CoNLL files take a 0-based"):
        data.load(conll_dir, data.Columns(tag="ner"))
    with pytest.raises(InputError, match=r"--tag-column 7 but the line has 4 columns"):
        data.load(conll_dir, data.Columns(tag="7"))


def test_missing_path_names_the_built_in_datasets():
    with pytest.raises(
        InputError,
        match=r"no such file or directory: 'nope.txt' \(built-in datasets: conll2003,"
        r" noisebench:<variant>\)",
    ):
        data.load("nope.txt")


words = st.text(
    alphabet=st.characters(blacklist_categories=("Zs", "Cc", "Zl", "Zp", "Cs")),
    min_size=1,
    max_size=8,
).filter(lambda w: w != "-DOCSTART-" and w.strip() == w and not any(c.isspace() for c in w))
tags = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
sentences = st.lists(
    st.lists(st.tuples(words, tags), min_size=1, max_size=6), min_size=1, max_size=6
)


@settings(max_examples=60, deadline=None)
@given(
    sentences=sentences,
    separator=st.sampled_from([" ", "\t"]),
    extra_blank=st.booleans(),
    crlf=st.booleans(),
)
def test_conll_reader_round_trips_any_sentences(
    tmp_path_factory, sentences, separator, extra_blank, crlf
):
    newline = "\r\n" if crlf else "\n"
    blank = newline * (2 if extra_blank else 1)
    text = blank.join(
        newline.join(f"{w}{separator}{t}" for w, t in sentence) + newline for sentence in sentences
    )
    path = tmp_path_factory.mktemp("conll") / "train.conll"
    path.write_bytes(text.encode("utf-8"))
    loaded = data.load(path)["train"]
    assert loaded["tokens"] == [[w for w, _ in s] for s in sentences]
    assert tags_as_strings(loaded) == [[t for _, t in s] for s in sentences]


def test_dataset_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "data" / "conll2003-uniform-0.40-seed0"
    folder.mkdir(parents=True)
    (tmp_path / "my.train.conll").write_text("a O\n")
    assert data.dataset_name("data/conll2003-uniform-0.40-seed0") == "conll2003-uniform-0.40-seed0"
    assert data.dataset_name("data/conll2003-uniform-0.40-seed0/") == "conll2003-uniform-0.40-seed0"
    assert data.dataset_name("my.train.conll") == "my.train"
    assert data.dataset_name("conll2003") == "conll2003"
    assert data.dataset_name("org/name") == "org--name"


def test_a_hub_error_keeps_all_of_its_text_and_its_cause(monkeypatch):
    import datasets

    cause = ConnectionError("cannot reach huggingface.co\n(offline mode is on)")

    def unreachable(hub_id):
        raise cause

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(InputError) as raised:
        data.load("someone/tweets")
    message = str(raised.value)
    assert "\n" not in message
    assert message.endswith(
        "the Hub could not load it: ConnectionError: cannot reach huggingface.co"
        " (offline mode is on)"
    )
    assert raised.value.__cause__ is cause
