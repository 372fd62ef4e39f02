"""The reviews merged into a dataset so far (``review.json``'s ``reviews``), and how
their sentences were drawn."""

from __future__ import annotations

import json
from pathlib import Path

from noisebench.data.review.files import REPORT


def earlier_reviews(spec) -> list[dict]:
    """The reviews merged into ``spec`` before (its ``review.json``, where ``spec`` is a
    folder that ``review merge`` wrote): ``{"split", "kind", "sentences"}`` each, ``kind``
    as the manifest says how the sentences were drawn (``sample``: uniformly at random;
    ``compare``: where runs disagree, by a design where the entry names one (``design``);
    ``detect``: the likely wrong labels)."""
    path = Path(str(spec)) / REPORT
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return []
    if not isinstance(report, dict):
        return []
    if "reviews" in report:
        return list(report["reviews"])
    counts = report.get("counts", {})
    return [{"split": report.get("split"), "kind": report.get("manifest", {}).get("kind"),
             "sentences": counts.get("reviewed_sentences")}]  # fmt: skip


def how_drawn(spec, split: str) -> str | None:
    """How the reviewed sentences of ``split`` merged into ``spec`` were drawn: ``random``
    where every review of it drew them uniformly at random (``review sample`` without
    ``--compare``: only then are scores on them estimates of the split's), ``chosen``
    where any review chose them (``--compare``, detect's likely wrong labels), None where
    nothing beside the data records it."""
    kinds = {r.get("kind") for r in earlier_reviews(spec) if r.get("split") == split}
    if not kinds:
        return None
    return "random" if kinds == {"sample"} else "chosen"
