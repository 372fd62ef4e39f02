"""A leaderboard cell pools exactly the runs whose settings are equal but the seed: runs of
another model, budget or training set size are other cells, named where they differ, in
the tables, the gate and the verdict."""

import json
from pathlib import Path

import pytest
from test_leaderboard import write_run

from noisebench.cli import app
from noisebench.studies import verdict
from noisebench.studies.leaderboard.cells import aggregate
from noisebench.studies.leaderboard.records import collect
from noisebench.studies.leaderboard.settings import setting_text
from noisebench.studies.leaderboard.tables import pivots

# one setting, and two values of it; everything else (seed included) is equal
DIFFERENCES = [
    ("model", "tiny", "small"),
    ("epochs", 2, 4),
    ("max_train_samples", None, 200),
    ("precision", "fp32", "bf16"),
]


def two_runs(folder: Path, name: str, first, second, drop: float = 0.0) -> None:
    """CE at noise 0.4, seed 0, both runs: F1 0.60 with ``name=first``, 0.80 - ``drop``
    with ``name=second``."""
    write_run(folder, "ce", None, None, 0.4, 0, 0.60, 0.1, **{name: first})
    write_run(folder, "ce", None, None, 0.4, 0, 0.80 - drop, 0.1, **{name: second})


def f1_cells(folder: Path) -> list[dict]:
    rows = aggregate(collect([folder], "test", ["f1"]).records)
    return sorted(rows, key=lambda row: row["mean"])


@pytest.mark.parametrize(("name", "first", "second"), DIFFERENCES)
def test_runs_that_differ_in_one_setting_are_two_cells(tmp_path, name, first, second):
    two_runs(tmp_path, name, first, second)
    low, high = f1_cells(tmp_path)
    assert (low["mean"], low["n"]) == (0.60, 1) and (high["mean"], high["n"]) == (0.80, 1)
    if name == "model":  # two tables, each titled by its model
        assert (low["model"], high["model"]) == ("tiny", "small")
        assert (low["loss"], high["loss"]) == ("ce", "ce")
    else:  # one table, whose rows say what differs
        assert low["loss"] == f"ce {setting_text({name: first}, name)}"
        assert (low["settings"][name], high["settings"][name]) == (first, second)
        (table,) = pivots([low, high], ["f1"])
        assert table.rows == sorted([low["loss"], high["loss"]])


def test_rows_name_what_differs_in_every_format(runner, tmp_path):
    two_runs(tmp_path / "runs", "epochs", 2, 4)
    result = runner.invoke(app, ["leaderboard", str(tmp_path / "runs"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "ce epochs=2" in result.stdout and "ce epochs=4" in result.stdout
    markdown = (tmp_path / "toyner-tiny-uniform-f1.md").read_text()
    assert "| ce epochs=2 | 60.00 (n=1) |" in markdown
    assert "| ce epochs=4 | **80.00 (n=1)** |" in markdown
    long = json.loads((tmp_path / "runs.json").read_text())
    assert sorted(r["settings"]["epochs"] for r in long) == [2, 2, 2, 4, 4, 4]  # f1, ece, mce
    document = json.loads(
        runner.invoke(app, ["leaderboard", str(tmp_path / "runs"), "--json"]).stdout
    )
    settings = {e["loss"]: e["settings"] for e in document["entries"] if e["metric"] == "f1"}
    assert settings["ce epochs=4"] == {"loss": "ce", "q": None, "s": None, "noise": "uniform",
                                       "rate": 0.4, "epochs": 4, "precision": "fp32",
                                       "validation_labels": "noisy"}  # fmt: skip


@pytest.mark.parametrize(("name", "first", "second"), DIFFERENCES)
def test_the_gate_keys_them_apart(runner, tmp_path, name, first, second):
    baseline = tmp_path / "baseline.json"
    two_runs(tmp_path / "good", name, first, second)
    good = ["leaderboard", str(tmp_path / "good")]
    saved = runner.invoke(app, [*good, "--save-baseline", str(baseline)])
    assert saved.exit_code == 0, saved.output
    assert json.loads(baseline.read_text())["schema_version"] == 2
    two_runs(tmp_path / "worse", name, first, second, drop=0.02)  # only the second lost 2 points
    gate = ["--baseline", str(baseline), "--fail-on", "f1:-1", "--json", "--no-verdict"]
    result = runner.invoke(app, ["leaderboard", str(tmp_path / "worse"), *gate])
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)["gate"]
    f1 = sorted((r for r in document["rows"] if r["metric"] == "f1"), key=lambda r: r["diff"])
    assert [round(r["diff"], 6) for r in f1] == [-2.0, 0.0]
    assert f1[0]["settings"].get(name) == second or f1[0]["model"] == second
    (failed,) = document["failed"]
    assert ("small" if name == "model" else f"ce {name}=") in failed
    # a baseline of the first set-up alone says nothing about the second
    write_run(tmp_path / "first", "ce", None, None, 0.4, 0, 0.60, 0.1, **{name: first})
    only = tmp_path / "only-first.json"
    runner.invoke(app, ["leaderboard", str(tmp_path / "first"), "--save-baseline", str(only)])
    gate[1] = str(only)
    result = runner.invoke(app, [*good, *gate])
    document = json.loads(result.stdout)["gate"]
    assert [r["diff"] for r in document["rows"] if r["metric"] == "f1"] == [0.0]
    (new,) = [r for r in document["missing_in_baseline"] if r["metric"] == "f1"]
    assert new["settings"].get(name) == second or new["model"] == second


def test_a_legacy_baseline_is_still_read_and_says_so(runner, tmp_path):
    for seed, f1 in enumerate((0.60, 0.62)):
        write_run(tmp_path / "runs", "ce", None, None, 0.4, seed, f1, 0.1)
    key = {"dataset": "toyner", "noise": "uniform", "rate": 0.4, "loss": "ce", "q": None,
           "s": None, "split": "test"}  # fmt: skip
    entries = [key | {"metric": "f1", "mean": 0.64, "std": 0.0, "n": 2}]
    (tmp_path / "v1.json").write_text(json.dumps({"schema_version": 1, "entries": entries}))
    gate = ["--baseline", str(tmp_path / "v1.json"), "--fail-on", "f1:-1", "--no-verdict"]
    result = runner.invoke(app, ["leaderboard", str(tmp_path / "runs"), *gate])
    assert result.exit_code == 1, result.output  # 61 against 64: matched and regressed
    assert "saved before baselines recorded every setting" in result.stderr
    assert "re-save it with --save-baseline" in result.stderr
    # another model's runs under the same old key: the old entry matches neither alone
    write_run(tmp_path / "runs", "ce", None, None, 0.4, 0, 0.40, 0.1, model="small")
    result = runner.invoke(app, ["leaderboard", str(tmp_path / "runs"), *gate, "--json"])
    assert result.exit_code == 1, result.output  # it compares nothing now: no guard
    document = json.loads(result.stdout)["gate"]
    assert [r for r in document["rows"] if r["metric"] == "f1"] == []
    assert [r["loss"] for r in document["missing_in_current"]] == ["ce"]
    assert {r["model"] for r in document["missing_in_baseline"]} == {"tiny", "small"}


def test_where_the_model_lies_and_a_ce_start_for_ce_never_split_a_cell(tmp_path):
    for place, seed, warmup in (("a", 0, 0.1), ("b", 1, 0.0)):
        model = tmp_path / place / "tiny"
        model.mkdir(parents=True)
        write_run(tmp_path / "runs", "ce", None, None, 0.4, seed, 0.6 + seed / 10, 0.1,
                  model=str(model), loss_warmup=warmup)  # fmt: skip
    (cell,) = f1_cells(tmp_path / "runs")
    assert cell["model"] == "tiny" and cell["n"] == 2 and cell["loss"] == "ce"


def test_the_verdict_compares_within_a_set_up_and_says_what_it_left_out(tmp_path):
    two_runs(tmp_path / "runs", "epochs", 2, 4)
    write_run(tmp_path / "runs", "gce", 0.7, None, 0.4, 0, 0.70, 0.1, epochs=4)
    found = verdict.verdicts(collect([tmp_path / "runs"], "test", ["f1"]))["settings"]
    assert [
        (s["setup"], sorted((m["loss"], m["n"], m["f1"]) for m in s["methods"])) for s in found
    ] == [
        ("epochs=2", [("ce epochs=2", 1, 0.60)]),
        ("epochs=4", [("ce epochs=4", 1, 0.80), ("gce epochs=4 q=0.7", 1, 0.70)]),
    ]
    assert found[1]["ce"] == "ce epochs=4"  # gce is compared with CE of its own budget
    assert found[1]["text"][0].startswith("toyner, tiny, uniform noise 0.40, epochs=4 (1 seed")
    assert found[0]["left_out"] == found[1]["left_out"] == []
    # the same settings and seed twice (trained again from a model at another path): one
    # run is left out of the paired comparisons, and the verdict names it
    model = tmp_path / "elsewhere" / "tiny"
    model.mkdir(parents=True)
    copy = tmp_path / "copy"
    again = write_run(copy, "ce", None, None, 0.4, 0, 0.60, 0.1, epochs=2, model=str(model))
    collected = collect([tmp_path / "runs", copy], "test", ["f1"])
    first = verdict.verdicts(collected)["settings"][0]
    assert first["setup"] == "epochs=2" and first["left_out"] == [again.name]
    assert (
        f"Left out of the comparisons (another run has the same settings and seed): {again.name}."
        in first["text"]
    )


def test_tuning_chooses_among_runs_of_one_budget_only(runner, tmp_path):
    folder = tmp_path / "runs"
    for lr, epochs, f1 in ((1e-5, 2, 0.5), (1e-4, 2, 0.6), (1e-5, 4, 0.7)):
        run = write_run(folder, "ce", None, None, 0.4, 0, f1, 0.1, lr=lr, epochs=epochs)
        results = json.loads((run / "results.json").read_text())
        results["splits"]["validation"] = {"f1": f1}
        (run / "results.json").write_text(json.dumps(results))
    result = runner.invoke(app, ["leaderboard", str(folder), "--tuned", "--json", "--no-verdict"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert sorted((c["loss"], c["label"], c["trials"]) for c in document["tuning"]) == [
        ("ce epochs=2", "lr=0.0001", 2),
        ("ce epochs=4", "lr=1e-05", 1),
    ]
    assert sorted(e["loss"] for e in document["entries"] if e["metric"] == "f1") == [
        "ce epochs=2 lr=0.0001",
        "ce epochs=4 lr=1e-05",
    ]


def test_a_matrix_run_is_its_own_noise_and_names_nothing_in_other_rows(tmp_path):
    write_run(tmp_path, "ce", None, None, 0.4, 0, 0.60, 0.1)
    matrix_run = write_run(tmp_path, "ce", None, None, 0.0, 0, 0.50, 0.1)
    stored = json.loads((matrix_run / "config.json").read_text())
    stored["config"].update(rate=None, noise="matrix", matrix="flips.json")
    (matrix_run / "config.json").write_text(json.dumps(stored))
    results = json.loads((matrix_run / "results.json").read_text())
    results["config"] = stored["config"]
    (matrix_run / "results.json").write_text(json.dumps(results))
    cells = {row["noise"]: row for row in f1_cells(tmp_path)}
    assert set(cells) == {"uniform", "matrix"}
    assert cells["matrix"]["settings"]["matrix"] == "flips.json"
    assert cells["uniform"]["loss"] == "ce" and cells["matrix"]["loss"] == "ce"
    tables = pivots(list(cells.values()), ["f1"])
    assert len(tables) == 2 and all(table.rows == ["ce"] for table in tables)


def test_a_copied_run_counts_once_and_is_named(runner, tmp_path):
    write_run(tmp_path / "a", "ce", None, None, 0.4, 0, 0.60, 0.1)
    write_run(tmp_path / "b", "ce", None, None, 0.4, 0, 0.80, 0.1)  # the same run, copied
    records = collect([tmp_path / "a", tmp_path / "b"], "test", ["f1"]).records
    (cell,) = [row for row in aggregate(records) if row["metric"] == "f1"]
    assert (cell["n"], cell["mean"], cell["std"]) == (1, 0.60, 0.0)
    assert len(cell["repeated_runs"]) == 1
    result = runner.invoke(app, ["leaderboard", str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "1 run(s) left out of the tables: another run with the same settings and seed" in (
        result.stderr.replace("\n", "")
    )
