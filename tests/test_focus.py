"""A review focused where two runs disagree (``review sample --compare``) and the
estimates it gives without bias (``studies.focus``), checked against the full truth."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import mark_reviewed

from noisebench.cli import app
from noisebench.data import loading
from noisebench.scoring import design
from noisebench.training import runs


def run(runner, *args, code=0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def write_run(folder: Path, split, wrong: set[int]) -> Path:
    """A run folder with predictions of ``split``: its labels, except all ``O`` on the
    sentences in ``wrong``."""
    folder.mkdir(parents=True)
    labels = loading.label_names(split)
    gold, offsets = loading.flat_tags(split)
    predicted = gold.copy()
    for sentence in wrong:
        predicted[offsets[sentence] : offsets[sentence + 1]] = labels.index("O")
    probs = np.full((len(gold), len(labels)), 0.01, dtype=np.float32)
    probs[np.arange(len(gold)), predicted] = 0.9
    made = runs.Predictions(labels, split["tokens"], gold, probs, offsets)
    runs.write_predictions(folder / "predictions-validation.parquet", made)
    return folder


def entity_count(split, sentence: int) -> int:
    names = loading.label_names(split)
    return sum(names[t].startswith("B-") for t in split[sentence]["tags"])


def test_a_designed_review_estimates_each_runs_f1_and_decides_the_best(runner, ner_dir, tmp_path):
    """Three runs that miss every entity of 2, 8 and 5 sentences: strata by hand, the
    manifest's design, each run's exact F1 from a full review, decided; a partial review
    estimates them with intervals."""
    split = loading.load(ner_dir)["validation"]
    with_entities = [s for s in range(len(split)) if entity_count(split, s)]
    wrong = [set(with_entities[:2]), set(with_entities[2:10]), set(with_entities[10:15])]
    made_runs = [write_run(tmp_path / name, split, w) for name, w in zip("abc", wrong, strict=True)]
    compare = [arg for r in made_runs for arg in ("--compare", r)]
    review = tmp_path / "review"
    manifest = json.loads(
        run(runner, "review", "sample", ner_dir, "-n", 12, *compare, "-o", review,
            "--json").stdout
    )["manifest"]  # fmt: skip
    design = manifest["compare"]
    none = len(split) - len(with_entities)  # every run predicts nothing there
    assert design["sizes"] == [none, len(with_entities) - 15, 15]
    assert sum(design["allocation"]) == len(manifest["sentences"]) == 12
    assert all(n >= 2 for n in design["allocation"])
    strata = np.array(design["stratum"])
    assert set(np.flatnonzero(strata == 2)) == set().union(*wrong)
    # a full review: every run's F1 on the split exactly, and the best decided
    everything = tmp_path / "review-all"
    run(runner, "review", "sample", ner_dir, "-n", len(split), *compare, "-o", everything)
    found = json.loads(
        run(runner, "review", "merge", ner_dir, mark_reviewed(everything / "review.conll"),
            "-o", tmp_path / "merged-all", "--json").stdout
    )["compare"]  # fmt: skip
    gold = sum(entity_count(split, s) for s in range(len(split)))
    for entry, missed in zip(found["f1"], wrong, strict=True):
        predicted = gold - sum(entity_count(split, s) for s in missed)
        assert entry["estimate"] == pytest.approx(2 * predicted / (predicted + gold))
        assert entry["standard_error"] == 0.0
    assert found["best"] == 0 and found["decided"] and found["sentences_needed"] is None
    # the 12 sentences: estimates with intervals, shown in words
    shown = run(runner, "review", "merge", ner_dir, mark_reviewed(review / "review.conll"),
                "-o", tmp_path / "merged").stdout  # fmt: skip
    assert "Designed review, look 1: 12 reviewed sentences" in shown and "F1 on the split" in shown
    assert "decided:" in shown or "not yet:" in shown
    # runs of other sentences are refused in one line
    other = tmp_path / "other"
    other.mkdir()
    (other / "predictions-validation.parquet").write_bytes(
        (made_runs[0] / "predictions-validation.parquet").read_bytes()
    )
    refused = run(runner, "review", "sample", ner_dir, "--split", "test", *compare[:2],
                  "--compare", other, "-o", tmp_path / "x", code=2)  # fmt: skip
    assert "no predictions of the test split" in refused.stderr


def test_a_focused_merge_needs_only_its_manifest_and_says_when_a_run_changed(
    runner, ner_dir, tmp_path
):
    """The estimate is the same with the runs moved away; a run re-predicted since the
    sample is named; the merge prints the estimate."""
    split = loading.load(ner_dir)["validation"]
    with_entities = [s for s in range(len(split)) if entity_count(split, s)]
    run_a = write_run(tmp_path / "runs" / "a", split, set(with_entities[8:10]))
    run_b = write_run(tmp_path / "runs" / "b", split, set(with_entities[:8]))
    review = tmp_path / "review"
    run(runner, "review", "sample", ner_dir, "-n", 6, "--compare", run_a, "--compare", run_b,
        "-o", review)  # fmt: skip
    conll = mark_reviewed(review / "review.conll")
    args = ["review", "merge", ner_dir, conll, "--json", "-o"]
    here = json.loads(run(runner, *args, tmp_path / "m1").stdout)["compare"]
    (tmp_path / "runs").rename(tmp_path / "moved")  # the runs are elsewhere now
    moved = json.loads(run(runner, *args, tmp_path / "m2").stdout)["compare"]
    assert moved == here and here["changed_runs"] == []
    (tmp_path / "moved").rename(tmp_path / "runs")
    write_run(tmp_path / "runs" / "c", split, set(with_entities))  # a new prediction of A
    (run_a / "predictions-validation.parquet").write_bytes(
        (tmp_path / "runs" / "c" / "predictions-validation.parquet").read_bytes()
    )
    again = json.loads(run(runner, *args, tmp_path / "m3").stdout)["compare"]
    assert again["changed_runs"] == [str(run_a)]
    assert again["f1"] == here["f1"]  # of what was sampled
    shown = run(runner, "review", "merge", ner_dir, conll, "-o", tmp_path / "m4").stdout
    assert "Designed review, look 1: 6 reviewed sentences" in shown
    assert f"{run_a}'s predictions changed since the sample" in " ".join(shown.split())


def result(task: dict) -> list:
    return task["predictions"][0]["result"]


def accept_as_label_studio(review: Path) -> Path:
    """A Label Studio export of ``review`` in which a reviewer submitted every task with
    its pre-annotations (the given labels: the truth here)."""
    tasks = json.loads((review / "labelstudio.json").read_text())
    export = [
        {
            "id": 900 + n,
            "data": t["data"],
            "annotations": [{"result": t["predictions"][0]["result"]}],
        }
        for n, t in enumerate(tasks)
    ]
    (review / "export.json").write_text(json.dumps(export))
    return review / "export.json"


def test_a_review_in_batches_says_not_yet_then_decided(runner, ner_dir, tmp_path):
    """Three runs; a first batch from Label Studio says not yet and about how many more;
    --continue draws the next batch of the same design (no sentence twice, one look
    later); after it the merge decides, with each run's F1 interval on the split."""
    split = loading.load(ner_dir)["validation"]
    with_entities = [s for s in range(len(split)) if entity_count(split, s)]
    wrong = [set(with_entities[:2]), set(with_entities[2:10]), set(with_entities[10:15])]
    made_runs = [write_run(tmp_path / "runs" / name, split, w)
                 for name, w in zip("abc", wrong, strict=True)]  # fmt: skip
    first = tmp_path / "batch1"  # a sweep's runs folder stands for every run in it
    run(runner, "review", "sample", ner_dir, "-n", 6, "--compare", tmp_path / "runs", "-o", first)
    designed = json.loads((first / "manifest.json").read_text())["compare"]
    assert designed["runs"] == [str(r) for r in made_runs]
    merged = tmp_path / "merged1"
    shown = run(runner, "review", "merge", ner_dir, accept_as_label_studio(first), "-o", merged)
    text = " ".join(shown.stdout.split())
    assert "Designed review, look 1: 6 reviewed sentences" in text
    assert "not yet:" in text and "reviewed sentences would decide" in text
    # every merge of the design is a look, the same batch merged again too
    again = json.loads(run(runner, "review", "merge", merged, first / "export.json", "-o",
                           tmp_path / "again", "--json").stdout)["compare"]  # fmt: skip
    # at as many reviewed sentences as the look before: no more error spent
    assert again["look"] == 2 and again["looks"] == [6, 6]
    assert again["level"] == pytest.approx(design.look_level([6], len(split)))
    assert design.look_level([6], len(split)) > 0.95
    # the data the first batch was merged into is needed: the original one knows no review
    refused = run(runner, "review", "sample", ner_dir, "--continue", first, "-n", 5,
                  "-o", tmp_path / "x", code=2)  # fmt: skip
    assert "none of the design's sentences drawn so far is reviewed" in refused.stderr
    refused = run(runner, "review", "sample", "--continue", first, "-n", 5, "-o",
                  tmp_path / "x", code=2)  # fmt: skip
    assert "name the data the earlier batches were merged into" in refused.stderr
    second = tmp_path / "batch2"
    more = json.loads(run(runner, "review", "sample", merged, "--continue", first, "-n", 34,
                          "-o", second, "--json").stdout)["manifest"]  # fmt: skip
    earlier = json.loads((first / "manifest.json").read_text())
    assert not set(more["sentences"]) & set(earlier["sentences"])  # nothing drawn twice
    assert more["compare"]["batch"] == 2 and len(more["compare"]["drawn"]) == 40
    assert len(more["sentences"]) == 34  # exactly -n more
    assert more["compare"]["drawn"][:6] == earlier["compare"]["drawn"]  # the same design
    report = json.loads(run(runner, "review", "merge", merged, accept_as_label_studio(second),
                            "-o", tmp_path / "merged2", "--json").stdout)  # fmt: skip
    found = report["compare"]
    assert found["look"] == 2 and found["looks"] == [6, 40] and found["reviewed_sentences"] == 40
    assert found["level"] == pytest.approx(design.look_level([6, 40], len(split)))
    # each difference's boundary spends 5% / (R − 1) = 2.5% over the same looks
    spent = design.look_level([6, 40], len(split), design.pair_level(0.95, 3))
    assert found["difference_level"] == pytest.approx(spent) and spent > found["level"]
    assert found["decided"] and found["best"] == 0
    gold = sum(entity_count(split, s) for s in range(len(split)))
    for entry, missed in zip(found["f1"], wrong, strict=True):
        predicted = gold - sum(entity_count(split, s) for s in missed)
        assert entry["estimate"] == pytest.approx(2 * predicted / (predicted + gold))
    # a third batch: nothing left to draw
    refused = run(runner, "review", "sample", tmp_path / "merged2", "--continue", second,
                  "-n", 5, "-o", tmp_path / "batch3", code=2)  # fmt: skip
    assert "every sentence of the split is drawn already" in refused.stderr


def test_a_decision_waits_for_every_rival_and_names_ties():
    """'About N more' comes from the rival that needs the most (not the closest one when
    that one is decided already); a run predicting the best run's labels everywhere is a
    tie no review breaks; an F1 estimate never leaves [0, 1]."""
    from noisebench.scoring import design
    from noisebench.studies.focus import decision

    def interval(value, low, high, error=0.01):
        return design.Interval(value, error, low, high, 10.0)

    estimates = design.Estimates(
        [interval(0.8, 0.7, 0.9), interval(0.79, 0.7, 0.88), interval(0.77, 0.6, 0.9)],
        {(0, 1): interval(0.01, 0.002, 0.018), (0, 2): interval(0.03, -0.02, 0.08)},
        np.zeros(3), 0.0, 100,
    )  # fmt: skip
    made = decision(estimates, 5000)
    assert not made["decided"] and made["sentences_needed"] == 278  # 100 · (0.05 / 0.03)²
    estimates.differences[(0, 2)] = design.Interval(0.0, 0.0, 0.0, 0.0, math.inf)
    made = decision(estimates, 5000)
    assert made["decided"] and made["tied"] == [2] and made["sentences_needed"] is None
    population = design.Population(np.zeros(10, dtype=int), np.full(10, 5), np.ones((1, 10)))
    found = design.estimate(  # one reviewed sentence with two right entities: TP^ 20 > P 10
        population, design.Reviewed(np.array([0]), np.array([[2]]), np.array([2]))
    )
    assert found.f1[0].estimate == 1.0 and found.f1[0].high == 1.0


def test_a_focused_review_from_before_the_design_still_merges(runner, ner_dir, tmp_path):
    split = loading.load(ner_dir)["validation"]
    run_a, run_b = write_run(tmp_path / "a", split, {1}), write_run(tmp_path / "b", split, {2})
    review = tmp_path / "review"
    run(runner, "review", "sample", ner_dir, "-n", 6, "--compare", run_a, "--compare", run_b,
        "-o", review)  # fmt: skip
    manifest = json.loads((review / "manifest.json").read_text())
    manifest["compare"] = {"runs": manifest["compare"]["runs"], "disagreement_sentences": 2}
    (review / "manifest.json").write_text(json.dumps(manifest))  # as issue 28 wrote it
    conll = mark_reviewed(review / "review.conll")
    report = json.loads(run(runner, "review", "merge", ner_dir, conll, "-o", tmp_path / "m",
                            "--json").stdout)  # fmt: skip
    assert report["counts"]["reviewed_sentences"] == 6 and not report["compare"]["decided"]
    assert "written by an older noisebench" in report["compare"]["why"]
