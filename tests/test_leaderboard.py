"""Leaderboards and the regression gate, on run folders written by the tests."""

import csv
import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from noisebench.cli import app
from noisebench.studies.leaderboard.cells import ENTRY_FIELDS, aggregate
from noisebench.studies.leaderboard.labels import loss_label
from noisebench.studies.leaderboard.outputs import LONG_FIELDS
from noisebench.studies.leaderboard.records import LEADERBOARD_DIR, collect
from noisebench.studies.leaderboard.render import pivot_markdown
from noisebench.studies.leaderboard.settings import is_oracle
from noisebench.studies.leaderboard.tables import pivots

# (loss, q, s, rate) -> test F1 / ECE per seed
F1 = {
    ("ce", None, None, 0.0): [0.90, 0.91, 0.92],
    ("ce", None, None, 0.4): [0.70, 0.74, 0.69],
    ("gce", 0.7, None, 0.0): [0.89, 0.90, 0.90],
    ("gce", 0.7, None, 0.4): [0.80, 0.78, 0.81],
}
ECE = {
    key: [(0.03 if key[0] == "ce" else 0.02) + 0.1 * key[3] + 0.001 * i for i in range(3)]
    for key in F1
}


def write_run(folder: Path, loss, q, s, rate, seed, f1, ece, complete=True, **settings) -> Path:
    """A run folder as train writes it (``settings``: other config keys, e.g. epochs=4)."""
    config = {
        "data": "toyner",
        "loss": loss,
        "q": q,
        "s": s,
        "model": "tiny",
        "noise": "uniform",
        "rate": rate,
        "seed": seed,
        "loss_warmup": 0.1,  # the default
        **settings,
    }
    digest = abs(hash((loss, q, rate, repr(sorted(settings.items()))))) % 10**8
    run_dir = folder / f"toyner-uniform{rate:.2f}-{loss}-seed{seed}-{digest:08d}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"config": config}))
    if complete:
        scores = {
            "f1": f1,
            "precision": f1,
            "recall": f1,
            "ece": ece,
            "mce": 2 * ece,
            "brier": 0.1,
            "nll": 0.3,
            "reliability": [
                {
                    "lo": b / 10,
                    "hi": (b + 1) / 10,
                    "count": 1,
                    "accuracy": 0.5,
                    "confidence": b / 10 + 0.05,
                }
                for b in range(10)
            ],
        }
        results = {"schema_version": 1, "config": config, "splits": {"test": scores}}
        (run_dir / "results.json").write_text(json.dumps(results))
    return run_dir


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    folder = tmp_path / "runs"
    for (loss, q, s, rate), values in F1.items():
        for seed, (f1, ece) in enumerate(zip(values, ECE[(loss, q, s, rate)], strict=True)):
            write_run(folder, loss, q, s, rate, seed, f1, ece)
    write_run(folder, "ce", None, None, 0.0, 9, 0.0, 0.0, complete=False)
    return folder


def leaderboard(runner, *args):
    return runner.invoke(app, ["leaderboard", *map(str, args)])


def test_aggregation_matches_numpy(runs_dir):
    collected = collect([runs_dir], "test", ["f1", "ece"])
    assert collected.complete == 12 and len(collected.incomplete) == 1
    rows = {(r["loss"], r["rate"], r["metric"]): r for r in aggregate(collected.records)}
    values = np.array(F1[("ce", None, None, 0.4)])
    row = rows[("ce", 0.4, "f1")]
    assert row["mean"] == pytest.approx(values.mean())
    assert row["std"] == pytest.approx(values.std(ddof=1))
    assert row["n"] == 3
    assert row["ci95"] == pytest.approx(4.303 * values.std(ddof=1) / np.sqrt(3))
    single = aggregate([{**collected.records[0], "value": 0.5}])[0]
    assert single["n"] == 1 and single["std"] == 0.0 and single["ci95"] is None


def test_pivot_highlights_the_best_in_the_right_direction(runs_dir):
    aggregated = aggregate(collect([runs_dir], "test", ["f1", "ece"]).records)
    f1, ece = pivots(aggregated, ["f1", "ece"])
    assert f1.rows == ["ce", "gce q=0.7"] and f1.rates == [0.0, 0.4]
    assert f1.best == {0.0: "ce", 0.4: "gce q=0.7"}
    assert ece.best == {0.0: "gce q=0.7", 0.4: "gce q=0.7"}
    markdown = pivot_markdown(f1)
    assert "| ce | **91.0 ± 1.0 (n=3)** | 71.0 ± 2.6 (n=3) |" in markdown
    assert "f1 (percent, higher is better)" in markdown


def test_terminal_table_and_every_written_file_parses(runner, runs_dir, tmp_path):
    out = tmp_path / "lb"
    result = leaderboard(runner, runs_dir, "--out", out, "--plots")
    assert result.exit_code == 0, result.output
    assert "12 complete runs; skipped 1 incomplete" in result.stdout
    assert "gce q=0.7" in result.stdout
    names = sorted(p.name for p in out.iterdir())
    for stem in ("toyner-tiny-uniform-f1", "toyner-tiny-uniform-ece", "toyner-tiny-uniform-mce"):
        assert f"{stem}.md" in names and f"{stem}.csv" in names
    for plot in (
        "toyner-tiny-uniform-f1-vs-noise",
        "toyner-tiny-uniform-ece-vs-noise",
        "toyner-tiny-uniform-reliability",
    ):
        assert (out / f"{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (out / f"{plot}.svg").read_bytes()[:500]
    pivot = list(csv.DictReader(io.StringIO((out / "toyner-tiny-uniform-f1.csv").read_text())))
    assert pivot[0]["loss"] == "ce" and float(pivot[0]["0.40 mean"]) == pytest.approx(0.71)
    long_csv = list(csv.DictReader(io.StringIO((out / "runs.csv").read_text())))
    long_json = json.loads((out / "runs.json").read_text())
    long_parquet = pq.read_table(out / "runs.parquet").to_pylist()
    assert len(long_csv) == len(long_json) == len(long_parquet) == 12 * 3
    assert list(long_json[0]) == list(LONG_FIELDS)
    assert long_parquet[0]["value"] == pytest.approx(float(long_csv[0]["value"]))
    only_md = leaderboard(runner, runs_dir, "--out", tmp_path / "md", "--format", "md")
    assert only_md.exit_code == 0
    assert all(p.suffix == ".md" for p in (tmp_path / "md").iterdir())
    assert not (runs_dir / LEADERBOARD_DIR).exists()  # --out chose another place


def test_tables_and_verdict_are_written_beside_the_runs_by_default(runner, runs_dir):
    result = leaderboard(runner, runs_dir, "--bootstrap", "20")
    assert result.exit_code == 0, result.output
    board = runs_dir / LEADERBOARD_DIR
    assert result.stderr.splitlines()[-1] == f"wrote the leaderboard to {board} (12 files)"
    assert {
        "summary.md",
        "verdict.md",
        "verdict.json",
        "toyner-tiny-uniform-f1.md",
        "toyner-tiny-uniform-f1.csv",
        "runs.csv",
        "runs.json",
        "runs.parquet",
    } <= {p.name for p in board.iterdir()}
    assert "## Verdict" in (board / "summary.md").read_text()
    # never taken for a run; a second leaderboard replaces it whole
    (board / "stale.md").write_text("a table of an older leaderboard")
    again = leaderboard(runner, runs_dir, "--bootstrap", "20")
    assert "12 complete runs; skipped 1 incomplete" in again.stdout
    assert not (board / "stale.md").exists() and (board / "summary.md").exists()
    collected = collect([runs_dir], "test", ["f1"])
    assert collected.complete == 12 and len(collected.incomplete) == 1
    # a leaderboard that fails leaves the last one as it was, and nothing half-written
    before = {p.name: p.read_bytes() for p in board.iterdir()}
    failed = leaderboard(runner, runs_dir, "--format", "md,xlsx")
    assert failed.exit_code == 2 and "--format 'xlsx'" in failed.stderr
    assert {p.name: p.read_bytes() for p in board.iterdir()} == before
    assert [p.name for p in runs_dir.iterdir() if p.name.startswith(".")] == []


def test_json_output_writes_nothing_unless_asked(runner, runs_dir, tmp_path):
    document = json.loads(leaderboard(runner, runs_dir, "--json", "--no-verdict").stdout)
    assert document["written"] == [] and not (runs_dir / LEADERBOARD_DIR).exists()
    document = json.loads(
        leaderboard(runner, runs_dir, "--json", "--no-verdict", "--out", tmp_path / "lb").stdout
    )
    assert str(tmp_path / "lb" / "summary.md") in document["written"]


def test_a_sweep_ends_with_the_leaderboard_written_beside_its_runs(runs_dir, capsys):
    from noisebench.cli import studies

    studies._show_leaderboard([runs_dir], tuned=False)
    board = runs_dir / LEADERBOARD_DIR
    assert "## Verdict" in (board / "summary.md").read_text()
    assert (board / "toyner-tiny-uniform-ece.csv").is_file()
    assert f"wrote the leaderboard to {board}" in capsys.readouterr().err


def test_gate_passes_against_itself_and_fails_against_a_worse_sweep(runner, runs_dir, tmp_path):
    baseline = tmp_path / "baseline.json"
    saved = leaderboard(runner, runs_dir, "--save-baseline", baseline)
    assert saved.exit_code == 0
    entries = json.loads(baseline.read_text())["entries"]
    assert set(entries[0]) == {*ENTRY_FIELDS, "mean", "std", "n"}
    same = leaderboard(
        runner, runs_dir, "--baseline", baseline, "--fail-on", "f1:-0.5", "--fail-on", "ece:+0.02"
    )
    assert same.exit_code == 0, same.output
    assert "gate passed" in same.stdout

    worse = tmp_path / "worse"
    for (loss, q, s, rate), values in F1.items():
        for seed, (f1, ece) in enumerate(zip(values, ECE[(loss, q, s, rate)], strict=True)):
            drop = 0.02 if (loss, rate) == ("gce", 0.4) else 0.0  # 2 F1 points lost
            write_run(worse, loss, q, s, rate, seed, f1 - drop, ece + (0.03 if loss == "ce" else 0))
    failed = leaderboard(
        runner, worse, "--baseline", baseline, "--fail-on", "f1:-0.5", "--fail-on", "ece:+0.02"
    )
    assert failed.exit_code == 1
    assert "gate failed: 3 keys" in failed.stderr
    assert "toyner tiny uniform@0.40 gce q=0.7 test f1" in failed.stderr
    assert "toyner tiny uniform@0.00 ce test ece" in failed.stderr
    assert "regressed" in failed.stdout and "-2.0000" in failed.stdout
    document = json.loads(
        leaderboard(runner, worse, "--baseline", baseline, "--fail-on", "f1:-0.5", "--json").stdout
    )
    assert document["gate"]["failed"] == ["toyner tiny uniform@0.40 gce q=0.7 test f1"]
    row = next(r for r in document["gate"]["rows"] if r["status"] == "regressed")
    assert row["diff"] == pytest.approx(-2.0)


def test_a_baseline_saved_before_precision_still_gates(runner, runs_dir, tmp_path):
    """Entries saved before runs' settings carried their precision match the one current
    cell that equals them but for it: a regression is still caught."""
    baseline = tmp_path / "baseline.json"
    assert leaderboard(runner, runs_dir, "--save-baseline", baseline).exit_code == 0
    document = json.loads(baseline.read_text())
    for entry in document["entries"]:
        del entry["settings"]["precision"]  # as a baseline from before --precision
    document["entries"][0]["mean"] += 0.5  # every run is now 50 points below it
    baseline.write_text(json.dumps(document))
    failed = leaderboard(runner, runs_dir, "--baseline", baseline, "--fail-on", "f1:-0.5",
                         "--fail-on", "ece:+0.02", "--json")  # fmt: skip
    gate = json.loads(failed.stdout)["gate"]
    assert failed.exit_code == 1 and len(gate["failed"]) == 1
    assert gate["missing_in_current"] == [] and gate["missing_in_baseline"] == []


def test_missing_baseline_keys_fail_unless_allowed(runner, runs_dir, tmp_path):
    baseline = tmp_path / "baseline.json"
    assert leaderboard(runner, runs_dir, "--save-baseline", baseline).exit_code == 0
    partial = tmp_path / "partial"
    for seed, (f1, ece) in enumerate(
        zip(F1[("ce", None, None, 0.0)], ECE[("ce", None, None, 0.0)], strict=True)
    ):
        write_run(partial, "ce", None, None, 0.0, seed, f1, ece)
    gate = ["--baseline", baseline, "--fail-on", "f1:-0.5"]
    failed = leaderboard(runner, partial, *gate)
    assert failed.exit_code == 1
    assert "missing in current runs: toyner tiny uniform@0.40 gce q=0.7 test f1" in failed.stdout
    allowed = leaderboard(runner, partial, *gate, "--allow-missing")
    assert allowed.exit_code == 0 and "gate passed" in allowed.stdout
    assert "warning: 9 baseline keys missing in the current runs" in allowed.stderr
    assert "warning" not in leaderboard(runner, runs_dir, *gate).stderr  # nothing missing
    assert leaderboard(runner, partial, *gate, "--allow-missing", "--strict").exit_code == 0
    # a current key missing in the baseline fails with --strict only
    write_run(partial, "ce", None, None, 0.0, 0, 0.9, 0.1, epochs=9)
    assert leaderboard(runner, partial, *gate, "--allow-missing").exit_code == 0
    assert leaderboard(runner, partial, *gate, "--allow-missing", "--strict").exit_code == 1


def test_a_gate_that_compares_nothing_fails_and_names_the_setting_that_differs(runner, tmp_path):
    """A baseline of 800 training sentences, current runs of the same grid on 30 (a real
    regression): no key matches, so the gate compares nothing, and fails saying why."""
    before, now = tmp_path / "before", tmp_path / "now"
    for seed in (0, 1):
        write_run(before, "ce", None, None, 0.0, seed, 0.80, 0.05, max_train_samples=800)
        write_run(now, "ce", None, None, 0.0, seed, 0.20, 0.30, max_train_samples=30)
    baseline = tmp_path / "baseline.json"
    assert leaderboard(runner, before, "--save-baseline", baseline).exit_code == 0
    gate = ["--baseline", baseline, "--fail-on", "f1:-0.5"]
    for extra in ([], ["--allow-missing"]):  # comparing nothing fails either way
        result = leaderboard(runner, now, *gate, *extra)
        assert result.exit_code == 1, result.output
        assert "gate failed" in result.stderr and "it compared no key" in result.stderr
        assert "max_train_samples 800 → 30" in result.stdout
    shown = " ".join(leaderboard(runner, now, *gate).stdout.split())
    assert (
        "missing in current runs: toyner tiny uniform@0.00 ce test f1 (closest differs:"
        " max_train_samples 800 → 30)" in shown
    )
    document = json.loads(leaderboard(runner, now, *gate, "--json").stdout)["gate"]
    assert document["compared"] == 0 and document["failed"]
    assert document["missing_in_current"][0]["differs"] == ["max_train_samples 800 → 30"]
    junit = tmp_path / "gate.xml"
    leaderboard(runner, now, *gate, "--junit", junit)
    assert 'failures="3"' in junit.read_text()  # f1, ece and mce of the baseline's cell


def test_an_empty_baseline_is_refused(runner, runs_dir, tmp_path):
    (tmp_path / "empty.json").write_text('{"schema_version": 2, "entries": []}')
    result = leaderboard(runner, runs_dir, "--baseline", tmp_path / "empty.json")
    assert result.exit_code == 2 and "holds no cells" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-on", "f1:-0.5"], "--fail-on needs --baseline FILE"),
        (["--baseline", "nope.json"], "--baseline nope.json: missing or not JSON"),
        (["--metric", "accuracy"], "--metric 'accuracy': choose from f1"),
        (["--plots", "--json"], "--plots with --json needs --out DIR"),
        (["--out", "x", "--format", "xlsx"], "--format 'xlsx': choose from md, csv"),
        (["--baseline", "b.json", "--fail-on", "f1"], "--fail-on 'f1': expected METRIC:DELTA"),
    ],
)
def test_bad_usage_exits_2(runner, runs_dir, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b.json").write_text('{"schema_version": 2, "entries": [{}]}')
    result = leaderboard(runner, runs_dir, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_no_complete_runs_exits_2(runner, tmp_path):
    write_run(tmp_path / "runs", "ce", None, None, 0.0, 0, 0.0, 0.0, complete=False)
    result = leaderboard(runner, tmp_path / "runs")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: no complete runs in {tmp_path / 'runs'} (1 incomplete)"


def test_oracle_validation_runs_form_their_own_group(tmp_path):
    write_run(tmp_path, "ce", None, None, 0.4, 0, 0.70, 0.1)
    oracle = write_run(tmp_path, "ce", None, None, 0.4, 1, 0.80, 0.1)
    results = json.loads((oracle / "results.json").read_text())
    results["config"]["validation_labels"] = "clean"
    (oracle / "results.json").write_text(json.dumps(results))
    rows = aggregate(collect([tmp_path], "test", ["f1"]).records)
    assert sorted((row["dataset"], row["mean"]) for row in rows) == [
        ("toyner", 0.70),
        ("toyner (oracle: clean validation labels)", 0.80),
    ]
    # a run from before validation noise followed train noise: clean labels chose it
    old = write_run(tmp_path, "gce", 0.7, None, 0.4, 0, 0.75, 0.1)
    results = json.loads((old / "results.json").read_text())
    results["train"] = {"validation_labels": "clean"}
    (old / "results.json").write_text(json.dumps(results))
    assert is_oracle(results)
    results["config"]["rate"] = 0.0  # without noise in train, clean labels are no oracle
    assert not is_oracle(results)
    results["config"]["rate"], results["train"]["validation_labels"] = 0.4, "noisy"
    assert not is_oracle(results)


def test_degenerate_runs_are_marked_in_every_format(runner, tmp_path):
    write_run(tmp_path, "ce", None, None, 0.4, 0, 0.70, 0.1)
    for seed in (0, 1):
        collapsed = write_run(tmp_path, "gce", 0.7, None, 0.4, seed, 0.0, 0.2)
        results = json.loads((collapsed / "results.json").read_text())
        results["splits"]["test"]["degenerate"] = {"reason": "no entity predicted"}
        (collapsed / "results.json").write_text(json.dumps(results))
    out = tmp_path / "lb"
    result = runner.invoke(app, ["leaderboard", str(tmp_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "0.00 ± 0.00† (n=2)" in result.stdout
    assert "† degenerate: 2 run(s) in 1 cell(s)" in result.stdout
    markdown = (out / "toyner-tiny-uniform-f1.md").read_text()
    assert "0.00 ± 0.00† (n=2)" in markdown and "† degenerate: 2 run(s)" in markdown
    pivot = (out / "toyner-tiny-uniform-f1.csv").read_text().splitlines()
    assert pivot[0].endswith("0.40 degenerate,0.40 still_improving")
    assert pivot[1].startswith("ce,") and pivot[1].endswith(",0,")
    assert pivot[2].startswith("gce q=0.7,") and pivot[2].endswith(",2,")
    long = json.loads((out / "runs.json").read_text())
    assert sorted({(r["loss"], r["degenerate"]) for r in long}) == [("ce", False), ("gce", True)]
    entries = json.loads(runner.invoke(app, ["leaderboard", str(tmp_path), "--json"]).stdout)
    assert {(e["loss"], e["degenerate"]) for e in entries["entries"]} == {("ce", 0), ("gce", 2)}


def test_a_loss_with_a_ce_start_is_its_own_row(tmp_path):
    write_run(tmp_path, "gce", 0.7, None, 0.4, 0, 0.50, 0.1)
    warmed = write_run(tmp_path, "gce", 0.7, None, 0.4, 1, 0.60, 0.1)
    results = json.loads((warmed / "results.json").read_text())
    results["config"]["loss_warmup"] = 0.0
    (warmed / "results.json").write_text(json.dumps(results))
    del results["config"]["loss_warmup"]  # a run from before --loss-warmup had none
    results["config"]["seed"] = 2
    old = write_run(tmp_path, "gce", 0.7, None, 0.4, 2, 0.40, 0.1)
    (old / "results.json").write_text(json.dumps(results | {"splits": {"test": {"f1": 0.4}}}))
    rows = aggregate(collect([tmp_path], "test", ["f1"]).records)
    assert sorted((loss_label(row), row["mean"], row["n"]) for row in rows) == [
        ("gce q=0.7", 0.50, 1),
        ("gce warmup=0 q=0.7", 0.50, 2),
    ]


def test_runs_without_a_recorded_learning_rate_still_tune_and_label(runner, tmp_path):
    write_run(tmp_path, "ce", None, None, 0.4, 0, 0.70, 0.1)  # configs without "lr"
    write_run(tmp_path, "gce", 0.7, None, 0.4, 0, 0.60, 0.1)
    result = runner.invoke(app, ["leaderboard", str(tmp_path), "--tuned", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert {c["label"] for c in document["tuning"]} == {"lr=?", "lr=? q=0.7"}
    assert {e["loss"] for e in document["entries"]} == {"ce lr=?", "gce lr=?"}


def test_a_threshold_on_a_metric_nothing_compared_has_is_refused(runner, tmp_path):
    """A baseline and current runs without reviewed scores, gated on reviewed_f1 only:
    every key would be 'not gated' and a 60-point regression would pass."""
    before, now = tmp_path / "before", tmp_path / "now"
    write_run(before, "ce", None, None, 0.0, 0, 0.90, 0.05)
    write_run(now, "ce", None, None, 0.0, 0, 0.30, 0.05)
    baseline = tmp_path / "baseline.json"
    assert leaderboard(runner, before, "--save-baseline", baseline).exit_code == 0
    result = leaderboard(runner, now, "--baseline", baseline, "--fail-on", "reviewed_f1:-0.5")
    assert result.exit_code == 2, result.output
    assert "--fail-on reviewed_f1: no compared key has this metric" in result.stderr
