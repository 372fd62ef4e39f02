"""The shared options: one declaration, every command alike; the sweep's child command
line generated from the config's fields."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
import typer

from noisebench.cli import app
from noisebench.errors import InputError
from noisebench.studies import sweep
from noisebench.training import prepare as preparing
from noisebench.training.config import FIXED_SETTINGS, TrainConfig, option_name

# settings of the training loop that no command exposes (fixed at their defaults)
NOT_OPTIONS = {"warmup_ratio", "weight_decay", "max_grad_norm"}
assert set(FIXED_SETTINGS) == NOT_OPTIONS


def command_options(name: str) -> set[str]:
    command = typer.main.get_command(app).commands[name]
    return {option for param in command.params for option in param.opts}


def test_every_setting_of_a_run_is_a_train_option():
    options = command_options("train")
    for setting in fields(TrainConfig):
        if setting.name in NOT_OPTIONS:
            continue
        option = option_name(setting.name)
        assert option in options, setting.name


def test_train_options_default_to_the_configs_defaults():
    """The child command line leaves out what equals the config's default: train must
    read each left-out option as that default."""
    command = typer.main.get_command(app).commands["train"]
    defaults = {param.name: param.default for param in command.params}
    for setting in fields(TrainConfig):
        if setting.name in NOT_OPTIONS or setting.name == "noise":  # noise: chosen, see below
            continue
        assert defaults[setting.name] == setting.default, setting.name
    assert defaults["noise"] is None and TrainConfig.noise == "uniform"  # noise_choice(None)


@pytest.mark.parametrize("command", ["corrupt", "train", "detect", "sweep"])
def test_every_command_that_corrupts_takes_the_noise_and_column_options(command):
    options = command_options(command)
    shared = {"--noise", "--matrix", "--entity-mix", "--profile", "--data"}
    assert shared | {"--token-column", "--tag-column", "--labels"} <= options


def test_profile_and_score_name_the_dataset_with_data_too():
    assert "--data" in command_options("profile") and "--data" in command_options("score")


def test_the_child_command_line_gives_back_the_same_config(runner, monkeypatch, tmp_path):
    run = TrainConfig(
        data="d.conll", loss="sgce", q=0.5, s=0.05, model="m", noise="entity", rate=0.3,
        entity_mix="missed=1", epochs=4, lr=3e-4, batch_size=8, max_length=64,
        max_train_samples=100, seed=3, patience=3, strict=True, bins=5,
        calibrate="temperature", token_column="0", tag_column="ner", labels=("O", "B-X"),
        validation_labels="clean", loss_warmup=0.2, method="mask-auto", mask_warmup=0.2,
        mask_cutoff=0.7, mask_reading="literal", error_profile="p.json",
        span_smoothing=0.1, span_distance=2, precision="bf16",
    )  # fmt: skip
    assert {f.name for f in fields(TrainConfig) if getattr(run, f.name) != f.default} == {
        f.name for f in fields(TrainConfig)
    } - NOT_OPTIONS - {"matrix", "noise_profile"}  # every option away from its default
    seen = []

    def capture(config, *rest):
        seen.append(config)
        raise InputError("stop here")

    monkeypatch.setattr(preparing, "prepare", capture)
    command = sweep.train_command(run, str(tmp_path), resume=False)
    assert command[1:4] == ["-m", "noisebench", "train"]
    result = runner.invoke(app, command[3:])
    assert result.exit_code == 2 and "stop here" in result.stderr
    assert seen == [run]
    matrix_run = TrainConfig(noise="matrix", matrix="flips.json", validation_labels="clean")
    runner.invoke(app, sweep.train_command(matrix_run, str(tmp_path), resume=True)[3:])
    assert seen[-1] == matrix_run


def write_matrix(path, labels):
    """Every B- tag turns into O with probability 0.5."""
    matrix = {a: {b: float(a == b) for b in labels} for a in labels}
    for label in labels:
        if label.startswith("B-"):
            matrix[label] = {**matrix[label], label: 0.5, "O": 0.5}
    path.write_text(json.dumps(matrix))


def test_train_corrupts_with_a_matrix_and_names_the_run_after_it(
    runner, ner_dir, tiny_model, tmp_path
):
    from conftest import TYPES

    labels = ["O", *sorted({f"B-{t}" for t in TYPES.values()})]
    flips = tmp_path / "flips.json"
    write_matrix(flips, labels)
    args = [
        "train", "--data", str(ner_dir), "--model", str(tiny_model), "--matrix", str(flips),
        "--epochs", "1", "--batch-size", "16", "--runs-dir", str(tmp_path / "runs"), "--json",
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert "-matrix-flips-ce-seed0-" in document["run_dir"]
    assert document["config"]["noise"] == "matrix"
    assert document["config"]["matrix"] == str(flips)
    noise = document["train"]["label_noise"]
    assert noise is not None and noise["token_error_rate"] > 0.05
    refused = runner.invoke(app, [*args, "--noise", "uniform"])
    assert refused.exit_code == 2
    assert "--matrix goes with --noise matrix, not --noise uniform" in refused.stderr
    with_rate = runner.invoke(app, [*args, "--rate", "0.2"])
    assert with_rate.exit_code == 2 and "--rate has no effect with --matrix" in with_rate.stderr


def hub_like_parquet(tmp_path):
    """Parquet splits as the Hub writes them: words in ``words``, integer tags in ``ner``
    and no label names."""
    import datasets

    features = datasets.Features(
        {
            "words": datasets.List(datasets.Value("string")),
            "ner": datasets.List(datasets.Value("int64")),
        }
    )
    folder = tmp_path / "hub-like"
    folder.mkdir()
    for split in ("train", "validation", "test"):
        rows = {"words": [["ann", "sat"], ["bob", "ran"]], "ner": [[1, 0], [1, 0]]}
        datasets.Dataset.from_dict(rows, features=features).to_parquet(
            str(folder / f"{split}.parquet")
        )
    return folder


def test_sweep_reads_columns_by_name(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = ["O", "B-PER"]
    folder = hub_like_parquet(tmp_path)
    columns = ["--token-column", "words", "--tag-column", "ner", "--labels", ",".join(names)]
    plan = runner.invoke(
        app, ["sweep", "--data", str(folder), "--losses", "ce", "--rates", "0", *columns,
              "--dry-run", "--json"],
    )  # fmt: skip
    assert plan.exit_code == 0, plan.output
    (planned,) = json.loads(plan.stdout)
    assert (planned["tag_column"], planned["labels"]) == ("ner", names)
    without = runner.invoke(
        app, ["sweep", "--data", str(folder), "--losses", "ce", "--rates", "0", "--dry-run"]
    )
    assert without.exit_code == 2 and "ner" in without.stderr


def test_detect_reads_columns_by_name_and_takes_data(runner, tmp_path, monkeypatch):
    folder = hub_like_parquet(tmp_path)
    seen = []

    def capture(config, *rest):
        seen.append(config)
        raise InputError("stop here")

    monkeypatch.setattr(preparing, "prepare", capture)
    columns = ["--token-column", "words", "--tag-column", "ner", "--labels", "O,B-PER"]
    result = runner.invoke(app, ["detect", "--data", str(folder), *columns])
    assert result.exit_code == 2 and "stop here" in result.stderr
    assert (seen[0].data, seen[0].tag_column, seen[0].labels) == (
        str(folder),
        "ner",
        ("O", "B-PER"),
    )
    twice = runner.invoke(app, ["detect", "a.conll", "--data", "b.conll"])
    assert twice.exit_code == 2 and "name the dataset once" in twice.stderr


def test_a_matrix_run_is_keyed_by_the_files_content(tmp_path):
    flips = tmp_path / "flips.json"
    flips.write_text('{"O": {"O": 1.0}}')
    run = TrainConfig(noise="matrix", matrix=str(flips))
    before = run.identity()
    flips.write_text('{"O": {"O": 0.5, "B-X": 0.5}}')
    after = run.identity()
    assert before["matrix_crc32"] != after["matrix_crc32"]
    assert TrainConfig.from_identity(after) == run


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("epochs", 0, "--epochs 0: must be at least 1"),
        ("max_length", 7, "--max-length 7: must be at least 8"),
        ("max_train_samples", 0, "--max-train-samples 0: must be at least 1"),
        ("lr", 0.0, "--lr 0.0: must be positive"),
        ("calibrate", "platt", "--calibrate 'platt': the only method is temperature"),
        (
            "validation_labels",
            "gold",
            "--validation-labels 'gold': choose noisy, clean or reviewed",
        ),
        ("loss_warmup", 1.5, "--loss-warmup 1.5: must be a fraction in [0, 1]"),
        ("method", "mask", "--method 'mask': choose one of none, mask-missing,"),
        ("mask_cutoff", 1.0, "--mask-cutoff 1.0: must be a posterior in (0, 1)"),
        ("mask_reading", "loose", "--mask-reading 'loose': choose one of overrule, literal"),
    ],
)
def test_each_setting_is_checked_as_declared(runner, setting, value, message):
    """The check lives in the setting's declaration; train refuses in one line, exit 2,
    before anything loads."""
    with pytest.raises(InputError) as raised:
        TrainConfig(**{setting: value}).check()
    assert str(raised.value).startswith(message)
    TrainConfig().check()  # the defaults pass
    result = runner.invoke(app, ["train", option_name(setting), str(value)])
    assert result.exit_code == 2 and message in result.stderr


def test_bool_settings_take_their_negative_form_and_empty_labels_are_refused(runner):
    """--strict/--no-strict both parse (the child command line writes either); --labels ''
    is an empty list, refused as corrupt refuses it, not silently dropped."""
    for flag in ("--strict", "--no-strict"):
        result = runner.invoke(app, ["train", flag, "--epochs", "0"])
        assert result.exit_code == 2 and "--epochs 0: must be at least 1" in result.stderr
    assert TrainConfig.of_options(labels="").labels == ()
    assert TrainConfig.of_options(labels="O, B-X").labels == ("O", "B-X")
    assert TrainConfig.of_options(labels=None).labels is None


def test_the_sweep_checks_each_run_as_train_does(runner):
    result = runner.invoke(app, ["sweep", "--losses", "ce", "--epochs", "0", "--dry-run"])
    assert result.exit_code == 2 and "--epochs 0: must be at least 1" in result.stderr
