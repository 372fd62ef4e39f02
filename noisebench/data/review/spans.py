"""A sentence's labels as word spans and back, in any tag scheme (and without one)."""

from __future__ import annotations

import numpy as np

from noisebench.data import schemes
from noisebench.data.schemes import NO_SCHEME, SPAN_TAG, Span, decode_spans, encode_spans


def entity_types(names: list[str], scheme: str) -> list[str]:
    """What a reviewer labels: entity types, or every tag but ``O`` without a scheme.

    >>> entity_types(["O", "B-PER", "I-PER", "B-LOC"], "IOB2"), entity_types(["NN", "O"], "none")
    (['LOC', 'PER'], ['NN'])
    """
    if scheme == NO_SCHEME:
        return sorted(name for name in names if name != "O")
    return schemes.entity_types(names)


def known_label(label: str, types: list[str], scheme: str) -> bool:
    """Whether a reviewer's word label is ``O`` or names one of ``types`` in ``scheme``.

    >>> known_label("B-PER", ["PER"], "IOB2"), known_label("B-XYZ", ["PER"], "IOB2")
    (True, False)
    """
    if label == "O":
        return True
    if scheme == NO_SCHEME:
        return label in types
    match = SPAN_TAG.match(label)
    return bool(match) and match.group(2) in types


def sentence_spans(labels: list[str], scheme: str) -> list[Span]:
    """A sentence's labels as spans: entities, or one span per word not ``O`` without a
    scheme (POS tags, say).

    >>> sentence_spans(["NN", "O", "VB"], "none")
    [(0, 1, 'NN'), (2, 3, 'VB')]
    """
    if scheme != NO_SCHEME:
        return decode_spans(labels)
    return [(i, i + 1, label) for i, label in enumerate(labels) if label != "O"]


def span_labels(spans: list[Span], length: int, scheme: str) -> list[str | None]:
    """Non-overlapping ``spans`` as a sentence's labels, valid in ``scheme``; without a
    scheme each word of a span takes its type and the others ``O``."""
    if scheme != NO_SCHEME:
        return encode_spans(spans, length, scheme)
    labels = ["O"] * length
    for start, end, type_ in spans:
        labels[start:end] = [type_] * (end - start)
    return labels


def word_starts(words: list[str]) -> np.ndarray:
    """Each word's first character in the words joined by single spaces, and one past
    the end (``len(words) + 1`` entries).

    >>> word_starts(["EU", "rejects", "it"]).tolist()
    [0, 3, 11, 14]
    """
    return np.concatenate([[0], np.cumsum([len(w) + 1 for w in words])]).astype(np.int64)
