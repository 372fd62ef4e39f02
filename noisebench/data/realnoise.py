"""NoiseBench's real label noise, rebuilt on CoNLL-03 from cached files.

    noisebench train --data noisebench:crowd --loss ce

NoiseBench (Merdjanovska, Aynetdinov and Akbik, EMNLP 2024) gives seven label sets for
the same 5,885 CoNLL-03 training sentences: ``clean`` (CleanCoNLL's labels) and six noisy
ones (``expert``, ``crowd``, ``crowdbest`` = crowd++, ``distant``, ``weak``, ``llm``). Its
files mask the tokens (Reuters licence), so the words come from the ``conll2003`` source:

- **cleanconll build** (exact): CleanCoNLL's token patches (normal ``diff`` output from
  the original token column to CleanCoNLL's) are applied to CoNLL-03's ``train.txt`` and
  ``test.txt``; ``index.txt`` then names the patched sentence of every NoiseBench sentence,
  and CleanCoNLL's test annotations label the patched test set.
- **conll03 build** (offline fallback, when CleanCoNLL's files cannot be had): each
  NoiseBench document is matched to an original CoNLL-03 document near the position that
  ``index.txt`` gives, sentences aligned by their lengths (longest common subsequence);
  the test set is CoNLL-03's own, with its original labels.

NoiseBench's labels (MIT) ship with the package in a compact form
(``resources/noisebench-labels.npz``, made by ``pack_labels`` from the original files;
a test checks it against them). CleanCoNLL's files state no licence and are downloaded
at first use (``sources``), never shipped.

Train/dev split (NoiseBench's rule): a document goes to dev when ``1996-08-24`` appears in
the last token of its 3rd or 4th sentence, counting ``-DOCSTART-`` as the 1st. The rule
needs the words, so the shipped file records its outcome per document; a test checks the
rule against the patched words.

This module sits below ``data``: it returns plain lists, and ``data`` makes datasets.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from noisebench.data import sources
from noisebench.errors import InputError

VARIANTS = ("clean", "expert", "crowd", "crowdbest", "distant", "weak", "llm")
# Entity noise (1 - entity F1 of noisy against clean, train + dev), as NoiseBench reports it.
PUBLISHED_ENTITY_NOISE = {
    "expert": 5.5,
    "crowdbest": 15.3,
    "crowd": 36.6,
    "distant": 31.3,
    "weak": 40.4,
    "llm": 45.6,
}
PACKAGED_LABELS = Path(__file__).parent.parent / "resources" / "noisebench-labels.npz"
DEV_DATE = "1996-08-24"
DOCSTART = -1  # index value of a -DOCSTART- sentence
SEARCH_WINDOW = 120  # sentences; CleanCoNLL's patch moves train sentences by at most 84
TRAIN_PATCH = "cleanconll/patch_files/train_tokens.patch"
TEST_PATCH = "cleanconll/patch_files/test_tokens.patch"
TEST_ANNOTATIONS = "cleanconll/cleanconll_annotations/cleanconll_annotations.test"
PREFIX = "noisebench:"


@dataclass
class LabelSets:
    """NoiseBench's annotations: 6,285 sentences (400 ``-DOCSTART-`` ones included)."""

    index: np.ndarray  # (S,) sentence index in CleanCoNLL's train file, DOCSTART for docs
    offsets: np.ndarray  # (S + 1,) token offsets of the sentences
    names: list[str]  # tag names; ``tags`` hold ids into them
    tags: dict[str, np.ndarray]  # variant -> (tokens,) tag ids
    dev_documents: np.ndarray  # (documents,) bool: NoiseBench puts the document in dev

    def documents(self) -> list[np.ndarray]:
        """Sentence positions of each document's sentences, ``-DOCSTART-`` excluded."""
        starts = np.flatnonzero(self.index == DOCSTART)
        ends = [*starts[1:], len(self.index)]
        return [np.arange(start + 1, end) for start, end in zip(starts, ends, strict=True)]

    def sentence_tags(self, variant: str, position: int) -> list[str]:
        ids = self.tags[variant][self.offsets[position] : self.offsets[position + 1]]
        return [self.names[i] for i in ids]


@dataclass
class SplitText:
    """One split as plain lists: words, the variant's tags and the clean tags."""

    tokens: list[list[str]]
    tags: list[list[str]]
    clean_tags: list[list[str]]


@dataclass
class RealNoise:
    """A variant rebuilt on one of the two builds."""

    variant: str
    build: str  # "cleanconll" (exact) or "conll03" (offline fallback)
    names: list[str]  # tag names, in NoiseBench's order
    splits: dict[str, SplitText]
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ NoiseBench's labels


def read_annotations(folder: Path) -> LabelSets:
    """NoiseBench's ``*.traindev`` files and ``index.txt`` from ``folder`` (the repository's
    ``data/annotations``); the dev split is left for ``split_rule`` (all False here)."""
    index_lines = _read(folder / "index.txt").split()
    index = np.array([DOCSTART if x == "docstart" else int(x) for x in index_lines], np.int64)
    files = {
        v: folder / ("clean.traindev" if v == "clean" else f"noise_{v}.traindev") for v in VARIANTS
    }
    columns = {variant: _tag_column(path) for variant, path in files.items()}
    lengths = columns["clean"][0]
    for variant, (variant_lengths, _) in columns.items():
        if variant_lengths != lengths:
            raise InputError(f"{files[variant]}: sentences differ from {files['clean']}")
    if len(lengths) != len(index):
        raise InputError(f"{folder / 'index.txt'}: {len(index)} lines for {len(lengths)} sentences")
    names = sorted({t for _, tags in columns.values() for t in tags}, key=lambda t: (t != "O", t))
    lookup = {name: i for i, name in enumerate(names)}
    return LabelSets(
        index=index,
        offsets=np.concatenate([[0], np.cumsum(lengths)]),
        names=names,
        tags={v: np.array([lookup[t] for t in tags], np.uint8) for v, (_, tags) in columns.items()},
        dev_documents=np.zeros(int((index == DOCSTART).sum()), bool),
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror}") from None


def _tag_column(path: Path) -> tuple[list[int], list[str]]:
    """Sentence lengths and tags of a ``[TOK]<TAB>tag`` file."""
    lengths, tags, current = [], [], 0
    for number, line in enumerate(_read(path).split("\n"), start=1):
        if not line.strip():
            if current:
                lengths.append(current)
                current = 0
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise InputError(f"{path}:{number}: expected 'token<TAB>tag', found '{line}'")
        tags.append(fields[1].strip())
        current += 1
    if current:
        lengths.append(current)
    return lengths, tags


def pack_labels(label_sets: LabelSets, path: Path) -> None:
    """Write the compact form that ships in the package."""
    np.savez_compressed(
        path,
        index=label_sets.index.astype(np.int32),
        lengths=np.diff(label_sets.offsets).astype(np.int16),
        names=np.array(label_sets.names),
        dev_documents=label_sets.dev_documents,
        **{f"tags_{variant}": tags for variant, tags in label_sets.tags.items()},
    )


def packaged_labels(path: Path = PACKAGED_LABELS) -> LabelSets:
    with np.load(path) as packed:
        return LabelSets(
            index=packed["index"].astype(np.int64),
            offsets=np.concatenate([[0], np.cumsum(packed["lengths"].astype(np.int64))]),
            names=[str(name) for name in packed["names"]],
            tags={variant: packed[f"tags_{variant}"] for variant in VARIANTS},
            dev_documents=packed["dev_documents"],
        )


def split_rule(label_sets: LabelSets, words: list[list[str]]) -> np.ndarray:
    """NoiseBench's dev documents, from the words of CleanCoNLL's train file (``words[i]``
    = sentence ``i``, ``-DOCSTART-`` sentences included)."""
    dev = []
    for document in label_sets.documents():
        # the document's 2nd and 3rd sentences after -DOCSTART- (its 3rd and 4th in all)
        dated = [words[label_sets.index[p]][-1] for p in document[1:3]]
        dev.append(any(DEV_DATE in word for word in dated))
    return np.array(dev, bool)


# ------------------------------------------------------------------------- CoNLL text


def column(path: Path, index: int = 0) -> list[str]:
    """One column of a CoNLL file, one entry per line, blank lines as ``""``; column 0 is
    ``awk '{print $1}'``, the token column CleanCoNLL's patches are made against."""
    lines = _read(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.split()[index] if line.strip() else "" for line in lines]


def sentences(lines: list[str]) -> list[list[str]]:
    """Group a token column into sentences (``-DOCSTART-`` sentences kept)."""
    result: list[list[str]] = []
    current: list[str] = []
    for token in lines:
        if token:
            current.append(token)
        elif current:
            result.append(current)
            current = []
    if current:
        result.append(current)
    return result


HUNK = re.compile(r"^(\d+)(?:,(\d+))?([acd])(\d+)(?:,(\d+))?$")


def apply_normal_diff(lines: list[str], patch: str, origin: str) -> list[str]:
    """Apply a patch in ``diff``'s normal format (``5728d5727``, ``17721c17703,17705``,
    ``< old`` / ``---`` / ``> new`` lines) to ``lines``; each removed line must match.

    >>> apply_normal_diff(["a", "b", "c"], "2c2,3\\n< b\\n---\\n> x\\n> y\\n3a5\\n> z\\n", "p")
    ['a', 'x', 'y', 'c', 'z']
    """
    result: list[str] = []
    position = 0  # lines[:position] are consumed
    patch_lines = patch.split("\n")
    number = 0
    while number < len(patch_lines):
        header = patch_lines[number]
        number += 1
        if not header.strip():
            continue
        match = HUNK.match(header)
        if match is None:
            raise InputError(f"{origin}:{number}: not a normal-diff hunk header: '{header}'")
        first = int(match[1])
        last = int(match[2] or match[1])
        old, number = _hunk_lines(patch_lines, number, "< ")
        if number < len(patch_lines) and patch_lines[number] == "---":
            number += 1
        new, number = _hunk_lines(patch_lines, number, "> ")
        start = first if match[3] == "a" else first - 1
        if start < position or last > len(lines):
            raise InputError(f"{origin}: hunk '{header}' is out of order or past the end")
        result.extend(lines[position:start])
        if match[3] != "a":
            if lines[start:last] != old:
                raise InputError(
                    f"{origin}: hunk '{header}' does not match the file at line {first}"
                    f" (expected {old[:2]}, found {lines[start : start + 2]})"
                )
            position = last
        else:
            position = start
        result.extend(new)
    result.extend(lines[position:])
    return result


def _hunk_lines(patch_lines: list[str], number: int, marker: str) -> tuple[list[str], int]:
    taken = []
    while number < len(patch_lines) and patch_lines[number].startswith(marker):
        taken.append(patch_lines[number][len(marker) :])
        number += 1
    return taken, number


# -------------------------------------------------------------------------- the builds


def parse_variant(spec: str) -> str | None:
    """``noisebench:crowd`` -> ``crowd``; None when ``spec`` names no variant."""
    if not spec.startswith(PREFIX):
        return None
    variant = spec[len(PREFIX) :]
    if variant not in VARIANTS:
        raise InputError(
            f"unknown NoiseBench variant '{variant}' (known: "
            + ", ".join(PREFIX + v for v in VARIANTS)
            + ")"
        )
    return variant


def dataset_name(spec: str) -> str:
    """``noisebench-crowd`` (exact build) or ``noisebench-crowd-conll03`` (offline build):
    runs on the two builds never mix in a leaderboard or a runs folder."""
    variant = parse_variant(spec)
    build, _ = available_build()
    return f"noisebench-{variant}" + ("" if build == "cleanconll" else f"-{build}")


# cache root -> why CleanCoNLL's files could not be fetched: one download attempt per
# process, not one per dataset name (a sweep plans hundreds of runs)
_FETCH_FAILED: dict[str, str] = {}


def available_build() -> tuple[str, str]:
    """``("cleanconll", folder)`` where CleanCoNLL's files are cached or can be fetched
    now, else ``("conll03", why not)``."""
    source = sources.get_source("noisebench")
    if sources.is_cached(source):
        return "cleanconll", str(sources.cache_dir(source))
    home = str(sources.home())
    if home not in _FETCH_FAILED:
        try:
            return "cleanconll", str(sources.fetch(source))
        except InputError as error:
            _FETCH_FAILED[home] = str(error)
    return "conll03", _FETCH_FAILED[home]


def load(spec: str) -> RealNoise:  # the ``noisebench`` family's (FAMILY, below)
    """Build ``noisebench:<variant>``: exact where CleanCoNLL's files are cached or can be
    downloaded, else the offline build (and a note that says so)."""
    variant = parse_variant(spec)
    if variant is None:
        raise InputError(f"'{spec}' is not a NoiseBench variant (noisebench:<variant>)")
    conll = sources.fetch(sources.get_source("conll2003"))
    label_sets = packaged_labels()
    build, where = available_build()
    if build == "cleanconll":
        return build_exact(label_sets, conll, Path(where), variant)
    result = build_offline(label_sets, conll, variant)
    result.notes.append(f"not the exact build: {where.split(': ', 1)[-1]}")
    return result


def build_exact(label_sets: LabelSets, conll: Path, cleanconll: Path, variant: str) -> RealNoise:
    """The cleanconll build: patched CoNLL-03 words, CleanCoNLL's test set."""
    train_words = _patched_sentences(conll / "train.txt", cleanconll / TRAIN_PATCH)
    positions = np.flatnonzero(label_sets.index != DOCSTART)
    for position in positions:
        sentence = train_words[label_sets.index[position]]
        expected = label_sets.offsets[position + 1] - label_sets.offsets[position]
        if len(sentence) != expected:
            raise InputError(
                f"{cleanconll / TRAIN_PATCH}: patched sentence {label_sets.index[position]} has"
                f" {len(sentence)} words, NoiseBench's has {expected}"
            )
    words = {int(p): train_words[label_sets.index[p]] for p in positions}
    splits = _train_and_dev(label_sets, words, variant)
    splits["test"] = _cleanconll_test(conll / "test.txt", cleanconll)
    return RealNoise(variant, "cleanconll", label_sets.names, splits)


def _patched_sentences(conll_file: Path, patch_file: Path) -> list[list[str]]:
    patched = apply_normal_diff(column(conll_file), _read(patch_file), str(patch_file))
    return sentences(patched)


def _cleanconll_test(conll_test: Path, cleanconll: Path) -> SplitText:
    words = _patched_sentences(conll_test, cleanconll / TEST_PATCH)
    annotations = cleanconll / TEST_ANNOTATIONS
    tags = sentences(column(annotations, -1))
    if [len(s) for s in words] != [len(s) for s in tags]:
        raise InputError(f"{annotations}: sentences do not line up with the patched test words")
    return _test_split(words, tags)


def _test_split(words: list[list[str]], tags: list[list[str]]) -> SplitText:
    """A clean test split (``clean_tags`` = ``tags``) without ``-DOCSTART-`` sentences."""
    kept = [i for i, sentence in enumerate(words) if sentence != ["-DOCSTART-"]]
    return SplitText(
        tokens=[words[i] for i in kept],
        tags=[tags[i] for i in kept],
        clean_tags=[tags[i] for i in kept],
    )


def _train_and_dev(label_sets: LabelSets, words: dict[int, list[str]], variant: str):
    """Train and dev splits of the sentences in ``words`` (position -> words)."""
    splits = {"train": SplitText([], [], []), "validation": SplitText([], [], [])}
    for document, is_dev in zip(label_sets.documents(), label_sets.dev_documents, strict=True):
        split = splits["validation" if is_dev else "train"]
        for position in document:
            if position in words:
                split.tokens.append(words[position])
                split.tags.append(label_sets.sentence_tags(variant, position))
                split.clean_tags.append(label_sets.sentence_tags("clean", position))
    return splits


# the offline build's alignment (1.7 s of its 2.1 s), once per process and train.txt for
# every variant: a sweep that trains in one process loads a variant for each of its runs
_ALIGNED: dict[tuple, dict[int, list[str]]] = {}


def build_offline(label_sets: LabelSets, conll: Path, variant: str) -> RealNoise:
    """The conll03 build: NoiseBench's sentences found in the original CoNLL-03 words."""
    train_file = conll / "train.txt"
    stat = train_file.stat()
    key = (
        str(train_file.resolve()),
        stat.st_mtime_ns,
        stat.st_size,
        hash((label_sets.index.tobytes(), label_sets.offsets.tobytes())),
        hash(label_sets.tags["clean"].tobytes()),
    )
    if key not in _ALIGNED:
        original = sentences(column(train_file))
        _ALIGNED[key] = align_to_original(label_sets, original, sentences(column(train_file, -1)))
    words = _ALIGNED[key]
    splits = _train_and_dev(label_sets, words, variant)
    splits["test"] = _test_split(
        sentences(column(conll / "test.txt")), sentences(column(conll / "test.txt", -1))
    )
    total = int((label_sets.index != DOCSTART).sum())
    notes = [
        f"offline conll03 build: {len(words):,} of {total:,} NoiseBench sentences placed in the"
        " original CoNLL-03 train.txt; test = CoNLL-03's test set with its original labels"
    ]
    return RealNoise(variant, "conll03", label_sets.names, splits, notes)


def align_to_original(
    label_sets: LabelSets, original: list[list[str]], original_tags: list[list[str]]
) -> dict[int, list[str]]:
    """Place NoiseBench's sentences in the unpatched CoNLL-03 train sentences ``original``
    (``-DOCSTART-`` ones included, with their tags): NoiseBench position -> words.

    ``index.txt`` counts CleanCoNLL's sentences, which the patch shifts by up to 84 from
    the original ones. So each NoiseBench document is compared with every original
    document that starts within ``SEARCH_WINDOW`` sentences of its own start. Two
    sentences match when they have the same length and the same entity type (or ``O``)
    on at least half of their words (CleanCoNLL relabelled about 7% of the entities);
    the document sharing the longest common subsequence of matching sentences wins (ties:
    the nearest), and the sentences of that subsequence are placed. On CoNLL-03 this
    places 5,882 of the 5,885 sentences, 5,872 of them with exactly CleanCoNLL's words.
    """
    starts = [i for i, sentence in enumerate(original) if sentence == ["-DOCSTART-"]]
    bounds = list(zip(starts, [*starts[1:], len(original)], strict=True))
    placed: dict[int, list[str]] = {}
    for document in label_sets.documents():
        clean = [label_sets.sentence_tags("clean", position) for position in document]
        start = int(label_sets.index[document[0]]) - 1  # where its -DOCSTART- would be
        best: tuple[tuple[int, int], int, list[tuple[int, int]]] | None = None
        for begin, end in bounds:
            if abs(begin - start) > SEARCH_WINDOW:
                continue
            pairs = common_subsequence(clean, original_tags[begin + 1 : end], _same_sentence)
            rank = (len(pairs), -abs(begin - start))
            if best is None or rank > best[0]:
                best = (rank, begin, pairs)
        if best is None:
            continue
        _, begin, pairs = best
        for i, j in pairs:
            placed[int(document[i])] = original[begin + 1 + j]
    return placed


def _same_sentence(tags: list[str], other: list[str]) -> bool:
    if len(tags) != len(other):
        return False
    agree = sum(a[2:] == b[2:] for a, b in zip(tags, other, strict=True))  # "O"[2:] == ""
    return 2 * agree >= len(tags)


def common_subsequence(a: list, b: list, same=operator.eq) -> list[tuple[int, int]]:
    """Index pairs of a longest common subsequence of ``a`` and ``b`` (``same`` says
    which items match).

    >>> common_subsequence([3, 5, 7, 2], [3, 12, 7, 2])
    [(0, 0), (2, 2), (3, 3)]
    """
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]  # table[i][j]: LCS of a[i:], b[j:]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            if same(a[i], b[j]):
                table[i][j] = table[i + 1][j + 1] + 1
            else:
                table[i][j] = max(table[i + 1][j], table[i][j + 1])
    pairs, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if same(a[i], b[j]) and table[i][j] == table[i + 1][j + 1] + 1:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


# the family the loader lists (loading.FAMILIES)
FAMILY = sources.Family("noisebench", PREFIX, VARIANTS, parse_variant, dataset_name, load)
