"""What each training word contributes beside the loss: whether it counts (masking by error
type, oracle bounds), with the thresholds the masking fits while training.

    noisebench train --data noisebench:crowd --loss ce --method mask-missing

``--method`` works with every loss: a word left out gets the ignore label (-100), so the
loss averages over the words kept (per-word weights of 0 or 1).

Error-type-aware masking (Merdjanovska, Golde and Akbik 2026). Per scored word, from the
training forward pass: the given label, the model's prediction and its confidence. Words
the model agrees with always count. Disagreeing words fall in groups: *missing* (label
``O``, prediction an entity), *entity* (label an entity, prediction anything else), *all*
(both). In its method's group a word is left out when the model disagrees confidently:
the confidence of its (disagreeing) prediction exceeds the group's threshold. The paper
writes the clean state as "confidence above tau"; its starting thresholds (0.4 for
missed entities, 0.85 for the rest) only make sense as the confidence above which a
disagreeing prediction overrules the label, which is the reading built here. No masking
during the first ``mask_warmup`` share of the steps; the thresholds are refitted at 10%,
30% and 60% of the run (the paper's epochs 1, 3 and 6 of 10) by a two-component Beta
mixture over that group's disagreeing confidences since the last fit: the threshold is
the lowest confidence at which the high-confidence component's posterior reaches 0.3
(``--mask-cutoff``). ``--mask-reading literal`` reads the rule as the paper writes it: a
disagreeing word counts while its confidence is above the threshold, the unconfident
ones are left out. For ``entity`` and ``all`` the rule applies only in a batch whose
entity predictions reach 10% of its entity labels (the paper's guard against collapse to
``O``).

Oracle bounds, on data with clean labels: ``oracle-mask`` leaves out every word whose
label differs from its clean label; ``oracle-mask-disagree`` only while the model's
prediction also differs from the given label (what a perfect detector of the masking
family could do); ``oracle-clean`` trains on the clean labels (the ceiling; ``prepare``
swaps the labels, nothing happens here).

In code, ``WordSelection(method, ...)`` makes the method's rule, one class each:
``MaskMissing``, ``MaskEntity``, ``MaskAll`` and ``MaskAuto`` (its choice of one of the
first two) on ``ThresholdMasking`` (thresholds, their refits, the warm-up, checkpoint
state); ``OracleMask``, ``OracleMaskDisagree``; ``NoSelection``. Each epoch's counts
(``EpochCounts``) become its report in ``diagnostics``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

IGNORE = -100
MASKING = {"mask-missing": ("missing",), "mask-entity": ("entity",), "mask-all": ("all",)}
AUTO = "mask-auto"  # mask-missing or mask-entity, by the dominant error type
ORACLES = ("oracle-mask", "oracle-mask-disagree", "oracle-clean")
METHODS = ("none", *MASKING, AUTO, *ORACLES)
INITIAL_THRESHOLD = {"missing": 0.4, "entity": 0.85, "all": 0.85}
REFIT_SHARES = (0.1, 0.3, 0.6)  # of all steps: the paper's epochs 1, 3 and 6 of 10
POSTERIOR_CUTOFF = 0.3
# how the paper's "confidence above tau" rule is read (``--mask-reading``): "overrule" (a
# disagreeing prediction more confident than tau overrules the label: left out) or
# "literal" (the text as written: a disagreeing word counts only while the confidence is
# above tau, so the unconfident disagreements are left out)
READINGS = ("overrule", "literal")
# mask-auto without --mask-reading reads each group the way that did not cost F1 where it
# was measured (docs/results/masking.md; crowd, LLM, distant and weak labels):
# missed entities overruled (+1.5 to +2.6 points on crowd, the default the most), entity
# labels literally (-0.4 against -5.9 on LLM, -0.1 against -13.9 on weak, -9.0 against
# -18.5 on crowd). The explicit methods keep "overrule" as their default.
AUTO_READINGS = {"missing": "overrule", "entity": "literal"}
EM_ITERATIONS = 10
ENTITY_GUARD = 0.1  # entity predictions must reach this share of a batch's entity labels
DEFAULT_MASK_WARMUP = 0.1  # the paper's 150 of ~1,500 steps


def group_readings(method: str, reading: str | None) -> dict[str, str]:
    """How each of ``method``'s groups reads the rule: ``reading`` where given (one for
    all), else "overrule", or for mask-auto ``AUTO_READINGS``.

    >>> group_readings("mask-auto", None), group_readings("mask-entity", None)
    ({'missing': 'overrule', 'entity': 'literal'}, {'entity': 'overrule'})
    >>> group_readings("mask-auto", "overrule")
    {'missing': 'overrule', 'entity': 'overrule'}
    """
    groups = ("missing", "entity") if method == AUTO else MASKING.get(method, ())
    if reading is None and method == AUTO:
        return dict(AUTO_READINGS)
    return {group: reading or READINGS[0] for group in groups}


def choose_from_profile(profile: dict) -> tuple[str, str]:
    """``mask-missing`` where missed entities are the dominant error of a noise profile
    (``noisebench profile``), else ``mask-entity`` (spurious and retyped entities: the
    study's rule); and why, in words. Type-agnostic rates: any tag set's profile works.

    >>> cells = {"PER|1": {"kept": 50, "missed": 30, "retyped": 10, "boundary": 10}}
    >>> profile = {"cells": cells, "boundary": [], "entities": 100,
    ...            "spurious": {"per_sentence": {"0": 90, "1": 10}, "types": {"PER": 10}}}
    >>> choose_from_profile(profile)
    ('mask-missing', 'missed 30.0% of entities against retyped 10.0% + spurious 10.0%')
    """
    from noisebench.data.profiles import summary

    digest = summary(profile)
    missed, retyped = digest["outcomes"]["missed"], digest["outcomes"]["retyped"]
    spurious = digest["spurious_per_entity"]
    choice = "mask-missing" if missed >= retyped + spurious else "mask-entity"
    return choice, (
        f"missed {missed:.1%} of entities against retyped {retyped:.1%} + spurious {spurious:.1%}"
    )


def needs_clean_labels(method: str) -> bool:
    return method in ORACLES


def is_bound(method: str) -> bool:
    """An oracle: a bound on what a method could reach, never a method to choose."""
    return method in ORACLES


# ------------------------------------------------------------------ the Beta mixture


def _beta_log_pdf(x: np.ndarray, a: float, b: float) -> np.ndarray:
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    return log_norm + (a - 1) * np.log(x) + (b - 1) * np.log1p(-x)


def _moments(x: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Beta parameters by the weighted method of moments (the M-step of Ma and Arazo's
    BMM), kept inside (0.5, 100) so a component never degenerates."""
    total = max(float(weights.sum()), 1e-12)
    mean = float((weights * x).sum() / total)
    variance = max(float((weights * (x - mean) ** 2).sum() / total), 1e-6)
    common = max(mean * (1 - mean) / variance - 1, 1e-3)
    return float(np.clip(mean * common, 0.5, 100)), float(np.clip((1 - mean) * common, 0.5, 100))


def fit_beta_mixture(x: np.ndarray, iterations: int = EM_ITERATIONS) -> dict:
    """Two Beta components fitted to ``x`` in (0, 1) by EM; component 1 has the higher
    mean. Returns ``a``, ``b`` (per component) and ``weight`` (component 1's share).

    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.beta(2, 8, 3000), rng.beta(9, 2, 1000)])
    >>> fit = fit_beta_mixture(x)
    >>> round(fit["weight"], 1), [round(a / (a + b), 1) for a, b in zip(fit["a"], fit["b"])]
    (0.3, [0.2, 0.8])
    """
    x = np.clip(np.asarray(x, dtype=np.float64), 1e-4, 1 - 1e-4)
    high = (x > _two_means_split(x)).astype(np.float64)  # start: the 1-D 2-means split
    responsibility = np.stack([1 - high, high])
    params = [(2.0, 2.0), (2.0, 2.0)]
    weight = 0.5
    for _ in range(iterations):
        params = [_moments(x, responsibility[k]) for k in (0, 1)]
        weight = float(np.clip(responsibility[1].mean(), 1e-3, 1 - 1e-3))
        log_p = np.stack(
            [
                np.log(1 - weight) + _beta_log_pdf(x, *params[0]),
                np.log(weight) + _beta_log_pdf(x, *params[1]),
            ]
        )
        log_p -= log_p.max(axis=0)
        responsibility = np.exp(log_p) / np.exp(log_p).sum(axis=0)
    if params[0][0] / sum(params[0]) > params[1][0] / sum(params[1]):
        params, weight = params[::-1], 1 - weight
    return {"a": [params[0][0], params[1][0]], "b": [params[0][1], params[1][1]], "weight": weight}


def _two_means_split(x: np.ndarray, iterations: int = 20) -> float:
    """Where 1-D 2-means (Lloyd's, from the quartiles) puts the boundary of ``x``."""
    low, high = np.quantile(x, [0.25, 0.75])
    for _ in range(iterations):
        boundary = (low + high) / 2
        upper = x > boundary
        if upper.all() or not upper.any():
            break
        low, high = x[~upper].mean(), x[upper].mean()
    return float((low + high) / 2)


def mixture_threshold(fit: dict, cutoff: float = POSTERIOR_CUTOFF) -> float | None:
    """The lowest confidence above the low component's mean at which the high component's
    posterior reaches ``cutoff`` (None where it never does).

    >>> fit = {"a": [2.0, 9.0], "b": [8.0, 2.0], "weight": 0.25}
    >>> round(mixture_threshold(fit), 3)
    0.528
    """
    low_mean = fit["a"][0] / (fit["a"][0] + fit["b"][0])
    grid = np.linspace(low_mean, 1 - 1e-3, 999)
    low = np.log(1 - fit["weight"]) + _beta_log_pdf(grid, fit["a"][0], fit["b"][0])
    high = np.log(fit["weight"]) + _beta_log_pdf(grid, fit["a"][1], fit["b"][1])
    posterior = 1 / (1 + np.exp(np.clip(low - high, -700, 700)))
    above = np.flatnonzero(posterior >= cutoff)
    return float(grid[above[0]]) if len(above) else None


# ----------------------------------------------------------------------- the rules


def disagreement_groups(labels: torch.Tensor, predicted: torch.Tensor, outside: int) -> dict:
    """Boolean masks (same shape as ``labels``) of the scored words in each group.

    >>> import torch
    >>> labels = torch.tensor([0, 0, 1, 2, 1, -100])     # O, O, B-X, B-Y, B-X, ignored
    >>> predicted = torch.tensor([0, 1, 2, 0, 1, 1])
    >>> {k: v.tolist() for k, v in disagreement_groups(labels, predicted, 0).items()}
    ... # doctest: +NORMALIZE_WHITESPACE
    {'missing': [False, True, False, False, False, False],
     'entity': [False, False, True, True, False, False],
     'all': [False, True, True, True, False, False]}
    """
    scored = labels != IGNORE
    disagree = scored & (predicted != labels)
    missing = disagree & (labels == outside) & (predicted != outside)
    entity = disagree & (labels != outside)
    return {"missing": missing, "entity": entity, "all": missing | entity}


def entity_guard(labels: torch.Tensor, predicted: torch.Tensor, outside: int) -> torch.Tensor:
    """Whether the batch's entity predictions reach ``ENTITY_GUARD`` of its entity labels
    (a 0-d bool tensor, left on the device): the rule for entity labels applies only then.

    >>> import torch
    >>> labels = torch.tensor([1] * 11 + [0])
    >>> bool(entity_guard(labels, torch.tensor([1] + [0] * 11), 0))
    False
    """
    entity_labels = ((labels != IGNORE) & (labels != outside)).sum()
    entity_predictions = ((labels != IGNORE) & (predicted != outside)).sum()
    return entity_predictions >= ENTITY_GUARD * entity_labels


class EpochCounts:
    """One epoch's counts, kept as device tensors and read once at its end (``read``): the
    scored words, those left out and, where clean labels exist, the truly wrong ones
    (``wrong`` None without); per masked group, its disagreeing words and those left out."""

    def __init__(self, groups: tuple[str, ...]) -> None:
        self.words = {"scored": 0, "left_out": 0, "wrong": 0, "left_out_wrong": 0}
        self.groups = {group: {"disagree": 0, "left_out": 0} for group in groups}

    def add(self, scored, left_out, wrong) -> None:
        """One step's words: ``scored``, ``left_out`` and ``wrong`` (or None), (B, T) bool."""
        self.words["scored"] += scored.sum()
        self.words["left_out"] += left_out.sum()
        if wrong is not None:
            self.words["wrong"] += wrong.sum()
            self.words["left_out_wrong"] += (left_out & wrong).sum()
        else:
            self.words["wrong"] = None

    def keep(self, groups: tuple[str, ...]) -> None:
        """Count only ``groups`` from now on (their counts so far kept)."""
        self.groups = {g: self.groups.get(g, {"disagree": 0, "left_out": 0}) for g in groups}

    def read(self) -> tuple[dict, dict]:
        """The word counts and the group counts as ints (one read of the device)."""
        words = {k: v if v is None else int(v) for k, v in self.words.items()}
        groups = {g: {k: int(v) for k, v in c.items()} for g, c in self.groups.items()}
        return words, groups


def diagnostics(
    method: str, words: dict, groups: dict, thresholds: dict, readings: dict, choice: dict
) -> dict:
    """An epoch's report from its counts (``EpochCounts.read``): the share of scored words
    left out (per group, and in all) and, where clean labels exist, precision and recall
    of the leaving out against the words that are truly wrong; with the rule's
    ``thresholds``, ``readings`` and (mask-auto) ``choice``.

    >>> words = {"scored": 10, "left_out": 2, "wrong": 4, "left_out_wrong": 1}
    >>> report = diagnostics("oracle-mask", words, {}, {}, {}, {})
    >>> report["left_out_share"], report["precision"], report["recall"]
    (0.2, 0.5, 0.25)
    """
    scored = words["scored"]

    def share(count: int) -> float:
        return count / scored if scored else 0.0

    report = {
        "method": method,
        "scored_words": scored,
        "left_out_share": share(words["left_out"]),
        "thresholds": thresholds,
        "readings": readings,
        "groups": {
            group: {
                "disagreeing_share": share(c["disagree"]),
                "left_out_share": share(c["left_out"]),
            }
            for group, c in groups.items()
        },
        "precision": None,
        "recall": None,
    } | choice
    if words["wrong"] is not None:  # None: this run's data has no clean labels
        report["truly_wrong_share"] = share(words["wrong"])
        if words["left_out"]:
            report["precision"] = words["left_out_wrong"] / words["left_out"]
        if words["wrong"]:
            report["recall"] = words["left_out_wrong"] / words["wrong"]
    return report


class WordSelection:
    """Which training words count, step by step, for one run's ``--method``: the interface
    the loop and ``hf.NoiseRobustTrainer`` call (``active``, ``select``, ``end_epoch``,
    ``state_dict``, ``load_state_dict``), with one subclass per rule.
    ``WordSelection(method, ...)`` makes the rule ``method`` names (``SELECTIONS``)."""

    active = True
    groups: tuple[str, ...] = ()  # the masked groups (``disagreement_groups``)

    def __new__(cls, method: str = "none", *args, **kwargs) -> WordSelection:
        # (``method`` has a default for ``copy`` and ``pickle``, which call it bare)
        if cls is WordSelection:  # any other method (none, oracle-clean): every word counts
            cls = SELECTIONS.get(method, NoSelection)
        return super().__new__(cls)

    def __init__(
        self,
        method: str,
        outside: int,
        total_steps: int,
        mask_warmup: float = DEFAULT_MASK_WARMUP,
        choice: str | None = None,
        cutoff: float = POSTERIOR_CUTOFF,
        reading: str | None = None,
    ) -> None:
        """``outside`` the id of ``O`` (-1 without), ``total_steps`` the run's optimizer
        steps; the masking rules also read ``mask_warmup`` (a share of those steps),
        ``choice`` (mask-auto's method from a profile), ``cutoff`` (the refit's
        posterior) and ``reading`` (None: the method's default, ``group_readings``)."""
        self.method, self.outside = method, outside
        self.counts = EpochCounts(self.groups)

    def select(
        self, logits: torch.Tensor, labels: torch.Tensor, clean: torch.Tensor | None, step: int
    ) -> torch.Tensor:
        """``labels`` with the words left out at optimizer step ``step`` (0-based) set to
        -100. ``logits`` (B, T, C) from this step's forward pass, ``clean`` the clean
        labels (same shape as ``labels``) where the data has them."""
        import torch  # here, so that leaderboards read this module without torch

        with torch.no_grad():
            probs = torch.softmax(logits.detach().float(), dim=-1)
            confidence, predicted = probs.max(dim=-1)
            scored = labels != IGNORE
            wrong = scored & (labels != clean) if clean is not None else None
            left_out = self.left_out(labels, predicted, confidence, wrong, step)
            self.counts.add(scored, left_out, wrong)
        return labels.masked_fill(left_out, IGNORE)

    def left_out(self, labels, predicted, confidence, wrong, step: int) -> torch.Tensor:
        """The words (B, T) this rule leaves out at ``step``: ``predicted`` and its
        ``confidence`` (B, T) from the forward pass, ``wrong`` where clean labels exist."""
        raise NotImplementedError

    def end_epoch(self) -> dict | None:
        """This epoch's diagnostics (``diagnostics``), then counted afresh."""
        words, groups = self.counts.read()
        self.counts = EpochCounts(self.groups)
        return diagnostics(self.method, words, groups, *self._report_entries())

    def _report_entries(self) -> tuple[dict, dict, dict]:
        """The rule's own report entries: thresholds, readings, mask-auto's choice."""
        return {}, {}, {}

    def state_dict(self) -> dict:
        """What a checkpoint keeps, in one layout for every method: the thresholds, the
        confidences waiting for a fit and the fits of the masked groups, mask-auto's choice."""
        return {
            "thresholds": {},
            "pending": {},
            "fits": [],
            "groups": (),
            "chosen": None,
            "chosen_by": None,
            "votes": {"missing": 0, "entity": 0},
        }

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore but what a masking rule keeps."""


class NoSelection(WordSelection):
    """``none`` (the loss alone) and ``oracle-clean`` (``prepare`` swapped the labels):
    every word counts, nothing is reported."""

    active = False

    def select(self, logits, labels, clean, step: int) -> torch.Tensor:
        return labels

    def end_epoch(self) -> None:
        return None


class OracleMask(WordSelection):
    """``oracle-mask``: leaves out every word whose label differs from its clean label."""

    def left_out(self, labels, predicted, confidence, wrong, step: int) -> torch.Tensor:
        return wrong


class OracleMaskDisagree(WordSelection):
    """``oracle-mask-disagree``: leaves out a wrong word only while the model's prediction
    also differs from its label (what a perfect detector of the masking family could do)."""

    def left_out(self, labels, predicted, confidence, wrong, step: int) -> torch.Tensor:
        return wrong & (predicted != labels)


class ThresholdMasking(WordSelection):
    """What the masking rules share: in each of the rule's ``groups``, after the warm-up, a
    disagreeing word is left out by its confidence against the group's threshold (read
    as ``readings`` says; entity groups only in a batch that passes ``entity_guard``), and
    the thresholds are refitted at ``REFIT_SHARES`` of the run from the group's
    disagreeing confidences since the last fit (``pending``)."""

    def __init__(
        self,
        method: str,
        outside: int,
        total_steps: int,
        mask_warmup: float = DEFAULT_MASK_WARMUP,
        choice: str | None = None,
        cutoff: float = POSTERIOR_CUTOFF,
        reading: str | None = None,
    ) -> None:
        super().__init__(method, outside, total_steps, mask_warmup, choice, cutoff, reading)
        readings = group_readings(method, reading)  # None: the method's default
        self.readings = {group: readings[group] for group in self.groups}
        self.cutoff = cutoff
        self.warmup_steps = round(mask_warmup * total_steps)
        self.refit_steps = sorted({max(1, round(s * total_steps)) for s in REFIT_SHARES})
        self.thresholds = {group: INITIAL_THRESHOLD[group] for group in self.groups}
        self.pending: dict[str, list] = {group: [] for group in self.groups}
        self.fits: list[dict] = []

    def select(self, logits, labels, clean, step: int) -> torch.Tensor:
        kept = super().select(logits, labels, clean, step)
        if step + 1 in self.refit_steps:
            self._refit()
        return kept

    def left_out(self, labels, predicted, confidence, wrong, step: int) -> torch.Tensor:
        disagreeing = disagreement_groups(labels, predicted, self.outside)
        guarded = entity_guard(labels, predicted, self.outside)
        return self._mask(disagreeing, confidence, guarded, step)

    def _mask(self, disagreeing: dict, confidence, guarded, step: int) -> torch.Tensor:
        """Every decision and count stays on the device (the guard a 0-d tensor, the
        confidences kept in place with NaN elsewhere): on CUDA a step never waits."""
        left_out = disagreeing["all"].new_zeros(disagreeing["all"].shape)  # (B, T) bool
        for group in self.groups:
            members = disagreeing[group]
            self.pending[group].append(confidence.masked_fill(~members, float("nan")).flatten())
            self.counts.groups[group]["disagree"] += members.sum()
            if step < self.warmup_steps:
                continue
            if self.readings[group] == "literal":
                chosen = members & (confidence <= self.thresholds[group])
            else:
                chosen = members & (confidence > self.thresholds[group])
            if group != "missing":
                chosen &= guarded
            self.counts.groups[group]["left_out"] += chosen.sum()
            left_out |= chosen
        return left_out

    def _refit(self) -> None:
        """Each group's threshold from a Beta mixture over its disagreeing confidences
        since the last fit (kept where there are too few, or the posterior never reaches
        the cutoff)."""
        for group in self.groups:
            values = _disagreeing(self.pending[group])
            self.pending[group] = []
            if len(values) < 10:  # too few disagreements to fit: keep the threshold
                continue
            threshold = mixture_threshold(fit_beta_mixture(values), self.cutoff)
            if threshold is not None:
                self.thresholds[group] = threshold
            self.fits.append({"group": group, "words": len(values), "threshold": threshold})

    def _keep(self, groups: tuple[str, ...]) -> None:
        """Mask only ``groups`` from now on (mask-auto's choice, a checkpoint's groups)."""
        self.groups = groups
        self.readings = {group: self.readings[group] for group in groups}
        self.thresholds = {group: self.thresholds[group] for group in groups}
        self.pending = {group: self.pending[group] for group in groups}
        self.counts.keep(groups)

    def _report_entries(self) -> tuple[dict, dict, dict]:
        return dict(self.thresholds), dict(self.readings), {}

    def state_dict(self) -> dict:
        return super().state_dict() | {
            "thresholds": dict(self.thresholds),
            "pending": {group: [_disagreeing(p)] for group, p in self.pending.items()},
            "fits": self.fits,
            "groups": self.groups,
        }

    def load_state_dict(self, state: dict) -> None:
        self._keep(tuple(state["groups"]))
        self.thresholds = dict(state["thresholds"])
        # a checkpoint keeps the waiting confidences as CPU tensors: back to host arrays,
        # which join the device's later ones in ``_disagreeing`` wherever training runs
        self.pending = {g: [np.asarray(p) for p in v] for g, v in state["pending"].items()}
        self.fits = list(state["fits"])


class MaskMissing(ThresholdMasking):
    """``mask-missing``: leaves out the confident disagreements on words labelled ``O``
    that the model predicts as an entity (missed entities)."""

    groups = MASKING["mask-missing"]


class MaskEntity(ThresholdMasking):
    """``mask-entity``: leaves out the confident disagreements on entity labels (spurious
    and retyped entities, boundaries)."""

    groups = MASKING["mask-entity"]


class MaskAll(ThresholdMasking):
    """``mask-all``: both groups as one, with one threshold."""

    groups = MASKING["mask-all"]


class MaskAuto(ThresholdMasking):
    """``mask-auto``: mask-missing or mask-entity, by the dominant error type. A profile
    chooses before training (``choice``, from ``choose_from_profile``); without one, both
    groups are watched during the warm-up and the one the model disagreed with more
    (``votes``) is the one it masks from the warm-up's end."""

    def __init__(
        self,
        method: str,
        outside: int,
        total_steps: int,
        mask_warmup: float = DEFAULT_MASK_WARMUP,
        choice: str | None = None,
        cutoff: float = POSTERIOR_CUTOFF,
        reading: str | None = None,
    ) -> None:
        self.groups = MASKING[choice] if choice else ("missing", "entity")
        self.chosen = choice
        self.chosen_by = "profile" if choice else None
        self.votes = {"missing": 0, "entity": 0}
        super().__init__(method, outside, total_steps, mask_warmup, choice, cutoff, reading)

    def _mask(self, disagreeing: dict, confidence, guarded, step: int) -> torch.Tensor:
        if self.chosen is None:
            for group in self.votes:
                self.votes[group] = self.votes[group] + disagreeing[group].sum()
            if step >= self.warmup_steps:
                self._choose()  # once per run: reads the votes
        return super()._mask(disagreeing, confidence, guarded, step)

    def _choose(self) -> None:
        """At the end of the warm-up: the group the model disagreed with more (missing
        entities, or entity labels) is the one it masks."""
        self.votes = {group: int(count) for group, count in self.votes.items()}
        missing = self.votes["missing"] >= self.votes["entity"]
        self.chosen = "mask-missing" if missing else "mask-entity"
        self.chosen_by = "disagreements"
        self._keep(MASKING[self.chosen])

    def _choice(self) -> dict:
        votes = {group: int(count) for group, count in self.votes.items()}
        return {"chosen": self.chosen, "chosen_by": self.chosen_by, "votes": votes}

    def _report_entries(self) -> tuple[dict, dict, dict]:
        thresholds, readings, _ = super()._report_entries()
        return thresholds, readings, self._choice()

    def state_dict(self) -> dict:
        return super().state_dict() | self._choice()

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.chosen, self.chosen_by = state["chosen"], state["chosen_by"]
        self.votes = dict(state["votes"])


SELECTIONS: dict[str, type[WordSelection]] = {
    "mask-missing": MaskMissing,
    "mask-entity": MaskEntity,
    "mask-all": MaskAll,
    AUTO: MaskAuto,
    "oracle-mask": OracleMask,
    "oracle-mask-disagree": OracleMaskDisagree,
}


def _disagreeing(pending: list) -> np.ndarray:
    """The confidences waiting for a fit, on the host: device tensors with NaN where a
    word was not in the group (one transfer), and arrays from a checkpoint."""
    arrays = [p for p in pending if isinstance(p, np.ndarray)]
    tensors = [p for p in pending if not isinstance(p, np.ndarray)]
    if tensors:
        import torch

        arrays.append(torch.cat(tensors).cpu().numpy())
    values = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.float32)
    return values[~np.isnan(values)]
