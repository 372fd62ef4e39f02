"""Reviewed labels written back into the data.

``merge`` reads a Label Studio JSON export or the edited ``review.conll`` back, checks it
against the manifest and the dataset (each failure one ``InputError`` line naming the
task id or the file's line), resolves several annotations of a task by one rule,
measures the annotators' agreement on spans, and makes the dataset with three more
columns on the reviewed split: ``reviewed`` (a boolean per sentence), ``reviewed_tags``
(the reviewed labels, valid in the dataset's scheme, on reviewed sentences; the given
labels elsewhere, never read there) and ``review_draw`` (how each reviewed sentence was
drawn: ``sample``, ``compare``, ``detect``). The data's other columns stay as they were.

A sentence reviewed again takes its new labels; the report says how many were, how their
labels changed against the earlier review, and keeps the earlier labels. A merge that
reviews no sentence (a pre-filled file that came back untouched, an export without a
submitted annotation) is refused: it would write nothing new.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from noisebench.atomic import staged_directory
from noisebench.data import loading
from noisebench.data.review import conll, files, history, labelstudio, sampling
from noisebench.data.review.answers import ReviewedTask
from noisebench.data.review.resolve import check_rule, resolve
from noisebench.data.review.spans import span_labels
from noisebench.errors import InputError

SCHEMA_VERSION = 1


@dataclass
class Merged:
    """What ``merge`` made: the dataset with its reviewed columns, and ``review.json``."""

    dataset: object  # datasets.DatasetDict
    report: dict
    scheme: str


def merge(
    spec: str,
    reviewed_path: Path,
    rule: str = "latest",
    manifest_path: Path | None = None,
    columns: loading.Columns | None = None,
) -> Merged:
    """Read the reviewed labels in ``reviewed_path`` back into ``spec`` (see the module's
    docstring); ``write`` writes the result."""
    rule, reviewed_path = check_rule(rule), Path(reviewed_path)
    if not reviewed_path.is_file():
        raise InputError(f"{reviewed_path}: no such file (a Label Studio JSON export or"
                         f" the edited {files.CONLL})")  # fmt: skip
    manifest_path = Path(manifest_path or reviewed_path.parent / files.MANIFEST)
    manifest = sampling.read_manifest(manifest_path)
    dataset_dict = loading.load(spec, columns, other_columns=True)
    checks = sampling.reviewable(manifest, manifest_path, dataset_dict, spec, reviewed_path)
    tasks = read_reviewed(reviewed_path, checks)
    resolved = {task.sentence: resolve(task, rule) for task in tasks}
    split = dataset_dict[checks.split]
    labels = _reviewed_labels(split, tasks, resolved, checks)
    if not labels:
        raise InputError(_nothing_reviewed(reviewed_path, tasks, resolved))
    kind = manifest.get("kind", loading.RANDOM_DRAW)
    design = manifest.get("compare") if kind == "compare" else None
    strata = None
    if isinstance(design, dict) and "stratum" in design:  # drawn by a design: its strata
        kind, strata = loading.DESIGN_DRAW, np.asarray(design["stratum"], dtype=np.int64)
    merged = dict(dataset_dict)
    merged[checks.split], counts, again = _with_reviewed(split, labels, kind, strata)
    report = {
        "schema_version": SCHEMA_VERSION,
        "data": str(spec),
        "reviewed_file": str(reviewed_path),
        "resolve": rule,
        "manifest": manifest,
        "split": checks.split,
        "counts": {**_task_counts(tasks, resolved, manifest), **counts},
        "agreement": _agreement(tasks),
        "ties": _listed(tasks, resolved, checks, ties=True),
        "unreviewed": _listed(tasks, resolved, checks, ties=False),
        "reviewed_again": again,
        "answers": [  # what tasks hold besides labels (a richer config's choices, text)
            {"task": t.name, "sentence": t.sentence, "answers": t.answers}
            for t in tasks
            if t.answers
        ],
        "review": loading.review_fingerprint(merged[checks.split]),
    }
    # every review merged into this data so far: how each sample was drawn
    this = {"split": checks.split, "kind": kind, "sentences": len(labels),
            "review": report["review"]}  # fmt: skip
    if isinstance(manifest.get("compare"), dict) and "design" in manifest["compare"]:
        this["design"] = manifest["compare"]["design"]  # a designed review's batches share it
    report["reviews"] = [*history.earlier_reviews(spec), this]
    import datasets

    return Merged(datasets.DatasetDict(merged), report, checks.scheme)


def write(merged: Merged, out: Path, force: bool = False) -> Path:
    """The merged data and its ``review.json`` into ``out`` (complete or not at all)."""
    out = sampling.check_out(out, force)
    with staged_directory(out, replace=True) as staging:
        loading.write_parquet(merged.dataset, staging)
        (staging / files.REPORT).write_text(json.dumps(merged.report, indent=2) + "\n")
    return out


def read_reviewed(path: Path, checks: sampling.Reviewable) -> list[ReviewedTask]:
    """The tasks of a Label Studio JSON export, or the blocks of an edited CoNLL file."""
    text = loading.read_text(path)
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        tasks = labelstudio.read(path, text, checks)
    else:
        tasks = conll.read(path, text, checks)
    seen: dict[int, str] = {}
    for task in tasks:
        if task.sentence in seen:
            raise InputError(
                f"{path}: {task.name}: sentence {task.sentence} is also {seen[task.sentence]}"
                " (imported twice?)"
            )
        seen[task.sentence] = task.name
    return tasks


def _nothing_reviewed(path: Path, tasks: list[ReviewedTask], resolved: dict) -> str:
    """Why a merge reviewed no sentence, in one line."""
    if not tasks:
        return f"{path}: no task or sentence block in it: nothing to merge"
    if all(task.pending == conll.UNMARKED for task in tasks):
        return (
            f"{path}: no block is marked 'reviewed: yes', so no sentence was reviewed (a"
            " pre-filled file that comes back untouched reviews nothing): change the header"
            " of each block you reviewed to '# sentence N reviewed: yes'"
        )
    if not any(task.annotations for task in tasks):
        return (
            f"{path}: no task has a submitted annotation, so no sentence was reviewed"
            " (pre-annotations and drafts review nothing): submit each reviewed task in"
            " Label Studio, then Export → JSON"
        )
    whys = sorted({resolved[task.sentence].why for task in tasks})
    return f"{path}: no task resolves to reviewed labels ({'; '.join(whys)[:300]})"


def _reviewed_labels(split, tasks, resolved: dict, checks) -> dict[int, list[int]]:
    """Each reviewed sentence's labels as ids, valid in the dataset's scheme."""
    names = loading.label_names(split)
    index = {name: position for position, name in enumerate(names)}
    labels = {}
    for task in tasks:
        spans = resolved[task.sentence].spans
        if spans is None:
            continue
        words = checks.words[task.sentence]
        encoded = span_labels(spans, len(words), checks.scheme)
        missing = [label for label in encoded if label not in index]
        if missing:
            raise InputError(
                f"{checks.path}: {task.name}: its labels need '{missing[0]}', which the"
                f" data's label set lacks ({', '.join(names)})"
            )
        labels[task.sentence] = [index[label] for label in encoded]
    return labels


def _with_reviewed(
    split, labels: dict[int, list[int]], kind: str, strata: np.ndarray | None = None
) -> tuple[object, dict, list]:
    """``split`` with its review columns (reviewed sentences of an earlier merge stay
    reviewed unless reviewed again; a sentence once drawn at random or by the design
    stays so), what changed, and each sentence reviewed again: its earlier and new
    labels. ``strata``: each sentence's stratum in the design that drew ``labels``; the
    split keeps one design's strata, and sentences an earlier design with other strata
    drew count as chosen from then on (they are not uniform within these strata)."""
    import pyarrow as pa

    given, offsets = loading.flat_tags(split)
    names = loading.label_names(split)
    if loading.REVIEWED_COLUMN in split.column_names:
        reviewed = loading.reviewed_sentences(split).copy()
        tags = loading.flat_tags(split, loading.REVIEWED_TAGS_COLUMN)[0].copy()
        draws = loading.review_draws(split)
        if draws is None:  # merged before draws were recorded: say so, never "chosen"
            draws = np.where(reviewed, loading.UNRECORDED_DRAW, None).astype(object)
        else:
            draws = draws.copy()
    else:
        reviewed, tags = np.zeros(len(split), dtype=bool), given.copy()
        draws = np.full(len(split), None, dtype=object)
    kept = loading.review_strata(split)
    if strata is not None and kept is not None and not np.array_equal(strata, kept):
        draws[draws == loading.DESIGN_DRAW] = "compare"  # another design's: chosen now
    strata = kept if strata is None else strata
    before = int(reviewed.sum())
    changed_words = changed_sentences = 0
    again = []
    for row, ids in labels.items():
        begin, end = offsets[row], offsets[row + 1]
        if reviewed[row]:
            earlier = tags[begin:end]
            differ = np.flatnonzero(earlier != np.asarray(ids))
            again.append({"sentence": row, "changed_words": len(differ),
                          "earlier": [names[t] for t in earlier],
                          "now": [names[t] for t in ids]})  # fmt: skip
        tags[begin:end] = ids
        reviewed[row] = True
        # drawn at random or by the split's design once, so it stays: a later review that
        # chose it must not pull it out of the sample (that would bias the estimate)
        if draws[row] not in (loading.RANDOM_DRAW, loading.DESIGN_DRAW):
            draws[row] = kind
        differ = int(np.sum(given[begin:end] != np.asarray(ids)))
        changed_words += differ
        changed_sentences += differ > 0
    table = split.data.table
    extra = [name for name in table.column_names if name not in loading.RESERVED_COLUMNS]

    def column(name):
        return table.column(name).combine_chunks() if name in table.column_names else None

    made = loading.make_split(
        column("tokens"),
        column("tags"),
        names,
        column("clean_tags"),
        column(loading.IGNORE_COLUMN),
        pa.array(reviewed),
        pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(tags)),
        pa.array(draws.tolist(), type=pa.string()),
        table.select(extra) if extra else None,
        None if strata is None else pa.array(strata, type=pa.int32()),
    )
    counts = {
        "reviewed_sentences": len(labels),
        "reviewed_before": before,
        "reviewed_in_split": int(reviewed.sum()),
        "reviewed_words": int(sum(len(ids) for ids in labels.values())),
        "changed_words": changed_words,
        "changed_sentences": changed_sentences,
        "reviewed_again": len(again),
        "changed_again_sentences": sum(row["changed_words"] > 0 for row in again),
        "changed_again_words": sum(row["changed_words"] for row in again),
    }
    return made, counts, again


def _task_counts(tasks: list[ReviewedTask], resolved: dict, manifest: dict) -> dict:
    return {
        "manifest_sentences": len(manifest["sentences"]),
        "tasks": len(tasks),
        "annotations": sum(len(task.annotations) for task in tasks),
        "cancelled": sum(task.cancelled for task in tasks),
        "drafts_only": sum(task.pending.startswith("a draft") for task in tasks),
        "other_answers": sum(bool(task.answers) for task in tasks),
        "multiply_annotated": sum(len(task.annotations) >= 2 for task in tasks),
        "unreviewed_tasks": sum(resolved[task.sentence].spans is None for task in tasks),
        "tied_spans": sum(len(resolved[task.sentence].ties) for task in tasks),
    }


def _agreement(tasks: list[ReviewedTask]) -> dict:
    from noisebench.data.agreement import agreement

    return agreement([[(a.name, a.spans) for a in task.annotations] for task in tasks])


def _listed(tasks, resolved: dict, checks, ties: bool) -> list[dict]:
    """The tasks with spans without a majority (those spans), or the tasks left
    unreviewed (why)."""
    rows = []
    for task in tasks:
        outcome = resolved[task.sentence]
        row = {"task": task.name, "sentence": task.sentence}
        if ties and outcome.ties:
            words = checks.words[task.sentence]
            row["spans"] = [
                {"start": s, "end": e, "type": t, "text": " ".join(words[s:e])}
                for s, e, t in outcome.ties
            ]
            rows.append(row)
        elif not ties and outcome.spans is None:
            rows.append({**row, "why": outcome.why})
    return rows
