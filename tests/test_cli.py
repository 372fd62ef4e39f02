import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import files_under

from noisebench.cli import app
from noisebench.data import loading as data


def corrupt(runner, *args):
    return runner.invoke(app, ["corrupt", *map(str, args)])


def test_corrupt_writes_parquet_and_report(runner, conll_dir, tmp_path):
    out = tmp_path / "noisy"
    result = corrupt(runner, conll_dir, "--rate", 0.5, "--seed", 3, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["out"] == str(out) and document["up_to_date"] is False
    assert sorted(p.name for p in out.iterdir()) == [
        "noise.json",
        "test.parquet",
        "train.parquet",
        "validation.parquet",
    ]
    noise_json = json.loads((out / "noise.json").read_text())
    assert noise_json["config"] == {
        "noise": "uniform",
        "rate": 0.5,
        "seed": 3,
        "splits": ["train"],
        "matrix": None,
        "entity_mix": None,
    }
    assert noise_json["report"] == document["report"]
    reread = data.load(out)
    assert list(reread["train"].features) == ["tokens", "tags", "clean_tags"]
    assert data.label_names(reread["train"]) == ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-PER"]
    original = data.load(conll_dir)
    assert reread["train"]["clean_tags"] == original["train"]["tags"]
    for split in ("validation", "test"):
        assert reread[split]["tags"] == reread[split]["clean_tags"] == original[split]["tags"]
    changed = sum(
        a != b
        for noisy, clean in zip(reread["train"]["tags"], reread["train"]["clean_tags"], strict=True)
        for a, b in zip(noisy, clean, strict=True)
    )
    assert document["report"]["splits"]["train"]["changed_tokens"] == changed
    schema = pq.read_schema(out / "train.parquet")
    assert b"ClassLabel" in schema.metadata[b"huggingface"]


def test_same_seed_same_bytes_other_seed_other_bytes(runner, conll_dir, tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        result = corrupt(runner, conll_dir, "--rate", 0.5, "--seed", seed, "-o", tmp_path / name)
        assert result.exit_code == 0, result.output
    for file in ("train.parquet", "validation.parquet", "test.parquet", "noise.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    assert (tmp_path / "a/train.parquet").read_bytes() != (
        tmp_path / "c/train.parquet"
    ).read_bytes()
    assert (tmp_path / "a/test.parquet").read_bytes() == (tmp_path / "c/test.parquet").read_bytes()


def test_default_output_folder_and_next_command(runner, conll_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = corrupt(runner, conll_dir, "--rate", 0.4)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data/conll-uniform-0.40-seed0/train.parquet").is_file()
    assert "Wrote data/conll-uniform-0.40-seed0" in result.stdout
    assert "Next: noisebench train --data data/conll-uniform-0.40-seed0" in result.stdout
    assert "Realised token error rate" in result.stdout
    again = corrupt(runner, conll_dir, "--rate", 0.4)
    assert again.exit_code == 0
    assert "Already up to date: data/conll-uniform-0.40-seed0" in again.stdout
    splits = corrupt(runner, conll_dir, "--rate", 0.4, "--splits", "train,validation")
    assert splits.exit_code == 0, splits.output
    assert (tmp_path / "data/conll-uniform-0.40-train+validation-seed0").is_dir()


def test_refuses_to_overwrite_a_different_dataset_without_force(runner, conll_dir, tmp_path):
    out = tmp_path / "noisy"
    assert corrupt(runner, conll_dir, "--rate", 0.2, "-o", out).exit_code == 0
    before = (out / "train.parquet").read_bytes()
    refused = corrupt(runner, conll_dir, "--rate", 0.3, "-o", out)
    assert refused.exit_code == 2
    assert refused.stderr.strip() == (
        f"error: {out} already exists and holds a different dataset; pass --force to replace"
        " it or choose another --out"
    )
    assert (out / "train.parquet").read_bytes() == before
    forced = corrupt(runner, conll_dir, "--rate", 0.3, "-o", out, "--force", "--json")
    assert forced.exit_code == 0
    assert json.loads((out / "noise.json").read_text())["config"]["rate"] == 0.3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_noise_models_through_the_cli(runner, conll_dir, tmp_path):
    matrix = tmp_path / "matrix.json"
    matrix.write_text(json.dumps({"B-PER": {"B-ORG": 1.0}}))
    result = corrupt(runner, conll_dir, "--matrix", matrix, "-o", tmp_path / "m", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["report"]
    assert report["confusion"]["B-PER"] == {"B-ORG": 1}
    assert report["noise"] == "matrix" and report["requested_rate"] is None
    entity = corrupt(
        runner,
        conll_dir,
        "--noise",
        "entity",
        "--rate",
        1,
        "--entity-mix",
        "missed=1",
        "-o",
        tmp_path / "e",
        "--json",
    )
    assert entity.exit_code == 0, entity.output
    report = json.loads(entity.stdout)["report"]
    assert report["entity_events"]["missed"] == 4
    assert report["splits"]["train"]["noisy_entities"] == 0
    pair = corrupt(runner, conll_dir, "--noise", "pair", "--rate", 1, "-o", tmp_path / "p")
    assert pair.exit_code == 0, pair.output
    assert "B-ORG → B-PER" in pair.stdout


def bad_inputs(tmp_path):
    """(name, argv tail, expected stderr fragment) for every bad-input case."""
    conll = tmp_path / "bad.conll"
    conll.write_text("EU B-ORG\nrejects B-VP O\n")
    mismatch = tmp_path / "mismatch.jsonl"
    mismatch.write_text('{"tokens": ["a", "b"], "tags": ["O"]}\n')
    integers = tmp_path / "ints.jsonl"
    integers.write_text('{"tokens": ["a"], "tags": [1]}\n')
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"a O\n\xc3\x28 O\n")
    unknown = tmp_path / "data.xml"
    unknown.write_text("<xml/>")
    good = tmp_path / "good.txt"
    good.write_text("EU B-ORG\nrejects O\n\nPeter B-PER\n")
    bad_label = tmp_path / "bad-label.json"
    bad_label.write_text('{"B-FOO": {"O": 1.0}}')
    bad_sum = tmp_path / "bad-sum.json"
    bad_sum.write_text('{"B-ORG": {"O": 0.5, "B-ORG": 0.4}}')
    return [
        ("missing path", [tmp_path / "nope.conll", "--rate", 0.1], "no such file or directory"),
        ("unknown format", [unknown, "--rate", 0.1], "unknown format '.xml'"),
        ("malformed line", [conll, "--rate", 0.1], "bad.conll:2: expected 2 columns"),
        ("length mismatch", [mismatch, "--rate", 0.1], "mismatch.jsonl: row 0: 2 tokens but 1"),
        ("integer tags", [integers, "--rate", 0.1], "integer tags but no label names"),
        ("unknown column", [good, "--rate", 0.1, "--tag-column", "tags"], "--tag-column 'tags'"),
        ("rate above 1", [good, "--rate", 1.5], "--rate 1.5: must be a probability in [0, 1]"),
        ("rate below 0", [good, "--rate", -0.5], "--rate -0.5: must be a probability"),
        ("matrix label", [good, "--matrix", bad_label], "unknown label 'B-FOO'"),
        ("matrix sum", [good, "--matrix", bad_sum], "row 'B-ORG' sums to 0.9, not 1"),
        ("empty", [empty, "--rate", 0.1], "empty.txt: no sentences found"),
        ("undecodable", [binary, "--rate", 0.1], "binary.txt:2: not valid UTF-8"),
        ("missing split", [good, "--rate", 0.1, "--splits", "test"], "no split 'test'"),
        ("no rate", [good], "--rate is required"),
        (
            "entity on POS",
            [good, "--rate", 0.1, "--noise", "entity", "--tag-column", "0"],
            "no span scheme",
        ),
    ]


def test_every_bad_input_exits_2_with_one_line_and_writes_nothing(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, args, fragment in bad_inputs(tmp_path):
        before = files_under(tmp_path)
        result = corrupt(runner, *args, "-o", tmp_path / "out")
        assert result.exit_code == 2, (name, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, result.stderr)
        assert fragment in lines[0], (name, lines[0])
        assert "Traceback" not in result.output
        assert files_under(tmp_path) == before, name
        assert not (tmp_path / "out").exists() and not (tmp_path / "data").exists()


def test_help_is_fast_to_reach_and_shows_examples(runner):
    for command in (["corrupt"], ["sources"], ["sources", "fetch"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0
        assert "Example: noisebench" in result.stdout.replace("\n", " ")
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, noisebench.cli; "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout.strip() == "[]"
    module = subprocess.run(
        [sys.executable, "-m", "noisebench", "--help"], capture_output=True, text=True, check=False
    )
    assert module.returncode == 0 and "corrupt" in module.stdout


@pytest.mark.slow
@pytest.mark.network
def test_corrupt_conll2003_as_the_mission_states(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["corrupt", "--rate", "0.4", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["report"]
    out = tmp_path / "data/conll2003-uniform-0.40-seed0"
    assert json.loads(result.stdout)["out"] == "data/conll2003-uniform-0.40-seed0"
    assert abs(report["splits"]["train"]["realised_token_error_rate"] - 0.4) < 0.01
    assert report["splits"]["train"]["tokens"] == 203_621
    clean = data.load("conll2003")
    noisy = data.load(out)
    for split in ("validation", "test"):
        assert noisy[split]["tags"] == clean[split]["tags"]
    again = runner.invoke(app, ["corrupt", "--rate", "0.4", "-o", "second"])
    assert again.exit_code == 0
    for file in ("train.parquet", "validation.parquet", "test.parquet", "noise.json"):
        assert (out / file).read_bytes() == (tmp_path / "second" / file).read_bytes()


def test_version_and_one_grammar_for_outputs_and_runs_dirs(runner):
    from noisebench import __version__

    shown = runner.invoke(app, ["--version"])
    assert shown.exit_code == 0 and shown.stdout == f"noisebench {__version__}\n"
    import typer

    commands = typer.main.get_command(app).commands
    for name in ("corrupt", "profile", "detect", "leaderboard"):
        assert {"--out", "-o"} <= {o for p in commands[name].params for o in p.opts}, name
    kinds = {
        name: next(
            p.type_descriptor.annotation for p in commands[name].params if p.name == "runs_dir"
        )
        for name in ("train", "detect", "sweep")
    }
    assert set(kinds.values()) == {Path}, kinds


def test_train_help_groups_every_option_in_a_panel():
    import typer

    train = typer.main.get_command(app).commands["train"]
    panels = {p.name: p.rich_help_panel for p in train.params}
    assert set(panels.values()) == {
        "Data", "Model and budget", "Loss", "Method", "Evaluation", "Output"
    }  # fmt: skip
