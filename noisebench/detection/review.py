"""What ``noisebench detect -o DIR`` writes for a reviewer, all at once (a temporary
folder renamed into place, so a failed run leaves nothing half-written):

- ``issues.parquet`` and ``issues.jsonl``: the most suspect ``--budget`` share of each
  level (word, entity, sentence), one row per issue: level, rank, sentence, word span
  ``[start, end)``, words, given labels, suggested labels, score, type (entities), whether
  it is truly wrong (where the data has clean labels) and cleanlab's flag (``cv``, words);
- ``review.conll``: the flagged sentences, one word per line: word, given label, reviewed
  label (the given one with the flagged words' suggestions, written back valid in the
  scheme), and ``*`` on flagged words;
- ``labelstudio.json``: the same sentences as Label Studio tasks (plain JSON import),
  the reviewed labels' entities as pre-annotations (``predictions``), with
  ``labelstudio-config.xml``, the project's labelling config;
- ``manifest.json``: the data the sentences come from (as ``--data`` names it: the data
  as given, or the cached corrupted copy when detect added the noise), its fingerprint
  and the sentences listed, so ``noisebench review merge`` reads the review back as it
  reads a ``review sample`` (the review files number sentences as the rows of that
  data's train split, also where a validation share was carved from it);
- ``detection.json``: the settings, the cost, and the scores against the truth;
- ``scores.parquet``: every training word's score, given and suggested label and truth
  (what ``leaderboard`` compares detectors with, paired over sentences);
- with ``--fix``: the fixed dataset itself, ``train.parquet`` (``validation.parquet``,
  ``test.parquet`` as they were), so the folder is a valid ``--data`` input everywhere
  (the loader reads the split files and skips the rest).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from noisebench.data import review as data_review
from noisebench.detection.fix import reviewed_labels
from noisebench.detection.score import Detection, flagged_words, top_share


def issue_rows(detection: Detection, share: float) -> list[dict]:
    """The most suspect ``share`` of each level's listed units, as issue rows."""
    rows = []
    names = detection.labels
    for level, ranking in detection.rankings().items():
        for rank, unit in enumerate(top_share(ranking, share), start=1):
            sentence = int(ranking.sentence[unit])
            start, end = int(ranking.start[unit]), int(ranking.end[unit])
            begin = int(detection.offsets[sentence])
            words = slice(begin + start, begin + end)
            score = float(ranking.score[unit])
            row = {
                "level": level,
                "rank": rank,
                "sentence": sentence,
                "start": start,
                "end": end,
                "words": detection.tokens[sentence][start:end],
                "given": [names[t] for t in detection.given[words]],
                "suggested": [names[t] for t in detection.suggested[words]],
                "score": score if np.isfinite(score) else None,
                "type": ranking.kind[unit] if ranking.kind else None,
                "truly_wrong": None if ranking.truth is None else bool(ranking.truth[unit]),
                "flagged": (
                    bool(detection.flags[begin + start])
                    if detection.flags is not None and level == "word"
                    else None
                ),
            }
            rows.append(row)
    return rows


def conll_text(
    detection: Detection,
    sentences: list[int],
    reviewed: np.ndarray,
    flagged: np.ndarray,
    numbers: np.ndarray,
) -> str:
    """``review.conll``: the ``sentences`` (numbered as the data's rows, ``numbers``)."""
    names, lines = detection.labels, []
    for sentence in sentences:
        begin, end = detection.offsets[sentence], detection.offsets[sentence + 1]
        lines += data_review.conll_block(
            int(numbers[sentence]),
            detection.tokens[sentence],
            [names[t] for t in detection.given[begin:end]],
            [names[t] for t in reviewed[begin:end]],
            flagged[begin:end].tolist(),
        )
    return "\n".join(lines) + ("\n" if lines else "")


def label_studio_tasks(
    detection: Detection,
    sentences: list[int],
    reviewed: np.ndarray,
    scores: dict,
    scheme: str,
    numbers: np.ndarray,
) -> list[dict]:
    """One task per sentence (numbered as the data's rows, ``numbers``): its text (words
    joined by spaces) and the reviewed labels' entities as pre-annotations."""
    tasks = []
    for sentence in sentences:
        begin, end = detection.offsets[sentence], detection.offsets[sentence + 1]
        prediction = {
            "model_version": f"noisebench-detect-{detection.detector}",
            "score": scores.get(sentence),
        }
        tasks.append(
            data_review.label_studio_task(
                int(numbers[sentence]),
                detection.tokens[sentence],
                [detection.labels[t] for t in reviewed[begin:end]],
                scheme,
                {},
                prediction,
            )
        )
    return tasks


@dataclass(frozen=True)
class Source:
    """The dataset a detection's training sentences come from, as ``review merge``
    loads it, and the row of its train split each training sentence is."""

    origin: data_review.Origin
    rows: np.ndarray  # (S,) training sentence -> row of the data's train split


def source_of(prepared) -> Source:
    """The data a prepared run trains on, named as ``--data`` takes it: the data as given,
    or its corrupted copy in the cache when the run adds noise."""
    from noisebench.data import loading
    from noisebench.training.prepare import corrupted_copy, training_rows

    config = prepared.config
    if config.adds_noise:
        spec, columns = str(corrupted_copy(config)), None
    else:
        spec = config.data
        columns = loading.Columns(config.token_column, config.tag_column, config.labels)
    dataset_dict = loading.load(spec, columns)
    return Source(
        data_review.Origin.of(spec, dataset_dict, "train"), training_rows(dataset_dict, config)
    )


def write(
    out: Path,
    detection: Detection,
    share: float,
    scheme: str,
    document: dict,
    fixed=None,
    source: Source | None = None,
) -> list[dict]:
    """Write every file into ``out`` (replacing it) by way of a temporary folder, and the
    ``fixed`` DatasetDict's splits where given; returns the issue rows. With ``source``
    the review files number sentences as its rows and ``manifest.json`` names it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    try:
        rows = issue_rows(detection, share)
        pq.write_table(
            pa.Table.from_pylist(rows, schema=_issue_schema()), temporary / "issues.parquet"
        )
        (temporary / "issues.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        flagged = flagged_words(detection, share)
        reviewed = reviewed_labels(detection, flagged, scheme)
        scores = {r["sentence"]: r["score"] for r in rows if r["level"] == "sentence"}
        _write_review_files(temporary, detection, scheme, source, flagged, reviewed, scores)
        (temporary / "detection.json").write_text(json.dumps(document, indent=2) + "\n")
        pq.write_table(_word_table(detection), temporary / SCORES_FILE)
        if fixed is not None:
            from noisebench.data import loading as data

            data.write_parquet(fixed, temporary)
        if out.exists():
            shutil.rmtree(out)
        temporary.rename(out)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return rows


def _write_review_files(
    folder: Path,
    detection: Detection,
    scheme: str,
    source: Source | None,
    flagged: np.ndarray,
    reviewed: np.ndarray,
    scores: dict,
) -> None:
    """``review.conll``, ``labelstudio.json``, the labelling config and (with ``source``)
    ``manifest.json``, for the sentences in ``scores``."""
    sentences = list(scores)
    numbers = np.arange(len(detection.tokens)) if source is None else source.rows
    conll = conll_text(detection, sentences, reviewed, flagged, numbers)
    (folder / data_review.CONLL).write_text(conll)
    tasks = label_studio_tasks(detection, sentences, reviewed, scores, scheme, numbers)
    (folder / data_review.TASKS).write_text(json.dumps(tasks, indent=1) + "\n")
    types = data_review.entity_types(detection.labels, scheme)
    (folder / data_review.LABELLING_CONFIG).write_text(data_review.labelling_config(types))
    if source is not None:
        listed = [int(source.rows[s]) for s in sentences]
        manifest = source.origin.manifest("detect", "train", listed, None, len(listed))
        (folder / data_review.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


SCORES_FILE = "scores.parquet"


def _word_table(detection: Detection):
    import pyarrow as pa

    sentence = np.repeat(np.arange(len(detection.offsets) - 1), np.diff(detection.offsets))
    columns = {
        "sentence": pa.array(sentence, pa.int64()),
        "word": pa.array(np.arange(len(sentence)) - detection.offsets[sentence], pa.int64()),
        "score": pa.array(detection.word_scores, pa.float64()),
        "given": pa.array(detection.given, pa.int64()),
        "suggested": pa.array(detection.suggested, pa.int64()),
    }
    if detection.wrong is not None:
        columns["truly_wrong"] = pa.array(detection.wrong)
    return pa.table(columns)


def read_word_scores(folder: Path) -> dict[str, np.ndarray] | None:
    """A detection folder's ``scores.parquet`` as arrays (None when absent)."""
    import pyarrow.parquet as pq

    path = Path(folder) / SCORES_FILE
    if not path.is_file():
        return None
    table = pq.read_table(path)
    return {name: table.column(name).to_numpy() for name in table.column_names}


def _issue_schema():
    import pyarrow as pa

    words = pa.list_(pa.string())
    return pa.schema(
        [
            ("level", pa.string()),
            ("rank", pa.int64()),
            ("sentence", pa.int64()),
            ("start", pa.int64()),
            ("end", pa.int64()),
            ("words", words),
            ("given", words),
            ("suggested", words),
            ("score", pa.float64()),
            ("type", pa.string()),
            ("truly_wrong", pa.bool_()),
            ("flagged", pa.bool_()),
        ]
    )
