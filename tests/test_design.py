"""Each run's F1 on the split from a stratified review (``scoring.design``), checked
against the full truth: unbiased totals over every possible sample of a tiny population,
the exact F1 from a full review, no interval of width 0 from a few equal values, and
coverage by simulation."""

import itertools
import math

import numpy as np
import pytest

from noisebench.scoring import design


def tiny():
    """7 sentences in 2 strata (4 where the runs agree, 3 where they disagree), 2 runs."""
    stratum = np.array([0, 0, 0, 0, 1, 1, 1])
    words = np.array([5, 6, 4, 8, 7, 5, 6])
    gold = np.array([1, 2, 0, 1, 2, 1, 3])
    predicted = np.array([[1, 2, 0, 1, 2, 0, 3], [1, 2, 0, 1, 0, 1, 1]])
    correct = np.array([[1, 1, 0, 1, 2, 0, 2], [1, 1, 0, 1, 0, 1, 1]])
    return design.Population(stratum, words, predicted), gold, correct


def test_the_totals_are_unbiased_over_every_stratified_sample():
    """Two of 4 and two of 3: the mean of TP^ and G^ over all 18 samples is the truth."""
    population, gold, correct = tiny()
    first, second = np.flatnonzero(population.stratum == 0), np.flatnonzero(population.stratum == 1)
    estimates = []
    for a, b in itertools.product(
        itertools.combinations(first, 2), itertools.combinations(second, 2)
    ):
        rows = np.array(a + b)
        found = design.estimate(population, design.Reviewed(rows, correct[:, rows], gold[rows]))
        estimates.append([*found.correct_totals, found.gold_total])
    assert len(estimates) == 18
    assert np.mean(estimates, axis=0) == pytest.approx([*correct.sum(axis=1), gold.sum()])


def test_a_full_review_gives_the_exact_f1_with_no_uncertainty():
    population, gold, correct = tiny()
    rows = np.arange(7)
    found = design.estimate(population, design.Reviewed(rows, correct[:, rows], gold[rows]))
    truth = 2 * correct.sum(axis=1) / (population.predicted.sum(axis=1) + gold.sum())
    assert [f.estimate for f in found.f1] == pytest.approx(truth)  # 14/19, 8/16
    assert all(f.standard_error == 0 and f.low == f.high for f in found.f1)
    difference = found.differences[(0, 1)]
    assert difference.estimate == pytest.approx(truth[0] - truth[1]) and difference.significant


def test_a_few_equal_values_give_no_interval_of_width_zero():
    """studies.focus.stratum_total([1, 1], 200) gave a standard error of 0 and a
    'significant' call; here a stratum of 200 sentences where two reviewed ones favour run
    A by one entity each gives a wide interval that decides nothing."""
    stratum = np.zeros(200, dtype=int)
    words = np.full(200, 6)
    predicted = np.vstack([np.r_[np.ones(160), np.zeros(40)], np.r_[np.zeros(160), np.full(40, 5)]])
    rows = np.array([0, 1])
    reviewed = design.Reviewed(rows, np.array([[1, 1], [0, 0]]), np.array([1, 1]))
    found = design.estimate(design.Population(stratum, words, predicted), reviewed)
    difference = found.differences[(0, 1)]
    assert difference.standard_error > 0 and not difference.significant
    assert difference.degrees == pytest.approx(1.0)  # two sentences: one degree of freedom


def test_every_stratum_needs_a_reviewed_sentence():
    population, gold, correct = tiny()
    rows = np.array([0, 1])
    with pytest.raises(ValueError, match=r"strata \[1\] have no reviewed sentence"):
        design.estimate(population, design.Reviewed(rows, correct[:, rows], gold[rows]))


def synthetic(seed: int = 0, sentences: int = 1000):
    """A split of two runs' sentences: none (both predict nothing), agree, disagree."""
    rng = np.random.default_rng(seed)
    words = rng.integers(3, 25, sentences)
    gold = np.minimum(rng.poisson(1.5, sentences), words // 2)
    kind = rng.choice(3, sentences, p=[0.25, 0.45, 0.30])
    correct = np.zeros((2, sentences))
    predicted = np.zeros((2, sentences))
    agree, differ = kind == 1, kind == 2
    correct[:, agree] = rng.binomial(gold[agree], 0.85)
    predicted[:, agree] = correct[:, agree] + rng.binomial(2, 0.1, agree.sum())
    for run, (right, spurious) in enumerate([(0.75, 0.3), (0.45, 0.2)]):
        correct[run, differ] = rng.binomial(gold[differ], right)
        predicted[run, differ] = correct[run, differ] + rng.binomial(3, spurious, differ.sum())
    labels = np.vstack([np.arange(sentences), np.where(differ, -1 - np.arange(sentences),
                                                        np.arange(sentences))])  # fmt: skip
    return design.Population(kind, words, predicted, labels), gold, correct


@pytest.mark.parametrize("per_stratum", [20, 80])
def test_intervals_cover_the_truth_and_decisions_are_right(per_stratum):
    """400 stratified draws: each F1's and the difference's 95% interval covers the
    truth in at least 93% of them, and a significant difference has the wrong sign in at
    most 2.5% (the true difference, 2.8 points, is decided in 28% of the draws of 80
    sentences per stratum, none wrong, and in 8% of those of 20, 2 of 400 wrong)."""
    population, gold, correct = synthetic()
    truth = 2 * correct.sum(axis=1) / (population.predicted.sum(axis=1) + gold.sum())
    rng = np.random.default_rng(1)
    covered, decided, wrong = np.zeros(3), 0, 0
    for _ in range(400):
        rows = np.concatenate([
            rng.choice(np.flatnonzero(population.stratum == h), per_stratum, replace=False)
            for h in range(3)
        ])  # fmt: skip
        found = design.estimate(population, design.Reviewed(rows, correct[:, rows], gold[rows]))
        difference = found.differences[(0, 1)]
        covered += [
            found.f1[0].low <= truth[0] <= found.f1[0].high,
            found.f1[1].low <= truth[1] <= found.f1[1].high,
            difference.low <= truth[0] - truth[1] <= difference.high,
        ]
        decided += difference.significant
        wrong += difference.significant and (difference.estimate > 0) != (truth[0] > truth[1])
    assert (covered / 400 >= 0.93).all(), covered / 400
    # a wrong sign needs the interval to miss on its one side: at most 2.5% of draws
    assert wrong / 400 <= 0.025 and decided > (100 if per_stratum == 80 else 20)


def test_looking_after_every_batch_keeps_decisions_right():
    """The issue's skewed stratum (160 sentences where run A finds one entity more, 40
    where B finds five more): a look after every 25 reviewed sentences, stopping at the
    first decision, at each look's level (``look_level``, over the looks so far). With the
    plain 95% t interval at one look of 25, 39% of the significant calls had the wrong
    sign."""
    size = 200
    gold = np.r_[np.ones(160), np.full(40, 5)]
    predicted = np.vstack([np.r_[np.ones(160), np.zeros(40)], np.r_[np.zeros(160), np.full(40, 5)]])
    population = design.Population(np.zeros(size, dtype=int), np.full(size, 6), predicted)
    rng = np.random.default_rng(5)
    decided = wrong = 0
    for _ in range(200):
        order = rng.permutation(size)
        for n in range(25, 201, 25):
            rows = order[:n]
            found = design.estimate(
                population, design.Reviewed(rows, predicted[:, rows], gold[rows]),
                design.look_level(list(range(25, n + 1, 25)), size),
            )  # fmt: skip
            difference = found.differences[(0, 1)]
            if difference.significant:
                decided, wrong = decided + 1, wrong + (difference.estimate > 0)  # B is better
                break
    assert decided >= 150 and wrong / decided <= 0.05, (decided, wrong)


def test_the_boundaries_are_the_published_ones():
    """Lan-DeMets spending by Pocock's function, five equal looks at 5%: the boundaries
    of Jennison and Turnbull's tables (and R's ldbounds); and a look at no more sentences
    than the one before spends nothing."""
    fractions = [0.2, 0.4, 0.6, 0.8, 1.0]
    spent = np.diff([0, *(0.05 * math.log1p((math.e - 1) * t) for t in fractions)])
    found = design.boundaries(fractions, spent)
    assert [round(c, 3) for c in found] == [2.438, 2.427, 2.41, 2.397, 2.386]
    assert design.look_level([40, 40], 400) == design.look_level([40], 400)
    assert design.look_level([40], 400) < design.look_level([20, 40], 400) < 1
    assert design.look_level([400], 400) == 0.95  # the whole split: nothing left to err


def test_intervals_hold_at_every_look_at_once():
    """Two runs about as good (each right on its own part of the entities): with a look
    after every 40 of 400 sentences, every look's interval of the difference holds the
    truth at once in at least 95% of 400 reviews (less the simulation's error), where
    every look at 95% misses it in far more."""
    size = 400
    rng = np.random.default_rng(11)
    gold = rng.integers(1, 4, size).astype(float)
    first = rng.binomial(gold.astype(int), 0.5).astype(float)
    predicted = np.vstack([gold, gold])
    population = design.Population(np.zeros(size, dtype=int), np.full(size, 8), predicted)
    correct = np.vstack([first, gold - first])
    truth = 2 * (correct[0].sum() - correct[1].sum()) / (2 * gold.sum())
    missed = naive = 0
    for _ in range(400):
        order = rng.permutation(size)
        looks, missed_once, naive_once = [], False, False
        for n in range(40, size, 40):
            rows, looks = order[:n], [*looks, n]
            reviewed = design.Reviewed(rows, correct[:, rows], gold[rows])
            for level in (0.95, design.look_level(looks, size)):
                found = design.estimate(population, reviewed, level).differences[(0, 1)]
                outside = not found.low <= truth <= found.high
                if level == 0.95:
                    naive_once |= outside
                else:
                    missed_once |= outside
        missed, naive = missed + missed_once, naive + naive_once
    assert missed / 400 <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 400), missed
    assert naive / 400 > 0.12, naive


def test_among_more_runs_each_difference_is_at_a_bonferroni_level():
    """Two runs: each difference at the level asked. Three runs: each difference's
    half-width is t at 1 − 0.05 / 2 times its standard error; each F1's still at 0.95."""
    rng = np.random.default_rng(3)
    stratum = np.repeat([0, 1], [120, 80])
    gold = rng.poisson(1.5, 200)
    correct = np.stack([rng.binomial(gold, p) for p in (0.9, 0.8, 0.7)])
    predicted = correct + rng.poisson(0.3, (3, 200))
    rows = np.concatenate([np.arange(0, 40), np.arange(120, 160)])

    def estimated(runs: int) -> design.Estimates:
        population = design.Population(stratum, np.full(200, 9), predicted[:runs])
        return design.estimate(population, design.Reviewed(rows, correct[:runs, rows], gold[rows]))

    def factor(interval: design.Interval) -> float:
        assert interval.low > -1 and interval.high < 1  # not clipped
        return (interval.high - interval.low) / 2 / interval.standard_error

    two, three = estimated(2), estimated(3)
    for interval in two.differences.values():
        assert factor(interval) == pytest.approx(design.t_quantile(interval.degrees, 0.95))
    assert len(three.differences) == 3
    for interval in three.differences.values():
        assert factor(interval) == pytest.approx(design.t_quantile(interval.degrees, 0.975))
    for interval in three.f1:
        assert factor(interval) == pytest.approx(design.t_quantile(interval.degrees, 0.95))
