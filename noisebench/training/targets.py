"""What each training word is taught: its target distribution (span-aware smoothing).

    noisebench train --data noisebench:crowd --loss ce --span-smoothing 0.1

The reference study proposes smoothing *along spans* for NER: annotators disagree about
where an entity starts and ends, so a word at an entity's edge should not be taught its
given label with full confidence. ``--span-smoothing EPS`` (``--span-distance D``,
default 1 word) moves EPS of each entity's probability mass, in equal shares, to the
``4 D`` spans whose start or end is moved by 1 to ``D`` words (boundary smoothing, Zhu
and Li 2022, in the token form of the tag scheme). A shifted span that would be empty,
leave the sentence, overlap another entity, or need a label the tag set lacks gives its
share back to the given span. Each word's target is then the mixture of its label under
the given spans and under every shifted configuration: a word whose label no shift
changes (far from an edge) keeps its one-hot target, and mass moves away from the
*given* label only (invalid tag sequences, which label noise makes, keep their labels).

>>> names = ["O", "B-PER", "I-PER"]
>>> print(span_targets([0, 1, 2, 0], names, "IOB2", 0.2))  # words x (O, B-PER, I-PER)
[[0.95 0.05 0.  ]
 [0.05 0.9  0.05]
 [0.05 0.05 0.9 ]
 [0.95 0.   0.05]]

The target composes with ``--s`` (uniform smoothing: ``w = (1 - s - o) t + o`` with
``o = s / (C - 1)``) and with every loss (``losses.py``: soft targets). For GCE and SGCE
the minimiser of ``sum_c w_c (1 - p_c^q) / q`` over the simplex is ``p_c`` proportional
to ``w_c^(1 / (1 - q))``, not ``w`` (for q < 1; MAE's, at q = 1, is the one-hot of the
largest ``w_c``): at q = 0.7 a target of 0.9 / 0.1 is minimised by p = 0.9993 / 0.0007, so
smoothing under GCE changes the training dynamics far more than the optimum it pulls to.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from noisebench.data.schemes import NO_SCHEME, Span, decode_spans, encode_spans
from noisebench.errors import InputError

DEFAULT_DISTANCE = 1


def check_span_smoothing(eps: float, distance: int, scheme: str | None = None) -> None:
    """``InputError`` for an EPS outside [0, 1), a distance below 1 or a tag set without
    span tags."""
    if not 0.0 <= eps < 1.0:
        raise InputError(f"--span-smoothing {eps:g}: give a share in [0, 1)")
    if distance < 1:
        raise InputError(f"--span-distance {distance}: give a number of words, at least 1")
    if eps > 0 and scheme == NO_SCHEME:
        raise InputError(
            "--span-smoothing needs span tags (O, B-X, I-X, ...); this tag set has no span"
            " scheme (POS tags?): use --s for uniform label smoothing"
        )


def shifted_spans(spans: Sequence[Span], length: int, distance: int) -> list[list[list[Span]]]:
    """Per entity, its ``4 distance`` shifted configurations (start -d, start +d, end -d,
    end +d for d = 1..distance), each the sentence's spans with that one moved, or an
    empty list where the shift is invalid (empty, outside the sentence, overlapping)."""
    shifted = []
    for index, (start, end, type_) in enumerate(spans):
        others = spans[:index] + spans[index + 1 :]
        configurations = []
        for d in range(1, distance + 1):
            for new_start, new_end in (
                (start - d, end),
                (start + d, end),
                (start, end - d),
                (start, end + d),
            ):
                valid = 0 <= new_start < new_end <= length and not any(
                    new_start < other_end and other_start < new_end
                    for other_start, other_end, _ in others
                )
                moved = [*others, (new_start, new_end, type_)] if valid else []
                configurations.append(moved)
        shifted.append(configurations)
    return shifted


def span_targets(
    tags: Sequence[int], names: Sequence[str], scheme: str, eps: float, distance: int = 1
) -> np.ndarray:
    """``(words, classes)`` float32 target distributions of one sentence's label ids.

    >>> names = ["O", "B-LOC", "I-LOC"]
    >>> print(span_targets([1, 0], names, "IOB2", 0.4))  # a one-word entity, at the start
    [[0.  1.  0. ]
     [0.9 0.  0.1]]
    """
    tags = np.asarray(tags, dtype=np.int64)
    targets = np.zeros((len(tags), len(names)), dtype=np.float64)
    targets[np.arange(len(tags)), tags] = 1.0
    if eps == 0.0 or not len(tags):
        return targets.astype(np.float32)
    index = {name: i for i, name in enumerate(names)}
    spans = decode_spans([names[t] for t in tags])
    given = encode_spans(spans, len(tags), scheme)
    for configurations in shifted_spans(spans, len(tags), distance):
        share = eps / len(configurations)
        for moved in configurations:
            labels = encode_spans(moved, len(tags), scheme) if moved else given
            changed = [
                (word, index.get(label))
                for word, (label, before) in enumerate(zip(labels, given, strict=True))
                if label != before
            ]
            if any(class_ is None for _, class_ in changed):
                continue  # a label the tag set lacks: the share stays with the given span
            for word, class_ in changed:
                targets[word, tags[word]] -= share
                targets[word, class_] += share
    return targets.astype(np.float32)


def sentence_targets(
    tags: list[np.ndarray], names: Sequence[str], scheme: str, eps: float, distance: int
) -> list[np.ndarray]:
    """``span_targets`` of every sentence of a split."""
    return [span_targets(t, names, scheme, eps, distance) for t in tags]
