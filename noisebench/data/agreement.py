"""How far reviewers agree on spans: pairwise F1 between the annotations of one task.

Two annotations ``A`` and ``B`` of a sentence are compared span by span (a span is
``(start, end, type)`` in words). A span of ``A`` is *matched* when ``B`` has the same
span (exact: same start, end and type) or a span of the same type sharing at least one
word (overlap), and the same for ``B``'s spans against ``A``. Pooled over every pair of
annotations of every task with two or more, agreement is

    F1 = (matched spans of A + matched spans of B) / (spans of A + spans of B)

which for exact matching is the usual pairwise F1, 2·|A ∩ B| / (|A| + |B|), symmetric in
the two annotators (Hripcsak and Rothschild, 2005); per type, only that type's spans
count. No spans on either side leave it undefined (None).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence

from noisebench.data.schemes import Span

KINDS = ("exact", "overlap")


def matched(spans: Sequence[Span], others: Sequence[Span], kind: str) -> int:
    """How many of ``spans`` have a partner among ``others``.

    >>> matched([(0, 2, "PER"), (3, 4, "LOC")], [(1, 2, "PER"), (3, 4, "ORG")], "overlap")
    1
    >>> matched([(0, 2, "PER"), (3, 4, "LOC")], [(1, 2, "PER"), (3, 4, "LOC")], "exact")
    1
    """
    if kind == "exact":
        wanted = set(others)
        return sum(span in wanted for span in spans)
    return sum(
        any(type_ == other_type and start < other_end and other_start < end
            for other_start, other_end, other_type in others)
        for start, end, type_ in spans
    )  # fmt: skip


class _Tally:
    """Matched and compared spans, per kind."""

    def __init__(self) -> None:
        self.spans = 0
        self.matched = dict.fromkeys(KINDS, 0)
        self.tasks = 0

    def add(self, first: Sequence[Span], second: Sequence[Span]) -> None:
        self.spans += len(first) + len(second)
        for kind in KINDS:
            self.matched[kind] += matched(first, second, kind) + matched(second, first, kind)

    def scores(self) -> dict:
        return {kind: (self.matched[kind] / self.spans if self.spans else None) for kind in KINDS}


def agreement(tasks: Sequence[Sequence[tuple[str, Sequence[Span]]]]) -> dict:
    """Span agreement over ``tasks``, each a list of ``(annotator, spans)``, one per
    annotation: overall, per type and per pair of annotators (over the tasks they
    share), as in the module's docstring.

    >>> a, b = ("1", [(0, 2, "PER"), (3, 4, "LOC")]), ("2", [(0, 2, "PER"), (3, 5, "LOC")])
    >>> report = agreement([[a, b]])
    >>> report["exact"], report["overlap"], report["by_type"]["LOC"]
    (0.5, 1.0, {'spans': 2, 'exact': 0.0, 'overlap': 1.0})
    """
    overall, by_type, by_pair = _Tally(), defaultdict(_Tally), defaultdict(_Tally)
    shared = [task for task in tasks if len(task) >= 2]
    pairs = 0
    for task in shared:
        seen_pairs = set()
        for (first_name, first), (second_name, second) in itertools.combinations(task, 2):
            pairs += 1
            overall.add(first, second)
            for type_ in {span[2] for span in [*first, *second]}:
                by_type[type_].add(_of_type(first, type_), _of_type(second, type_))
            key = tuple(sorted((first_name, second_name)))
            by_pair[key].add(first, second)
            seen_pairs.add(key)
        for key in seen_pairs:
            by_pair[key].tasks += 1
    return {
        "tasks": len(shared),
        "pairs": pairs,
        "spans": overall.spans,
        **overall.scores(),
        "by_type": {t: {"spans": by_type[t].spans, **by_type[t].scores()} for t in sorted(by_type)},
        "by_annotators": [
            {"annotators": list(key), "tasks": tally.tasks, "spans": tally.spans, **tally.scores()}
            for key, tally in sorted(by_pair.items())
        ],
    }


def _of_type(spans: Sequence[Span], type_: str) -> list[Span]:
    return [span for span in spans if span[2] == type_]
