"""What ``noisebench detect -o DIR`` writes for a reviewer, all at once (a temporary
folder renamed into place, so a failed run leaves nothing half-written):

- ``issues.parquet`` and ``issues.jsonl``: the most suspect ``--budget`` share of each
  level (word, entity, sentence), one row per issue: level, rank, sentence, word span
  ``[start, end)``, words, given labels, suggested labels, score, type (entities), whether
  it is truly wrong (where the data has clean labels) and cleanlab's flag (``cv``, words);
- ``review.conll``: the flagged sentences, one word per line: word, given label, reviewed
  label (the given one with the flagged words' suggestions, written back valid in the
  scheme), and ``*`` on flagged words; each block counts as reviewed only once its
  header says ``reviewed: yes`` (``data/review/conll``);
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from noisebench.atomic import staged_directory
from noisebench.data.review import files
from noisebench.data.review.sampling import Origin
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


@dataclass(frozen=True)
class Source:
    """The dataset a detection's training sentences come from, as ``review merge``
    loads it, and the row of its train split each training sentence is."""

    origin: Origin
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
    return Source(Origin.of(spec, dataset_dict, "train"), training_rows(dataset_dict, config))


def write(
    out: Path,
    detection: Detection,
    share: float,
    scheme: str,
    document: dict,
    fixed=None,
    source: Source | None = None,
) -> list[dict]:
    """Write every file into ``out`` (replacing it only once the new folder is complete),
    and the ``fixed`` DatasetDict's splits where given; returns the issue rows. With
    ``source`` the review files number sentences as its rows and ``manifest.json`` names
    it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = issue_rows(detection, share)
    with staged_directory(Path(out), replace=True) as staging:
        pq.write_table(
            pa.Table.from_pylist(rows, schema=_issue_schema()), staging / "issues.parquet"
        )
        (staging / "issues.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        flagged = flagged_words(detection, share)
        reviewed = reviewed_labels(detection, flagged, scheme)
        scores = {r["sentence"]: r["score"] for r in rows if r["level"] == "sentence"}
        sentences = review_sentences(detection, list(scores), reviewed, flagged, scores, source)
        manifest = None
        if source is not None:
            listed = [s.row for s in sentences]
            manifest = source.origin.manifest("detect", "train", listed, None, len(listed))
        files.write(staging, sentences, detection.labels, scheme, manifest)
        (staging / "detection.json").write_text(json.dumps(document, indent=2) + "\n")
        pq.write_table(_word_table(detection), staging / SCORES_FILE)
        if fixed is not None:
            from noisebench.data import loading as data

            data.write_parquet(fixed, staging)
    return rows


def review_sentences(
    detection: Detection,
    sentences: list[int],
    reviewed: np.ndarray,
    flagged: np.ndarray,
    scores: dict,
    source: Source | None,
) -> list[files.Sentence]:
    """The ``sentences`` to review (numbered as the data's rows where ``source`` says),
    detect's suggestions pre-filled."""
    names = np.array(detection.labels, dtype=object)
    numbers = np.arange(len(detection.tokens)) if source is None else source.rows
    listed = []
    for sentence in sentences:
        words = slice(detection.offsets[sentence], detection.offsets[sentence + 1])
        prediction = {
            "model_version": f"noisebench-detect-{detection.detector}",
            "score": scores.get(sentence),
        }
        listed.append(
            files.Sentence(
                int(numbers[sentence]),
                detection.tokens[sentence],
                names[detection.given[words]].tolist(),
                names[reviewed[words]].tolist(),
                flagged[words].tolist(),
                prediction,
            )
        )
    return listed


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
