"""``review.conll``: a sentence per block, written for review and read back.

    # sentence 12 reviewed: no
    John	B-PER	B-PER
    Smith	I-PER	I-PER	*

The header names the sentence's row in the split and whether it was reviewed; each line
holds a word, its given label, the label to review (pre-filled: the given label, or
detect's suggestion) and ``*`` on the words detect flagged. A block counts as reviewed
only where the reviewer changed its header to ``reviewed: yes``: a pre-filled file that
comes back untouched reviews nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

from noisebench.data.review.answers import Annotation, ReviewedTask
from noisebench.data.review.spans import known_label, sentence_spans
from noisebench.errors import InputError

HEADER = re.compile(r"^# sentence (\d+)(?: reviewed: *(\S*))?\s*$")
MARKS = {"yes": True, "no": False}
UNMARKED = "not marked 'reviewed: yes' in review.conll"


def block(
    sentence: int,
    words: list[str],
    given: list[str],
    to_review: list[str],
    flagged: list[bool] | None = None,
) -> list[str]:
    """A sentence's lines: the header (not yet reviewed), then word, given label, label
    to review (and ``*`` on ``flagged`` words), and a blank line."""
    lines = [f"# sentence {sentence} reviewed: no"]
    for position, (word, label, review) in enumerate(zip(words, given, to_review, strict=True)):
        mark = "\t*" if flagged is not None and flagged[position] else ""
        lines.append(f"{word}\t{label}\t{review}{mark}")
    return [*lines, ""]


def read(path: Path, text: str, checks) -> list[ReviewedTask]:
    """The blocks of an edited ``review.conll`` (``checks``: ``sampling.Reviewable``);
    a block not marked ``reviewed: yes`` is a task without annotation."""
    blocks: list[tuple[int, int, bool, list[tuple[int, list[str]]]]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        header = HEADER.match(line)
        if header:
            mark = (header.group(2) or "no").lower()
            if mark not in MARKS:
                raise InputError(
                    f"{path}:{number}: 'reviewed: {header.group(2)}': write yes (reviewed) or no"
                )
            blocks.append((number, int(header.group(1)), MARKS[mark], []))
        elif line.strip():
            fields = line.split("\t")
            if not blocks or len(fields) not in (3, 4) or fields[3:] not in ([], ["*"]):
                raise InputError(
                    f"{path}:{number}: expected '# sentence N reviewed: yes|no' or word TAB"
                    f" given label TAB reviewed label [TAB *], found '{line}'"
                )
            blocks[-1][3].append((number, fields))
    return [_task(path, entry, checks) for entry in blocks]


def _task(path: Path, entry: tuple, checks) -> ReviewedTask:
    header_line, sentence, marked, lines = entry
    words = checks.check_sentence(f"line {header_line}", sentence)
    if len(lines) != len(words):
        raise InputError(f"{path}:{header_line}: sentence {sentence} has {len(words)} words in"
                         f" the data, {len(lines)} here")  # fmt: skip
    labels = []
    for (number, fields), word in zip(lines, words, strict=True):
        if fields[0] != word:
            raise InputError(f"{path}:{number}: word '{fields[0]}' is not sentence {sentence}'s"
                             f" '{word}' in the data")  # fmt: skip
        if not known_label(fields[2], checks.types, checks.scheme):
            raise InputError(
                f"{path}:{number}: unknown label '{fields[2]}' (the data's types:"
                f" {', '.join(checks.types)})"
            )
        labels.append(fields[2])
    name = f"line {header_line}"
    if not marked:
        return ReviewedTask(name, sentence, [], pending=UNMARKED)
    return ReviewedTask(name, sentence, [Annotation(sentence_spans(labels, checks.scheme))])
