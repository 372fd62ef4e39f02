"""A review focused where two runs disagree (``review sample --compare``) and the
estimates it gives without bias (``studies.focus``), checked against the full truth."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import mark_reviewed

from noisebench.cli import app
from noisebench.data import loading
from noisebench.studies import focus
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


def test_the_stratum_total_is_unbiased_over_every_possible_sample():
    """The mean of the estimate over all C(6, 3) samples is the stratum's total, exactly."""
    values = np.array([2.0, 0.0, -1.0, 3.0, 1.0, 0.0])
    estimates = [
        focus.stratum_total(values[list(rows)], len(values))[0]
        for rows in itertools.combinations(range(6), 3)
    ]
    assert np.mean(estimates) == pytest.approx(values.sum())
    assert focus.stratum_total(values, 6) == (values.sum(), 0.0)


def test_a_focused_sample_draws_where_the_runs_disagree_and_estimates_their_difference(
    runner, ner_dir, tmp_path
):
    split = loading.load(ner_dir)["validation"]
    with_entities = [s for s in range(len(split)) if entity_count(split, s)]
    b_wrong = set(with_entities[:8])  # B misses every entity of 8 sentences, A of 2 others
    a_wrong = set(with_entities[8:10])
    run_a = write_run(tmp_path / "a", split, a_wrong)
    run_b = write_run(tmp_path / "b", split, b_wrong)
    review = tmp_path / "review"
    made = json.loads(
        run(runner, "review", "sample", ner_dir, "-n", 4, "--compare", run_a, "--compare",
            run_b, "-o", review, "--json").stdout
    )["manifest"]  # fmt: skip
    assert made["kind"] == "compare" and set(made["sentences"]) <= a_wrong | b_wrong
    assert made["compare"]["disagreement_sentences"] == 10
    # the reviewer confirms the given labels (they are the truth here)
    out = tmp_path / "merged"
    report = json.loads(
        run(runner, "review", "merge", ner_dir, mark_reviewed(review / "review.conll"), "-o",
            out, "--json").stdout
    )["compare"]  # fmt: skip
    assert report["changed_runs"] == []
    sampled = made["sentences"]
    by_hand = [
        (entity_count(split, s) if s in b_wrong else 0)
        - (entity_count(split, s) if s in a_wrong else 0)
        for s in sampled
    ]
    assert report["correct_entities"]["estimate"] == pytest.approx(10 * np.mean(by_hand))
    # a review of the whole stratum gives the exact difference, with no error
    everything = tmp_path / "review-all"
    run(runner, "review", "sample", ner_dir, "-n", 10, "--compare", run_a, "--compare", run_b,
        "-o", everything)  # fmt: skip
    report = json.loads(
        run(runner, "review", "merge", ner_dir, mark_reviewed(everything / "review.conll"), "-o",
            tmp_path / "merged-all", "--json").stdout
    )["compare"]  # fmt: skip
    exact = sum(entity_count(split, s) for s in b_wrong) - sum(
        entity_count(split, s) for s in a_wrong
    )
    assert report["correct_entities"]["estimate"] == exact
    assert report["correct_entities"]["standard_error"] == 0.0
    assert report["predicted_entities"] == exact  # A predicts the entities B drops
    assert report["wrong_entities"]["estimate"] == 0  # neither predicts a wrong entity
    # runs of other sentences are refused in one line
    other = tmp_path / "other"
    other.mkdir()
    (other / "predictions-validation.parquet").write_bytes(
        (run_a / "predictions-validation.parquet").read_bytes()
    )
    refused = run(runner, "review", "sample", ner_dir, "--split", "test", "--compare", run_a,
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
    run(runner, "review", "sample", ner_dir, "-n", 4, "--compare", run_a, "--compare", run_b,
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
    assert again["correct_entities"] == here["correct_entities"]  # of what was sampled
    shown = run(runner, "review", "merge", ner_dir, conll, "-o", tmp_path / "m4").stdout
    assert "Focused review of 4 of the 10 sentences" in shown
    assert f"{run_a}'s predictions changed since the sample" in " ".join(shown.split())
