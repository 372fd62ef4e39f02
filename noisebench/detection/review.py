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
  the reviewed labels' entities as pre-annotations (``predictions``);
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
from pathlib import Path

import numpy as np

from noisebench.data.schemes import decode_spans
from noisebench.detection.fix import reviewed_labels
from noisebench.detection.score import Detection, flagged_words, top_share

LABEL_STUDIO_FROM, LABEL_STUDIO_TO = "label", "text"  # the names of a NER labelling config


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


def conll_text(detection: Detection, sentences: list[int], reviewed: np.ndarray,
               flagged: np.ndarray) -> str:  # fmt: skip
    names, lines = detection.labels, []
    for sentence in sentences:
        begin, end = detection.offsets[sentence], detection.offsets[sentence + 1]
        lines.append(f"# sentence {sentence}")
        for word, position in zip(detection.tokens[sentence], range(begin, end), strict=True):
            mark = "\t*" if flagged[position] else ""
            lines.append(
                f"{word}\t{names[detection.given[position]]}\t{names[reviewed[position]]}{mark}"
            )
        lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")


def label_studio_tasks(
    detection: Detection, sentences: list[int], reviewed: np.ndarray, scores: dict
) -> list[dict]:
    """One task per sentence: its text (words joined by spaces) and the reviewed labels'
    entities as pre-annotations with character offsets."""
    tasks = []
    for sentence in sentences:
        words = detection.tokens[sentence]
        begin, end = detection.offsets[sentence], detection.offsets[sentence + 1]
        starts = np.concatenate([[0], np.cumsum([len(w) + 1 for w in words])])
        text = " ".join(words)
        result = []
        labels = [detection.labels[t] for t in reviewed[begin:end]]
        for number, (first, stop, type_) in enumerate(decode_spans(labels)):
            char_start, char_end = int(starts[first]), int(starts[stop] - 1)
            result.append(
                {
                    "id": f"s{sentence}e{number}",
                    "from_name": LABEL_STUDIO_FROM,
                    "to_name": LABEL_STUDIO_TO,
                    "type": "labels",
                    "value": {
                        "start": char_start,
                        "end": char_end,
                        "text": text[char_start:char_end],
                        "labels": [type_],
                    },
                }
            )
        tasks.append(
            {
                "data": {"text": text, "sentence": sentence},
                "predictions": [
                    {
                        "model_version": f"noisebench-detect-{detection.detector}",
                        "score": scores.get(sentence),
                        "result": result,
                    }
                ],
            }
        )
    return tasks


def write(
    out: Path,
    detection: Detection,
    share: float,
    scheme: str,
    document: dict,
    fixed=None,
) -> list[dict]:
    """Write every file into ``out`` (replacing it) by way of a temporary folder, and the
    ``fixed`` DatasetDict's splits where given; returns the issue rows."""
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
        sentence_rows = [r for r in rows if r["level"] == "sentence"]
        sentences = [r["sentence"] for r in sentence_rows]
        scores = {r["sentence"]: r["score"] for r in sentence_rows}
        (temporary / "review.conll").write_text(conll_text(detection, sentences, reviewed, flagged))
        tasks = label_studio_tasks(detection, sentences, reviewed, scores)
        (temporary / "labelstudio.json").write_text(json.dumps(tasks, indent=1) + "\n")
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
