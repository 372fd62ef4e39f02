"""The Python API (``import noisebench as nb``): the commands as functions, typed
results equal to what the commands write, errors naming the parameter."""

import dataclasses
import json
import re
import runpy
from pathlib import Path

import pytest

import noisebench as nb
from noisebench.cli import app
from noisebench.training.config import TRAIN_FIELDS, TrainConfig

TRAIN = {"lr": 5e-3, "batch_size": 16, "device": "cpu", "epochs": 1}


def test_corrupt_writes_what_the_command_writes(runner, ner_dir, tmp_path):
    result = nb.corrupt(data=str(ner_dir), rate=0.3, seed=1, out=tmp_path / "api")
    assert isinstance(result, nb.CorruptResult) and result.out == tmp_path / "api"
    assert result.report.requested_rate == 0.3 and not result.up_to_date
    cli = runner.invoke(
        app, ["corrupt", str(ner_dir), "--rate", "0.3", "--seed", "1", "-o", str(tmp_path / "cli")]
    )
    assert cli.exit_code == 0, cli.output
    for name in ("train.parquet", "validation.parquet", "test.parquet", "noise.json"):
        assert (tmp_path / "api" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes()
    assert nb.corrupt(str(ner_dir), rate=0.3, seed=1, out=tmp_path / "api").up_to_date


@pytest.mark.slow
def test_train_returns_the_run_the_command_makes(runner, ner_dir, tiny_model, tmp_path):
    run = nb.train(data=str(ner_dir), model=str(tiny_model), runs_dir=tmp_path, loss="gce", **TRAIN)
    assert isinstance(run, nb.Run) and isinstance(run.test, nb.Scores)
    results = json.loads((run.run_dir / "results.json").read_text())
    assert run.results == results and run.config == TrainConfig.from_identity(results["config"])
    assert run.test.f1 == results["splits"]["test"]["f1"]
    assert run.validation.ece == results["splits"]["validation"]["ece"]
    assert run.best_epoch == results["train"]["best_epoch"] == 1
    assert (run.run_dir / "reliability-test.png").is_file()
    options = ["--data", str(ner_dir), "--model", str(tiny_model), "--runs-dir", str(tmp_path)]
    for name, value in (("loss", "gce"), *TRAIN.items()):
        options += [f"--{name.replace('_', '-')}", str(value)]
    cli = runner.invoke(app, ["train", *options, "--json"])
    assert cli.exit_code == 0, cli.output
    assert "already complete" in cli.stderr  # the same run: same name, not retrained
    assert Path(json.loads(cli.stdout)["run_dir"]) == run.run_dir


@pytest.mark.parametrize(
    "name", ["corrupt", "train", "detect", "sweep", "leaderboard", "review sample", "review merge"]
)
def test_every_function_takes_its_commands_options_by_name(name):
    import inspect

    import typer.main

    command = typer.main.get_command(app)
    for word in name.split():
        command = command.commands[word]
    options = {p.opts[0].lstrip("-").replace("-", "_") for p in command.params}
    if "continue" in options:  # a Python keyword: the API's continue_from
        options = options - {"continue"} | {"continue_from"}
    arguments = {p.name for p in command.params if not p.opts[0].startswith("-")}
    expected = options - {"json", "help", "top"} | arguments  # the API returns, not prints
    if name in ("corrupt", "review sample", "review merge"):  # the API's `data`
        expected = expected - {"dataset"} | {"data"}
    parameters = inspect.signature(getattr(nb, name.replace(" ", "_"))).parameters
    assert set(parameters) - {"progress"} == expected
    assert "noise_profile" not in parameters


def test_train_parameters_are_the_settings_declarations():
    import inspect

    parameters = inspect.signature(nb.train).parameters
    assert parameters["epochs"].default == TRAIN_FIELDS["epochs"].default
    assert parameters["noise"].default is None  # chosen from matrix/profile, as the CLI does
    assert "mask_cutoff: mask-*: a refit puts the threshold" in nb.train.__doc__


def test_sweep_plans_what_the_command_plans(runner, ner_dir, tiny_model, tmp_path):
    options = {"losses": "ce,gce", "rates": [0.2, 0.4], "seeds": (0, 1), "epochs": 1}
    planned = nb.sweep(
        data=str(ner_dir), model=str(tiny_model), runs_dir=tmp_path, dry_run=True, **options
    ).planned
    cli = runner.invoke(
        app,
        ["sweep", "--data", str(ner_dir), "--model", str(tiny_model), "--runs-dir", str(tmp_path),
         "--losses", "ce,gce", "--rates", "0.2,0.4", "--seeds", "0,1", "--epochs", "1",
         "--dry-run", "--json"],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert [p.to_dict() for p in planned] == json.loads(cli.stdout) and len(planned) == 8
    assert not list(tmp_path.iterdir())  # a plan writes nothing
    tuned = nb.sweep(data=str(ner_dir), losses="gce", tune={"q": [0.3, 0.7]}, dry_run=True)
    assert {p.config.q for p in tuned.planned} == {0.3, 0.7}


@pytest.mark.slow
def test_sweep_then_leaderboard_equal_the_commands(runner, ner_dir, tiny_model, tmp_path):
    runs_dir = tmp_path / "runs"
    done = nb.sweep(
        data=str(ner_dir), model=str(tiny_model), runs_dir=runs_dir, losses=["ce", "gce"],
        rates="0.2", epochs=1, lr=5e-3, batch_size=16, jobs=1,
    )  # fmt: skip
    assert isinstance(done, nb.Sweep) and len(done.completed) == 2 and not done.failed
    board = nb.leaderboard(runs_dir, out=tmp_path / "api")
    assert isinstance(board.cells[0], nb.Cell) and board.passed and board.complete_runs == 2
    cli = runner.invoke(app, ["leaderboard", str(runs_dir), "--out", tmp_path / "cli", "--json"])
    assert cli.exit_code == 0, cli.output
    document = json.loads(cli.stdout)
    assert [dataclasses.asdict(c) for c in board.cells] == document["entries"]
    assert board.verdict == document["verdict"]
    written = sorted(p.name for p in (tmp_path / "api").glob("*.md"))
    assert (
        "verdict.md" in written
        and sorted(p.name for p in board.written if p.suffix == ".md") == written
    )
    for name in written:
        assert (tmp_path / "api" / name).read_text() == (tmp_path / "cli" / name).read_text()
    assert {(c.loss, c.q) for c in board.cells if c.metric == "f1"} == {("ce", None), ("gce", 0.7)}


@pytest.mark.slow
def test_detect_finds_what_the_command_finds(runner, ner_dir, tiny_model, tmp_path):
    settings = {"rate": 0.3, "epochs": 2, "lr": 5e-3, "batch_size": 16, "device": "cpu"}
    runs_dir = tmp_path / "runs"
    found = nb.detect(str(ner_dir), model=str(tiny_model), runs_dir=runs_dir, out=tmp_path / "r",
                      **settings)  # fmt: skip
    assert isinstance(found, nb.Detected) and found.out == tmp_path / "r"
    assert (tmp_path / "r" / "review.conll").is_file()
    assert found.document["levels"]["word"]["ap"] > 0
    options = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
    cli = runner.invoke(
        app,
        ["detect", str(ner_dir), "--model", str(tiny_model), "--runs-dir", str(runs_dir),
         *options, "--json"],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    document = json.loads(cli.stdout)
    assert document["cost"]["trainings"] == 0  # the API's training, found and reused
    assert document["levels"] == found.document["levels"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d, m: nb.corrupt(d, rate=1.5), "rate 1.5: must be a probability in [0, 1]"),
        (lambda d, m: nb.corrupt(d), "rate is required"),
        (lambda d, m: nb.corrupt(d, rate=0.1, splits="nope"), "splits: no split 'nope'"),
        (lambda d, m: nb.train(data=d, model=m, patience=0), "patience 0: must be at least 1"),
        (lambda d, m: nb.train(data=d, model=m, loss="xe"), "loss xe:"),
        (
            lambda d, m: nb.detect(d, fix="relabel"),
            "fix writes a dataset: give the folder with out",
        ),
        (lambda d, m: nb.leaderboard(".", fail_on="f1:-0.5"), "fail_on needs baseline FILE"),
        (lambda d, m: nb.leaderboard(".", fail_on="f1"), "fail_on 'f1'"),
    ],
)
def test_bad_input_names_the_parameter(ner_dir, tiny_model, tmp_path, monkeypatch, call, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(nb.InputError) as raised:
        call(str(ner_dir), str(tiny_model))
    assert message in str(raised.value) and "--" not in str(raised.value).split(":")[0]
    assert not list(tmp_path.iterdir())  # nothing written


def test_an_unknown_parameter_is_a_type_error():
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'"):
        nb.train(epoch=2)


@pytest.mark.slow
def test_the_documented_example_runs(ner_dir, tiny_model, tmp_path, monkeypatch, capsys):
    """docs/api.md's example, on the test's data and tiny model instead of the built-in
    ones (the only substitution)."""
    page = (Path(__file__).parent.parent / "docs" / "api.md").read_text()
    example = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    assert '"conll2003"' in example and '"minilm-l6"' in example
    example = example.replace('"conll2003"', repr(str(ner_dir)))
    example = example.replace('"minilm-l6"', repr(str(tiny_model)))
    example = example.replace("max_train_samples=2000", "max_train_samples=40, device='cpu'")
    script = tmp_path / "example.py"
    script.write_text(example)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script))
    printed = capsys.readouterr().out
    assert re.search(r"^ce F1 \d+\.\d, ECE \d\.\d{3}$", printed, re.M), printed


def test_review_sample_and_merge_round_trip(ner_dir, tmp_path):
    drawn = nb.review_sample(str(ner_dir), n=5, seed=3, out=tmp_path / "review")
    assert len(drawn.manifest["sentences"]) == 5 and drawn.manifest["seed"] == 3
    conll = tmp_path / "review" / "review.conll"
    lines = conll.read_text().splitlines()
    changed = ["\t".join([*x.split("\t")[:2], "O"]) if "\t" in x else x for x in lines]
    changed = [x.replace(" reviewed: no", " reviewed: yes") for x in changed]
    conll.write_text("\n".join(changed) + "\n")  # the reviewer: no entities at all
    merged = nb.review_merge(str(ner_dir), conll, out=tmp_path / "merged")
    assert merged.report["counts"]["reviewed_sentences"] == 5
    validation = merged.dataset["validation"]
    rows = [r for r in range(len(validation)) if validation[r]["reviewed"]]
    assert sorted(rows) == sorted(drawn.manifest["sentences"])
    assert all(set(validation[r]["reviewed_tags"]) == {0} for r in rows)  # all O
    with pytest.raises(nb.InputError, match=r"^out .*exists; give force to replace it"):
        nb.review_merge(str(ner_dir), conll, out=tmp_path / "merged")
