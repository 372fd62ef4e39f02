"""The GPU check script keeps working without a GPU (its CPU fallback, tiny settings)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_gpu_check_runs_its_cpu_fallback(ner_dir, tiny_model):
    completed = subprocess.run(
        [
            sys.executable, str(SCRIPT), "--device", "cpu", "--model", str(tiny_model),
            "--data", str(ner_dir), "--sentences", "64", "--processes", "1,2",
            "--loss-tokens", "256", "--loss-repeats", "3",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    out = completed.stdout
    assert "device: CPU (no GPU: a CPU run)" in out
    one = re.search(r"^1\. one process: (\d+) sentences/s, (\d+) after its first step", out, re.M)
    assert one and int(one.group(1)) > 0 and int(one.group(2)) > 0, out
    compiled = next(line for line in out.splitlines() if "with --compile" in line)
    assert "with --compile (compiled): first step " in compiled
    assert "x the plain process" in compiled
    rows = [
        line.split()
        for line in out.splitlines()
        if line.startswith("   ") and line.split()[0].isdigit()
    ]
    assert [int(row[0]) for row in rows] == [1, 2] and all(float(row[2]) > 0 for row in rows)
    assert "study preset, training only, at the best total:" in out
    assert "sgce q=0.7 s=0.1" in out  # the loss table ran


def test_the_review_simulation_on_hand_made_runs():
    """Run A finds every entity of 200 one-entity sentences, run B none: every sample ranks
    them right, none is confidently wrong, and a full review is significant."""
    import numpy as np

    sys.path.insert(0, str(SCRIPT.parent))
    import review_simulation

    from noisebench.scoring.paired import SentenceStats

    sentences = 200
    bins = np.zeros((sentences, 10, 3))
    a = SentenceStats(np.tile([1.0, 1.0, 1.0], (sentences, 1)), bins)
    b = SentenceStats(np.tile([0.0, 0.0, 1.0], (sentences, 1)), bins)
    found = review_simulation.simulate(a, b, 1.0, 20, 50, 200, 0)
    assert found["right"] == 1.0 and found["confidently_wrong"] == 0.0
    assert found["significant"] == 1.0


def test_the_designed_review_simulation_on_a_known_split():
    """Three runs over 300 sentences (none / agree / disagree strata), A best by far: the
    designed and the random review both decide, never wrongly, and the designed one by
    fewer sentences; one look's intervals cover the truth."""
    import numpy as np

    sys.path.insert(0, str(SCRIPT.parent))
    import review_design

    from noisebench.scoring import design

    rng = np.random.default_rng(0)
    sentences = 300
    kind = np.repeat([0, 1, 2], [100, 140, 60])
    gold = np.where(kind == 0, 0, rng.integers(1, 3, sentences))
    correct = np.vstack([gold, gold, gold]).astype(float)
    correct[1, kind == 2] = 0  # B misses every entity where the runs disagree
    correct[2, kind == 2] = np.minimum(gold[kind == 2], 1)  # C finds one of them
    labels = np.vstack([np.arange(sentences)] * 3) * np.where(kind == 2, [[1], [-1], [7]], 1)
    population = design.Population(kind, np.full(sentences, 8), correct.copy(), labels)
    truth = 2 * correct.sum(axis=1) / (correct.sum(axis=1) + gold.sum())
    designed = review_design.review(population, correct, gold, truth, True, 200, 60, 0)
    uniform = review_design.review(population, correct, gold, truth, False, 200, 60, 0)
    assert designed["decided"] == 1.0 and designed["wrong_of_decided"] == 0.0
    assert uniform["wrong_of_decided"] <= 0.05  # 1 of 58 here: the bound, not zero
    assert designed["median_n_right"] < uniform["median_n_right"]
    covered = review_design.coverage(population, correct, gold, truth, 60, 60, 0)
    assert covered["f1"] >= 0.9 and covered["differences"] >= 0.9


def test_the_conclusions_check_flags_moved_cells_and_changed_verdicts(monkeypatch):
    """A cell moves beyond its seed spread where |new − old| exceeds the larger of the two
    seed standard deviations; a verdict changes where its sign or its significance does."""
    sys.path.insert(0, str(SCRIPT.parent))
    import conclusions

    setting = "data, model, uniform noise 0.10"

    def seeds(*values):
        return dict(enumerate(values))

    def verdict(difference, low, high):
        return {"difference": difference, "ci95": [low, high], "significant": low > 0 or high < 0}

    studies = {
        "old": (
            {(setting, "ce"): {"f1": seeds(0.70, 0.72), "entity_ece": seeds(0.05, 0.05)},
             (setting, "sgce"): {"f1": seeds(0.74, 0.76), "entity_ece": seeds(0.20, 0.21)}},
            {(setting, "sgce", "f1"): verdict(0.04, 0.01, 0.07),
             (setting, "sgce", "entity_ece"): verdict(0.15, 0.1, 0.2)},
        ),
        "new": (  # CE F1 moved 0.0100 (spreads 0.0141): inside; entity ECE 0.01 (0): beyond
            {(setting, "ce"): {"f1": seeds(0.71, 0.73), "entity_ece": seeds(0.06, 0.06)},
             (setting, "sgce"): {"f1": seeds(0.74, 0.76), "entity_ece": seeds(0.20, 0.21)}},
            {(setting, "sgce", "f1"): verdict(0.03, -0.01, 0.07),
             (setting, "sgce", "entity_ece"): None},  # no verdict after: not a pass
        ),
        "other seeds": (
            {(setting, "ce"): {"f1": {0: 0.70, 2: 0.72}, "entity_ece": {0: 0.05, 2: 0.05}}},
            {},
        ),
        "one seed": (
            {(setting, "ce"): {"f1": seeds(0.60), "entity_ece": seeds(None)}},
            {},
        ),
    }  # fmt: skip
    monkeypatch.setattr(conclusions, "study", lambda folder: studies[str(folder)])
    lines, failed = conclusions.compare(Path("old"), Path("new"))
    assert failed == [
        f"{setting} ce entity ECE beyond its seed spread",
        f"{setting} sgce − CE test F1: verdict changed",
        f"{setting} sgce − CE entity ECE: a verdict in one study only",
    ]
    assert f"| {setting} | ce | test F1 | 71.00 ± 1.41 | 72.00 ± 1.41 | +1.00 | yes |" in lines
    changed = "| +4.00 [+1.00, +7.00] | +3.00 [-1.00, +7.00] | **no** |"
    assert f"| {setting} | sgce | test F1 {changed}" in lines
    _, failed = conclusions.compare(Path("old"), Path("old"))
    assert failed == []
    _, failed = conclusions.compare(Path("old"), Path("other seeds"))
    assert f"{setting} ce test F1: seeds [0, 1] against [0, 2]" in failed
    lines, failed = conclusions.compare(Path("one seed"), Path("one seed"))
    assert failed == []  # one seed: shown, not judged; a metric no run has: left out
    one = "| 60.00 (1 seed) | 60.00 (1 seed) | +0.00 | not judged (1 seed) |"
    assert f"| {setting} | ce | test F1 {one}" in lines


def test_the_control_variate_is_exact_where_the_given_labels_are_clean():
    """With given labels equal to the clean ones every reviewed residual is 0, so each
    run's F1 from any sample equals its F1 on the split, λ = 1 or tuned; with given labels
    that know nothing (all 0) and λ = 1 it is the plain stratified estimate."""
    import numpy as np

    sys.path.insert(0, str(SCRIPT.parent))
    import review_control

    from noisebench.scoring import design

    rng = np.random.default_rng(0)
    strata = np.repeat([0, 1, 2], [6, 5, 9])
    predicted = rng.integers(0, 4, size=(2, 20))
    correct = np.minimum(predicted, rng.integers(0, 4, size=(2, 20)))
    gold = correct.max(axis=0) + rng.integers(0, 2, size=20)
    population = design.Population(strata, np.full(20, 30), predicted)
    truth = 2 * correct.sum(axis=1) / (predicted.sum(axis=1) + gold.sum())
    rows = np.array([0, 3, 7, 8, 12, 15, 19])
    known = correct.astype(float), gold.astype(float)
    for tuned in (False, True):
        found = review_control.controlled_f1(population, rows, correct, gold, *known, tuned)
        assert np.allclose(found, truth)
    blind = review_control.controlled_f1(population, rows, correct, gold,
                                         np.zeros((2, 20)), np.zeros(20), False)  # fmt: skip
    plain = design.estimate(population, design.Reviewed(rows, correct[:, rows], gold[rows]))
    assert np.allclose(blind, [f.estimate for f in plain.f1])
