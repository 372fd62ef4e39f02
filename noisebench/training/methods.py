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
# was measured (README, "Which reading of the rule"; crowd, LLM, distant and weak labels):
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


class WordSelection:
    """Which training words count, step by step, for one run's ``--method``; keeps the
    thresholds, the confidences waiting for the next fit, and per-epoch diagnostics."""

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
        self.method, self.outside = method, outside
        self.cutoff = cutoff
        self.readings = group_readings(method, reading)  # None: the method's default
        # mask-auto: the masking method it uses, from a profile (``choice``) or, without
        # one, from which group the model disagrees with more during the warm-up
        self.chosen = choice
        self.chosen_by = "profile" if choice else None
        self.votes = {"missing": 0, "entity": 0}
        if method == AUTO:
            self.groups = MASKING[choice] if choice else ("missing", "entity")
        else:
            self.groups = MASKING.get(method, ())
        self.warmup_steps = round(mask_warmup * total_steps)
        self.refit_steps = sorted({max(1, round(s * total_steps)) for s in REFIT_SHARES})
        self.thresholds = {g: INITIAL_THRESHOLD[g] for g in self.groups}
        self.pending: dict[str, list[np.ndarray]] = {g: [] for g in self.groups}
        self.fits: list[dict] = []
        self._reset_counts()

    @property
    def active(self) -> bool:
        return self.method in (*MASKING, AUTO, "oracle-mask", "oracle-mask-disagree")

    def _reset_counts(self) -> None:
        self.counts = {"scored": 0, "left_out": 0, "wrong": 0, "left_out_wrong": 0}
        self.group_counts = {g: {"disagree": 0, "left_out": 0} for g in self.groups}

    def select(
        self, logits: torch.Tensor, labels: torch.Tensor, clean: torch.Tensor | None, step: int
    ) -> torch.Tensor:
        """``labels`` with the words left out at optimizer step ``step`` (0-based) set to
        -100. ``logits`` (B, T, C) from this step's forward pass, ``clean`` the clean
        labels (same shape as ``labels``) where the data has them."""
        if not self.active:
            return labels
        import torch  # here, so that leaderboards read this module without torch

        with torch.no_grad():
            probs = torch.softmax(logits.detach().float(), dim=-1)
            confidence, predicted = probs.max(dim=-1)
            scored = labels != IGNORE
            wrong = scored & (labels != clean) if clean is not None else None
            if self.method == "oracle-mask":
                left_out = wrong
            elif self.method == "oracle-mask-disagree":
                left_out = wrong & (predicted != labels)
            else:
                left_out = self._masking(labels, predicted, confidence, step)
            self._count(scored, left_out, wrong)
            if step + 1 in self.refit_steps:
                self._refit()
        return labels.masked_fill(left_out, IGNORE)

    def _masking(self, labels, predicted, confidence, step: int) -> torch.Tensor:
        """Every decision and count stays on the device (the guard a 0-d tensor, the
        confidences kept in place with NaN elsewhere): on CUDA a step never waits."""
        groups = disagreement_groups(labels, predicted, self.outside)
        left_out = groups["all"].new_zeros(groups["all"].shape)  # (B, T) bool
        entity_labels = ((labels != IGNORE) & (labels != self.outside)).sum()
        entity_predictions = ((labels != IGNORE) & (predicted != self.outside)).sum()
        guarded = entity_predictions >= ENTITY_GUARD * entity_labels
        if self.method == AUTO and self.chosen is None:
            for group in self.votes:
                self.votes[group] = self.votes[group] + groups[group].sum()
            if step >= self.warmup_steps:
                self._choose()  # once per run: reads the votes
        for group in self.groups:
            members = groups[group]
            self.pending[group].append(confidence.masked_fill(~members, float("nan")).flatten())
            self.group_counts[group]["disagree"] += members.sum()
            if step < self.warmup_steps:
                continue
            if self.readings[group] == "literal":
                chosen = members & (confidence <= self.thresholds[group])
            else:
                chosen = members & (confidence > self.thresholds[group])
            if group != "missing":
                chosen &= guarded
            self.group_counts[group]["left_out"] += chosen.sum()
            left_out |= chosen
        return left_out

    def _choose(self) -> None:
        """mask-auto without a profile, at the end of the warm-up: the group the model
        disagreed with more (missing entities, or entity labels) is the one it masks."""
        self.votes = {group: int(count) for group, count in self.votes.items()}
        missing = self.votes["missing"] >= self.votes["entity"]
        self.chosen = "mask-missing" if missing else "mask-entity"
        self.chosen_by = "disagreements"
        (group,) = MASKING[self.chosen]
        self.groups = (group,)
        self.thresholds = {group: self.thresholds[group]}
        self.pending = {group: self.pending[group]}
        self.group_counts = {group: self.group_counts[group]}
        self.readings = {group: self.readings[group]}

    def _count(self, scored, left_out, wrong) -> None:
        """Counts as device tensors, read once an epoch (``end_epoch``)."""
        self.counts["scored"] += scored.sum()
        self.counts["left_out"] += left_out.sum()
        if wrong is not None:
            self.counts["wrong"] += wrong.sum()
            self.counts["left_out_wrong"] += (left_out & wrong).sum()
        else:
            self.counts["wrong"] = None

    def _refit(self) -> None:
        for group in self.groups:
            values = _disagreeing(self.pending[group])
            self.pending[group] = []
            if len(values) < 10:  # too few disagreements to fit: keep the threshold
                continue
            threshold = mixture_threshold(fit_beta_mixture(values), self.cutoff)
            if threshold is not None:
                self.thresholds[group] = threshold
            self.fits.append({"group": group, "words": len(values), "threshold": threshold})

    def end_epoch(self) -> dict | None:
        """This epoch's diagnostics (then counted afresh): thresholds, the share of scored
        words left out (per group, and in all), and where clean labels exist, precision
        and recall of the leaving out against the words that are truly wrong."""
        if not self.active:
            return None
        counts = {k: v if v is None else int(v) for k, v in self.counts.items()}
        group_counts = {
            group: {k: int(v) for k, v in c.items()} for group, c in self.group_counts.items()
        }
        report = {
            "method": self.method,
            "scored_words": counts["scored"],
            "left_out_share": counts["left_out"] / counts["scored"] if counts["scored"] else 0.0,
            "thresholds": dict(self.thresholds),
            "readings": {group: self.readings[group] for group in self.groups},
            "groups": {
                group: {
                    "disagreeing_share": c["disagree"] / counts["scored"]
                    if counts["scored"]
                    else 0.0,
                    "left_out_share": c["left_out"] / counts["scored"] if counts["scored"] else 0.0,
                }
                for group, c in group_counts.items()
            },
            "precision": None,
            "recall": None,
        }
        if self.method == AUTO:
            votes = {group: int(count) for group, count in self.votes.items()}
            report |= {"chosen": self.chosen, "chosen_by": self.chosen_by, "votes": votes}
        if counts["wrong"] is not None:  # None: this run's data has no clean labels
            report["truly_wrong_share"] = (
                counts["wrong"] / counts["scored"] if counts["scored"] else 0.0
            )
            if counts["left_out"]:
                report["precision"] = counts["left_out_wrong"] / counts["left_out"]
            if counts["wrong"]:
                report["recall"] = counts["left_out_wrong"] / counts["wrong"]
        self._reset_counts()
        return report

    def state_dict(self) -> dict:
        return {
            "thresholds": dict(self.thresholds),
            "pending": {group: [_disagreeing(p)] for group, p in self.pending.items()},
            "fits": self.fits,
            "groups": self.groups,
            "chosen": self.chosen,
            "chosen_by": self.chosen_by,
            "votes": {group: int(count) for group, count in self.votes.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.groups = tuple(state["groups"])
        self.chosen, self.chosen_by = state["chosen"], state["chosen_by"]
        self.votes = dict(state["votes"])
        self.group_counts = {g: {"disagree": 0, "left_out": 0} for g in self.groups}
        self.readings = {g: self.readings[g] for g in self.groups}
        self.thresholds = dict(state["thresholds"])
        # a checkpoint keeps the waiting confidences as CPU tensors: back to host arrays,
        # which join the device's later ones in ``_disagreeing`` wherever training runs
        self.pending = {g: [np.asarray(p) for p in v] for g, v in state["pending"].items()}
        self.fits = list(state["fits"])


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
