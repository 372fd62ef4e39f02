"""Tag schemes: detect IOB1 / IOB2 / IOBES / BILOU, decode entity spans, encode them back.

Span decoding follows conlleval (and seqeval's default mode): an entity starts at ``B-``
or ``S-``, or at an ``I-``/``E-`` tag that does not continue the previous tag's entity,
so it accepts the invalid sequences that label noise produces. BILOU's ``L-``/``U-`` are
read as ``E-``/``S-`` (seqeval's default mode does not know them), and every entity score
(``metrics.entity_spans``) counts through this one decoder, whatever the scheme. Tags are
handled as ``(prefix, type)`` pairs; a tag set whose labels are not all ``O`` or
``P-TYPE`` has no span scheme (POS tags, say) and is reported as ``"none"``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from noisebench.errors import InputError

SPAN_TAG = re.compile(r"^([BIESLU])-(.+)$")
NO_SCHEME = "none"

Span = tuple[int, int, str]  # (start, end exclusive, entity type), word indices in a sentence


def split_label(label: str) -> tuple[str, str]:
    """``"B-PER" -> ("B", "PER")``, ``"O" -> ("O", "")``."""
    match = SPAN_TAG.match(label)
    return (match.group(1), match.group(2)) if match else ("O", "")


def has_span_scheme(names: Sequence[str]) -> bool:
    return any(n != "O" for n in names) and all(n == "O" or SPAN_TAG.match(n) for n in names)


def entity_types(names: Sequence[str]) -> list[str]:
    return sorted({split_label(n)[1] for n in names if n != "O"})


def detect_scheme(names: Sequence[str], tags: np.ndarray, offsets: np.ndarray) -> str:
    """Name the tag scheme of ``tags`` (flat label ids; ``offsets`` has one entry per
    sentence plus one): ``IOB1``, ``IOB2``, ``IOBES``, ``BILOU`` or ``none``.

    IOB1 and IOB2 share a label set; they differ in whether an entity may begin with
    ``I-`` (IOB1 does, except right after an entity of the same type).
    """
    if not has_span_scheme(names):
        return NO_SCHEME
    prefixes = {split_label(n)[0] for n in names}
    if prefixes & {"L", "U"}:
        return "BILOU"
    if prefixes & {"E", "S"}:
        return "IOBES"
    prefix_of = np.array([split_label(n)[0] for n in names])
    type_of = np.array([split_label(n)[1] for n in names])
    tag_prefix, tag_type = prefix_of[tags], type_of[tags]
    previous = np.empty(len(tags), dtype=np.int64)
    previous[1:] = tags[:-1]
    previous[0] = 0
    sentence_start = np.zeros(len(tags), dtype=bool)
    sentence_start[offsets[:-1][offsets[:-1] < len(tags)]] = True
    continues = ~sentence_start & (prefix_of[previous] != "O") & (type_of[previous] == tag_type)
    return "IOB1" if np.any((tag_prefix == "I") & ~continues) else "IOB2"


def decode_spans(labels: Sequence[str]) -> list[Span]:
    """Entity spans of one sentence, conlleval-compatible.

    >>> decode_spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC"])
    [(0, 2, 'PER'), (3, 4, 'LOC'), (4, 5, 'LOC')]
    """
    spans: list[Span] = []
    previous_prefix, previous_type, start = "O", "", -1
    for i, label in enumerate([*labels, "O"]):
        prefix, type_ = split_label(label)
        prefix = {"L": "E", "U": "S"}.get(prefix, prefix)
        if start >= 0 and _ends_chunk(previous_prefix, prefix, previous_type, type_):
            spans.append((start, i, previous_type))
            start = -1
        if _starts_chunk(previous_prefix, prefix, previous_type, type_):
            start = i
        previous_prefix, previous_type = prefix, type_
    return spans


def _ends_chunk(previous: str, current: str, previous_type: str, current_type: str) -> bool:
    if previous in ("E", "S"):
        return True
    if previous in ("B", "I") and current in ("B", "S", "O"):
        return True
    return previous != "O" and previous_type != current_type


def _starts_chunk(previous: str, current: str, previous_type: str, current_type: str) -> bool:
    if current in ("B", "S"):
        return True
    if previous in ("E", "S", "O") and current in ("E", "I"):
        return True
    return current != "O" and previous_type != current_type


def encode_spans(spans: Sequence[Span], length: int, scheme: str) -> list[str]:
    """Labels of a sentence of ``length`` words holding non-overlapping ``spans``.

    >>> encode_spans([(0, 2, "PER"), (2, 3, "PER")], 4, "IOB1")
    ['I-PER', 'I-PER', 'B-PER', 'O']
    >>> encode_spans([(0, 2, "PER"), (3, 4, "LOC")], 4, "IOBES")
    ['B-PER', 'E-PER', 'O', 'S-LOC']
    """
    labels = ["O"] * length
    previous_end, previous_type = -1, ""
    for start, end, type_ in sorted(spans):
        if scheme in ("IOBES", "BILOU"):
            single, begin, inside, last = ("S", "B", "I", "E") if scheme == "IOBES" else "UBIL"
            if end - start == 1:
                labels[start] = f"{single}-{type_}"
                continue
            labels[start] = f"{begin}-{type_}"
            labels[start + 1 : end - 1] = [f"{inside}-{type_}"] * (end - start - 2)
            labels[end - 1] = f"{last}-{type_}"
        else:
            labels[start:end] = [f"I-{type_}"] * (end - start)
            touches_same_type = previous_end == start and previous_type == type_
            if scheme != "IOB1" or touches_same_type:
                labels[start] = f"B-{type_}"
        previous_end, previous_type = end, type_
    return labels


def encode_span_ids(
    spans: Sequence[Span], length: int, scheme: str, index: dict[str, int], model: str
) -> list[int]:
    """``encode_spans`` as label ids; a label the set lacks is an ``InputError`` that names
    the noise ``model`` that needed it."""
    try:
        return [index[label] for label in encode_spans(spans, length, scheme)]
    except KeyError as error:
        raise InputError(
            f"{model} noise needs label {error.args[0]}, which the label set lacks"
        ) from None


def require_span_scheme(scheme: str, model: str) -> None:
    """Span-level noise needs span tags: a tag set without a scheme is an ``InputError``."""
    if scheme == NO_SCHEME:
        raise InputError(
            f"{model} noise needs span tags (O, B-X, I-X, ...); this tag set has no span"
            " scheme (POS tags?): use --noise uniform, pair or --matrix"
        )
