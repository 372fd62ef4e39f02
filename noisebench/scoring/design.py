"""Each run's entity F1 on a whole split, estimated from a stratified review sample.

Sentences fall into strata that the candidate runs define without any label (every run
predicts no entity; every run predicts the same entities; the runs disagree). In stratum
h of N_h sentences a uniform sample of n_h without replacement is reviewed. With tp_r(s)
the entities run r finds right in sentence s and g(s) its gold entities, the totals are
estimated without bias (Horvitz-Thompson within strata):

    TP^_r = Σ_h N_h / n_h · Σ_{s in sample_h} tp_r(s),     G^ = Σ_h N_h / n_h · Σ g(s)

and each run's F1 = 2·TP_r / (P_r + G), with P_r, the entities run r predicts on the
whole split, counted exactly (no review needed): F1^_r = 2·TP^_r / (P_r + G^). Its
variance (and that of every difference F1_a − F1_b) is the stratified variance of the
linearised values (Taylor; Särndal, Swensson and Wretman 1992, §5.6)

    z_r(s) = (2·tp_r(s) − F1^_r · g(s)) / (P_r + G^)
    Var^ = Σ_h N_h² (1 − n_h/N_h) s²_h(z) / n_h,

with z_a − z_b for a difference. Two guards keep the interval honest at small n:

- **a variance floor** per stratum: a sample of a few equal values (two reviewed
  differences of +1, say) has s² = 0, yet a value it did not meet may sit anywhere in the
  stratum's range (0 ≤ tp_r(s) ≤ the entities r predicts there, label-free; 0 ≤ g(s) ≤
  the fewer of its words and the most gold entities a reviewed sentence has). Each
  stratum's s² is at least that of a two-point distribution putting 1/(n_h+1) at the far
  end of a random sentence's range (in root mean square over the stratum: the unseen
  value is a sentence drawn at random, not the most extreme one) and the rest at the
  sample mean (the "one unseen value" rule), which vanishes as n_h grows;
- **Student t** quantiles with Satterthwaite's degrees of freedom instead of the normal.

A stratum reviewed in full contributes no variance; a stratum with one reviewed sentence
takes the floor alone. Estimates of F1 are ratios: consistent, with a bias of order 1/n.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

# two-sided 95% Student-t quantiles, by degrees of freedom
T_975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
    9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
    17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000,
    120: 1.980,
}  # fmt: skip


def t_quantile(degrees: float, level: float = 0.95) -> float:
    """The two-sided ``level`` Student-t quantile for ``degrees`` (at 95% up to 120, the
    table's, its degrees rounded down to the next entry: never narrower than the truth;
    else by inverting the t distribution, ``t_cdf``).

    >>> t_quantile(1), t_quantile(22.7), round(t_quantile(1000), 3), round(t_quantile(math.inf), 3)
    (12.706, 2.086, 1.962, 1.96)
    >>> round(t_quantile(10, 0.99), 3), round(t_quantile(math.inf, 0.99), 3)
    (3.169, 2.576)
    """
    if level == 0.95 and degrees <= 120:
        eligible = [d for d in T_975 if d <= max(degrees, 1)]
        return T_975[max(eligible)]
    # whole degrees, rounded down (never narrower), so that repeated levels are cached
    return _t_quantile(math.inf if degrees > 1e6 else max(math.floor(degrees), 1), level)


@functools.lru_cache(maxsize=4096)
def _t_quantile(degrees: float, level: float) -> float:
    target = 1 - (1 - level) / 2
    if math.isinf(degrees):
        from statistics import NormalDist

        return NormalDist().inv_cdf(target)
    low, high = 0.0, 1.0
    while t_cdf(high, degrees) < target:
        high *= 2
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if t_cdf(middle, degrees) < target else (low, middle)
    return high


def t_cdf(t: float, degrees: float) -> float:
    """P(T <= t) for Student's t with ``degrees``: 1 − I_x(ν/2, 1/2) / 2 for t > 0 with
    x = ν / (ν + t²) (the regularised incomplete beta, by its continued fraction).

    >>> round(t_cdf(2.228, 10), 4), t_cdf(0.0, 3)
    (0.975, 0.5)
    """
    x = degrees / (degrees + t * t)
    tail = 0.5 * _incomplete_beta(degrees / 2, 0.5, x)
    return 1 - tail if t >= 0 else tail


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta I_x(a, b) (Numerical Recipes' continued fraction)."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))  # fmt: skip
    if x > (a + 1) / (a + b + 2):
        return 1 - _incomplete_beta(b, a, 1 - x)
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > 1e-300 else 1e-300)
    fraction = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > 1e-300 else 1e-300)
            c = 1 + numerator / c
            c = c if abs(c) > 1e-300 else 1e-300
            fraction *= c * d
        if abs(c * d - 1) < 1e-14:
            break
    return front * fraction / a


def look_level(reviewed: Sequence[int], split: int, level: float = 0.95) -> float:
    """The confidence level of the last of the looks at a growing review of a split of
    ``split`` sentences, the k-th look after ``reviewed[k]`` reviewed sentences, so that
    all looks together err with probability at most 1 − ``level`` however many are
    taken and wherever the review stops: a group-sequential boundary (Lan and DeMets
    1983) spending 1 − ``level`` by Pocock's function α·ln(1 + (e − 1)·t) over the
    fraction t = n/``split`` reviewed, with the looks' joint distribution computed
    exactly (Armitage, McPherson and Rowe 1969: ``boundaries``). Sampling without
    replacement, the information after n sentences is n·N/(N − n). A look at as many
    sentences as the one before it spends nothing more; at the whole split the F1s are
    known and the level is moot.

    >>> round(look_level([25], 1005), 4), round(look_level([25, 50, 75, 100], 1005), 4)
    (0.9979, 0.997)
    """
    seen = tuple(sorted({min(int(n), split) for n in reviewed if n > 0}))
    if not seen or seen[-1] >= split:
        return level
    return _look_levels(seen, split, level)[-1]  # the last look: the most reviewed


@functools.lru_cache(maxsize=256)
def _look_levels(reviewed: tuple[int, ...], split: int, level: float) -> tuple[float, ...]:
    alpha = 1 - level
    fractions = [n / split for n in reviewed]
    spent = np.diff([0.0, *(alpha * math.log1p((math.e - 1) * t) for t in fractions)])
    information = [n * split / (split - n) for n in reviewed]
    return tuple(float(2 * _normal_cdf(c) - 1) for c in boundaries(information, spent))


def _normal_cdf(x):
    import torch

    return torch.special.ndtr(torch.as_tensor(x, dtype=torch.float64)).numpy()


def _crossing(edge: float, grid: np.ndarray, mass: np.ndarray, spread: float) -> float:
    """P(not stopped before, |S| ≥ ``edge`` now): the not-yet-stopped ``mass`` on
    ``grid`` moved by a normal increment of sd ``spread``."""
    beyond = _normal_cdf((-edge - grid) / spread) + 1 - _normal_cdf((edge - grid) / spread)
    return float(np.sum(mass * beyond))


def boundaries(information: Sequence[float], spent: Sequence[float], points: int = 401):
    """Two-sided critical values c_k of a group-sequential test whose statistics Z_k =
    S_k / √I_k follow a Brownian motion S observed at ``information`` I_1 < I_2 < ...,
    such that P(|Z_j| < c_j for j < k, |Z_k| ≥ c_k) = ``spent[k]`` (Armitage, McPherson
    and Rowe's recursion: the sub-density of S_k on the region not yet stopped, on a grid
    of ``points``, carried look to look by the normal increment).

    With O'Brien-Fleming's spending and five equal looks, the published boundaries:

    >>> from statistics import NormalDist
    >>> spend = [4 * (1 - NormalDist().cdf(NormalDist().inv_cdf(1 - 0.0125) / t**0.5))
    ...          for t in (0.2, 0.4, 0.6, 0.8, 1.0)]
    >>> [round(c, 3) for c in boundaries([0.2, 0.4, 0.6, 0.8, 1.0], np.diff([0, *spend]))]
    [4.877, 3.357, 2.68, 2.29, 2.031]
    """
    from statistics import NormalDist

    critical: list[float] = []
    grid = mass = None
    before = 0.0
    for info, alpha in zip(information, spent, strict=True):
        if mass is None:
            c = NormalDist().inv_cdf(1 - alpha / 2)
        else:
            spread = math.sqrt(info - before)
            low, high = 0.0, 40.0
            for _ in range(60):
                middle = (low + high) / 2
                crossing = _crossing(middle * math.sqrt(info), grid, mass, spread)
                low, high = (low, middle) if crossing < alpha else (middle, high)
            c = high
        edge = c * math.sqrt(info)
        new = np.linspace(-edge, edge, points)
        if mass is None:
            density = np.exp(-(new**2) / (2 * info)) / math.sqrt(2 * math.pi * info)
        else:
            kernel = np.exp(-((new[:, None] - grid[None, :]) ** 2) / (2 * spread**2))
            density = kernel @ mass / (math.sqrt(2 * math.pi) * spread)
        weights = np.full(points, new[1] - new[0])
        weights[[0, -1]] /= 2  # the trapezoid rule
        grid, mass, before = new, density * weights, info
        critical.append(c)
    return critical


@dataclass(frozen=True)
class Population:
    """What is known of every sentence of the split without a review: its stratum, its
    words, and the entities each run predicts in it."""

    stratum: np.ndarray  # (S,) int, the stratum of each sentence
    words: np.ndarray  # (S,) words per sentence: a bound on its gold entities
    predicted: np.ndarray  # (R, S) entities each run predicts per sentence
    # (R, S) an id of each run's predicted labels per sentence: equal ids, equal labels
    # (so equal right entities, whatever the truth); None: all taken as different
    labels: np.ndarray | None = None

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.stratum, minlength=int(self.stratum.max()) + 1)


@dataclass(frozen=True)
class Reviewed:
    """The reviewed sentences (rows of the population) and what the review found."""

    rows: np.ndarray  # (n,) int
    correct: np.ndarray  # (R, n) entities each run finds right in each of them
    gold: np.ndarray  # (n,) gold entities in each of them


@dataclass
class Interval:
    estimate: float
    standard_error: float
    low: float
    high: float
    degrees: float  # Satterthwaite's
    # per stratum: the (floored) standard deviation of the linearised values, what a
    # Neyman allocation weighs strata by (0 where a stratum is reviewed in full)
    spreads: dict[int, float] = field(default_factory=dict)

    @property
    def significant(self) -> bool:
        """Whether the interval excludes 0 (for a difference)."""
        return self.low > 0 or self.high < 0


@dataclass
class Estimates:
    """Each run's F1 on the split and every difference between runs, with intervals; the
    estimated totals they rest on."""

    f1: list[Interval]
    differences: dict[tuple[int, int], Interval]
    correct_totals: np.ndarray  # (R,) TP^
    gold_total: float  # G^
    reviewed: int
    notes: list[str] = field(default_factory=list)


def collapsed(weights: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """``strata`` with every stratum of one reviewed sentence that is not reviewed in full
    (its variance cannot be estimated) joined to another: the next by number that is not
    reviewed in full, else the one before, else any (collapsed strata, as survey practice
    handles them; the joined stratum's sentences weigh differently, so its variance is
    taken over the weighted values w·z: ``metrics.f1_interval``, the bootstrap's
    rescaling). Each pass removes one stratum, so it ends.

    >>> collapsed(np.array([2.0, 2.0, 5.0, 1.0]), np.array([0, 0, 1, 2])).tolist()
    [0, 0, 0, 2]
    >>> collapsed(np.array([2.0, 2.0, 5.0, 3.0, 3.0]), np.array([0, 0, 1, 2, 2])).tolist()
    [0, 0, 2, 2, 2]
    """
    strata = np.asarray(strata).copy()
    weights = np.asarray(weights, dtype=np.float64)

    def full(h) -> bool:  # reviewed in full: its sentences are all its own weight 1
        return (strata == h).sum() >= round(float(weights[strata == h].sum()))

    while True:
        labels = np.unique(strata)
        lonely = [h for h in labels if (strata == h).sum() == 1 and not full(h)]
        if not lonely or len(labels) == 1:
            return strata
        h = lonely[0]
        open_ = [g for g in labels if g != h and not full(g)] or [g for g in labels if g != h]
        later = [g for g in open_ if g > h]
        strata[strata == h] = later[0] if later else open_[-1]


def stratified_totals(sizes: np.ndarray, stratum: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Σ_h N_h · mean of ``values`` (..., n) over the sample of stratum h; strata not
    sampled contribute nothing (the caller makes sure every stratum of size > 0 with
    unknown values is sampled).

    >>> float(stratified_totals(np.array([4, 2]), np.array([0, 0, 1]), np.array([1.0, 3.0, 5.0])))
    18.0
    """
    values = np.asarray(values, dtype=np.float64)
    total = np.zeros(values.shape[:-1])
    for h in np.unique(stratum):
        total = total + sizes[h] * values[..., stratum == h].mean(axis=-1)
    return total


def pair_level(level: float, runs: int) -> float:
    """The level of each difference among ``runs`` runs: 1 − (1 − ``level``) / (R − 1),
    Bonferroni over the rivals of one run (``estimate``). With looks, pass this as
    ``look_level``'s level, so that the divided error is what the boundary spends.

    >>> round(pair_level(0.95, 2), 4), round(pair_level(0.95, 5), 4)
    (0.95, 0.9875)
    """
    return 1 - (1 - level) / max(runs - 1, 1)


def estimate(
    population: Population, reviewed: Reviewed, level: float = 0.95,
    difference_level: float | None = None,
) -> Estimates:  # fmt: skip
    """Each run's F1 on the split and every pairwise difference (see the module's
    docstring). Every stratum must hold a reviewed sentence, except those where every
    run predicts nothing and whose gold entities are therefore the only unknown: those
    too, since G is needed for every F1.

    Each F1 interval is at ``level``; each difference at ``difference_level``, by default
    ``pair_level(level, R)`` among R runs (Bonferroni over the rivals of one run) where
    ``level`` is 0.95 or R is 2; among more runs at another level (a look's) it must be
    given, since dividing a look's level does not spend what its boundary spends. The
    best run is decided when its difference to every other run excludes 0, so a wrong
    decision needs the chosen run's difference to the truly best to exclude 0 with the
    wrong sign: one of the truly best run's R − 1 rivals, each at most (1 − level) / (2(R
    − 1)), so at most (1 − level) / 2 in all, as for two runs. Over looks, each
    difference's boundary must spend the divided error itself: ``look_level(looks, N,
    pair_level(0.95, R))`` as ``difference_level`` (``studies.focus.levels``)."""
    sizes = population.sizes
    stratum = population.stratum[reviewed.rows]
    missing = [int(h) for h in np.flatnonzero(sizes) if not np.any(stratum == h)]
    if missing:
        raise ValueError(f"strata {missing} have no reviewed sentence: their totals are unknown")
    runs = population.predicted.shape[0]
    correct = stratified_totals(sizes, stratum, reviewed.correct)
    gold = float(stratified_totals(sizes, stratum, reviewed.gold))
    predicted = population.predicted.sum(axis=1).astype(np.float64)
    denominators = predicted + gold
    f1 = np.where(denominators > 0, 2 * correct / np.maximum(denominators, 1e-12), 0.0)
    z = (2 * reviewed.correct - f1[:, None] * reviewed.gold) / np.maximum(denominators, 1e-12)[
        :, None
    ]  # (R, n)
    # g's range: no more than the most gold entities a reviewed sentence has, nor its words
    reach = np.minimum(population.words, max(float(reviewed.gold.max(initial=0)), 1.0))
    low, high = _z_bounds(population, f1, denominators, reach)  # (R, S) ranges of z
    intervals = [
        clipped(
            _interval(f1[r], z[r], stratum, sizes, low[r], high[r], population.stratum, level),
            0.0, 1.0,
        )
        for r in range(runs)
    ]  # fmt: skip
    differences = {}
    if difference_level is None:
        if runs > 2 and level != 0.95:  # a look's level: dividing it spends too much
            raise ValueError("among more than two runs at a look's level, pass difference_level"
                             " (studies.focus.levels)")  # fmt: skip
        difference_level = pair_level(level, runs)
    for a in range(runs):
        for b in range(a + 1, runs):
            lo, hi = _difference_bounds(population, f1, denominators, a, b, reach)
            differences[(a, b)] = clipped(
                _interval(f1[a] - f1[b], z[a] - z[b], stratum, sizes, lo, hi,
                          population.stratum, difference_level),
                -1.0, 1.0,
            )  # fmt: skip
    return Estimates(intervals, differences, correct, gold, len(reviewed.rows))


def _z_bounds(population: Population, f1: np.ndarray, denominators: np.ndarray, gold_reach):
    """Per run and sentence, the range z_r(s) may take: tp in [0, predicted], g in
    [0, ``gold_reach``]."""
    scale = np.maximum(denominators, 1e-12)[:, None]
    high = 2 * population.predicted / scale
    low = -f1[:, None] * gold_reach[None, :] / scale
    return low, high


def _difference_bounds(population: Population, f1, denominators, a: int, b: int, gold_reach):
    """Per sentence, the range z_a(s) − z_b(s) may take: tp_a in [0, predicted_a], tp_b
    in [0, predicted_b] (one shared tp where the two runs predict the same labels), g in
    [0, ``gold_reach``]."""
    d_a, d_b = (max(float(denominators[r]), 1e-12) for r in (a, b))
    p_a, p_b = population.predicted[a], population.predicted[b]
    slope = f1[a] / d_a - f1[b] / d_b  # the coefficient of -g
    high = 2 * p_a / d_a + np.maximum(0.0, -slope) * gold_reach
    low = -2 * p_b / d_b - np.maximum(0.0, slope) * gold_reach
    if population.labels is not None:  # a shared tp t in [0, p]: 2t(1/d_a - 1/d_b)
        same = population.labels[a] == population.labels[b]
        shared = 2 * p_a * (1 / d_a - 1 / d_b)
        high = np.where(same, np.maximum(0.0, shared) + np.maximum(0.0, -slope) * gold_reach, high)
        low = np.where(same, np.minimum(0.0, shared) - np.maximum(0.0, slope) * gold_reach, low)
    return low, high


def _interval(value, z, stratum, sizes, low, high, population_stratum, level) -> Interval:
    """The t interval of ``value`` from the linearised ``z`` of the reviewed sentences,
    with the one-unseen-value floor on each stratum's variance."""
    variance = 0.0
    parts, spreads = [], {}
    for h in np.unique(stratum):
        sample = z[stratum == h]
        n, size = len(sample), int(sizes[h])
        spreads[int(h)] = 0.0
        if n >= size:
            continue  # reviewed in full: known exactly
        s2 = float(sample.var(ddof=1)) if n >= 2 else 0.0
        inside = population_stratum == h
        mean = float(sample.mean())
        # the unseen value is a sentence of the stratum drawn at random: its far end, in
        # root mean square over the stratum's sentences (not the one most extreme)
        ends = np.maximum(np.maximum(mean - low[inside], high[inside] - mean), 0.0)
        reach = float(np.sqrt(np.mean(ends**2)))
        unseen = 1.0 / (n + 1)
        s2 = max(s2, unseen * (1 - unseen) * reach**2)
        spreads[int(h)] = math.sqrt(s2)
        part = size**2 * (1 - n / size) * s2 / n
        variance += part
        parts.append((part, max(n - 1, 1)))
    error, degrees, half = t_half_width(parts, level)
    value = float(value)
    return Interval(value, error, value - half, value + half, degrees, spreads)


def t_half_width(parts: list[tuple[float, int]], level: float) -> tuple[float, float, float]:
    """The standard error, Satterthwaite's degrees of freedom ((Σ v_h)² / Σ v_h² / df_h)
    and the Student-t half-width at ``level`` of a sum of stratum variances ``parts``
    (v_h, df_h): infinite degrees and width 0 where they add to 0.

    >>> [round(v, 4) for v in t_half_width([(1.0, 4), (1.0, 4)], 0.95)]
    [1.4142, 8.0, 3.2612]
    """
    variance = sum(part for part, _ in parts)
    degrees = variance**2 / sum(p**2 / df for p, df in parts) if variance > 0 else math.inf
    error = math.sqrt(variance)
    return error, degrees, t_quantile(degrees, level) * error


def clipped(interval: Interval, low: float, high: float) -> Interval:
    """``interval`` with its estimate and bounds held to [low, high]: TP is estimated
    while P is counted, so at small n TP^ may exceed P and F1^ 1; F1 cannot."""
    return replace(
        interval,
        estimate=min(max(interval.estimate, low), high),
        low=min(max(interval.low, low), high),
        high=min(max(interval.high, low), high),
    )
