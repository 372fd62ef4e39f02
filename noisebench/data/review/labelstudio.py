"""A Label Studio JSON export (Export → JSON) read as tasks of annotations: each task
checked against the manifest and the data, each labelled character range mapped to
whole words (or the task refused by id).

What an export holds besides ``labels`` results is kept, never read as labels: other
result items (a ``choices`` or ``textarea`` of a richer labelling config) travel to
``review.json`` as the task's ``answers``, and an annotation made only of them is no
answer about entities (its task is not reviewed, and listed); drafts (``drafts``: saved
but never submitted) review nothing and are counted.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from pathlib import Path

from noisebench.data import loading
from noisebench.data.review.answers import Annotation, ReviewedTask
from noisebench.data.review.spans import word_starts
from noisebench.data.schemes import Span
from noisebench.errors import InputError

LABELS = "labels"  # the result type of a span label


def read(path: Path, text: str, checks) -> list[ReviewedTask]:
    """The tasks of an export (``checks``: ``sampling.Reviewable``)."""
    tasks = loading.parse_json(path, text)
    if not isinstance(tasks, list):
        raise InputError(f"{path}: not a Label Studio JSON export (a list of tasks)")
    return [_task(task, position, checks) for position, task in enumerate(tasks)]


def _task(task: object, position: int, checks) -> ReviewedTask:
    """One task of a Label Studio export, checked, its annotations as word spans."""
    name = f"task #{position + 1}"
    if isinstance(task, dict) and isinstance(task.get("id"), (int, str)):
        name = f"task {task['id']}"
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise InputError(f"{checks.path}: {name}: no 'data' (export with Export → JSON)")
    data = task["data"]
    words = checks.check_sentence(name, data.get("sentence"), data.get("split"))
    if data.get("text") != " ".join(words):
        raise InputError(
            f"{checks.path}: {name}: its text differs from sentence {data['sentence']}'s words"
            f" in the data: {_first_difference(str(data.get('text')).split(' '), words)}"
        )
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        raise InputError(f"{checks.path}: {name}: 'annotations' is not a list")
    kept = [a for a in annotations if not (isinstance(a, dict) and a.get("was_cancelled"))]
    read = [_annotation(a, number, name, words, checks) for number, a in enumerate(kept)]
    answers = [answer for _, other in read for answer in other]
    with_labels = [a for a, other in read if a.spans or not other]
    pending = ""
    if read and not with_labels:
        pending = "its annotations hold only other answers (" + ", ".join(
            sorted({a["type"] for a in answers})) + "), no entity labels"  # fmt: skip
    elif not read and task.get("drafts"):
        pending = "a draft only, never submitted"
    return ReviewedTask(
        name, data["sentence"], with_labels, len(annotations) - len(kept), pending, answers
    )


def _first_difference(found: list[str], words: list[str]) -> str:
    for position, (here, there) in enumerate(zip(found, words, strict=False)):
        if here != there:
            return f"word {position + 1} is '{here}', not '{there}'"
    return f"{len(found)} words, not {len(words)}"


def _annotation(
    annotation: object, number: int, name: str, words: list[str], checks
) -> tuple[Annotation, list[dict]]:
    """An annotation's labelled spans, and its other result items (``answers``)."""
    where = f"{checks.path}: {name}"
    if not isinstance(annotation, dict) or not isinstance(annotation.get("result", []), list):
        raise InputError(f"{where}: annotation {number + 1} is not an object with a result list")
    spans, answers = [], []
    for item in annotation.get("result", []):
        if not isinstance(item, dict):
            raise InputError(f"{where}: annotation {number + 1}: a result item is not an object")
        if item.get("type") == LABELS:
            spans.append(_span(item.get("value"), where, words, checks.types))
        else:
            answers.append({"type": str(item.get("type")), "from_name": item.get("from_name"),
                            "value": item.get("value")})  # fmt: skip
    spans.sort()
    for first, second in itertools.pairwise(spans):
        if second[0] < first[1]:
            text = " ".join(words[first[0] : second[1]])
            raise InputError(f"{where}: overlapping spans in annotation"
                             f" {annotation.get('id', number + 1)} ('{text}')")  # fmt: skip
    annotator, email = _annotator(annotation.get("completed_by"))
    return Annotation(spans, annotator, email, _time(annotation, where), number), answers


def _span(value: object, where: str, words: list[str], types: list[str]) -> Span:
    """A labelled character range as a word span; it must cover whole words."""
    if not isinstance(value, dict) or not all(
        isinstance(value.get(k), int) and not isinstance(value.get(k), bool)
        for k in ("start", "end")
    ):
        raise InputError(f"{where}: a span without integer start and end: {value!r}")
    labels = value.get("labels")
    if not isinstance(labels, list) or len(labels) != 1:
        raise InputError(f"{where}: span {value['start']}–{value['end']} needs one label,"
                         f" found {labels!r}")  # fmt: skip
    if labels[0] not in types:
        raise InputError(
            f"{where}: unknown label '{labels[0]}' (the data's types: {', '.join(types)})"
        )
    starts = word_starts(words).tolist()
    ends = [start - 1 for start in starts[1:]]
    text = " ".join(words)
    start, end = value["start"], value["end"]
    if start not in starts[:-1] or end not in ends or end <= start:
        raise InputError(
            f"{where}: span {start}–{end} ('{text[start:end]}') does not fall on word"
            " boundaries (it must start at a word's first character and end at a word's end)"
        )
    if value.get("text") is not None and value["text"] != text[start:end]:
        raise InputError(
            f"{where}: span {start}–{end} says '{value['text']}' but the text there is"
            f" '{text[start:end]}'"
        )
    return (starts.index(start), ends.index(end) + 1, labels[0])


def _annotator(completed_by: object) -> tuple[str | None, str | None]:
    """Label Studio's ``completed_by``: a user id, or an object with ``id`` and ``email``."""
    if isinstance(completed_by, dict):
        user = completed_by.get("id")
        return (None if user is None else str(user)), completed_by.get("email")
    return (None if completed_by is None else str(completed_by)), None


def _time(annotation: dict, where: str) -> datetime | None:
    stamp = annotation.get("updated_at") or annotation.get("created_at")
    if stamp is None:
        return None
    try:
        return iso_time(str(stamp))
    except ValueError:
        raise InputError(f"{where}: '{stamp}' is not an ISO time") from None


def iso_time(stamp: str) -> datetime:
    """A time as Label Studio exports it, in UTC where it names no zone. Its ``Z`` for
    UTC is read here: Python 3.10's ``fromisoformat`` refuses it.

    >>> iso_time("2026-12-03T09:36:02.846797Z")
    datetime.datetime(2026, 12, 3, 9, 36, 2, 846797, tzinfo=datetime.timezone.utc)
    """
    moment = datetime.fromisoformat(stamp[:-1] + "+00:00" if stamp.endswith("Z") else stamp)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
