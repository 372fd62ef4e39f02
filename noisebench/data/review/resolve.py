"""Several reviewers' annotations of a task as one answer, by one rule, or none: a
task without a resolved answer is not reviewed (and ``review.json`` lists it, and why)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from noisebench.data.review.answers import Annotation, ReviewedTask
from noisebench.data.schemes import Span
from noisebench.errors import InputError

RULES = ("latest", "majority", "annotator:ID")


@dataclass
class Resolved:
    """A task's labels after the rule (``spans`` None: not reviewed), the spans without a
    majority (``majority`` only) and why it is not reviewed."""

    spans: list[Span] | None
    ties: list[Span] = field(default_factory=list)
    why: str = ""


def check_rule(rule: str) -> str:
    """``--resolve``: ``latest``, ``majority`` or ``annotator:ID``."""
    if rule in ("latest", "majority") or (rule.startswith("annotator:") and rule[10:]):
        return rule
    raise InputError(f"--resolve '{rule}': choose latest, majority or annotator:ID")


def resolve(task: ReviewedTask, rule: str) -> Resolved:
    """One task's labels by ``rule``:

    - ``latest``: the annotation updated (else created) last, else the last listed;
    - ``majority``: every word's answer (the span over it, or none) given by more than
      half of the annotations; a word without one (a tie, or annotators split three ways)
      leaves the task unresolved, and the spans they disagree on are listed;
    - ``annotator:ID``: that annotator's annotation (id or email; their latest).
    """
    if not task.annotations:
        why = task.pending or ("every annotation cancelled" if task.cancelled else "no annotation")
        return Resolved(None, why=why)
    if rule == "latest":
        return Resolved(_latest(task.annotations).spans)
    if rule == "majority":
        return majority([a.spans for a in task.annotations])
    wanted = rule.removeprefix("annotator:")
    theirs = [a for a in task.annotations if wanted in (a.annotator, a.email)]
    if not theirs:
        return Resolved(None, why=f"no annotation by {wanted}")
    return Resolved(_latest(theirs).spans)


def majority(annotations: list[list[Span]]) -> Resolved:
    """The answer more than half of ``annotations`` give on every word, or none.

    >>> majority([[(0, 2, "ORG")], [(0, 2, "ORG")], []]).spans
    [(0, 2, 'ORG')]
    >>> found = majority([[(0, 2, "ORG")], [(0, 1, "ORG")], [(0, 2, "LOC")]])
    >>> found.spans, found.why
    (None, 'no majority on words 1–2: (0, 1, ORG) 1, (0, 2, LOC) 1, (0, 2, ORG) 1')
    """
    voters = len(annotations)
    counts = Counter(span for spans in annotations for span in set(spans))
    winners = sorted(span for span, count in counts.items() if 2 * count > voters)
    covered = {word for start, end, _ in winners for word in range(start, end)}
    contested = sorted(
        span
        for span in counts
        if span not in winners
        and any(not (w in covered or _outvoted(w, annotations)) for w in range(*span[:2]))
    )
    if not contested:
        return Resolved(winners)
    first, last = min(s[0] for s in contested), max(s[1] for s in contested)
    votes = ", ".join(f"({s}, {e}, {t}) {counts[(s, e, t)]}" for s, e, t in contested)
    where = f"word {last}" if last == first + 1 else f"words {first + 1}–{last}"
    return Resolved(None, contested, f"no majority on {where}: {votes}")


def _outvoted(word: int, annotations: list[list[Span]]) -> bool:
    """Whether more than half of the annotations put no span over ``word``."""
    free = sum(not any(s <= word < e for s, e, _ in spans) for spans in annotations)
    return 2 * free > len(annotations)


def _latest(annotations: list[Annotation]) -> Annotation:
    earliest = datetime.min.replace(tzinfo=timezone.utc)
    return max(annotations, key=lambda a: (a.time or earliest, a.position))
