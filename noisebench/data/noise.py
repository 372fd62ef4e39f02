"""Label-noise models and the NoiseReport of what actually changed.

Every model is a pure function of the clean tags and an explicit
``numpy.random.Generator``; ``corrupt`` derives one generator per split from
``(seed, split name)``, so corrupting ``train`` gives the same labels whether or not
other splits are corrupted too, and the same seed always gives byte-identical output.

Models (``rate`` is a probability in [0, 1]):

- ``uniform``: each word's tag is replaced, with probability ``rate``, by a tag drawn
  uniformly from the *other* tags, so the expected token error rate is ``rate``.
- ``pair``: class-conditional flips. Each entity tag flips with probability ``rate`` to
  the same-prefix tag of the *next* entity type in sorted order, cyclically
  (CoNLL-2003: LOC -> MISC -> ORG -> PER -> LOC, so ``B-PER`` -> ``B-LOC``); ``O`` is kept.
  For a tag set without a span scheme (POS), each non-``O`` label flips to the next
  label in sorted order. The expected token error rate is ``rate`` times the share of
  non-``O`` words.
- ``matrix``: ``--matrix FILE``, a JSON object of label-named rows, ``M[true][noisy] =
  P(noisy | true)``; each row must sum to 1 (within 1e-6); labels without a row keep
  their tag.
- ``entity``: span noise like real annotators make. Each gold entity, with probability
  ``rate``, receives one event drawn from the mix weights: ``missed`` (becomes ``O``),
  ``retyped`` (another entity type, same boundaries), ``boundary`` (one edge moves by one
  word: grows into an ``O`` neighbour or shrinks), or ``spurious`` (the entity is kept
  and a one-word entity of a random type is added on an ``O`` word of the same
  sentence). Output is valid in the input's scheme (IOB2 stays valid IOB2).
- ``profile``: ``--profile FILE`` or ``--profile noisebench:<variant>``: the outcomes,
  rates, boundary moves, spurious entities and consistency of a real noise, learned by
  ``noisebench profile`` (see ``profiles``), drawn for each gold entity.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from noisebench._version import __version__
from noisebench.atomic import staged_directory
from noisebench.data import loading as data
from noisebench.data import profiles
from noisebench.data.schemes import (
    NO_SCHEME,
    Span,
    decode_spans,
    encode_span_ids,
    entity_types,
    has_span_scheme,
    require_span_scheme,
    split_label,
)
from noisebench.errors import InputError

NOISE_MODELS = ("uniform", "pair", "matrix", "entity", "profile")
ENTITY_EVENTS = ("missed", "retyped", "boundary", "spurious")
DEFAULT_ENTITY_MIX = {"missed": 0.35, "retyped": 0.25, "boundary": 0.3, "spurious": 0.1}
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class NoiseConfig:
    """Everything that determines the noisy labels, given the clean data."""

    noise: str = "uniform"
    rate: float | None = None
    seed: int = 0
    splits: tuple[str, ...] = ("train",)
    matrix: dict[str, dict[str, float]] | None = None  # label-named rows, as loaded
    entity_mix: dict[str, float] | None = None
    profile: dict | None = None  # a noise profile (profiles.py), as loaded
    profile_name: str | None = None  # where it came from: a file or noisebench:<variant>

    def __post_init__(self) -> None:
        if self.noise not in NOISE_MODELS:
            raise InputError(f"--noise '{self.noise}': choose one of {', '.join(NOISE_MODELS)}")
        if self.noise == "profile":
            if self.profile is None:
                raise InputError("--noise profile needs --profile FILE or noisebench:<variant>")
            if self.rate is not None:
                raise InputError("--rate has no effect with --profile: the profile sets every rate")
        elif self.noise == "matrix":
            if self.matrix is None:
                raise InputError("--noise matrix needs --matrix FILE")
            if self.rate is not None:
                raise InputError(
                    "--rate has no effect with --matrix: the matrix rows set the flip probabilities"
                )
        elif self.rate is None:
            raise InputError("--rate is required (a probability in [0, 1], e.g. --rate 0.4)")
        elif not (isinstance(self.rate, (int, float)) and 0.0 <= self.rate <= 1.0):
            raise InputError(f"--rate {self.rate}: must be a probability in [0, 1]")
        if not self.splits:
            raise InputError("--splits: name at least one split to corrupt")

    def to_dict(self) -> dict:
        document = asdict(self) | {"splits": list(self.splits)}
        if self.noise != "profile":  # folders corrupted before profiles keep their identity
            del document["profile"], document["profile_name"]
        return document


@dataclass
class NoiseReport:
    """What the noise actually did; written to ``noise.json``."""

    noise: str
    requested_rate: float | None
    seed: int
    corrupted_splits: list[str]
    scheme: str
    labels: list[str]
    expected_token_error_rate: float | None
    realised_token_error_rate: float
    entity_noise_level: float | None  # 1 - entity F1 of noisy against clean labels
    splits: dict[str, dict] = field(default_factory=dict)
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)  # clean -> noisy
    entity_events: dict[str, int] | None = None
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ token-level models


def uniform_noise(
    tags: np.ndarray, num_labels: int, rate: float, rng: np.random.Generator
) -> np.ndarray:
    """Replace each tag, with probability ``rate``, by a uniformly drawn *different* tag.

    >>> uniform_noise(np.array([0, 0, 1, 2]), 3, 1.0, np.random.default_rng(0))
    array([1, 2, 2, 1])
    """
    if num_labels < 2:
        raise InputError("uniform noise needs at least 2 labels")
    flipped = np.flatnonzero(rng.random(len(tags)) < rate)
    # Draw from the C - 1 other labels: shift draws at or above the true label by one.
    replacement = rng.integers(0, num_labels - 1, size=len(flipped))
    replacement += replacement >= tags[flipped]
    noisy = tags.copy()
    noisy[flipped] = replacement
    return noisy


def matrix_noise(tags: np.ndarray, matrix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw each noisy tag from row ``matrix[tag]`` (row-stochastic, ``(C, C)``).

    One uniform draw ``u`` per word, inverted through the row's cumulative sum in a single
    ``searchsorted``: row ``t`` of the cumulative sums is shifted by ``t``, so ``u + t``
    can only land inside row ``t`` of the flattened array.

    >>> matrix_noise(np.array([0, 1, 1, 1]), np.array([[1.0, 0.0], [0.5, 0.5]]),
    ...              np.random.default_rng(1))
    array([0, 1, 0, 1])
    """
    num_labels = matrix.shape[0]
    shifted = np.cumsum(matrix, axis=1) + np.arange(num_labels)[:, None]  # (C, C)
    draws = rng.random(len(tags))
    picked = np.searchsorted(shifted.ravel(), draws + tags, side="right") - tags * num_labels
    return np.minimum(picked, num_labels - 1)


def default_pairs(names: Sequence[str]) -> dict[str, str]:
    """The ``pair`` model's flip target for each label (see the module docstring).

    >>> default_pairs(["O", "B-LOC", "B-PER", "I-LOC", "I-PER"])
    {'B-LOC': 'B-PER', 'B-PER': 'B-LOC', 'I-LOC': 'I-PER', 'I-PER': 'I-LOC'}
    """
    if not has_span_scheme(names):
        labels = sorted(n for n in names if n != "O")
        if len(labels) < 2:
            raise InputError("pair noise needs at least 2 non-O labels; use --matrix FILE")
        return {a: labels[(i + 1) % len(labels)] for i, a in enumerate(labels)}
    types = entity_types(names)
    if len(types) < 2:
        raise InputError(
            f"pair noise needs at least 2 entity types, found {types}; use --noise uniform,"
            " entity or --matrix FILE"
        )
    known = set(names)
    pairs = {}
    for name in names:
        if name == "O":
            continue
        prefix, type_ = split_label(name)
        target = f"{prefix}-{types[(types.index(type_) + 1) % len(types)]}"
        if target in known:
            pairs[name] = target
    return pairs


def pair_matrix(names: Sequence[str], rate: float) -> np.ndarray:
    index = {name: i for i, name in enumerate(names)}
    matrix = np.eye(len(names))
    for source, target in default_pairs(names).items():
        matrix[index[source], index[source]] = 1.0 - rate
        matrix[index[source], index[target]] = rate
    return matrix


def noise_choice(
    noise: str | None,
    matrix: object = None,
    entity_mix: object = None,
    profile: object = None,
) -> str:
    """The noise model that ``--noise`` and the options that go with it name: ``matrix``
    where only ``--matrix`` is given, ``profile`` where only ``--profile`` is, else
    ``uniform``; an option that goes with another model is refused.

    >>> noise_choice(None), noise_choice(None, matrix="m.json")
    ('uniform', 'matrix')
    >>> noise_choice("uniform", matrix="m.json")
    Traceback (most recent call last):
    noisebench.errors.InputError: --matrix goes with --noise matrix, not --noise uniform
    """
    implied = "matrix" if matrix is not None else "profile" if profile else "uniform"
    name = noise or implied
    if matrix is not None and name != "matrix":
        raise InputError(f"--matrix goes with --noise matrix, not --noise {name}")
    if profile is not None and name != "profile":
        raise InputError(f"--profile goes with --noise profile, not --noise {name}")
    if entity_mix is not None and name != "entity":
        raise InputError("--entity-mix goes with --noise entity")
    return name


def read_matrix(path: Path) -> dict[str, dict[str, float]]:
    """Read a ``--matrix`` JSON file (validated against the labels in ``matrix_array``)."""
    loaded = data.parse_json(path, data.read_text(Path(path)))
    valid = isinstance(loaded, dict) and all(
        isinstance(row, dict)
        and all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in row.values())
        for row in loaded.values()
    )
    if not valid:
        raise InputError(
            f'{path}: expected {{"TRUE_LABEL": {{"NOISY_LABEL": probability, ...}}, ...}}'
        )
    return loaded


def matrix_array(
    rows: dict[str, dict[str, float]], names: Sequence[str], origin: str = "--matrix"
) -> np.ndarray:
    """Label-named rows -> a row-stochastic ``(C, C)`` array; missing rows are identity."""
    index = {name: i for i, name in enumerate(names)}
    matrix = np.eye(len(names))
    for true_label, row in rows.items():
        for label in (true_label, *row):
            if label not in index:
                raise InputError(f"{origin}: unknown label '{label}' (labels: {', '.join(names)})")
        values = np.zeros(len(names))
        for noisy_label, probability in row.items():
            if not 0.0 <= probability <= 1.0:
                raise InputError(
                    f"{origin}: row '{true_label}': P({noisy_label}) = {probability}"
                    " is not in [0, 1]"
                )
            values[index[noisy_label]] = probability
        if abs(values.sum() - 1.0) > 1e-6:
            raise InputError(
                f"{origin}: row '{true_label}' sums to {values.sum():.6g}, not 1 (within 1e-6)"
            )
        matrix[index[true_label]] = values / values.sum()
    return matrix


# ------------------------------------------------------------------- entity-level model


def parse_entity_mix(text: str) -> dict[str, float]:
    """``"missed=0.5,boundary=0.5"`` -> weights (unnamed events get 0)."""
    mix = dict.fromkeys(ENTITY_EVENTS, 0.0)
    for part in text.split(","):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in mix:
            raise InputError(
                f"--entity-mix: unknown event '{key}' (events: {', '.join(ENTITY_EVENTS)})"
            )
        try:
            mix[key] = float(value)
        except ValueError:
            raise InputError(f"--entity-mix: '{part}' is not EVENT=WEIGHT") from None
        if not (mix[key] >= 0 and math.isfinite(mix[key])):
            raise InputError(f"--entity-mix: weight of '{key}' must be >= 0, got {value}")
    if sum(mix.values()) <= 0:
        raise InputError("--entity-mix: at least one weight must be positive")
    return mix


def noise_config(
    noise: str | None = None,
    rate: float | None = None,
    seed: int = 0,
    splits: Sequence[str] = ("train",),
    matrix: Path | None = None,
    entity_mix: str | None = None,
    profile: str | None = None,
) -> NoiseConfig:
    """The noise that ``corrupt``'s options describe: the model chosen from them
    (``noise_choice``), the matrix and profile read, the entity mix parsed."""
    return NoiseConfig(
        noise=noise_choice(noise, matrix, entity_mix, profile),
        rate=rate,
        seed=seed,
        splits=tuple(splits),
        matrix=read_matrix(Path(matrix)) if matrix is not None else None,
        entity_mix=parse_entity_mix(entity_mix) if entity_mix else None,
        profile=profiles.resolve(profile) if profile else None,
        profile_name=profile,
    )


def entity_noise(
    tags: np.ndarray,
    offsets: np.ndarray,
    names: Sequence[str],
    scheme: str,
    rate: float,
    mix: dict[str, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, int]]:
    """Span-level noise (see the module docstring). Returns noisy tags and event counts."""
    require_span_scheme(scheme, "entity")
    types = entity_types(names)
    weights = np.array([mix.get(event, 0.0) for event in ENTITY_EVENTS])
    if len(types) < 2:
        weights[ENTITY_EVENTS.index("retyped")] = 0.0
    if weights.sum() <= 0:
        raise InputError("--entity-mix: no possible event (retyping needs 2 entity types)")
    weights = weights / weights.sum()
    index = {name: i for i, name in enumerate(names)}
    counts = dict.fromkeys(ENTITY_EVENTS, 0) | {"skipped": 0}
    noisy = tags.copy()
    for sentence in range(len(offsets) - 1):
        start, end = int(offsets[sentence]), int(offsets[sentence + 1])
        labels = [names[t] for t in tags[start:end]]
        gold = decode_spans(labels)
        if not gold:
            continue
        hit = rng.random(len(gold)) < rate
        if not hit.any():
            continue
        events = rng.choice(len(ENTITY_EVENTS), size=len(gold), p=weights)
        spans = _apply_events(gold, hit, events, end - start, types, rng, counts)
        noisy[start:end] = encode_span_ids(spans, end - start, scheme, index, "entity")
    return noisy, counts


def _apply_events(
    gold: list[Span],
    hit: np.ndarray,
    events: np.ndarray,
    length: int,
    types: list[str],
    rng: np.random.Generator,
    counts: dict[str, int],
) -> list[Span]:
    spans: list[Span | None] = list(gold)
    added: list[Span] = []
    for i in np.flatnonzero(hit):
        start, end, type_ = gold[i]
        event = ENTITY_EVENTS[events[i]]
        covered = _covered(spans, added, length)
        if event == "missed":
            spans[i] = None
        elif event == "retyped":
            others = [t for t in types if t != type_]
            spans[i] = (start, end, others[rng.integers(len(others))])
        elif event == "boundary":
            moves = []
            if start > 0 and not covered[start - 1]:
                moves.append((start - 1, end))  # grow left into an O word
            if end < length and not covered[end]:
                moves.append((start, end + 1))  # grow right into an O word
            if end - start > 1:
                moves += [(start + 1, end), (start, end - 1)]  # shrink either edge
            if not moves:
                counts["skipped"] += 1
                continue
            new_start, new_end = moves[rng.integers(len(moves))]
            spans[i] = (new_start, new_end, type_)
        else:  # spurious: a one-word entity on a word no entity covers
            free = np.flatnonzero(~covered)
            if len(free) == 0:
                counts["skipped"] += 1
                continue
            word = int(free[rng.integers(len(free))])
            added.append((word, word + 1, types[rng.integers(len(types))]))
        counts[event] += 1
    return [s for s in spans if s is not None] + added


def _covered(spans: list[Span | None], added: list[Span], length: int) -> np.ndarray:
    covered = np.zeros(length, dtype=bool)
    for span in [*spans, *added]:
        if span is not None:
            covered[span[0] : span[1]] = True
    return covered


# --------------------------------------------------------------------- whole datasets


def split_generator(seed: int, split: str) -> np.random.Generator:
    """The generator for one split: independent of which other splits are corrupted."""
    return np.random.default_rng([seed, zlib.crc32(split.encode())])


def corrupt(dataset_dict, config: NoiseConfig):
    """Return ``(noisy DatasetDict, NoiseReport)``: ``tags`` noisy in ``config.splits``,
    copied elsewhere; ``clean_tags`` the input's ``clean_tags`` where it has them (noise on
    top of noise, e.g. ``noisebench:crowd``), else its ``tags``. The report measures the
    result against those clean tags."""
    import datasets

    missing = [s for s in config.splits if s not in dataset_dict]
    if missing:
        raise InputError(f"--splits: no split '{missing[0]}' (splits: {', '.join(dataset_dict)})")
    names = data.label_names(next(iter(dataset_dict.values())))
    scheme = data.scheme(dataset_dict)
    if config.noise == "profile" and scheme != NO_SCHEME:
        names = _with_every_span_label(names, scheme)
    matrix = _token_matrix(config, names)
    result, per_split, events = {}, {}, dict.fromkeys(ENTITY_EVENTS, 0) | {"skipped": 0}
    clean_parts, noisy_parts = [], []
    for split, dataset in dataset_dict.items():
        given, offsets = data.flat_tags(dataset)
        clean = given
        if "clean_tags" in dataset.column_names:
            clean = data.flat_tags(dataset, "clean_tags")[0]
        corrupted = split in config.splits
        noisy = given
        if corrupted:
            rng = split_generator(config.seed, split)
            noisy, events = _noisy_tags(
                config, dataset, given, offsets, names, scheme, matrix, rng, events
            )
            clean_parts.append((clean, offsets))
            noisy_parts.append(noisy)
        offsets_array = pa.array(offsets.astype(np.int32))
        table = dataset.data.table
        review = data.review_columns(dataset)  # a review goes along, scored in every run
        result[split] = data.make_split(
            table.column("tokens").combine_chunks(),
            pa.ListArray.from_arrays(offsets_array, pa.array(noisy)),
            names,
            clean_tags=pa.ListArray.from_arrays(offsets_array, pa.array(clean)),
            **review,
        )
        per_split[split] = _split_counts(clean, noisy, offsets, names, scheme) | {
            "corrupted": corrupted
        }
        if "clean_tags" not in dataset.column_names and (
            against := reviewed_counts(dataset, noisy, names, scheme)
        ):
            per_split[split]["reviewed"] = against
    report = _report(config, names, scheme, matrix, per_split, clean_parts, noisy_parts)
    if config.noise in ("entity", "profile"):
        report.entity_events = events
        report.notes.extend(_skipped_events_notes(config.noise, events["skipped"]))
    return datasets.DatasetDict(result), report


def _noisy_tags(config: NoiseConfig, dataset, given, offsets, names, scheme, matrix, rng, events):
    """One split's tags with ``config``'s noise drawn from ``rng``, and ``events`` with the
    entity events (entity and profile noise) of this split added."""
    if config.noise == "uniform":
        return uniform_noise(given, len(names), config.rate, rng), events
    if config.noise == "entity":
        mix = config.entity_mix or DEFAULT_ENTITY_MIX
        noisy, counts = entity_noise(given, offsets, names, scheme, config.rate, mix, rng)
        return noisy, {k: events[k] + counts[k] for k in events}
    if config.noise == "profile":
        noisy, counts = profiles.apply_profile(
            dataset["tokens"], given, offsets, names, scheme, config.profile, rng
        )
        return noisy, {k: events.get(k, 0) + counts[k] for k in counts}
    return matrix_noise(given, matrix, rng), events


def _skipped_events_notes(noise: str, skipped: int) -> list[str]:
    """What the report says of the entity events that had no room (none where none)."""
    if skipped and noise == "entity":
        return [
            f"{skipped} entity events had no room (a boundary with no O"
            " neighbour and one word, or a sentence without a free word) and were skipped"
        ]
    if skipped:
        return [
            f"{skipped} entities drew only boundary moves with no room and were kept as they were"
        ]
    return []


def _with_every_span_label(names: list[str], scheme: str) -> list[str]:
    """Profile noise can make any prefix of any type (a one-word type grows a word), so
    the label set gains the missing ones, appended: existing ids keep their meaning.

    >>> _with_every_span_label(["O", "B-PER", "B-LOC", "I-LOC"], "IOB2")
    ['O', 'B-PER', 'B-LOC', 'I-LOC', 'I-PER']
    """
    prefixes = {"IOBES": "BIES", "BILOU": "BILU"}.get(scheme, "BI")
    wanted = [f"{prefix}-{type_}" for type_ in entity_types(names) for prefix in prefixes]
    return [*names, *(label for label in wanted if label not in names)]


def _token_matrix(config: NoiseConfig, names: list[str]) -> np.ndarray | None:
    if config.noise == "pair":
        return pair_matrix(names, config.rate)
    if config.noise == "matrix":
        return matrix_array(config.matrix, names)
    return None


def label_noise(split, scheme: str) -> dict | None:
    """How far a split's ``tags`` are from its ``clean_tags``: the share of changed words
    and, with a span scheme, the entity noise level (1 - entity F1 of noisy vs clean).
    Without clean labels, against the reviewed labels of its reviewed sentences (``review
    merge``), saying on how many (``reviewed_sentences``); None with neither."""
    if "clean_tags" not in split.column_names:
        return _reviewed_label_noise(split, scheme)
    noisy, offsets = data.flat_tags(split)
    clean, _ = data.flat_tags(split, "clean_tags")
    counts = _split_counts(clean, noisy, offsets, data.label_names(split), scheme)
    return {
        "token_error_rate": counts["realised_token_error_rate"],
        "entity_noise_level": counts.get("entity_noise_level"),
    }


def _reviewed_label_noise(split, scheme: str) -> dict | None:
    counts = reviewed_counts(split, data.flat_tags(split)[0], data.label_names(split), scheme)
    if counts is None:
        return None
    return {
        "token_error_rate": counts["realised_token_error_rate"],
        "entity_noise_level": counts.get("entity_noise_level"),
        "reviewed_sentences": counts["sentences"],
    }


def reviewed_counts(split, tags: np.ndarray, names, scheme: str) -> dict | None:
    """``tags`` (one label id per word of ``split``) against the reviewed labels of its
    reviewed sentences drawn at random (``review merge`` of a ``review sample``: chosen
    ones would overstate the noise), counted as a split's noise is: on how many sentences
    (``sentences``), the changed words, the entities, and how many reviewed sentences were
    left out as chosen (``left_out``); None without such a review. A designed review's
    sentences (``review sample --compare``) weigh their design weights: the rates are the
    split's estimated ones, and ``designed`` says so."""
    sample = data.review_sample(split)
    reviewed = sample.sentences
    if not reviewed.any():
        return None
    truth, offsets = data.reviewed_truth(split)
    words = np.repeat(reviewed, np.diff(offsets))
    kept = np.concatenate([[0], np.cumsum(np.diff(offsets)[reviewed])])
    weights = sample.weights[reviewed] if sample.designed else None
    counts = _split_counts(truth[words], tags[words], kept, names, scheme, weights)
    counts |= {"designed": True} if sample.designed else {}
    return counts | ({"left_out": sample.left_out} if sample.left_out else {})


def _split_counts(clean, noisy, offsets, names, scheme, weights=None) -> dict:
    """The changed words and entities of ``noisy`` against ``clean``: the counts the
    sentences' own, the rates with each sentence weighing ``weights`` (its design
    weight) where given."""
    differ = clean != noisy
    changed = int(np.count_nonzero(differ))
    rate = changed / len(clean) if len(clean) else 0.0
    if weights is not None and len(clean):
        per_word = np.repeat(np.asarray(weights, np.float64), np.diff(offsets))
        rate = float(per_word[differ].sum() / per_word.sum())
    counts = {
        "sentences": len(offsets) - 1,
        "tokens": len(clean),
        "changed_tokens": changed,
        "realised_token_error_rate": rate,
    }
    if scheme != NO_SCHEME:
        gold, predicted, matched = _span_agreement(clean, noisy, offsets, names)
        # the level weighted where the sentences weigh their design; the counts their own
        weighed = (gold, predicted, matched) if weights is None else _span_agreement(
            clean, noisy, offsets, names, weights
        )  # fmt: skip
        counts |= {
            "gold_entities": gold,
            "noisy_entities": predicted,
            "matching_entities": matched,
            "entity_noise_level": 1.0 - _f1(*weighed),
        }
    return counts


def _span_agreement(clean, noisy, offsets, names, weights=None) -> tuple:
    """(#clean entities, #noisy entities, #exact matches), over changed sentences only;
    each sentence's counted ``weights[s]`` times where given (floats then)."""
    gold = predicted = matched = 0
    changed_sentence = np.add.reduceat(clean != noisy, offsets[:-1]) if len(clean) else []
    for sentence, start in enumerate(offsets[:-1]):
        end = offsets[sentence + 1]
        weight = 1 if weights is None else float(weights[sentence])
        clean_spans = decode_spans([names[t] for t in clean[start:end]])
        if changed_sentence[sentence] and end > start:
            noisy_spans = decode_spans([names[t] for t in noisy[start:end]])
            matched += weight * len(set(clean_spans) & set(noisy_spans))
            predicted += weight * len(noisy_spans)
        else:
            matched += weight * len(clean_spans)
            predicted += weight * len(clean_spans)
        gold += weight * len(clean_spans)
    return gold, predicted, matched


def _f1(gold: int, predicted: int, matched: int) -> float:
    return 1.0 if gold + predicted == 0 else 2 * matched / (gold + predicted)


def _report(config, names, scheme, matrix, per_split, clean_parts, noisy_parts) -> NoiseReport:
    clean = np.concatenate([c for c, _ in clean_parts])
    noisy = np.concatenate(noisy_parts)
    realised = float(np.count_nonzero(clean != noisy) / len(clean)) if len(clean) else 0.0
    expected = None
    if config.noise == "uniform":
        expected = float(config.rate)
    elif matrix is not None and len(clean):
        frequency = np.bincount(clean, minlength=len(names)) / len(clean)
        expected = float(np.sum(frequency * (1.0 - np.diag(matrix))))
    entity_level = None
    if scheme != NO_SCHEME:
        corrupted = [per_split[s] for s in config.splits]
        entity_level = 1.0 - _f1(
            sum(c["gold_entities"] for c in corrupted),
            sum(c["noisy_entities"] for c in corrupted),
            sum(c["matching_entities"] for c in corrupted),
        )
    pairs = np.bincount(clean * len(names) + noisy, minlength=len(names) ** 2)
    pairs = pairs.reshape(len(names), len(names))
    confusion = {
        names[i]: {names[j]: int(pairs[i, j]) for j in np.flatnonzero(pairs[i])}
        for i in range(len(names))
        if pairs[i].any()
    }
    return NoiseReport(
        noise=config.noise,
        requested_rate=config.rate,
        seed=config.seed,
        corrupted_splits=list(config.splits),
        scheme=scheme,
        labels=list(names),
        expected_token_error_rate=expected,
        realised_token_error_rate=realised,
        entity_noise_level=entity_level,
        splits=per_split,
        confusion=confusion,
    )


# ------------------------------------------------------------------ corrupt to a folder


@dataclass
class CorruptResult:
    out: Path
    report: NoiseReport
    up_to_date: bool  # the folder already held exactly this dataset; nothing was written


def default_output_dir(spec: str, config: NoiseConfig) -> Path:
    """``data/<dataset>-<noise>-<rate>-seed<seed>``, e.g. ``data/conll2003-uniform-0.40-seed0``."""
    dataset = data.dataset_name(spec)
    if config.noise == "matrix":
        digest = zlib.crc32(json.dumps(config.matrix, sort_keys=True).encode())
        noise = f"matrix{digest:08x}"
    elif config.noise == "profile":
        digest = zlib.crc32(json.dumps(config.profile, sort_keys=True).encode())
        source = Path(config.profile_name or "profile").stem.replace(":", "-")
        noise = f"profile-{source}-{digest:08x}"
    else:
        noise = f"{config.noise}-{config.rate:.2f}"
    splits = "" if config.splits == ("train",) else "-" + "+".join(config.splits)
    return Path("data") / f"{dataset}-{noise}{splits}-seed{config.seed}"


def corrupt_to_directory(
    spec: str,
    config: NoiseConfig,
    out: Path | None = None,
    columns: data.Columns | None = None,
    force: bool = False,
) -> CorruptResult:
    """Load ``spec``, corrupt it, and write ``<split>.parquet`` files and ``noise.json``.

    The folder appears atomically, complete or not at all. An existing folder holding the
    same clean data corrupted with the same config is left alone (``up_to_date``); one
    holding anything else is replaced only with ``force``.
    """
    dataset_dict = data.load(spec, columns)
    out = Path(out) if out is not None else default_output_dir(spec, config)
    identity = {"source_fingerprint": data.fingerprint(dataset_dict), "config": config.to_dict()}
    if out.exists():
        existing = _read_noise_json(out)
        expected = [out / f"{split}.parquet" for split in dataset_dict]
        same = existing is not None and {k: existing.get(k) for k in identity} == identity
        if same and all(p.is_file() for p in expected):
            return CorruptResult(out, NoiseReport(**existing["report"]), up_to_date=True)
        if not force:
            raise InputError(
                f"{out} already exists and holds a different dataset; pass --force to replace"
                " it or choose another --out"
            )
    noisy, report = corrupt(dataset_dict, config)
    document = {
        "schema_version": SCHEMA_VERSION,
        "noisebench_version": __version__,
        "dataset": str(spec),
        **identity,
        "report": asdict(report),
    }
    with _staged(out) as staging:
        data.write_parquet(noisy, staging)
        (staging / "noise.json").write_text(json.dumps(document, indent=2) + "\n")
    return CorruptResult(out, report, up_to_date=False)


def _staged(out: Path):
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    return staged_directory(out, replace=True)


def _read_noise_json(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "noise.json").read_text())
    except (OSError, ValueError):
        return None
