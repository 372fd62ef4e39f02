"""The leaderboard's verdict: best loss, paired intervals against CE, CE + temperature
scaling, degenerate runs, real against simulated noise, and where it is written."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

from noisebench.cli import app
from noisebench.scoring import metrics, paired
from noisebench.studies import verdict
from noisebench.studies.leaderboard import cells, records, tables
from noisebench.training import methods, runs
from noisebench.training.config import TrainConfig
from noisebench.training.evaluate import write_results
from noisebench.training.runs import Predictions

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
SENTENCES = 120
LOSS_STREAMS = {"ce": 1, "gce": 2, "sgce": 3}


def fixed_gold(split: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0 if split == "test" else 1)
    lengths = rng.integers(2, 9, size=SENTENCES)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    gold = rng.choice(len(LABELS), size=int(offsets[-1]), p=[0.6, 0.2, 0.0, 0.2, 0.0])
    return gold, offsets


def predictions(split: str, accuracy: float, sharpness: float, seed: int) -> Predictions:
    """Predictions right on about ``accuracy`` of the words, with confidence set by
    ``sharpness`` (large: overconfident); accuracy 0 predicts O everywhere."""
    gold, offsets = fixed_gold(split)
    rng = np.random.default_rng(seed)
    guess = np.where(rng.random(len(gold)) < accuracy, gold, 0)
    logits = rng.normal(size=(len(gold), len(LABELS)))
    logits[np.arange(len(gold)), guess] += sharpness
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    tokens = [["w"] * int(n) for n in np.diff(offsets)]
    return Predictions(LABELS, tokens, gold, probs.astype(np.float32), offsets)


def write_run(
    folder: Path,
    loss: str,
    seed: int,
    accuracy: float,
    sharpness: float = 4.0,
    dataset: str = "toyner",
    rate: float | None = 0.4,
    entity_noise: float | None = None,
    lr: float = 5e-5,
    test_accuracy: float | None = None,
    history: list[float] | None = None,
    method: str = "none",
    span_smoothing: float = 0.0,
) -> Path:
    """A complete run folder scored by train's own ``write_results``."""
    q = 0.7 if loss in ("gce", "sgce") else None
    s = 0.1 if loss == "sgce" else None
    config = TrainConfig(
        data=dataset,
        loss=loss,
        q=q,
        s=s,
        rate=rate,
        seed=seed,
        lr=lr,
        method=method,
        span_smoothing=span_smoothing,
    )
    run_dir = folder / runs.run_name(config.identity(), dataset)
    run_dir.mkdir(parents=True)
    for split in ("validation", "test"):
        right = accuracy if split == "validation" or test_accuracy is None else test_accuracy
        stream = seed * 10 + LOSS_STREAMS[loss] + 100 * methods.METHODS.index(method)
        stream += int(1000 * span_smoothing)
        made = predictions(split, right, sharpness, stream)
        runs.write_predictions(run_dir / f"predictions-{split}.parquet", made)
    noise = None if entity_noise is None else {"entity_noise_level": entity_noise}
    summary = {"validation_labels": "noisy", "label_noise": noise}
    if history is not None:
        summary["history"] = [
            {"epoch": n, "validation_f1": f1} for n, f1 in enumerate(history, start=1)
        ]
    write_results(run_dir, LABELS, "IOB2", config, summary, [])
    path = run_dir / runs.RESULTS
    results = json.loads(path.read_text())
    results["dataset"] = dataset
    path.write_text(json.dumps(results))
    (run_dir / runs.CONFIG).write_text(json.dumps({"config": config.identity()}))
    return run_dir


def collect(folder: Path):
    return records.collect([folder], "test", ["f1", "ece"])


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """CE good and overconfident, GCE worse, SGCE all-O (degenerate), two seeds each."""
    folder = tmp_path_factory.mktemp("verdict") / "runs"
    for seed in (0, 1):
        write_run(folder, "ce", seed, accuracy=0.9, sharpness=6.0)
        write_run(folder, "gce", seed, accuracy=0.6, sharpness=2.0)
        write_run(folder, "sgce", seed, accuracy=0.0, sharpness=9.0)
    return folder


def test_ce_best_is_said_with_intervals_and_degenerate_runs_named(study):
    found = verdict.verdicts(collect(study), replicates=300)
    (setting,) = found["settings"]
    assert setting["best_f1"] == "ce"
    gce = setting["vs_ce"]["gce q=0.7"]["f1"]
    assert gce["significant"] and gce["ci95"][1] < 0 and gce["seeds"] == 2
    assert gce["sentences"] == SENTENCES and gce["replicates"] == 300
    methods = {m["loss"]: m for m in setting["methods"]}
    assert methods["sgce q=0.7 s=0.1"]["degenerate"] == 2 and methods["ce"]["degenerate"] == 0
    assert gce["difference"] == pytest.approx(methods["gce q=0.7"]["f1"] - methods["ce"]["f1"])
    text = "\n".join(setting["text"])
    assert "F1: CE is best" in text and "no loss beats it" in text
    assert "Degenerate (learned nothing; not measurements): sgce q=0.7 s=0.1 (2 of 2)" in text


def test_ce_plus_temperature_scaling_is_the_calibration_bar(study):
    found = verdict.verdicts(collect(study), replicates=200)
    (setting,) = found["settings"]
    scaled = setting["ce_temperature"]
    # the tags have spans: the bar is entity-level ECE, computed from the scaled test
    # probabilities by metrics' own entity calibration
    assert setting["calibration_metric"] == scaled["metric"] == "entity_ece"
    expected = []
    for run_dir in sorted(study.glob("*-ce-*")):
        validation = runs.read_predictions(run_dir / "predictions-validation.parquet")
        test = runs.read_predictions(run_dir / "predictions-test.parquet")
        temperature = metrics.fit_temperature(
            validation.probs[validation.scored], validation.gold[validation.scored]
        )
        probs = test.probs.astype(np.float64)
        probs[test.scored] = metrics.temperature_scale(probs[test.scored], temperature)
        scaled_test = runs.Predictions(test.labels, test.tokens, test.gold, probs, test.offsets)
        expected.append(metrics.entity_calibration(scaled_test)["ece"])
    assert scaled["entity_ece"] == pytest.approx(np.mean(expected), abs=1e-9)
    assert scaled["fitted_on"] == "noisy validation labels"
    assert set(scaled["vs"]) == {"gce q=0.7", "sgce q=0.7 s=0.1"}
    assert scaled["vs"]["gce q=0.7"]["metric"] == "entity_ece"
    text = "\n".join(setting["text"])
    assert "Calibration: lowest entity-level ECE" in text and "CE + temperature scaling" in text


def test_paired_entity_ece_is_metrics_entity_ece_and_needs_spans(study):
    run_dir = sorted(study.glob("*-gce-*"))[0]
    test = runs.read_predictions(run_dir / "predictions-test.parquet")
    stats = paired.sentence_stats(test, "IOB2", bins=10)
    expected = metrics.entity_calibration(test, 10)["ece"]
    assert stats.value("entity_ece") == pytest.approx(expected, abs=1e-12)
    words = paired.sentence_stats(test, "none", bins=10)
    assert not words.has("entity_ece") and words.entity_bins is None
    with pytest.raises(ValueError, match="no paired bootstrap for 'entity_ece' here"):
        words.value("entity_ece")


@pytest.mark.slow
def test_a_robust_loss_that_wins_is_called_significant_or_not(tmp_path):
    for seed in (0, 1):
        write_run(tmp_path, "ce", seed, accuracy=0.6)
        write_run(tmp_path, "gce", seed, accuracy=0.95)
    (setting,) = verdict.verdicts(collect(tmp_path), replicates=200)["settings"]
    assert setting["best_f1"] == "gce q=0.7"
    line = next(t for t in setting["text"] if t.startswith("F1:"))
    assert "points over CE: significant" in line
    assert not any(t.startswith("One seed per loss") for t in setting["text"])  # two seeds
    # one seed: a significant difference is said to hold the sentences' sampling only
    single = tmp_path / "single"
    write_run(single, "ce", 0, accuracy=0.6)
    write_run(single, "gce", 0, accuracy=0.95)
    (setting,) = verdict.verdicts(collect(single), replicates=200)["settings"]
    assert setting["vs_ce"]["gce q=0.7"]["f1"]["significant"]
    assert any(
        t.startswith("One seed per loss: the intervals hold the test sentences' sampling, not")
        for t in setting["text"]
    )
    close = tmp_path / "close"
    for seed in (0, 1):
        write_run(close, "ce", seed, accuracy=0.80)
        write_run(close, "gce", seed, accuracy=0.81)
    (setting,) = verdict.verdicts(collect(close), replicates=200)["settings"]
    entry = setting["vs_ce"]["gce q=0.7"]["f1"]
    assert entry["ci95"][0] < 0 < entry["ci95"][1]
    line = next(t for t in setting["text"] if t.startswith("F1:"))
    assert line.endswith("not significant (the interval includes 0).") or "CE is best" in line


@pytest.mark.slow
def test_real_noise_is_compared_with_simulated_noise_of_the_same_level(tmp_path):
    write_run(tmp_path, "ce", 0, 0.6, dataset="noisebench-crowd", rate=0.0, entity_noise=0.366)
    write_run(tmp_path, "ce", 0, 0.9, dataset="conll2003", rate=0.4, entity_noise=0.38)
    write_run(tmp_path, "ce", 0, 0.9, dataset="conll2003", rate=0.8, entity_noise=0.70)
    found = verdict.verdicts(collect(tmp_path), replicates=50)
    (comparison,) = found["real_vs_simulated"]
    assert comparison["simulated"] == ["conll2003", "uniform", 0.4]
    assert comparison["harder_by"] > 0.1 and comparison["loss"] == "ce"
    assert "the real noise is" in comparison["text"] and "harder" in comparison["text"]


def test_leaderboard_prints_and_writes_the_verdict(runner, study, tmp_path):
    out = tmp_path / "lb"
    result = runner.invoke(app, ["leaderboard", str(study), "--out", str(out), "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    assert "Verdict" in result.stdout and "CE is best" in result.stdout
    summary = (out / "summary.md").read_text()
    assert summary.index("### f1") < summary.index("## Verdict")
    assert (out / "verdict.md").read_text() in summary
    assert json.loads((out / "verdict.json").read_text())["settings"][0]["best_f1"] == "ce"
    document = json.loads(
        runner.invoke(app, ["leaderboard", str(study), "--json", "--bootstrap", "50"]).stdout
    )
    assert document["verdict"]["settings"][0]["vs_ce"]["gce q=0.7"]["f1"]["significant"]
    quiet = runner.invoke(app, ["leaderboard", str(study), "--no-verdict", "--json"])
    assert json.loads(quiet.stdout)["verdict"] is None
    bad = runner.invoke(app, ["leaderboard", str(study), "--bootstrap", "0"])
    assert bad.exit_code == 2 and "--bootstrap 0: must be at least 1" in bad.stderr


def test_the_gate_writes_junit_xml(runner, study, tmp_path):
    baseline = tmp_path / "baseline.json"
    assert (
        runner.invoke(app, ["leaderboard", str(study), "--save-baseline", str(baseline)]).exit_code
        == 0
    )
    document = json.loads(baseline.read_text())
    for entry in document["entries"]:
        if entry["loss"] == "ce" and entry["metric"] == "f1":
            entry["mean"] += 0.05  # CE used to be 5 points better
    baseline.write_text(json.dumps(document))
    junit = tmp_path / "gate.xml"
    args = ["leaderboard", str(study), "--no-verdict", "--baseline", str(baseline)]
    result = runner.invoke(app, [*args, "--fail-on", "f1:-1", "--junit", str(junit)])
    assert result.exit_code == 1
    suite = ElementTree.parse(junit).getroot()
    cases = suite.findall("testcase")
    assert suite.get("tests") == str(len(cases)) == str(3 * 3)  # 3 losses x f1, ece, mce
    (failed,) = [c for c in cases if c.find("failure") is not None]
    assert failed.get("classname") == "noisebench.gate.f1" and " ce test f1" in failed.get("name")
    assert "-5.0000" in failed.find("failure").get("message")
    assert "baseline" in failed.find("failure").text
    assert suite.get("failures") == "1" and suite.get("skipped") == str(2 * 3)  # ece, mce
    no_baseline = runner.invoke(app, ["leaderboard", str(study), "--junit", str(junit)])
    assert no_baseline.exit_code == 2 and "--junit needs --baseline FILE" in no_baseline.stderr


@pytest.mark.slow
def test_tuned_leaderboard_keeps_the_setting_with_the_best_validation_f1(runner, tmp_path):
    for seed in (0, 1):
        write_run(tmp_path, "ce", seed, 0.8, lr=1e-5)
        write_run(tmp_path, "ce", seed, 0.7, lr=1e-4)
        # validation prefers lr 1e-4 for gce, although its test score is lower
        write_run(tmp_path, "gce", seed, 0.9, lr=1e-4, test_accuracy=0.5)
        write_run(tmp_path, "gce", seed, 0.6, lr=1e-5, test_accuracy=0.95)
    grid = runner.invoke(app, ["leaderboard", str(tmp_path), "--json", "--no-verdict"])
    rows = {e["loss"] for e in json.loads(grid.stdout)["entries"]}
    assert rows == {"ce lr=1e-05", "ce lr=0.0001", "gce lr=1e-05", "gce lr=0.0001"}
    result = runner.invoke(
        app, ["leaderboard", str(tmp_path), "--json", "--tuned", "--bootstrap", "50"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    chosen = {c["loss"]: c for c in document["tuning"]}
    assert chosen["gce"]["lr"] == 1e-4 and chosen["gce"]["trials"] == 2
    assert chosen["ce"]["label"] == "lr=1e-05"
    f1 = {e["loss"]: e["mean"] for e in document["entries"] if e["metric"] == "f1"}
    assert set(f1) == {"ce lr=1e-05", "gce lr=0.0001"}
    expected = np.mean(
        [
            json.loads((d / "results.json").read_text())["splits"]["test"]["f1"]
            for d in tmp_path.glob("*-gce-*")
            if json.loads((d / "results.json").read_text())["config"]["lr"] == 1e-4
        ]
    )
    assert f1["gce lr=0.0001"] == pytest.approx(expected)
    (setting,) = document["verdict"]["settings"]
    assert setting["ce"] == "ce lr=1e-05" and setting["best_f1"] == "ce lr=1e-05"
    shown = runner.invoke(app, ["leaderboard", str(tmp_path), "--tuned", "--no-verdict"])
    assert "gce: lr=0.0001 q=0.7 (validation F1" in shown.stdout


def test_a_loss_still_improving_at_its_last_epoch_is_said_and_marked(runner, tmp_path):
    for seed in (0, 1):
        write_run(tmp_path, "ce", seed, accuracy=0.9, history=[0.70, 0.705 + 0.002 * seed])
        write_run(tmp_path, "gce", seed, accuracy=0.6, history=[0.30, 0.44 + 0.02 * seed])
        write_run(tmp_path, "sgce", seed, accuracy=0.6, history=[0.30, 0.50, 0.45][: 2 + seed])
    (setting,) = verdict.verdicts(collect(tmp_path), replicates=50)["settings"]
    assert setting["still_improving"] == {"gce q=0.7": pytest.approx(0.15)}
    assert (
        "gce q=0.7 was still improving at its last epoch (+15.0 validation F1): a longer"
        " budget may change this." in setting["text"]
    )
    assert not any(line.startswith(("ce ", "sgce ")) for line in setting["text"])
    document = json.loads(
        runner.invoke(app, ["leaderboard", str(tmp_path), "--json", "--bootstrap", "20"]).stdout
    )
    marks = {e["loss"]: e["still_improving"] for e in document["entries"] if e["metric"] == "f1"}
    assert marks == {"ce": None, "gce": pytest.approx(0.15), "sgce": None}
    table = runner.invoke(app, ["leaderboard", str(tmp_path), "--no-verdict"])
    assert "↑ (n=2)" in table.stdout
    assert "↑ still improving: 1 cell(s) whose validation F1 rose by more than 1 point(s)" in (
        table.stdout
    )
    out = tmp_path / "lb"
    runner.invoke(app, ["leaderboard", str(tmp_path), "--out", str(out), "--no-verdict"])
    markdown = (out / "toyner-minilm-l6-uniform-f1.md").read_text()
    assert "↑ (n=2)" in markdown and "↑ still improving" in markdown


def test_tables_and_verdicts_say_whose_labels_and_what_noise_was_added(runner, tmp_path):
    crowd = dict(dataset="noisebench-crowd", entity_noise=0.366)
    write_run(tmp_path / "sweep", "ce", 0, 0.6, rate=0.0, **crowd)
    write_run(tmp_path / "sweep", "ce", 0, 0.5, rate=0.1, **crowd)
    write_run(tmp_path / "sweep", "ce", 0, 0.9, dataset="conll2003", rate=0.4)
    write_run(tmp_path / "train", "ce", 0, 0.6, rate=None, **crowd)
    result = runner.invoke(app, ["leaderboard", str(tmp_path / "sweep"), "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert (
        "noisebench-crowd, minilm-l6, the dataset's own noisy labels + added uniform noise" in text
    )
    assert "conll2003, minilm-l6, uniform noise" in text
    assert "rate 0.00" not in text and "as given" in text and "+ 0.10" in text
    assert "noisebench-crowd, minilm-l6, the dataset's own noisy labels, no added noise (1" in text
    assert (
        "noisebench-crowd, minilm-l6, the dataset's own noisy labels + added uniform noise 0.10 (1"
        in text
    )
    alone = runner.invoke(app, ["leaderboard", str(tmp_path / "train"), "--bootstrap", "20"])
    text = " ".join(alone.stdout.split())
    assert "none noise" not in text
    assert "f1 (%, higher is better) — noisebench-crowd, minilm-l6, the dataset's own noisy" in text


def test_methods_are_rows_bounds_are_apart_and_the_gap_share_is_said(runner, tmp_path):
    for seed in (0, 1):
        write_run(tmp_path, "ce", seed, accuracy=0.6)
        write_run(tmp_path, "ce", seed, accuracy=0.7, method="mask-missing")
        write_run(tmp_path, "ce", seed, accuracy=0.95, method="oracle-clean")
    (setting,) = verdict.verdicts(collect(tmp_path), replicates=50)["settings"]
    labels = {m["loss"]: m["f1"] for m in setting["methods"]}
    assert set(labels) == {"ce", "ce +mask-missing", "ce +oracle-clean (bound)"}
    assert setting["ce"] == "ce" and setting["best_f1"] == "ce +mask-missing"
    gap = setting["recoverable_gap"]
    expected = (labels["ce +mask-missing"] - labels["ce"]) / (
        labels["ce +oracle-clean (bound)"] - labels["ce"]
    )
    assert gap["ceiling"] == "ce +oracle-clean (bound)"
    assert gap["closed"]["ce +mask-missing"] == pytest.approx(expected)
    line = next(t for t in setting["text"] if t.startswith("Bounds"))
    assert f"share of that gap closed: ce +mask-missing {expected:.0%}." in line
    table = runner.invoke(app, ["leaderboard", str(tmp_path), "--no-verdict", "--json"])
    best = tables.pivots(cells.aggregate(collect(tmp_path).records), ["f1"])[0].best
    assert best == {0.4: "ce +mask-missing"}  # the bound has the highest F1 but is no method
    assert table.exit_code == 0


def test_span_smoothed_runs_are_their_own_rows_against_ce(tmp_path):
    for seed in (0, 1):
        write_run(tmp_path, "ce", seed, accuracy=0.6)
        write_run(tmp_path, "ce", seed, accuracy=0.7, span_smoothing=0.1)
    (setting,) = verdict.verdicts(collect(tmp_path), replicates=50)["settings"]
    assert setting["ce"] == "ce" and setting["best_f1"] == "ce span=0.1"
    assert setting["vs_ce"]["ce span=0.1"]["f1"]["difference"] > 0


def test_leaderboard_never_imports_the_verdict():
    """verdict reads leaderboard's collected runs; the other way would be a cycle.
    ``studies.board``, which puts the tables and the verdict together, sits above both."""
    import ast

    modules = sorted(Path(records.__file__).parent.glob("*.py"))
    assert len(modules) > 5
    for module in modules:
        tree = ast.parse(module.read_text())
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        } | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not any(name and "verdict" in name for name in imported), module.name


def test_a_runs_figures_are_drawn_before_results_json_marks_it_complete(tmp_path):
    """A run killed while its figures are drawn is not complete (no results.json), so it is
    trained or scored again rather than left without them; a failing figure leaves none."""
    from noisebench.studies import plots

    run_dir = write_run(tmp_path, "ce", 0, 0.8)
    config = TrainConfig.from_identity(json.loads((run_dir / runs.RESULTS).read_text())["config"])
    (run_dir / runs.RESULTS).unlink()
    seen = []

    def figures(folder: Path, results: dict) -> None:
        seen.append((folder, (folder / runs.RESULTS).exists(), set(results["splits"])))
        plots.run_figures(folder, results)

    write_results(run_dir, LABELS, "IOB2", config, {}, [], figures)
    assert seen == [(run_dir, False, {"validation", "test"})]
    assert (run_dir / "reliability-test.png").is_file() and (run_dir / runs.RESULTS).is_file()

    def broken(folder: Path, results: dict) -> None:
        raise OSError("disk full")

    (run_dir / runs.RESULTS).unlink()
    with pytest.raises(OSError):
        write_results(run_dir, LABELS, "IOB2", config, {}, [], broken)
    assert not (run_dir / runs.RESULTS).exists()


def test_an_oracle_that_knew_a_few_reviewed_sentences_is_no_ceiling():
    from noisebench.studies.verdict import _recoverable_gap

    summary = {"ce": {"f1": 0.5}, "ce +oracle-clean": {"f1": 0.6}, "ce +mask-missing": {"f1": 0.55}}
    gap = _recoverable_gap(summary, "ce")
    assert gap["points"] == pytest.approx(0.1)
    assert gap["closed"]["ce +mask-missing"] == pytest.approx(0.5)
    assert _recoverable_gap(summary, "ce", {"ce +oracle-clean"}) is None


def test_runs_trained_on_different_hardware_are_said_so(tmp_path):
    """Where a setting's runs recorded two kinds of hardware (processor, CPU threads) the
    verdict says their differences include the order of the additions; one kind, or a run
    from before the record (whether they differ is unknown), says nothing."""
    made = {
        (loss, seed): write_run(tmp_path, loss, seed, accuracy=0.6 if loss == "ce" else 0.9)
        for loss in ("ce", "gce")
        for seed in (0, 1)
    }

    def record(run_dir: Path, threads: int | None) -> None:
        path = run_dir / runs.RESULTS
        results = json.loads(path.read_text())
        results["train"].pop("hardware", None)
        if threads is not None:
            results["train"]["hardware"] = {"processor": "Xeon", "threads": threads}
        path.write_text(json.dumps(results))

    def hardware_lines() -> list[str]:
        (setting,) = verdict.verdicts(collect(tmp_path), replicates=50)["settings"]
        return [t for t in setting["text"] if t.startswith("Trained on different hardware")]

    def lines_for(found: str) -> list[str]:
        return [
            f"Trained on different hardware or CPU thread counts ({found}): the order of a"
            " run's arithmetic (across devices, its kernels) moves its scores about as much as"
            " its seed does, so the differences between these runs include that."
        ]

    assert hardware_lines() == []  # none recorded
    for run_dir in made.values():
        record(run_dir, 2)
    assert hardware_lines() == []  # all alike
    record(made[("gce", 1)], 1)
    assert hardware_lines() == lines_for("Xeon, 1 CPU thread; Xeon, 2 CPU threads")
    record(made[("gce", 1)], 2)
    path = made[("gce", 0)] / runs.RESULTS  # a GPU run: its name, no CPU threads
    results = json.loads(path.read_text())
    results["train"] |= {"device": "cuda:0", "hardware": {"processor": "H100", "threads": 2}}
    path.write_text(json.dumps(results))
    assert hardware_lines() == lines_for("H100; Xeon, 2 CPU threads")
    record(made[("ce", 0)], None)  # one run from before the record
    assert hardware_lines() == []
