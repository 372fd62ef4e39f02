"""Every consumer of reviewed sentences respects a designed review (issue 36, item 4):
the merge records each sentence's stratum, ``loading.review_sample`` weighs each reviewed
sentence by N_h / n_h (post-stratified with random draws), and the scores, the verdict's
intervals, the profile and --validation-labels reviewed use the weights; detect's
rankings leave the designed sentences out and say so. Checked against hand computations,
an exhaustive enumeration (unbiasedness) and simulation (coverage)."""

import itertools
import json
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pytest
from conftest import mark_reviewed
from test_focus import entity_count, run, write_run

from noisebench.data import loading
from noisebench.scoring import metrics, paired
from noisebench.training import runs


def designed_review(runner, ner_dir, tmp_path, n: int = 12):
    """Three runs missing every entity of 2, 8 and 5 sentences; a designed review of
    ``n`` validation sentences, merged with the reviewed labels the given ones except
    every B-PER reviewed as B-ORG (so the given labels have noise on them)."""
    split = loading.load(ner_dir)["validation"]
    with_entities = [s for s in range(len(split)) if entity_count(split, s)]
    wrong = [set(with_entities[:2]), set(with_entities[2:10]), set(with_entities[10:15])]
    made = [write_run(tmp_path / "runs" / n_, split, w) for n_, w in zip("abc", wrong, strict=True)]
    review = tmp_path / "review"
    run(runner, "review", "sample", ner_dir, "-n", n, "--compare", tmp_path / "runs", "-o", review)
    manifest = json.loads((review / "manifest.json").read_text())
    conll = mark_reviewed(review / "review.conll")
    lines = [
        line.rsplit("\t", 1)[0] + "\tB-ORG" if line.endswith("\tB-PER") else line
        for line in conll.read_text().split("\n")
    ]
    conll.write_text("\n".join(lines))
    merged = tmp_path / "merged"
    run(runner, "review", "merge", ner_dir, conll, "-o", merged)
    return split, wrong, made, manifest, merged


def by_hand(split, sentences, weights, missed: set[int]) -> float:
    """Entity F1 estimated with design weights, counted by hand: a run that finds every
    entity but those of ``missed`` (reviewed labels: B-PER is B-ORG, so the run, which
    predicts the given labels, misses every PER too)."""
    names = loading.label_names(split)
    tp = p = g = 0.0
    for sentence, weight in zip(sentences, weights, strict=True):
        tags = [names[t] for t in split[int(sentence)]["tags"]]
        gold = sum(t.startswith("B-") for t in tags)
        people = sum(t == "B-PER" for t in tags)
        predicted = 0 if sentence in missed else gold
        tp += weight * (0 if sentence in missed else gold - people)
        p, g = p + weight * predicted, g + weight * gold
    return 2 * tp / (p + g)


def test_a_designed_merge_records_strata_and_every_consumer_weighs_by_them(
    runner, ner_dir, tmp_path
):
    split, wrong, _, manifest, merged = designed_review(runner, ner_dir, tmp_path)
    design = manifest["compare"]
    data = loading.load(merged)["validation"]
    drawn = manifest["sentences"]
    draws = loading.review_draws(data)
    assert sorted(np.flatnonzero(draws == loading.DESIGN_DRAW).tolist()) == sorted(drawn)
    assert loading.review_strata(data).tolist() == design["stratum"]
    sample = loading.review_sample(data)
    assert sample.designed and sample.left_out == 0
    assert sorted(np.flatnonzero(sample.sentences)) == sorted(drawn)
    sizes, allocation = design["sizes"], design["allocation"]
    for sentence in drawn:
        h = design["stratum"][sentence]
        assert sample.weights[sentence] == pytest.approx(sizes[h] / allocation[h])
    assert sample.weights.sum() == pytest.approx(len(split))  # the weights add up to the split
    assert "weighted by their design" in sample.note("profile")

    # a run's reviewed scores: the weighted F1, by hand
    from noisebench.training.evaluate import with_review

    gold, offsets = loading.flat_tags(data)
    labels = loading.label_names(data)
    for missed in wrong:
        predicted = gold.copy()
        for s in missed:
            predicted[offsets[s] : offsets[s + 1]] = labels.index("O")
        probs = np.eye(len(labels), dtype=np.float32)[predicted]
        made = with_review(runs.Predictions(labels, data["tokens"], gold, probs, offsets), data)
        assert made.review["designed"] is True
        scores = metrics.score_split(made.reviewed_part(), "IOB2", population=len(split))
        rows = np.flatnonzero(sample.sentences)
        assert scores["f1"] == pytest.approx(by_hand(split, rows, sample.weights[rows], missed))
        low, high = scores["f1_interval"]
        assert low < scores["f1"] < high
        # the weights survive the predictions file
        runs.write_predictions(tmp_path / "p.parquet", made)
        again = runs.read_predictions(tmp_path / "p.parquet").reviewed_part()
        assert again.weights.tolist() == made.reviewed_part().weights.tolist()

    # the noise of the given labels against the reviewed ones: weighted words
    from noisebench.data.noise import reviewed_counts

    counts = reviewed_counts(data, gold, labels, "IOB2")
    reviewed_tags, _ = loading.flat_tags(data, loading.REVIEWED_TAGS_COLUMN)
    word_weights = np.repeat(sample.weights, np.diff(offsets))
    used = np.repeat(sample.sentences, np.diff(offsets))
    differ = (gold != reviewed_tags) & used
    assert counts["designed"] is True
    assert counts["realised_token_error_rate"] == pytest.approx(
        word_weights[differ].sum() / word_weights[used].sum()
    )
    # the counts stay the reviewed sentences' own
    assert counts["tokens"] == int(used.sum()) and counts["changed_tokens"] == int(differ.sum())
    rows = np.flatnonzero(sample.sentences)
    names = loading.label_names(data)
    gold_of = [sum(names[t].startswith("B-") for t in data[int(r)]["tags"]) for r in rows]
    people = [sum(names[t] == "B-PER" for t in data[int(r)]["tags"]) for r in rows]
    assert counts["gold_entities"] == sum(gold_of)

    # the profile: learned with the weights, and says so
    learned = json.loads(run(runner, "profile", merged, "--json").stdout)
    assert learned["source"]["reviewed_designed"] is True
    assert learned["token_error_rate"] == pytest.approx(counts["realised_token_error_rate"])
    # every reviewed PER is an ORG given as PER: retyped, at the weighted share, by hand
    weights = sample.weights[rows]
    assert learned["entities"] == sum(gold_of)  # the sentences' own count
    assert learned["summary"]["outcomes"]["retyped"] == pytest.approx(
        float(weights @ np.array(people) / (weights @ np.array(gold_of)))
    )
    shown = run(runner, "profile", merged)
    assert "weighted by their design" in " ".join(shown.stderr.split())

    # --validation-labels reviewed: the reviewed sentences with their weights
    from noisebench.training.config import TrainConfig
    from noisebench.training.prepare import _reviewed_validation

    notes: list[str] = []
    chosen = _reviewed_validation(data, TrainConfig(data=str(merged)), notes)
    weights, strata = loading.sentence_design(chosen)
    rows = np.flatnonzero(sample.sentences)
    assert weights.tolist() == sample.weights[rows].tolist()
    assert strata.tolist() == sample.strata[rows].tolist()
    assert any("weighted by its design" in n for n in notes)

    # detect's rankings: the designed sentences left out, counted
    from noisebench.detection.record import reviewed_truth

    rows, _, left_out = reviewed_truth(data)
    assert len(rows) == 0 and left_out == len(drawn)


def test_a_random_review_after_a_design_is_post_stratified_and_another_design_retires_it(
    runner, ner_dir, tmp_path
):
    split, _, _, manifest, merged = designed_review(runner, ner_dir, tmp_path)
    design = manifest["compare"]
    extra = tmp_path / "random"
    run(runner, "review", "sample", merged, "--split", "validation", "-n", 6, "--seed", 5,
        "-o", extra)  # fmt: skip
    run(runner, "review", "merge", merged, mark_reviewed(extra / "review.conll"), "-o",
        tmp_path / "merged2")  # fmt: skip
    data = loading.load(tmp_path / "merged2")["validation"]
    sample = loading.review_sample(data)
    strata = np.asarray(design["stratum"])
    assert sample.designed
    for h, size in enumerate(design["sizes"]):
        reviewed_h = sample.sentences & (strata == h)
        assert reviewed_h.sum() >= design["allocation"][h]
        assert sample.weights[reviewed_h] == pytest.approx(size / reviewed_h.sum())
    # a design over other runs (other strata): the first design's sentences are chosen now
    other = tmp_path / "other-runs"
    with_entities = [s for s in range(len(split)) if entity_count(split, s)]
    write_run(other / "x", split, set(with_entities[20:]))
    write_run(other / "y", split, set(with_entities[:1]))
    second = tmp_path / "second"
    run(runner, "review", "sample", tmp_path / "merged2", "-n", 8, "--compare", other, "-o",
        second)  # fmt: skip
    run(runner, "review", "merge", tmp_path / "merged2", mark_reviewed(second / "review.conll"),
        "-o", tmp_path / "merged3")  # fmt: skip
    data = loading.load(tmp_path / "merged3")["validation"]
    now = json.loads((second / "manifest.json").read_text())["compare"]["stratum"]
    assert loading.review_strata(data).tolist() == now
    draws = loading.review_draws(data)
    retired = set(manifest["sentences"]) - set(json.loads(
        (second / "manifest.json").read_text())["sentences"])  # fmt: skip
    random_ones = set(np.flatnonzero(draws == loading.RANDOM_DRAW).tolist())
    assert all(draws[s] == "compare" for s in retired - random_ones)
    assert loading.review_sample(data).left_out == len(retired - random_ones)


def split_with(reviewed: set[int], designed: set[int], strata: list[int], gold: list[int]):
    """A split of one-word sentences (``gold[s]`` 1: a PER entity), ``reviewed`` of them
    reviewed, those in ``designed`` drawn by a design with ``strata``, the rest at random."""
    names = ["O", "B-PER"]
    size = len(strata)
    tags = pa.array([[g] for g in gold], pa.list_(pa.int64()))
    draws = [
        None if s not in reviewed else loading.DESIGN_DRAW if s in designed else "sample"
        for s in range(size)
    ]
    return loading.make_split(
        pa.array([["w"]] * size, pa.list_(pa.string())), tags, names,
        reviewed=pa.array([s in reviewed for s in range(size)]), reviewed_tags=tags,
        review_draw=pa.array(draws, pa.string()), review_stratum=pa.array(strata, pa.int32()),
    )  # fmt: skip


def test_design_weights_estimate_a_total_without_bias_over_every_possible_review():
    """Strata of 3 and 2 sentences, a design drawing 2 and 1, a random review of 1 from
    all 5 before it: over all 10 × 6 = 60 equally likely reviews, the mean of the weighted
    total equals the split's total exactly (post-stratification is unbiased given a
    reviewed sentence in every stratum, which the design ensures)."""
    strata = [0, 0, 0, 1, 1]
    values = [Fraction(v) for v in (1, 4, 0, 2, 7)]  # any per-sentence value
    gold = [1, 0, 1, 0, 1]
    estimates = []
    for random_one in range(5):
        for first in itertools.combinations([0, 1, 2], 2):
            for second in itertools.combinations([3, 4], 1):
                designed = set(first) | set(second)
                sample = loading.review_sample(
                    split_with(designed | {random_one}, designed, strata, gold)
                )
                assert sample.designed
                weights = [Fraction(w).limit_denominator(100) for w in sample.weights]
                estimates.append(sum(w * v for w, v in zip(weights, values, strict=True)))
    assert sum(estimates) / len(estimates) == sum(values)


def test_the_designed_f1_interval_covers_the_splits_f1():
    """A 600-sentence split in three strata with different F1; 400 stratified samples of
    15 per stratum: the 95% interval of the weighted F1 covers the split's F1 in at least
    93% of them."""
    rng = np.random.default_rng(36)
    sizes = (300, 200, 100)
    strata = np.repeat(np.arange(3), sizes)
    gold = rng.poisson([0.3] * 300 + [1.5] * 200 + [2.5] * 100)
    hit = np.array([0.95] * 300 + [0.7] * 200 + [0.4] * 100)
    correct = rng.binomial(gold, hit)
    predicted = correct + rng.poisson([0.05] * 300 + [0.4] * 200 + [0.8] * 100)
    truth = 2 * correct.sum() / (predicted.sum() + gold.sum())
    # one-word entities: gold's g first, the run's c of them and p - c after them
    gold_tags = [["B-X"] * g + ["O"] * (p - c) + ["O"] for c, g, p in
                 zip(correct, gold, predicted, strict=True)]  # fmt: skip
    pred_tags = [["B-X"] * c + ["O"] * (g - c) + ["B-X"] * (p - c) + ["O"] for c, g, p in
                 zip(correct, gold, predicted, strict=True)]  # fmt: skip
    covered = 0
    for _ in range(400):
        rows = np.concatenate(
            [rng.choice(np.flatnonzero(strata == h), 15, replace=False) for h in range(3)]
        )
        weights = np.array([sizes[strata[r]] / 15 for r in rows])
        low, high = metrics.f1_interval(
            [gold_tags[r] for r in rows], [pred_tags[r] for r in rows], "IOB2",
            design=(weights, strata[rows]),
        )  # fmt: skip
        covered += low <= truth <= high
    assert covered / 400 >= 0.93


def test_the_verdicts_paired_interval_on_a_designed_review_covers_the_difference():
    """Two runs' per-sentence counts on a 600-sentence split in three strata; 200
    stratified samples of 20 per stratum: the paired bootstrap (rescaled within strata,
    design weights) covers the split's F1 difference in at least 92% of them, and its
    estimate is the weighted one."""
    rng = np.random.default_rng(37)
    sizes = (300, 200, 100)
    strata = np.repeat(np.arange(3), sizes)
    gold = rng.poisson([0.3] * 300 + [1.5] * 200 + [2.5] * 100).astype(float)
    found_a = rng.binomial(gold.astype(int), [0.95] * 300 + [0.75] * 200 + [0.5] * 100)
    found_b = rng.binomial(gold.astype(int), [0.95] * 300 + [0.65] * 200 + [0.55] * 100)
    counts = [np.stack([f, f, gold], axis=1).astype(float) for f in (found_a, found_b)]
    truth = float(paired._f1(counts[0].sum(0)) - paired._f1(counts[1].sum(0)))
    empty = np.zeros((600, 1, 3))
    covered = 0
    for draw in range(200):
        rows = np.concatenate(
            [rng.choice(np.flatnonzero(strata == h), 20, replace=False) for h in range(3)]
        )
        weights = np.array([sizes[strata[r]] / 20 for r in rows])
        a, b = (paired.SentenceStats(c[rows], empty[rows], None, weights, strata[rows])
                for c in counts)  # fmt: skip
        found = paired.paired_difference([a], [b], "f1", replicates=400, seed=draw)
        weighted = [paired._f1(weights @ c[rows]) for c in counts]
        assert found.estimate == pytest.approx(weighted[0] - weighted[1])
        covered += found.low <= truth <= found.high
    assert covered / 200 >= 0.92


def write_designed_run(folder, method: str, loc_in: int):
    """A run on 40 one-entity test sentences given as PER; a designed review reviewed 10
    of the first 20 (stratum 0, weight 2) and 5 of the last 20 (stratum 1, weight 4),
    all really LOC. The run predicts LOC on sentences below ``loc_in``, PER after."""
    from test_reviewed_scores import LABELS, finish_run

    from noisebench.training.config import TrainConfig

    config = TrainConfig(data="toyner", method=method)
    run_dir = folder / runs.run_name(config.identity(), "toyner")
    run_dir.mkdir(parents=True)
    sentences = 40
    reviewed = np.zeros(sentences, dtype=bool)
    reviewed[list(range(10)) + list(range(20, 25))] = True
    strata = (np.arange(sentences) >= 20).astype(np.int64)
    weights = np.where(reviewed, np.where(strata == 0, 2.0, 4.0), 0.0)
    gold = np.tile([LABELS.index("B-PER"), 0], sentences)
    reviewed_gold = gold.copy()
    reviewed_gold[0::2][reviewed] = LABELS.index("B-LOC")
    predicted = np.tile([LABELS.index("B-PER"), 0], sentences)
    predicted[0 : 2 * loc_in : 2] = LABELS.index("B-LOC")
    probs = np.full((2 * sentences, len(LABELS)), 0.05, dtype=np.float32)
    probs[np.arange(2 * sentences), predicted] = 0.85
    review = {"fingerprint": "f", "left_out": 0, "draws_recorded": True, "designed": True}
    made = runs.Predictions(
        LABELS, [["w", "x"]] * sentences, gold, probs, np.arange(0, 2 * sentences + 1, 2),
        reviewed=reviewed, reviewed_gold=reviewed_gold, review=review, review_weights=weights,
        review_strata=strata,
    )  # fmt: skip
    return finish_run(run_dir, made, config)


def test_the_leaderboard_and_the_verdict_weigh_a_designed_review(runner, tmp_path):
    """CE finds the LOC of every sentence, mask-missing of the first 20 only. By hand,
    weighted: mask-missing has TP 10·2 = 20, P = G = 10·2 + 5·4 = 40, F1 = 0.5 (0.667
    unweighted); CE 1.0. The reviewed F1 column, the verdict and its text say so."""
    from noisebench.studies import board as boards
    from noisebench.studies.leaderboard.records import collect

    ce = write_designed_run(tmp_path, "none", 40)
    masked = write_designed_run(tmp_path, "mask-missing", 20)
    results = json.loads((ce / runs.RESULTS).read_text())
    assert results["splits"]["test"]["reviewed"]["f1"] == 1.0
    # the whole split's scores against the given labels weigh every sentence alike: by
    # hand, mask-missing finds the given PER of the last 20 of 40 (TP 20, P = G = 40)
    whole = json.loads((masked / runs.RESULTS).read_text())["splits"]["test"]
    assert whole["f1"] == pytest.approx(0.5) and whole["n_entities"] == 40
    assert whole["reviewed"]["f1"] == pytest.approx(0.5)
    assert whole["reviewed"]["n_entities"] == 15  # the reviewed sentences' own count
    collected = collect([tmp_path], "test", ["f1"])
    reviewed_f1 = {r["loss"] + r["run"][-6:]: r["value"] for r in collected.records
                   if r["metric"] == "reviewed_f1"}  # fmt: skip
    assert sorted(reviewed_f1.values()) == [pytest.approx(0.5), 1.0]
    setting = boards.verdict_of(collected, "test", 400)["settings"][0]
    reviewed = setting["reviewed"]
    assert reviewed["designed"] and reviewed["f1"] == {"ce": 1.0, "ce +mask-missing": 0.5}
    entry = reviewed["vs_ce"]["ce +mask-missing"]
    assert entry["difference"] == pytest.approx(-0.5) and "parts" in entry
    # on the given labels (whole split, unweighted; CE predicts LOC for every given PER):
    # 0.5 − 0, with a spread of its own
    given = setting["vs_ce"]["ce +mask-missing"]["f1"]
    assert given["difference"] == pytest.approx(0.5) and given["ci95"][0] < given["ci95"][1]
    assert setting["text"][1].startswith(
        "On 15 reviewed test sentences of a designed review, weighted by its design"
    )
    shown = run(runner, "leaderboard", tmp_path, "--metric", "f1")
    assert "weigh their design" in " ".join(shown.stdout.split())


def test_the_runs_of_one_leaderboard_column_are_compared_with_where(runner, ner_dir, tmp_path):
    """A runs folder of four runs (CE and GCE at rates 0.2 and 0.4): --where rate=0.4
    designs the review over the two at 0.4 only, and records how they were chosen; a key
    no run has, a malformed condition and one that leaves one run are refused in one
    line each (exit 2)."""
    split = loading.load(ner_dir)["validation"]
    with_entities = [s for s in range(len(split)) if entity_count(split, s)]
    folder = tmp_path / "runs"
    for number, (loss, rate) in enumerate(itertools.product(("ce", "gce"), (0.2, 0.4))):
        made = write_run(folder / f"{loss}-{rate}", split, set(with_entities[: 2 + 3 * number]))
        (made / runs.CONFIG).write_text(json.dumps({"config": {"loss": loss, "rate": rate}}))
    out = tmp_path / "review"
    shown = run(runner, "review", "sample", ner_dir, "-n", 8, "--compare", folder, "--where",
                "rate=0.40", "-o", out, "--json")  # fmt: skip
    manifest = json.loads(shown.stdout)["manifest"]
    assert manifest["compare"]["runs"] == [str(folder / "ce-0.4"), str(folder / "gce-0.4")]
    assert manifest["compare"]["where"] == ["rate=0.40"]
    both = ["--compare", folder, "--where", "rate=0.4", "--where", "loss=gce"]
    refused = run(runner, "review", "sample", ner_dir, *both, "-o", tmp_path / "x", code=2)
    assert "--compare: name at least two runs: --where leaves 1" in refused.stderr
    refused = run(runner, "review", "sample", ner_dir, "--compare", folder, "--where", "lr=1",
                  "-o", tmp_path / "x", code=2)  # fmt: skip
    assert "--where lr: no run has this setting (the runs have: loss, rate)" in refused.stderr
    refused = run(runner, "review", "sample", ner_dir, "--compare", folder, "--where", "rate",
                  "-o", tmp_path / "x", code=2)  # fmt: skip
    assert "--where 'rate': write KEY=VALUE" in refused.stderr
    refused = run(runner, "review", "sample", ner_dir, "--where", "rate=0.4", "-o",
                  tmp_path / "x", code=2)  # fmt: skip
    assert "--where chooses among the runs of --compare" in refused.stderr
    assert not (tmp_path / "x").exists()


def test_a_designed_sentence_reviewed_again_by_a_chosen_review_stays_in_the_design(
    runner, ner_dir, tmp_path
):
    """Detect's list reviewing a sentence the design drew again must not pull it out of the
    sample (a selective removal would bias the estimate); a negative stratum is refused."""
    _, _, _, manifest, merged = designed_review(runner, ner_dir, tmp_path)
    again = tmp_path / "again"
    run(runner, "review", "sample", merged, "--split", "validation", "-n", 40, "-o", again)
    chosen = json.loads((again / "manifest.json").read_text())
    (again / "manifest.json").write_text(json.dumps({**chosen, "kind": "detect"}))
    target = manifest["sentences"][0]
    conll = again / "review.conll"
    blocks = conll.read_text().strip("\n").split("\n\n")
    marked = [b.replace("reviewed: no", "reviewed: yes") if int(b.split()[2]) == target else b
              for b in blocks]  # fmt: skip
    conll.write_text("\n\n".join(marked) + "\n")
    run(runner, "review", "merge", merged, conll, "-o", tmp_path / "merged2")
    data = loading.load(tmp_path / "merged2")["validation"]
    assert loading.review_draws(data)[target] == loading.DESIGN_DRAW
    assert loading.review_sample(data).left_out == 0
    # a stratum column with a negative value: one line, exit 2
    import pyarrow.parquet as pq

    path = tmp_path / "merged2" / "validation.parquet"
    table = pq.read_table(path)
    column = table.column(loading.REVIEW_STRATUM_COLUMN).to_pylist()
    column[0] = -1
    index = table.column_names.index(loading.REVIEW_STRATUM_COLUMN)
    table = table.set_column(index, loading.REVIEW_STRATUM_COLUMN, pa.array(column, pa.int32()))
    pq.write_table(table, path)
    refused = run(runner, "profile", tmp_path / "merged2", code=2)
    assert "column 'review_stratum' must hold one integer of 0 or more per sentence" in (
        refused.stderr
    )


def test_a_designed_validation_fits_the_temperature_on_its_weighted_nll():
    """A second word weighing 2 fits the temperature that duplicating it would."""
    from noisebench.scoring.metrics import fit_on_validation, fit_temperature

    probs = np.array([[0.8, 0.2], [0.7, 0.3], [0.4, 0.6], [0.9, 0.1]], dtype=np.float32)
    gold = np.array([0, 1, 1, 0])
    twice = fit_temperature(probs[[0, 1, 1, 2, 3]].astype(np.float64), gold[[0, 1, 1, 2, 3]])
    weighted = runs.Predictions(
        ["O", "B-X"], [["a"], ["b"], ["c"], ["d"]], gold, probs, np.arange(5),
        weights=np.array([1.0, 2.0, 1.0, 1.0]), strata=np.zeros(4, np.int64),
    )  # fmt: skip
    assert fit_on_validation(weighted) == pytest.approx(twice, rel=1e-6)
    plain = fit_temperature(probs.astype(np.float64), gold)
    assert abs(plain - twice) > 1e-3  # the weights matter here
