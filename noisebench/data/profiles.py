"""Noise profiles: learn what a real noise is made of, and carry it to any span data.

    noisebench profile noisebench:crowd -o crowd.json
    noisebench corrupt mydata/ --noise profile --profile crowd.json

A profile compares two label sets over the same words (noisy against clean), entity by
entity. Each gold entity has one outcome:

- ``kept``: a noisy entity with the same span and type;
- ``missed``: no noisy entity overlaps it;
- ``retyped``: a noisy entity with the same span and another type;
- ``boundary``: noisy entities overlap it with other edges. Recorded as the shift of the
  left and right edge of their joint extent (negative left / positive right = grown),
  the number of pieces (a split entity has two or more) and whether the type changed.

Noisy entities that overlap no gold entity are ``spurious`` (per sentence: how many,
which types, how long). Rates are kept per entity type and length (1, 2, 3, 4+ words),
so a profile can be applied with the same dependence. *Consistency* asks whether the
same surface form (words and type) gets the same outcome wherever it appears: over pairs
of occurrences of one form, the share with the same outcome, against the share expected
if outcomes were independent draws from the type's rates; ``kappa`` = (observed -
expected) / (1 - expected) is 0 for independent noise and 1 for fully systematic noise.

Applying a profile (``apply_profile``): each gold entity draws an outcome from the rates
of its (type, length) cell, backing off to its type and then to all entities when a cell
has fewer than ``MIN_CELL`` entities; types are matched by name, and a tag set whose
types the profile does not know gets the type-agnostic rates, with new types for
retyping drawn from the target's own types. A surface form draws its outcome once per
seed and each occurrence takes that shared outcome with probability sqrt(kappa) (two
occurrences then agree with the observed excess probability kappa), else an independent
draw. Spurious entities are drawn per sentence and placed on free ``O`` words. The
output is valid in the input's scheme.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from noisebench.data.schemes import (
    NO_SCHEME,
    Span,
    decode_spans,
    encode_span_ids,
    entity_types,
    require_span_scheme,
)
from noisebench.errors import InputError

SCHEMA = "noisebench.profile"
SCHEMA_VERSION = 1
OUTCOMES = ("kept", "missed", "retyped", "boundary")
LENGTH_BUCKETS = ("1", "2", "3", "4+")
MIN_CELL = 30  # entities a (type, length) cell or a type needs before its own rates are used
BOUNDARY_TRIES = 10  # boundary moves drawn for an entity before it is left as it was


def length_bucket(length: int) -> str:
    return LENGTH_BUCKETS[min(length, 4) - 1]


@dataclass(frozen=True)
class Outcome:
    """What happened to one gold entity (``boundary``: edge shifts, pieces, new type)."""

    kind: str
    new_type: str | None = None  # retyped, or boundary with a type change
    left: int = 0  # new start - gold start
    right: int = 0  # new end - gold end
    pieces: int = 1


@dataclass
class Pair:
    """Two label sets over the same sentences: words, noisy tags, clean tags (strings);
    for the sentences of a designed review, each one's design weight and stratum."""

    tokens: list[list[str]]
    noisy: list[list[str]]
    clean: list[list[str]]
    weights: list[float] | None = None  # N_h / n_h of a review (data.ReviewSample)
    strata: list[int] | None = None
    designed: bool = False  # the weights differ by a design (else N / n per split)

    def scaled_weights(self) -> np.ndarray:
        """Each sentence's weight over their mean, for a designed review (1 each
        otherwise): counts keep the sample's scale (so ``MIN_CELL`` still counts entities
        seen), rates are the split's."""
        if self.weights is None or not self.designed:
            return np.ones(len(self.tokens))
        weights = np.asarray(self.weights, dtype=np.float64)
        return weights / weights.mean()


# ------------------------------------------------------------------------- learning


def outcome_of(gold: Span, noisy: list[Span]) -> Outcome:
    """The outcome of gold entity ``gold`` given the noisy entities of its sentence.

    >>> outcome_of((2, 4, "ORG"), [(1, 4, "ORG")])
    Outcome(kind='boundary', new_type=None, left=-1, right=0, pieces=1)
    >>> outcome_of((2, 4, "ORG"), [(2, 4, "LOC")])
    Outcome(kind='retyped', new_type='LOC', left=0, right=0, pieces=1)
    """
    start, end, type_ = gold
    overlapping = [span for span in noisy if span[0] < end and start < span[1]]
    if not overlapping:
        return Outcome("missed")
    if gold in overlapping:
        return Outcome("kept")
    same_span = [span for span in overlapping if span[:2] == (start, end)]
    if same_span:
        return Outcome("retyped", new_type=same_span[0][2])
    types = Counter(span[2] for span in overlapping)
    new_type = types.most_common(1)[0][0]
    return Outcome(
        "boundary",
        new_type=None if new_type == type_ else new_type,
        left=min(span[0] for span in overlapping) - start,
        right=max(span[1] for span in overlapping) - end,
        pieces=len(overlapping),
    )


def learn(pair: Pair, origin: dict | None = None) -> dict:
    """The profile (a JSON-ready dict) of ``pair``'s noisy labels against its clean ones."""
    cells: dict[str, Counter] = defaultdict(Counter)  # "TYPE|LEN" -> outcome counts
    retype: dict[str, Counter] = defaultdict(Counter)
    shifts: Counter = Counter()
    spurious_counts: Counter = Counter()
    spurious_types: Counter = Counter()
    spurious_lengths: Counter = Counter()
    forms: dict[tuple, list[str]] = defaultdict(list)  # (words, type) -> outcome keys
    words = gold_total = 0  # the sentences' own counts
    # the rates' sums: a designed review's sentences weigh their (scaled) design weight
    changed_words = weighed_words = weighed_gold = noisy_total = matched = 0
    weights = pair.scaled_weights()
    for tokens, noisy_tags, clean_tags, weight in zip(
        pair.tokens, pair.noisy, pair.clean, weights.tolist(), strict=True
    ):
        weight = int(weight) if weight == int(weight) else weight  # whole counts stay ints
        words += len(tokens)
        weighed_words += weight * len(tokens)
        changed_words += weight * sum(a != b for a, b in zip(noisy_tags, clean_tags, strict=True))
        gold, noisy = decode_spans(clean_tags), decode_spans(noisy_tags)
        gold_total += len(gold)
        weighed_gold += weight * len(gold)
        noisy_total += weight * len(noisy)
        matched += weight * len(set(gold) & set(noisy))
        for span in gold:
            outcome = outcome_of(span, noisy)
            start, end, type_ = span
            cells[f"{type_}|{length_bucket(end - start)}"][outcome.kind] += weight
            if outcome.kind == "retyped":
                retype[type_][outcome.new_type] += weight
            elif outcome.kind == "boundary":
                shifts[(outcome.left, outcome.right, outcome.pieces, outcome.new_type)] += weight
            key = f"{outcome.kind}:{outcome.new_type or ''}:{outcome.left}:{outcome.right}"
            forms[(tuple(tokens[start:end]), type_)].append(key)
        extra = [s for s in noisy if not any(s[0] < g[1] and g[0] < s[1] for g in gold)]
        spurious_counts[len(extra)] += weight
        for span in extra:
            spurious_types[span[2]] += weight
            spurious_lengths[span[1] - span[0]] += weight
    if gold_total == 0:
        raise InputError("no gold entities in the clean labels: nothing to profile")
    profile = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "source": origin or {},
        "sentences": len(pair.tokens),
        "words": words,
        "entities": gold_total,
        "token_error_rate": changed_words / weighed_words if words else 0.0,
        "entity_noise_level": 1.0 - 2 * matched / (weighed_gold + noisy_total),
        "cells": {key: dict(counts) for key, counts in sorted(cells.items())},
        "retype": {t: dict(c) for t, c in sorted(retype.items())},
        "boundary": [
            {"left": left, "right": right, "pieces": p, "new_type": t, "count": n}
            for (left, right, p, t), n in sorted(shifts.items(), key=lambda kv: -kv[1])
        ],
        "spurious": {
            "per_sentence": {str(k): n for k, n in sorted(spurious_counts.items())},
            "types": dict(spurious_types.most_common()),
            "lengths": {str(k): n for k, n in sorted(spurious_lengths.items())},
        },
        "consistency": _consistency(forms, cells),
    }
    profile["summary"] = summary(profile)
    if (origin or {}).get("reviewed_sentences"):  # a sample: say how far off it can be
        profile["intervals"] = intervals(pair)
    return profile


def _consistency(forms: dict[tuple, list[str]], cells: dict[str, Counter]) -> dict:
    """Pairwise agreement of outcomes over repeated surface forms, against independence."""
    by_type: dict[str, Counter] = defaultdict(Counter)
    for (_, type_), keys in forms.items():
        by_type[type_].update(keys)
    agree = expected = pairs = 0.0
    repeated = occurrences = 0
    for (_, type_), keys in forms.items():
        m = len(keys)
        if m < 2:
            continue
        repeated += 1
        occurrences += m
        n_pairs = m * (m - 1) / 2
        agree += sum(c * (c - 1) / 2 for c in Counter(keys).values())
        total = sum(by_type[type_].values())
        expected += n_pairs * sum((c / total) ** 2 for c in by_type[type_].values())
        pairs += n_pairs
    observed = agree / pairs if pairs else 0.0
    chance = expected / pairs if pairs else 0.0
    kappa = (observed - chance) / (1 - chance) if pairs and chance < 1 else 0.0
    return {
        "repeated_forms": repeated,
        "occurrences": occurrences,
        "pair_agreement": observed,
        "pair_agreement_if_independent": chance,
        "kappa": max(0.0, kappa),
    }


def rates(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {kind: counts.get(kind, 0) / total if total else 0.0 for kind in OUTCOMES}


def merged(cells: dict[str, dict], keep) -> dict[str, int]:
    """Sum the outcome counts of the cells whose key ``keep`` accepts."""
    total: Counter = Counter()
    for key, counts in cells.items():
        if keep(key):
            total.update(counts)
    return dict(total)


def summary(profile: dict) -> dict:
    """Rates by outcome, by type and by length; boundary and spurious digests."""
    cells = profile["cells"]
    types = sorted({key.split("|")[0] for key in cells})
    boundary = profile["boundary"]
    boundary_total = sum(b["count"] for b in boundary) or 1
    spurious = profile["spurious"]
    sentences = sum(spurious["per_sentence"].values()) or 1
    spurious_entities = sum(spurious["types"].values())
    return {
        "outcomes": rates(merged(cells, lambda key: True)),
        "by_type": {
            t: {"entities": sum(merged(cells, lambda k, t=t: k.split("|")[0] == t).values())}
            | rates(merged(cells, lambda k, t=t: k.split("|")[0] == t))
            for t in types
        },
        "by_length": {
            b: {"entities": sum(merged(cells, lambda k, b=b: k.split("|")[1] == b).values())}
            | rates(merged(cells, lambda k, b=b: k.split("|")[1] == b))
            for b in LENGTH_BUCKETS
            if merged(cells, lambda k, b=b: k.split("|")[1] == b)
        },
        "boundary": {
            "grown_left": sum(b["count"] for b in boundary if b["left"] < 0) / boundary_total,
            "shrunk_left": sum(b["count"] for b in boundary if b["left"] > 0) / boundary_total,
            "grown_right": sum(b["count"] for b in boundary if b["right"] > 0) / boundary_total,
            "shrunk_right": sum(b["count"] for b in boundary if b["right"] < 0) / boundary_total,
            "split": sum(b["count"] for b in boundary if b["pieces"] > 1) / boundary_total,
            "type_changed": sum(b["count"] for b in boundary if b["new_type"]) / boundary_total,
            "mean_words_moved": sum(
                b["count"] * (abs(b["left"]) + abs(b["right"])) for b in boundary
            )
            / boundary_total,
        },
        "spurious_per_sentence": spurious_entities / sentences,
        # over the gold entities as the cells count them (weighted by a design's weights,
        # as the spurious ones are; the same as "entities" without a design)
        "spurious_per_entity": spurious_entities
        / (sum(merged(cells, lambda k: True).values()) or 1),
    }


# ------------------------------------------------------------------------ reading


def write(profile: dict, path: Path) -> None:
    from noisebench.atomic import write_text_atomic

    write_text_atomic(Path(path), json.dumps(profile, indent=2) + "\n")


def read(path: Path) -> dict:
    """A profile file, validated: one line naming the file for anything else."""
    from noisebench.data import loading as data

    loaded = data.parse_json(Path(path), data.read_text(Path(path)))
    if not isinstance(loaded, dict) or loaded.get("schema") != SCHEMA:
        raise InputError(f'{path}: not a noisebench profile (no "schema": "{SCHEMA}")')
    version = loaded.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise InputError(
            f"{path}: profile schema version {version!r} is newer than this noisebench"
            f" reads ({SCHEMA_VERSION}); upgrade noisebench"
        )
    for key in ("cells", "retype", "boundary", "spurious", "consistency"):
        if key not in loaded:
            raise InputError(f"{path}: profile has no '{key}'")
    return loaded


# ------------------------------------------------------------------------ applying


class Sampler:
    """Draws outcomes from a profile for one target tag set (types matched by name)."""

    def __init__(self, profile: dict, target_types: Sequence[str]) -> None:
        self.profile = profile
        self.target_types = list(target_types)
        cells = profile["cells"]
        self.overall = merged(cells, lambda key: True)
        self.known_types = {key.split("|")[0] for key in cells}
        self.boundary = profile["boundary"]
        self.boundary_weights = {i: move["count"] for i, move in enumerate(self.boundary)}
        self.share = math.sqrt(profile["consistency"]["kappa"])
        spurious = profile["spurious"]
        self.spurious_counts = {int(k): n for k, n in spurious["per_sentence"].items()}
        self.spurious_lengths = {int(k): n for k, n in spurious["lengths"].items()}
        self.owed = 0  # spurious entities drawn for sentences that had no room for them

    def counts_for(self, type_: str, length: int) -> dict[str, int]:
        cells = self.profile["cells"]
        cell = cells.get(f"{type_}|{length_bucket(length)}", {})
        if sum(cell.values()) >= MIN_CELL:
            return cell
        by_type = merged(cells, lambda key: key.split("|")[0] == type_)
        if sum(by_type.values()) >= MIN_CELL:
            return by_type
        return self.overall

    def draw(self, type_: str, length: int, rng: np.random.Generator) -> Outcome:
        kind = _choice(self.counts_for(type_, length), rng)
        if kind == "retyped":
            return Outcome("retyped", new_type=self.new_type(type_, rng))
        if kind == "boundary":
            return self.boundary_move(type_, rng)
        return Outcome(kind)

    def boundary_move(self, type_: str, rng: np.random.Generator) -> Outcome:
        shift = self.boundary[_choice(self.boundary_weights, rng)]
        new_type = self.new_type(type_, rng) if shift["new_type"] else None
        return Outcome("boundary", new_type, shift["left"], shift["right"], shift["pieces"])

    def new_type(self, type_: str, rng: np.random.Generator) -> str:
        row = {
            t: n
            for t, n in self.profile["retype"].get(type_, {}).items()
            if t in self.target_types and t != type_ and n > 0
        }
        if row:
            return _choice(row, rng)
        others = [t for t in self.target_types if t != type_]
        return others[rng.integers(len(others))] if others else type_

    def spurious_type(self, rng: np.random.Generator) -> str:
        row = {t: n for t, n in self.profile["spurious"]["types"].items() if t in self.target_types}
        if row:
            return _choice(row, rng)
        return self.target_types[rng.integers(len(self.target_types))]


def _choice(weights: dict, rng: np.random.Generator):
    keys = list(weights)
    values = np.array([weights[k] for k in keys], dtype=float)
    return keys[rng.choice(len(keys), p=values / values.sum())]


def apply_profile(
    tokens: list[list[str]],
    tags: np.ndarray,
    offsets: np.ndarray,
    names: Sequence[str],
    scheme: str,
    profile: dict,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, int]]:
    """Noisy tag ids for the clean ``tags`` of one split, and counts of what was drawn."""
    require_span_scheme(scheme, "profile")
    sampler = Sampler(profile, entity_types(names))
    index = {name: i for i, name in enumerate(names)}
    shared: dict[tuple, Outcome] = {}  # surface form -> its one draw for this seed
    counts = dict.fromkeys((*OUTCOMES, "spurious", "skipped"), 0)
    noisy = tags.copy()
    for sentence in range(len(offsets) - 1):
        start, end = int(offsets[sentence]), int(offsets[sentence + 1])
        words = tokens[sentence]
        gold = decode_spans([names[t] for t in tags[start:end]])
        spans: list[Span] = []
        for i, (s, e, type_) in enumerate(gold):
            form = (tuple(words[s:e]), type_)
            if form not in shared:
                shared[form] = sampler.draw(type_, e - s, rng)
            outcome = shared[form] if rng.random() < sampler.share else None
            outcome = outcome or sampler.draw(type_, e - s, rng)
            limit = (
                spans[-1][1] if spans else 0,
                gold[i + 1][0] if i + 1 < len(gold) else end - start,
            )
            placed = _realise((s, e, type_), outcome, limit, rng)
            for _ in range(BOUNDARY_TRIES):  # another boundary move where this one has no room
                if placed is not None:
                    break
                placed = _realise((s, e, type_), sampler.boundary_move(type_, rng), limit, rng)
            counts[outcome.kind] += 1
            if placed is None:
                counts["skipped"] += 1
                placed = [(s, e, type_)]
            spans.extend(placed)
        counts["spurious"] += _add_spurious(spans, gold, end - start, sampler, rng)
        noisy[start:end] = encode_span_ids(spans, end - start, scheme, index, "profile")
    return noisy, counts


def _realise(gold: Span, outcome: Outcome, limit: tuple[int, int], rng) -> list[Span] | None:
    """The noisy spans for one gold entity; None where a boundary move has no room."""
    start, end, type_ = gold
    if outcome.kind == "missed":
        return []
    if outcome.kind == "kept":
        return [gold]
    if outcome.kind == "retyped":
        return [(start, end, outcome.new_type)]
    new_start = max(limit[0], start + outcome.left)
    new_end = min(limit[1], end + outcome.right)
    if new_end <= new_start or (new_start, new_end) == (start, end):
        return None
    new_type = outcome.new_type or type_
    if outcome.pieces > 1 and new_end - new_start > 1:
        cut = int(rng.integers(new_start + 1, new_end))
        return [(new_start, cut, new_type), (cut, new_end, new_type)]
    return [(new_start, new_end, new_type)]


def _add_spurious(spans: list[Span], gold: list[Span], length: int, sampler: Sampler, rng) -> int:
    """Add this sentence's draw of spurious entities, plus any owed by earlier sentences
    that had no room, on words that no gold or noisy entity covers."""
    sampler.owed += _choice(sampler.spurious_counts, rng)
    covered = np.zeros(length, bool)
    for s, e, _ in [*spans, *gold]:
        covered[s:e] = True
    added = 0
    while sampler.owed:
        size = _choice(sampler.spurious_lengths, rng) if sampler.spurious_lengths else 1
        free = [i for i in range(length - size + 1) if not covered[i : i + size].any()]
        if not free:
            break
        first = free[rng.integers(len(free))]
        spans.append((first, first + size, sampler.spurious_type(rng)))
        covered[first : first + size] = True
        sampler.owed -= 1
        added += 1
    spans.sort()
    return added


# ------------------------------------------------------------------- label-set pairs


def pair_from(noisy_spec: str, clean_spec: str | None = None) -> tuple[Pair, dict]:
    """Two label sets over the same words: ``noisy_spec``'s ``tags`` against its own
    ``clean_tags`` (a corrupted folder, ``noisebench:<variant>``), or against
    ``clean_spec``'s ``tags``. Splits whose labels agree everywhere (an uncorrupted copy)
    are left out unless all agree. Returns the pair and where it came from."""
    from noisebench.data import loading as data

    noisy = data.load(noisy_spec)
    reviewed = [s for s in noisy if data.REVIEWED_COLUMN in noisy[s].column_names]
    if clean_spec is None and reviewed:  # the user's own truth: the reviewed sentences
        return _reviewed_pair(noisy, noisy_spec, reviewed)
    if clean_spec is None:
        with_clean = [s for s in noisy if "clean_tags" in noisy[s].column_names]
        if not with_clean:
            raise InputError(
                f"{noisy_spec}: no clean_tags column; give the clean labels as a second"
                " dataset: noisebench profile NOISY CLEAN"
            )
        parts = {s: (noisy[s], "tags", noisy[s], "clean_tags") for s in with_clean}
    else:
        clean = data.load(clean_spec)
        common = [s for s in noisy if s in clean]
        if not common:
            raise InputError(
                f"{noisy_spec} and {clean_spec} share no split ({', '.join(noisy)} vs"
                f" {', '.join(clean)})"
            )
        parts = {s: (noisy[s], "tags", clean[s], "tags") for s in common}
        for split in common:
            _check_same_words(noisy[split], clean[split], split, noisy_spec, clean_spec)
    if data.scheme(noisy) == NO_SCHEME:
        raise InputError(
            f"{noisy_spec}: its tags have no span scheme (O, B-X, I-X, ...): a profile"
            " describes entity noise"
        )
    texts = {split: [_strings(*part[:2]), _strings(*part[2:])] for split, part in parts.items()}
    differing = [split for split, (a, b) in texts.items() if a != b] or list(texts)
    pair = Pair([], [], [])
    for split in differing:
        pair.tokens += parts[split][0]["tokens"]
        pair.noisy += texts[split][0]
        pair.clean += texts[split][1]
    origin = {"noisy": noisy_spec, "clean": clean_spec or f"{noisy_spec} (clean_tags)"}
    return pair, origin | {"splits": differing}


def _reviewed_pair(noisy, noisy_spec: str, splits: list[str]) -> tuple[Pair, dict]:
    """The given labels against the reviewed ones, on the reviewed sentences alone."""
    from noisebench.data import loading as data

    pair, left_out = Pair([], [], [], [], []), 0
    designed = False  # weighted by a design (else every weight of a split is N / n)
    for number, split in enumerate(splits):
        # a sample estimates: drawn at random, or by a design and weighted by it
        sample = data.review_sample(noisy[split])
        left_out += sample.left_out
        designed = designed or sample.designed
        rows = np.flatnonzero(sample.sentences)
        chosen = noisy[split].select(rows)
        pair.tokens += chosen["tokens"]
        pair.noisy += _strings(chosen, "tags")
        pair.clean += _strings(chosen, data.REVIEWED_TAGS_COLUMN)
        # N_h / n_h (a random review: N / n), so the intervals carry the finite-population
        # correction whether the review was designed or not
        pair.weights += sample.weights[rows].tolist()
        pair.strata += (sample.strata[rows] + 100 * number).tolist()  # strata per split
    pair.designed = designed
    if not pair.tokens:
        chosen = f" ({left_out:,} reviewed ones were chosen for a reason)" if left_out else ""
        raise InputError(f"{noisy_spec}: no reviewed sentences drawn at random to profile{chosen}:"
                         " review a random sample (noisebench review sample)")  # fmt: skip
    if data.scheme(noisy) == NO_SCHEME:
        raise InputError(
            f"{noisy_spec}: its tags have no span scheme (O, B-X, I-X, ...): a profile"
            " describes entity noise"
        )
    origin = {
        "noisy": noisy_spec,
        "clean": f"{noisy_spec} (its {len(pair.tokens)} reviewed sentences)",
        "reviewed_sentences": len(pair.tokens),
        # reviewed, but chosen (--compare, detect's list): they would overstate the noise
        "reviewed_left_out": left_out,
    }
    if designed:  # rates weighted by the design: the split's, not the sample's
        origin["reviewed_designed"] = True
    return pair, origin | {"splits": splits}


def intervals(pair: Pair, replicates: int = 1000, seed: int = 0) -> dict:
    """95% percentile bootstrap intervals over ``pair``'s sentences (seeded) of the
    outcome rates (each a share of the gold entities) and of the spurious entities per
    sentence: how far a profile learned from a sample of reviewed sentences can be off.

    >>> pair = Pair([["a", "b"]] * 4, [["B-X", "O"], ["O", "O"], ["B-X", "O"], ["B-X", "O"]],
    ...             [["B-X", "O"]] * 4)
    >>> found = intervals(pair, 200)
    >>> found["sentences"], found["outcomes"]["kept"][1], found["outcomes"]["retyped"]
    (4, 1.0, [0.0, 0.0])
    """
    counts = np.zeros((len(pair.tokens), len(OUTCOMES) + 1))  # outcomes..., spurious
    for row, (noisy_tags, clean_tags) in enumerate(zip(pair.noisy, pair.clean, strict=True)):
        gold, noisy = decode_spans(clean_tags), decode_spans(noisy_tags)
        for span in gold:
            counts[row, OUTCOMES.index(outcome_of(span, noisy).kind)] += 1
        counts[row, -1] = sum(not any(s[0] < g[1] and g[0] < s[1] for g in gold) for s in noisy)
    from noisebench.scoring.paired import stratified_replicates, times_drawn

    rng = np.random.default_rng([seed, 28])
    if pair.weights is None:  # sentences like these: drawn with replacement
        weights = times_drawn(
            rng.integers(0, len(counts), size=(replicates, len(counts))), len(counts)
        )
    else:  # a review of a split: resampled within its strata, fpc included
        base = np.asarray(pair.weights, dtype=np.float64)
        drawn = stratified_replicates(base, np.asarray(pair.strata), replicates, rng)
        weights = drawn / base * pair.scaled_weights()  # on the point estimate's scale
    totals = weights @ counts  # (R, outcomes + 1)
    # a replicate that drew no gold entity has no rates: left out, not counted as 0
    entities = np.where(totals[:, :-1].sum(axis=1) > 0, totals[:, :-1].sum(axis=1), np.nan)

    def interval(values: np.ndarray) -> list[float]:
        return [float(v) for v in np.nanpercentile(values, [2.5, 97.5])]

    return {
        "sentences": len(counts),
        "replicates": replicates,
        "outcomes": {k: interval(totals[:, i] / entities) for i, k in enumerate(OUTCOMES)},
        "spurious_per_sentence": interval(totals[:, -1] / weights.sum(axis=1)),
    }


def _strings(dataset, column: str) -> list[list[str]]:
    names = dataset.features[column].feature.names
    return [[names[t] for t in sentence] for sentence in dataset[column]]


def _check_same_words(noisy, clean, split: str, noisy_spec: str, clean_spec: str) -> None:
    if len(noisy) != len(clean):
        raise InputError(
            f"{noisy_spec} and {clean_spec}: split '{split}' has {len(noisy)} vs"
            f" {len(clean)} sentences"
        )
    for number, (a, b) in enumerate(zip(noisy["tokens"], clean["tokens"], strict=True)):
        if a != b:
            shared = min(len(a), len(b))
            word = next((i for i in range(shared) if a[i] != b[i]), shared)
            raise InputError(
                f"{noisy_spec} and {clean_spec} differ in their words: split '{split}',"
                f" sentence {number}, word {word}"
                f" ({a[word] if word < len(a) else '<end>'!r} vs"
                f" {b[word] if word < len(b) else '<end>'!r})"
            )


def resolve(spec: str) -> dict:
    """A profile from a file, or built in (``noisebench:<variant>``: learned from that
    variant's train and dev labels, once, and cached under ``$NOISEBENCH_HOME``)."""
    from noisebench.data import loading as data
    from noisebench.data import sources

    if data.family_of(spec) is None:
        return read(Path(spec))
    cached = sources.home() / "profiles" / f"{data.dataset_name(spec)}.json"
    if cached.is_file():
        return read(cached)
    pair, origin = pair_from(spec)
    profile = learn(pair, origin)
    write(profile, cached)
    return profile
