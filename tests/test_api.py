"""The Python API (``import noisebench as nb``): the commands as functions, typed
results equal to what the commands write, errors naming the parameter."""

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
    result = nb.corrupt(str(ner_dir), rate=0.3, seed=1, out=tmp_path / "api")
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


def test_train_takes_every_option_of_the_command_by_name():
    import inspect

    import typer.main

    command = typer.main.get_command(app).commands["train"]
    options = {p.opts[0].lstrip("-").replace("-", "_") for p in command.params}
    parameters = inspect.signature(nb.train).parameters
    assert set(parameters) - {"progress"} == options - {"json", "help"}
    assert "profile" in parameters and "noise_profile" not in parameters
    assert parameters["epochs"].default == TRAIN_FIELDS["epochs"].default
    assert "mask_cutoff: mask-*: a refit puts the threshold" in nb.train.__doc__


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d, m: nb.corrupt(d, rate=1.5), "rate 1.5: must be a probability in [0, 1]"),
        (lambda d, m: nb.corrupt(d), "rate is required"),
        (lambda d, m: nb.corrupt(d, rate=0.1, splits="nope"), "splits: no split 'nope'"),
        (lambda d, m: nb.train(data=d, model=m, patience=0), "patience 0: must be at least 1"),
        (lambda d, m: nb.train(data=d, model=m, loss="xe"), "loss xe:"),
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
