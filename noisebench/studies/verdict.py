"""Verdicts: what a study says, in a few sentences per (dataset, model, noise, rate).

For each setting: the best loss for F1 and for calibration; every loss against CE (and
against the best loss) as a paired difference with a 95% bootstrap interval
(``paired.py``), so "beats CE" is said only when the interval excludes 0; CE plus
temperature scaling fitted on the run's own validation labels as the calibration bar a
robust loss has to clear; the degenerate runs (``metrics.degeneracy``); and, where the
study holds real noise and simulated noise of the same entity noise level (within
``SAME_LEVEL``), how much harder the real one was for CE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from noisebench.data.review.history import how_drawn
from noisebench.scoring import metrics, paired
from noisebench.studies.leaderboard.cells import still_improving
from noisebench.studies.leaderboard.labels import describe_noise, is_bound_label, loss_label
from noisebench.studies.leaderboard.records import Collected, real_noise_dataset
from noisebench.studies.leaderboard.settings import set_ups
from noisebench.training import runs

SAME_LEVEL = 0.05  # entity noise levels within 5 points count as "the same level"
CE = "ce"


@dataclass
class Group:
    """The runs of one setting: loss label -> seed -> run folder."""

    dataset: str
    model: str
    noise: str
    rate: float
    setup: str = ""  # where its table's runs differ: ``epochs=4`` (settings.set_ups)
    noisy_labels: bool = False  # the dataset's own labels are noisy (before added noise)
    methods: dict[str, dict[int, Path]] = field(default_factory=dict)
    # runs of a row and seed that another run already holds (the same settings and seed:
    # the same run under another path, or a copy), left out of the paired comparisons
    left_out: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        noise = describe_noise(self.noise, [self.rate], self.noisy_labels)
        rate = f" {self.rate:.2f}" if self.rate and self.noise != "none" else ""
        setup = f", {self.setup}" if self.setup else ""
        return f"{self.dataset}, {self.model}, {noise}{rate}{setup}"


def groups(collected: Collected) -> list[Group]:
    """The runs of each (dataset, model, noise, rate, set-up): losses are compared only
    with losses trained alike (the same epochs, training sentences, ...)."""
    found: dict[tuple, Group] = {}
    setups = set_ups(collected.records)
    for record in collected.records:
        key = (record["dataset"], record["model"], record["noise"], record["rate"])
        setup = setups[record["run"]]
        group = found.setdefault((*key, setup), Group(*key, setup=setup))
        group.noisy_labels |= bool(record.get("noisy_labels"))
        seeds = group.methods.setdefault(loss_label(record), {})
        run_dir = collected.run_dirs[record["run"]]
        if seeds.setdefault(record["seed"], run_dir) != run_dir and record["run"] not in (
            group.left_out
        ):
            group.left_out.append(record["run"])
    return [found[key] for key in sorted(found)]


class _Runs:
    """Each run's results and per-sentence test statistics, read once."""

    def __init__(self) -> None:
        self.cache: dict[tuple, paired.SentenceStats | None] = {}
        self.documents: dict[Path, dict] = {}
        self.predictions: dict[tuple[Path, str], runs.Predictions | None] = {}
        self.temperatures: dict[Path, float] = {}

    def results(self, run_dir: Path) -> dict:
        if run_dir not in self.documents:
            self.documents[run_dir] = runs.read_json(run_dir / runs.RESULTS) or {}
        return self.documents[run_dir]

    def split(self, run_dir: Path, name: str) -> runs.Predictions | None:
        """A run's saved predictions of one split, read once (None when absent)."""
        if (run_dir, name) not in self.predictions:
            path = run_dir / f"predictions-{name}.parquet"
            self.predictions[(run_dir, name)] = (
                runs.read_predictions(path) if path.is_file() else None
            )
        return self.predictions[(run_dir, name)]

    def reviewed(self, run_dir: Path) -> runs.Predictions | None:
        """A run's reviewed test sentences alone, read once (None where it has none)."""
        if (run_dir, "reviewed") not in self.predictions:
            test = self.split(run_dir, "test")
            self.predictions[(run_dir, "reviewed")] = test and test.reviewed_part()
        return self.predictions[(run_dir, "reviewed")]

    def stats(
        self, run_dir: Path, scaled: bool = False, reviewed: bool = False
    ) -> paired.SentenceStats | None:
        """Per-sentence test statistics; ``reviewed``: of the reviewed test sentences
        alone, against their reviewed labels (None where the run has none)."""
        if (run_dir, scaled, reviewed) not in self.cache:
            self.cache[(run_dir, scaled, reviewed)] = self._stats(run_dir, scaled, reviewed)
        return self.cache[(run_dir, scaled, reviewed)]

    def _stats(self, run_dir: Path, scaled: bool, reviewed: bool) -> paired.SentenceStats | None:
        results = self.results(run_dir)
        predictions = self.reviewed(run_dir) if reviewed else self.split(run_dir, "test")
        if predictions is None:
            return None
        probs = None
        if scaled:
            fit_on = self.split(run_dir, "validation")
            if fit_on is None:
                return None
            temperature = metrics.fit_on_validation(fit_on)
            self.temperatures[run_dir] = temperature
            probs = np.full(predictions.probs.shape, np.nan)
            scored = predictions.scored
            probs[scored] = metrics.temperature_scale(predictions.probs[scored], temperature)
        return paired.sentence_stats(
            predictions,
            results.get("scheme", "none"),
            results.get("strict", False),
            results.get("bins", 10),
            probs,
        )


def verdicts(collected: Collected, replicates: int = paired.REPLICATES, seed: int = 0) -> dict:
    """The verdict of every setting, as data (``text`` holds the sentences)."""
    cache = _Runs()
    settings = [_verdict(group, cache, replicates, seed) for group in groups(collected)]
    return {
        "method": (
            f"paired bootstrap over test sentences and seeds, {replicates} replicates,"
            " 95% percentile intervals"
        ),
        "settings": settings,
        "real_vs_simulated": _real_vs_simulated(settings),
    }


def _summary(group: Group, cache: _Runs) -> dict[str, dict]:
    """Loss label -> its mean test scores over seeds (F1, ECE, entity ECE), its number of
    seeds and of degenerate runs; a label without test scores has none."""
    summary = {}
    for label, seeds in group.methods.items():
        scores = [cache.results(d).get("splits", {}).get("test") for d in seeds.values()]
        scores = [s for s in scores if s]
        if not scores:
            continue
        summary[label] = {
            "loss": label,
            "n": len(scores),
            "f1": float(np.mean([s["f1"] for s in scores])),
            "ece": float(np.mean([s["ece"] for s in scores])),
            "entity_ece": _mean_or_none([s.get("entity_ece") for s in scores]),
            "degenerate": sum(bool(s.get("degenerate")) for s in scores),
        }
    return summary


def _verdict(group: Group, cache: _Runs, replicates: int, seed: int) -> dict:
    """One setting's verdict: the best losses, every loss against CE and the best (paired
    differences), CE + temperature scaling, and its sentences."""
    summary = _summary(group, cache)
    verdict = {
        "ce": None,
        "dataset": group.dataset,
        "model": group.model,
        "noise": group.noise,
        "rate": group.rate,
        "setup": group.setup,
        "noisy_labels": group.noisy_labels,
        "methods": list(summary.values()),
        "label_noise": _label_noise(group, cache),
        "left_out": group.left_out,
    }
    if not summary:
        return verdict | {"text": [f"{group.title}: no test scores."]}
    methods = [label for label in summary if not is_bound_label(label)] or list(summary)
    best_f1 = max(methods, key=lambda k: summary[k]["f1"])  # bounds are never "the best"
    # calibration where the entities are, where every run has it: token ECE is mostly
    # the ~83% O words a model gets right with near-certainty
    calibration = (
        "entity_ece" if all(summary[k]["entity_ece"] is not None for k in summary) else "ece"
    )
    best_ece = min(methods, key=lambda k: summary[k][calibration])
    verdict |= {"best_f1": best_f1, "best_ece": best_ece, "calibration_metric": calibration}

    def compare(
        a: str, b: str, metric: str, scaled_b: bool = False, reviewed: bool = False
    ) -> dict | None:
        common = sorted(set(group.methods[a]) & set(group.methods[b]))
        first = [cache.stats(group.methods[a][s], reviewed=reviewed) for s in common]
        second = [cache.stats(group.methods[b][s], scaled_b, reviewed) for s in common]
        if not common or any(x is None or not x.has(metric) for x in first + second):
            return None
        if len({len(x.counts) for x in first + second}) != 1:
            return None
        if not paired.same_design(first + second):  # weighted by other designs: not paired
            return None
        return paired.paired_difference(
            first, second, metric, replicates, seed, parts=reviewed
        ).to_dict()

    ce = verdict["ce"] = _reference_ce(group, summary, cache)
    others = [label for label in summary if label != ce]
    if ce is not None:
        verdict["vs_ce"] = {
            label: {m: compare(label, ce, m) for m in paired.METRICS} for label in others
        }
        verdict["ce_temperature"] = _temperature(group, cache, summary, compare, ce, calibration)
    verdict["vs_best"] = {
        label: compare(label, best_f1, "f1") for label in summary if label != best_f1
    }
    verdict["still_improving"] = _still_improving(group, cache)
    verdict["hardware"] = _hardware(group, cache)
    verdict["recoverable_gap"] = _recoverable_gap(summary, ce, _partial_truth(group, cache))
    verdict["reviewed"] = _reviewed(group, cache, verdict, compare)
    verdict["text"] = _sentences(group, verdict, summary)
    if verdict["reviewed"] is not None:  # the truth first: the reviewed sentences decide
        title, *rest = verdict["text"]
        verdict["text"] = [title, *verdict["reviewed"]["text"], *rest]
    return verdict


def _reviewed(group: Group, cache: _Runs, verdict: dict, compare) -> dict | None:
    """The verdict on the reviewed test sentences (review merge), where every run has
    them: the best method by F1 there, each method against CE (paired over those
    sentences), whether the given labels rank otherwise, and how many reviewed sentences
    an unresolved difference of the observed size would need (``sentences_needed``)."""
    parts = {
        label: [cache.stats(d, reviewed=True) for d in seeds.values()]
        for label, seeds in group.methods.items()
    }
    if not parts or any(s is None for stats in parts.values() for s in stats):
        return None
    reviewed_words = {
        tuple(map(tuple, cache.reviewed(d).tokens))
        for seeds in group.methods.values()
        for d in seeds.values()
    }
    if len(reviewed_words) > 1:  # runs reviewed on other sentences: not comparable
        return None
    records = [
        cache.results(d).get("splits", {}).get("test", {}).get("review") or {}
        for seeds in group.methods.values()
        for d in seeds.values()
    ]
    # runs scored before reviews were recorded know none: compare the known ones
    reviews = {record.get("fingerprint") for record in records} - {None}
    if len(reviews) > 1:  # the same sentences, other labels: scored against other truths
        return {"sentences": None, "reviews": len(reviews), "text": [_mixed_reviews(len(reviews))]}
    sentences = len(next(iter(parts.values()))[0].counts)
    run_dir = next(iter(next(iter(group.methods.values())).values()))
    split_size = len(cache.split(run_dir, "test").offsets) - 1  # what a review can reach
    f1 = {label: float(np.mean([s.value("f1") for s in stats])) for label, stats in parts.items()}
    methods = [label for label in f1 if not is_bound_label(label)] or list(f1)
    best = max(methods, key=f1.get)
    ce = verdict["ce"]
    vs_ce = {}
    if ce is not None:
        for label in f1:
            if label != ce:
                entry = compare(label, ce, "f1", reviewed=True)
                if entry is not None:
                    needed = sentences_needed(entry, sentences)
                    # the seeds alone spread further than the difference: no review resolves it
                    entry["seeds_limit"] = needed == math.inf
                    # capped at the split: beyond it, no review resolves a difference this size
                    entry["sentences_needed"] = (
                        None if needed in (None, math.inf) else min(needed, split_size)
                    )
                    entry["split_sentences"] = split_size
                vs_ce[label] = entry
    record = records[0]
    drawn = "random" if record.get("draws_recorded") else None
    reviewed = {
        "sentences": sentences,
        "f1": f1,
        "best_f1": best,
        "vs_ce": vs_ce,
        "given_labels_differ": best != verdict["best_f1"],
        # a focused sample is not the split: its F1 is not the split's (runs scored since
        # review_draw was recorded use the random sentences only; older ones: review.json)
        "drawn": drawn or how_drawn(cache.results(run_dir).get("config", {}).get("data"), "test"),
        "left_out": record.get("left_out", 0),
        # a designed review's sentences, each weighted by its design (N_h / n_h)
        "designed": bool(record.get("designed")),
    }
    return reviewed | {"text": _reviewed_sentences(reviewed, verdict, ce)}


def _mixed_reviews(reviews: int) -> str:
    return (
        f"The runs were scored against {reviews} different reviews of the test sentences (the"
        " data was merged again between them): their reviewed scores are not compared; train"
        " or score every run on one reviewed dataset."
    )


def sentences_needed(entry: dict, sentences: int) -> int | None:
    """Reviewed sentences that would resolve a paired difference of the observed size
    (None where it is resolved already or the difference is 0). Only the sentences' part
    of the interval shrinks with more of them, as 1/sqrt(n); the seeds' part stays. With
    the interval's parts (``Difference.parts``), their sides towards 0, s (sentences) and
    e (seeds), added in quadrature: ``n · s² / (d² − e²)``, and ``math.inf`` where the
    seeds alone spread further than d (no review resolves it; more seeds might). Without
    them, the whole side: ``n · (side / |d|)²``. At least one more than were reviewed.

    >>> sentences_needed({"difference": 0.01, "ci95": [-0.01, 0.03], "significant": False}, 200)
    800
    >>> sentences_needed({"difference": 0.01, "ci95": [-0.001, 0.015], "significant": False}, 200)
    242
    >>> parts = {"sentences": [-0.005, 0.025], "seeds": [0.002, 0.018]}
    >>> sentences_needed({"difference": 0.01, "ci95": [-0.01, 0.03], "significant": False,
    ...                   "parts": parts}, 200)  # s = 0.015, e = 0.008: 200 · 2.25e-4 / 3.6e-5
    1250
    >>> parts["seeds"] = [-0.002, 0.022]  # e = 0.012 > d
    >>> sentences_needed({"difference": 0.01, "ci95": [-0.01, 0.03], "significant": False,
    ...                   "parts": parts}, 200)
    inf
    """
    difference = entry["difference"]
    if entry["significant"] or difference == 0:
        return None

    def side(interval: list[float]) -> float:
        low, high = interval
        return max(difference - low if difference > 0 else high - difference, 0.0)

    if parts := entry.get("parts"):
        spread = difference**2 - side(parts["seeds"]) ** 2
        if spread <= 0:
            return math.inf  # type: ignore[return-value]
        wanted = sentences * side(parts["sentences"]) ** 2 / spread
    else:
        wanted = sentences * (side(entry["ci95"]) / abs(difference)) ** 2
    return max(sentences + 1, math.ceil(wanted - 1e-9))


def _reviewed_sentences(reviewed: dict, verdict: dict, ce: str | None) -> list[str]:
    n, best = reviewed["sentences"], reviewed["best_f1"]
    lines = []
    entry = reviewed["vs_ce"].get(best) if ce is not None and best != ce else None
    # a ranking the interval cannot support is not led with: "highest", not "best"
    word = "highest" if entry is not None and not entry["significant"] else "best"
    drawn = " of a designed review, weighted by its design" if reviewed.get("designed") else ""
    head = f"On {n} reviewed test sentences{drawn} (their reviewed labels): {word} is {best}"
    head += f" ({_points(reviewed['f1'][best])})"
    if entry is None:
        lines.append(head + ".")
    else:
        difference = f"{_difference(entry, 100.0, 2)} points over CE"
        if entry["significant"]:
            lines.append(f"{head}, {difference}: significant.")
        else:
            needed, whole = entry["sentences_needed"], entry.get("split_sentences")
            if entry.get("seeds_limit"):
                more = (
                    "; the seeds alone spread further than this difference: more seeds, not"
                    " more reviewed sentences, would resolve it."
                )
            elif needed and whole and needed >= whole:
                more = f"; a difference this size is not resolved by all {whole:,} test sentences."
            else:
                more = f"; a difference this size needs about {needed:,}." if needed else "."
            lines.append(f"{head}, {difference}: not resolved by {n} sentences{more}")
    others = [
        f"{label} {_difference(entry, 100.0, 2)}" + " (significant)" * entry["significant"]
        for label, entry in reviewed["vs_ce"].items()
        if entry is not None and label != best and not is_bound_label(label)
    ]
    if others:
        lines.append(f"Against CE on them (points, paired 95% interval): {'; '.join(others)}.")
    if reviewed.get("left_out"):
        lines.append(
            f"{reviewed['left_out']:,} more reviewed test sentences were chosen for a reason"
            " (review sample --compare, detect's list) and are left out: only sentences drawn"
            " at random estimate the split's scores."
        )
    if reviewed["drawn"] == "chosen":
        lines.append(
            "These reviewed test sentences were not drawn at random (review sample --compare):"
            " their F1 is not the split's, and the ranking weighs the sentences chosen; review"
            " merge's 'compare' estimate is the unbiased difference, a random sample (review"
            " sample) the split's F1."
        )
        return lines
    if reviewed["given_labels_differ"]:
        lines.append(
            f"The given labels rank otherwise: on them the best is {verdict['best_f1']};"
            " trust the reviewed sentences."
        )
    if reviewed["drawn"] is None:
        lines.append(
            "How the reviewed test sentences were drawn is not recorded beside the data (no"
            " review.json from review merge): their scores are the split's only if they were"
            " a random sample."
        )
    return lines


def _partial_truth(group: Group, cache: _Runs) -> set[str]:
    """The rows whose runs knew the truth of their reviewed training sentences only (data
    without clean labels: their training labels' noise was measured on those)."""
    partial = set()
    for label, seeds in group.methods.items():
        for run_dir in seeds.values():
            noise = (cache.results(run_dir).get("train") or {}).get("label_noise") or {}
            if "reviewed_sentences" in noise:
                partial.add(label)
    return partial


def _recoverable_gap(summary: dict, ce: str | None, partial: set[str] = frozenset()) -> dict | None:
    """Where an ``oracle-clean`` run (training on the clean labels) sits beside CE: the
    F1 gap between them, and the share of it each method closes (negative: it widens).
    An ``oracle-clean`` that knew a few reviewed sentences only (``partial``) is no ceiling."""
    ceilings = [label for label in summary if "+oracle-clean" in label and label not in partial]
    if ce is None or not ceilings:
        return None
    ceiling = next((c for c in ceilings if c.split()[0] == CE), ceilings[0])
    gap = summary[ceiling]["f1"] - summary[ce]["f1"]
    closed = {
        label: (summary[label]["f1"] - summary[ce]["f1"]) / gap if gap > 0 else None
        for label in summary
        if label not in (ce, ceiling)
    }
    return {"ceiling": ceiling, "ce": ce, "points": gap, "closed": closed}


def _still_improving(group: Group, cache: _Runs) -> dict[str, float]:
    """Loss label -> validation F1 gained at its last epoch, for the losses whose validation
    F1 was still rising there (``leaderboard.cells.still_improving``)."""
    rising = {}
    for label, seeds in group.methods.items():
        histories = [
            [
                epoch["validation_f1"]
                for epoch in (cache.results(d).get("train") or {}).get("history", [])
            ]
            for d in seeds.values()
        ]
        rise = still_improving(histories)
        if rise is not None:
            rising[label] = rise
    return rising


def _label_noise(group: Group, cache: _Runs) -> float | None:
    """The mean entity noise level of the group's training labels, when recorded."""
    levels = []
    for seeds in group.methods.values():
        for run_dir in seeds.values():
            noise = (cache.results(run_dir).get("train") or {}).get("label_noise") or {}
            if noise.get("entity_noise_level") is not None:
                levels.append(noise["entity_noise_level"])
    return float(np.mean(levels)) if levels else None


def _reference_ce(group: Group, summary: dict, cache: _Runs) -> str | None:
    """The CE method the others are compared with: the only one, or of several (CE at
    several learning rates) the one with the best mean validation F1; never CE with a
    treatment (a ``--method``, span smoothing)."""
    candidates = [
        label
        for label in summary
        if label.split()[0] == CE and "+" not in label and " span=" not in label
    ]
    if not candidates:
        return None

    def validation_f1(label: str) -> float:
        scores = [
            (cache.results(d).get("splits", {}).get("validation") or {}).get("f1", -1.0)
            for d in group.methods[label].values()
        ]
        return float(np.mean(scores))

    return max(sorted(candidates), key=validation_f1)


def _temperature(
    group: Group, cache: _Runs, summary: dict, compare, ce: str, metric: str
) -> dict | None:
    """CE with temperature scaling fitted on each CE run's validation predictions, by the
    verdict's calibration ``metric``."""
    scaled = [cache.stats(d, scaled=True) for d in group.methods[ce].values()]
    if not scaled or any(s is None for s in scaled):
        return None
    chosen_on = {
        (cache.results(d).get("train") or {}).get("validation_labels", "as given")
        for d in group.methods[ce].values()
    }
    return {
        "metric": metric,
        metric: float(np.mean([s.value(metric) for s in scaled])),
        "temperature": float(np.mean([cache.temperatures[d] for d in group.methods[ce].values()])),
        "fitted_on": " / ".join(sorted(chosen_on)) + " validation labels",
        "vs": {
            label: compare(label, ce, metric, scaled_b=True) for label in summary if label != ce
        },
    }


def _mean_or_none(values: list) -> float | None:
    return None if not values or any(v is None for v in values) else float(np.mean(values))


def _points(value: float) -> str:
    return f"{value * 100:.1f}"


def _difference(entry: dict | None, unit: float, most: int) -> str:
    if entry is None:
        return "(no paired runs)"
    low, high = entry["ci95"]
    difference = paired.Difference(entry["metric"], entry["difference"], low, high, 0, 0, 0)
    return paired.format_difference(difference, unit, most)


def _sentences(group: Group, verdict: dict, summary: dict) -> list[str]:
    seeds = max(m["n"] for m in summary.values())
    lines = [f"{group.title} ({seeds} seed(s) per loss):"]
    best, ce = verdict["best_f1"], verdict["ce"]
    # with reviewed test sentences the data has no clean test labels: say what F1 is against
    f1 = "F1 against the test labels as given" if verdict.get("reviewed") else "F1"
    if ce is None:
        shown = _points(summary[best]["f1"])
        lines.append(f"{f1}: best is {best} ({shown}); no CE runs to compare.")
    elif best == ce:
        worse = [
            f"{label} {_difference(d['f1'], 100.0, 2)}"
            for label, d in verdict["vs_ce"].items()
            if not is_bound_label(label)
        ]
        tied = [
            label
            for label, d in verdict["vs_ce"].items()
            if d["f1"] and not d["f1"]["significant"] and not is_bound_label(label)
        ]
        name = "CE" if ce == CE else f"CE ({ce})"
        text = f"{f1}: {name} is best ({_points(summary[ce]['f1'])}); no loss beats it"
        text += f" ({'; '.join(worse)} points)" if worse else ""
        text += f"; within the interval of CE: {', '.join(tied)}." if tied else "."
        lines.append(text)
    else:
        entry = verdict["vs_ce"][best]["f1"]
        if entry is None:
            significance = "no paired runs to test it"
        elif entry["significant"]:
            significance = "significant"
        else:
            significance = "not significant (the interval includes 0)"
        lines.append(
            f"{f1}: best is {best} ({_points(summary[best]['f1'])}),"
            f" {_difference(entry, 100.0, 2)} points over CE: {significance}."
        )
    gap = verdict["recoverable_gap"]
    if gap is not None:
        lines.append(_gap_sentence(gap, summary))
    for label, rise in verdict["still_improving"].items():
        lines.append(
            f"{label} was still improving at its last epoch ({rise * 100:+.1f} validation F1):"
            " a longer budget may change this."
        )
    lines.append(_calibration_sentence(verdict, summary))
    if _one_seed_significant(verdict):
        lines.append(
            "One seed per loss: the intervals hold the test sentences' sampling, not the"
            " spread between seeds, so a significant difference may not survive another"
            " seed (or another random stream); run two or more seeds (--seeds 0,1,2) before"
            " relying on it."
        )
    if verdict.get("hardware"):
        lines.append(
            "Trained on different hardware or CPU thread counts"
            f" ({'; '.join(verdict['hardware'])}): the order of a run's arithmetic (across"
            " devices, its kernels) moves its scores about as much as its seed does, so the"
            " differences between these runs include that."
        )
    degenerate = [
        f"{m['loss']} ({m['degenerate']} of {m['n']})" for m in summary.values() if m["degenerate"]
    ]
    if degenerate:
        lines.append(f"Degenerate (learned nothing; not measurements): {', '.join(degenerate)}.")
    if group.left_out:
        lines.append(
            "Left out of the comparisons (another run has the same settings and seed):"
            f" {', '.join(group.left_out)}."
        )
    return lines


def _hardware(group: Group, cache: _Runs) -> list[str] | None:
    """The kinds of hardware the setting's runs were trained on, where they recorded two
    or more (``train.hardware``: the processor and the CPU threads); else None."""
    found = set()
    for seeds in group.methods.values():
        for run_dir in seeds.values():
            train = cache.results(run_dir).get("train") or {}
            hardware = train.get("hardware")
            if not hardware:
                return None  # a run from before the record: whether they differ is unknown
            device = str(train.get("device", "cpu"))
            count = hardware.get("threads")
            threads = f", {count} CPU thread" + "s" * (count != 1)
            found.add(
                f"{hardware.get('processor')}" + ("" if device.startswith("cuda") else threads)
            )
    return sorted(found) if len(found) > 1 else None


def _one_seed_significant(verdict: dict) -> bool:
    """Whether any method's paired difference against CE (on the test labels or on the
    reviewed sentences) is significant while it rests on one shared seed."""
    entries = [
        entry
        for label, metrics_ in verdict.get("vs_ce", {}).items()
        if not is_bound_label(label)
        for entry in metrics_.values()
    ]
    reviewed = (verdict.get("reviewed") or {}).get("vs_ce") or {}
    entries += [e for label, e in reviewed.items() if not is_bound_label(label)]
    return any(e is not None and e["significant"] and e.get("seeds") == 1 for e in entries)


def _gap_sentence(gap: dict, summary: dict) -> str:
    bounds = [
        f"{label} {_points(summary[label]['f1'])}" for label in summary if is_bound_label(label)
    ]
    text = (
        f"Bounds (oracles with the clean labels, not methods): {', '.join(bounds)}. CE"
        f" ({_points(summary[gap['ce']]['f1'])}) is {gap['points'] * 100:.1f} points below"
        f" {gap['ceiling']}"
    )
    shares = [
        f"{label} {share:.0%}"
        for label, share in gap["closed"].items()
        if share is not None and not is_bound_label(label)
    ]
    if gap["points"] <= 0:
        return text + ": nothing to recover."
    return text + (f"; share of that gap closed: {', '.join(shares)}." if shares else ".")


def _calibration_sentence(verdict: dict, summary: dict) -> str:
    best, ce, metric = verdict["best_ece"], verdict["ce"], verdict["calibration_metric"]
    name = "entity-level ECE" if metric == "entity_ece" else "ECE"
    text = f"Calibration: lowest {name} {summary[best][metric]:.4f} ({best})"
    if ce is not None and best != ce:
        text += f"; CE {summary[ce][metric]:.4f}"
    scaled = verdict.get("ce_temperature")
    if not scaled:
        return text + "."
    text += (
        f"; CE + temperature scaling {scaled[metric]:.4f} (T = {scaled['temperature']:.2f},"
        f" fitted on the {scaled['fitted_on']})"
    )
    if best == ce:
        return text + "."
    entry = scaled["vs"].get(best)
    if entry is None:
        return text + "."
    if entry["significant"] and entry["difference"] < 0:
        outcome = "beats it"
    elif entry["significant"]:
        outcome = "does not beat it"
    else:
        outcome = "is not distinguishable from it"
    return text + f": {best} {outcome} ({_difference(entry, 1.0, 4)})."


def _real_vs_simulated(settings: list[dict]) -> list[dict]:
    """Real noise (a NoiseBench variant as given) against simulated noise of the same
    entity noise level, by CE's test F1 (the best loss where a side has no CE)."""
    comparisons = []
    for real in settings:
        if not _real_noise(real) or real["label_noise"] is None:
            continue
        for simulated in settings:
            level = simulated["label_noise"]
            if _real_noise(simulated) or not level or simulated["model"] != real["model"]:
                continue
            if abs(level - real["label_noise"]) > SAME_LEVEL:
                continue
            real_f1, simulated_f1 = _reference_f1(real), _reference_f1(simulated)
            if real_f1 is None or simulated_f1 is None:
                continue
            comparisons.append(
                {
                    "real": real["dataset"],
                    "simulated": [simulated["dataset"], simulated["noise"], simulated["rate"]],
                    "real_entity_noise": real["label_noise"],
                    "simulated_entity_noise": level,
                    "real_f1": real_f1[1],
                    "simulated_f1": simulated_f1[1],
                    "loss": real_f1[0],
                    "harder_by": simulated_f1[1] - real_f1[1],
                    "text": (
                        f"Real noise ({real['dataset']}, entity noise"
                        f" {real['label_noise']:.1%}) vs simulated {simulated['noise']} noise"
                        f" {simulated['rate']:.2f} on {simulated['dataset']} (entity noise"
                        f" {level:.1%}): {real_f1[0]} F1 {_points(real_f1[1])} vs"
                        f" {_points(simulated_f1[1])}; the real noise is"
                        f" {abs(simulated_f1[1] - real_f1[1]) * 100:.1f} points"
                        f" {'harder' if simulated_f1[1] >= real_f1[1] else 'easier'}."
                    ),
                }
            )
    return comparisons


def _real_noise(setting: dict) -> bool:
    """Trained on a NoiseBench variant's own labels, with no noise added."""
    return real_noise_dataset(setting["dataset"]) and not setting["rate"]


def _reference_f1(setting: dict) -> tuple[str, float] | None:
    methods = {m["loss"]: m for m in setting["methods"]}
    if not methods:
        return None
    label = setting.get("ce") or setting.get("best_f1")
    return label, methods[label]["f1"]


def text(verdict: dict) -> list[str]:
    """Every sentence of a verdict, setting by setting."""
    lines = []
    for setting in verdict["settings"]:
        lines += setting["text"] + [""]
    lines += [c["text"] for c in verdict["real_vs_simulated"]]
    lines.append(f"Intervals: {verdict['method']}.")
    return lines


def markdown(verdict: dict) -> str:
    lines = ["## Verdict", ""]
    for setting in verdict["settings"]:
        first, *rest = setting["text"]
        lines += [f"**{first}**", ""] + [f"- {line}" for line in rest] + [""]
    if verdict["real_vs_simulated"]:
        lines += [f"- {c['text']}" for c in verdict["real_vs_simulated"]] + [""]
    lines.append(f"_Intervals: {verdict['method']}._")
    return "\n".join(lines) + "\n"
