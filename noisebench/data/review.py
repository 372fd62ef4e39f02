"""Review samples out, reviewed labels back in: the data stage of a review (datasets,
never models).

    noisebench review sample my-data --split validation -n 300 --seed 0 -o review
    noisebench review merge my-data export.json -o my-data-reviewed

A review folder (``review sample``, and ``detect -o``) holds ``labelstudio.json`` (one
Label Studio task per sentence: ``data`` with ``text`` = the words joined by single
spaces, ``sentence`` = its row in the split, and ``split``; the current labels' entities
as pre-annotations), ``labelstudio-config.xml`` (the labelling config for the entity
types), ``review.conll`` (``# sentence N``, then word, given label, label to review) and
``manifest.json`` (the dataset's fingerprint, the split, the sentence rows, the seed).

``merge`` reads a Label Studio JSON export or the edited ``review.conll`` back, checks it
against the manifest and the dataset (each failure one ``InputError`` line naming the
task id or the file's line), maps character offsets to words, resolves several
annotations of a task by one rule, measures the annotators' agreement on spans, and
writes the dataset with two more columns on the reviewed split: ``reviewed`` (a boolean
per sentence) and ``reviewed_tags`` (the reviewed labels, valid in the dataset's scheme,
on reviewed sentences; the given labels elsewhere, never read there).
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from noisebench.atomic import staged_directory
from noisebench.data import loading, schemes
from noisebench.data.schemes import NO_SCHEME, SPAN_TAG, Span, decode_spans, encode_spans
from noisebench.errors import InputError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
TASKS = "labelstudio.json"
LABELLING_CONFIG = "labelstudio-config.xml"
CONLL = "review.conll"
REPORT = "review.json"
FROM_NAME, TO_NAME = "label", "text"  # the control and object names of the labelling config
GIVEN_LABELS_MODEL = "noisebench-given-labels"  # a sample's pre-annotations: the labels as given
RESOLVE_RULES = ("latest", "majority", "annotator:ID")
CONLL_HEADER = re.compile(r"^# sentence (\d+)$")


# ------------------------------------------------------------------ spans in any scheme


def entity_types(names: list[str], scheme: str) -> list[str]:
    """What a reviewer labels: entity types, or every tag but ``O`` without a scheme.

    >>> entity_types(["O", "B-PER", "I-PER", "B-LOC"], "IOB2"), entity_types(["NN", "O"], "none")
    (['LOC', 'PER'], ['NN'])
    """
    if scheme == NO_SCHEME:
        return sorted(name for name in names if name != "O")
    return schemes.entity_types(names)


def sentence_spans(labels: list[str], scheme: str) -> list[Span]:
    """A sentence's labels as spans: entities, or one span per word not ``O`` without a
    scheme (POS tags, say).

    >>> sentence_spans(["NN", "O", "VB"], "none")
    [(0, 1, 'NN'), (2, 3, 'VB')]
    """
    if scheme != NO_SCHEME:
        return decode_spans(labels)
    return [(i, i + 1, label) for i, label in enumerate(labels) if label != "O"]


def span_labels(spans: list[Span], length: int, scheme: str) -> list[str | None]:
    """Non-overlapping ``spans`` as a sentence's labels, valid in ``scheme``; without a
    scheme each word of a span takes its type and the others ``O``."""
    if scheme != NO_SCHEME:
        return encode_spans(spans, length, scheme)
    labels = ["O"] * length
    for start, end, type_ in spans:
        labels[start:end] = [type_] * (end - start)
    return labels


def word_starts(words: list[str]) -> np.ndarray:
    """Each word's first character in the words joined by single spaces, and one past
    the end (``len(words) + 1`` entries).

    >>> word_starts(["EU", "rejects", "it"]).tolist()
    [0, 3, 11, 14]
    """
    return np.concatenate([[0], np.cumsum([len(w) + 1 for w in words])]).astype(np.int64)


# ------------------------------------------------------------------------ out to review


def label_studio_task(
    sentence: int, words: list[str], labels: list[str], scheme: str, data: dict, prediction: dict
) -> dict:
    """One Label Studio task: ``data`` (``text``, ``sentence``, then ``data``'s keys) and
    the ``labels``' spans as pre-annotations (``prediction``'s keys, then ``result``)."""
    starts, text = word_starts(words), " ".join(words)
    result = []
    for number, (first, stop, type_) in enumerate(sentence_spans(labels, scheme)):
        char_start, char_end = int(starts[first]), int(starts[stop] - 1)
        result.append(
            {
                "id": f"s{sentence}e{number}",
                "from_name": FROM_NAME,
                "to_name": TO_NAME,
                "type": "labels",
                "value": {
                    "start": char_start,
                    "end": char_end,
                    "text": text[char_start:char_end],
                    "labels": [type_],
                },
            }
        )
    return {
        "data": {"text": text, "sentence": sentence, **data},
        "predictions": [{**prediction, "result": result}],
    }


def labelling_config(types: list[str]) -> str:
    """The ``<View>`` to paste into a Label Studio project (Settings → Labeling Interface
    → Code) for these entity types.

    >>> print(labelling_config(["LOC", "PER"]), end="")
    <View>
      <Labels name="label" toName="text">
        <Label value="LOC"/>
        <Label value="PER"/>
      </Labels>
      <Text name="text" value="$text"/>
    </View>
    """
    from xml.sax.saxutils import quoteattr

    labels = "".join(f"    <Label value={quoteattr(t)}/>\n" for t in sorted(types))
    return (
        f'<View>\n  <Labels name="{FROM_NAME}" toName="{TO_NAME}">\n{labels}  </Labels>\n'
        f'  <Text name="{TO_NAME}" value="${TO_NAME}"/>\n</View>\n'
    )


def conll_block(
    sentence: int,
    words: list[str],
    given: list[str],
    reviewed: list[str],
    flagged: list[bool] | None = None,
) -> list[str]:
    """A sentence's lines in ``review.conll``: ``# sentence N``, then word, given label,
    label to review (and ``*`` on ``flagged`` words), and a blank line."""
    lines = [f"# sentence {sentence}"]
    for position, (word, label, review) in enumerate(zip(words, given, reviewed, strict=True)):
        mark = "\t*" if flagged is not None and flagged[position] else ""
        lines.append(f"{word}\t{label}\t{review}{mark}")
    return [*lines, ""]


@dataclass(frozen=True)
class Origin:
    """The dataset a review was drawn from: as named, and what identifies it."""

    data: str
    fingerprint: str
    labels: list[str]
    scheme: str

    @classmethod
    def of(cls, spec: str | Path, dataset_dict, split: str) -> Origin:
        return cls(
            str(spec),
            loading.fingerprint(dataset_dict),
            loading.label_names(dataset_dict[split]),
            loading.scheme(dataset_dict),
        )

    def manifest(
        self, kind: str, split: str, sentences: list[int], seed: int | None, n: int
    ) -> dict:
        """``manifest.json``: what ``merge`` checks an export against."""
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": kind,
            "data": self.data,
            "dataset": loading.dataset_name(self.data),
            "fingerprint": self.fingerprint,
            "split": split,
            "sentences": [int(s) for s in sentences],
            "seed": seed,
            "n": n,
            "labels": self.labels,
            "scheme": self.scheme,
        }


class Focus:
    """Where a focused sample draws from (``studies.focus.Disagreement``): ``rows(split,
    name)`` the split's rows to draw from, ``describe(pool, size)`` what the manifest
    records about it."""

    def rows(self, split, name: str) -> np.ndarray:  # pragma: no cover - an interface
        raise NotImplementedError

    def describe(self, pool: int, size: int) -> dict:  # pragma: no cover - an interface
        raise NotImplementedError


def sample_rows(sentences: int, n: int, seed: int) -> np.ndarray:
    """``n`` rows of ``sentences`` drawn uniformly without replacement, in the order
    drawn (so the first k are themselves a uniform sample, and a larger ``n`` with the
    same seed extends a smaller one); all of them, sorted, when ``n >= sentences``.

    >>> sample_rows(10, 3, 0).tolist(), sample_rows(10, 5, 0).tolist()
    ([4, 6, 2], [4, 6, 2, 7, 3])
    """
    if n >= sentences:
        return np.arange(sentences)
    return np.random.default_rng(seed).permutation(sentences)[:n]


@dataclass
class Sample:
    """What ``sample`` wrote: the folder, its manifest, and what to tell the user."""

    out: Path
    manifest: dict
    notes: list[str] = field(default_factory=list)


def sample(
    spec: str,
    split: str,
    n: int,
    seed: int,
    out: Path,
    columns: loading.Columns | None = None,
    force: bool = False,
    focus: Focus | None = None,
) -> Sample:
    """Draw ``n`` sentences of ``split`` and write them for review into ``out`` (all
    files at once: complete or not at all); with ``focus``, from its rows alone (the
    sentences where runs disagree: ``studies.focus``)."""
    out = Path(out)
    if n < 1:
        raise InputError(f"-n {n}: sample at least one sentence")
    if out.exists() and not force:
        raise InputError(f"-o {out}: exists; give --force to replace it")
    notes: list[str] = []
    dataset_dict = loading.load(spec, columns, notes)
    if split not in dataset_dict:
        raise InputError(f"--split {split}: {spec} has no such split ({', '.join(dataset_dict)})")
    size = len(dataset_dict[split])
    pool = np.arange(size) if focus is None else focus.rows(dataset_dict[split], split)
    rows = pool[sample_rows(len(pool), n, seed)]
    if n >= len(pool):
        where = "sentences" if focus is None else "sentences where the runs disagree"
        notes.append(f"-n {n}: the {split} split has {len(pool):,} {where}; all of them are listed")
    origin = Origin.of(spec, dataset_dict, split)
    kind = "sample" if focus is None else "compare"
    manifest = origin.manifest(kind, split, rows.tolist(), seed, n)
    if focus is not None:
        manifest["compare"] = focus.describe(len(pool), size)
    write_review(out, origin, manifest, _sentences(dataset_dict[split], rows, origin.labels))
    return Sample(out, manifest, notes)


def _sentences(split, rows: np.ndarray, names: list[str]) -> list[tuple[int, list, list]]:
    """``(row, words, labels)`` of the split's ``rows``."""
    tokens = split.data.table.column("tokens")
    tags = split.data.table.column("tags")
    return [
        (int(row), tokens[int(row)].as_py(), [names[t] for t in tags[int(row)].as_py()])
        for row in rows
    ]


def write_review(out: Path, origin: Origin, manifest: dict, sentences: list) -> None:
    """A sample's review folder: tasks, labelling config, CoNLL file and manifest."""
    split = manifest["split"]
    tasks = [
        label_studio_task(
            row, words, labels, origin.scheme, {"split": split},
            {"model_version": GIVEN_LABELS_MODEL},
        )
        for row, words, labels in sentences
    ]  # fmt: skip
    conll = [
        line for row, words, labels in sentences for line in conll_block(row, words, labels, labels)
    ]
    with staged_directory(out, replace=True) as staging:
        (staging / TASKS).write_text(json.dumps(tasks, indent=1) + "\n")
        (staging / LABELLING_CONFIG).write_text(
            labelling_config(entity_types(origin.labels, origin.scheme))
        )
        (staging / CONLL).write_text("\n".join(conll) + ("\n" if conll else ""))
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


# -------------------------------------------------------------------- reviewed labels in


@dataclass
class Annotation:
    """One reviewer's labels of a sentence, as word spans."""

    spans: list[Span]
    annotator: str | None = None  # Label Studio's user id (None: the CoNLL file)
    email: str | None = None
    time: datetime | None = None  # updated_at, else created_at
    position: int = 0  # in the task's list: the last one is the latest without times

    @property
    def name(self) -> str:
        return self.annotator or self.email or "anonymous"


@dataclass
class ReviewedTask:
    """A task of the export (or a block of the CoNLL file) and its annotations."""

    name: str  # how messages name it: "task 17" (Label Studio's id), "line 12"
    sentence: int
    annotations: list[Annotation]
    cancelled: int = 0


@dataclass(frozen=True)
class Reviewable:
    """What the tasks are checked against: the manifest's sentences of the dataset."""

    path: Path  # the reviewed file, for messages
    split: str
    words: dict[int, list[str]]  # row -> words, for the manifest's sentences
    types: list[str]
    scheme: str
    manifest: Path

    def check_sentence(self, name: str, sentence: object, split: object = None) -> list[str]:
        """The words of a task's sentence; one not in the manifest is an error."""
        if split is not None and split != self.split:
            raise InputError(
                f"{self.path}: {name}: split '{split}' is not the manifest's '{self.split}'"
                f" ({self.manifest})"
            )
        if isinstance(sentence, bool) or not isinstance(sentence, int):
            raise InputError(
                f"{self.path}: {name}: no sentence number in its data (data.sentence:"
                f" {sentence!r}); only tasks noisebench wrote can be merged"
            )
        if sentence not in self.words:
            raise InputError(
                f"{self.path}: {name}: sentence {sentence} of {self.split} is not in the"
                f" manifest ({self.manifest})"
            )
        return self.words[sentence]


def read_manifest(path: Path) -> dict:
    """A review folder's ``manifest.json``, its fields checked."""
    if not path.is_file():
        raise InputError(f"{path}: no manifest (written by review sample and detect -o);"
                         " name it with --manifest")  # fmt: skip
    manifest = loading.parse_json(path, loading.read_text(path))
    fields = ("fingerprint", "split", "sentences")
    if not isinstance(manifest, dict) or any(key not in manifest for key in fields):
        raise InputError(f"{path}: not a review manifest (needs {', '.join(fields)})")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise InputError(
            f"{path}: schema_version {manifest.get('schema_version')!r}; this noisebench"
            f" reads {SCHEMA_VERSION}"
        )
    sentences = manifest["sentences"]
    if not isinstance(sentences, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in sentences
    ):
        raise InputError(f"{path}: 'sentences' must be a list of sentence rows")
    return manifest


def reviewable(
    manifest: dict, manifest_path: Path, dataset_dict, spec: str, path: Path
) -> Reviewable:
    """Check that ``manifest`` was drawn from ``dataset_dict`` (``spec``), and gather
    the words its sentences are checked against."""
    fingerprint = loading.fingerprint(dataset_dict)
    if manifest["fingerprint"] != fingerprint:
        raise InputError(
            f"{manifest_path}: drawn from another dataset ({manifest.get('data')}, fingerprint"
            f" {str(manifest['fingerprint'])[:12]}) than {spec} (fingerprint {fingerprint[:12]})"
        )
    split = manifest["split"]
    if split not in dataset_dict:
        raise InputError(f"{manifest_path}: split '{split}' is not in {spec}")
    tokens = dataset_dict[split].data.table.column("tokens")
    size = len(tokens)
    if any(row >= size for row in manifest["sentences"]):
        raise InputError(f"{manifest_path}: a sentence row is beyond {split}'s {size:,}")
    names = loading.label_names(dataset_dict[split])
    scheme = loading.scheme(dataset_dict)
    return Reviewable(
        path,
        split,
        {row: tokens[row].as_py() for row in manifest["sentences"]},
        entity_types(names, scheme),
        scheme,
        manifest_path,
    )


def read_reviewed(path: Path, checks: Reviewable) -> list[ReviewedTask]:
    """The tasks of a Label Studio JSON export, or the blocks of an edited CoNLL file."""
    text = loading.read_text(path)
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        tasks = [_task(task, position, checks) for position, task in
                 enumerate(_export_tasks(path, text))]  # fmt: skip
    else:
        tasks = _conll_tasks(path, text, checks)
    seen: dict[int, str] = {}
    for task in tasks:
        if task.sentence in seen:
            raise InputError(
                f"{path}: {task.name}: sentence {task.sentence} is also {seen[task.sentence]}"
                " (imported twice?)"
            )
        seen[task.sentence] = task.name
    return tasks


def _export_tasks(path: Path, text: str) -> list:
    tasks = loading.parse_json(path, text)
    if not isinstance(tasks, list):
        raise InputError(f"{path}: not a Label Studio JSON export (a list of tasks)")
    return tasks


def _task(task: object, position: int, checks: Reviewable) -> ReviewedTask:
    """One task of a Label Studio export, checked, its annotations as word spans."""
    name = f"task #{position + 1}"
    if isinstance(task, dict) and task.get("id") is not None:
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
    return ReviewedTask(
        name,
        data["sentence"],
        [_annotation(a, number, name, words, checks) for number, a in enumerate(kept)],
        cancelled=len(annotations) - len(kept),
    )


def _first_difference(found: list[str], words: list[str]) -> str:
    for position, (here, there) in enumerate(zip(found, words, strict=False)):
        if here != there:
            return f"word {position + 1} is '{here}', not '{there}'"
    return f"{len(found)} words, not {len(words)}"


def _annotation(
    annotation: object, number: int, name: str, words: list[str], checks: Reviewable
) -> Annotation:
    where = f"{checks.path}: {name}"
    if not isinstance(annotation, dict) or not isinstance(annotation.get("result", []), list):
        raise InputError(f"{where}: annotation {number + 1} is not an object with a result list")
    spans = []
    for item in annotation.get("result", []):
        if isinstance(item, dict) and item.get("type") == "labels":
            spans.append(_span(item.get("value"), where, words, checks.types))
    spans.sort()
    for first, second in itertools.pairwise(spans):
        if second[0] < first[1]:
            text = " ".join(words[first[0] : second[1]])
            raise InputError(f"{where}: overlapping spans in annotation"
                             f" {annotation.get('id', number + 1)} ('{text}')")  # fmt: skip
    annotator, email = _annotator(annotation.get("completed_by"))
    return Annotation(spans, annotator, email, _time(annotation, where), number)


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
    from datetime import timezone

    moment = datetime.fromisoformat(stamp[:-1] + "+00:00" if stamp.endswith("Z") else stamp)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _conll_tasks(path: Path, text: str, checks: Reviewable) -> list[ReviewedTask]:
    """The edited ``review.conll``: every block is one reviewed sentence whose third
    column holds its labels."""
    blocks: list[tuple[int, int, list[tuple[int, list[str]]]]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        header = CONLL_HEADER.match(line)
        if header:
            blocks.append((number, int(header.group(1)), []))
        elif line.strip():
            fields = line.split("\t")
            if not blocks or len(fields) not in (3, 4) or fields[3:] not in ([], ["*"]):
                raise InputError(
                    f"{path}:{number}: expected '# sentence N' or word TAB given label TAB"
                    f" reviewed label [TAB *], found '{line}'"
                )
            blocks[-1][2].append((number, fields))
    return [_conll_task(path, block, checks) for block in blocks]


def _conll_task(path: Path, block: tuple, checks: Reviewable) -> ReviewedTask:
    header_line, sentence, lines = block
    words = checks.check_sentence(f"line {header_line}", sentence)
    if len(lines) != len(words):
        raise InputError(f"{path}:{header_line}: sentence {sentence} has {len(words)} words in"
                         f" the data, {len(lines)} here")  # fmt: skip
    labels = []
    for (number, fields), word in zip(lines, words, strict=True):
        if fields[0] != word:
            raise InputError(f"{path}:{number}: word '{fields[0]}' is not sentence {sentence}'s"
                             f" '{word}' in the data")  # fmt: skip
        label = fields[2]
        known = label == "O" or (
            label in checks.types
            if checks.scheme == NO_SCHEME
            else bool(SPAN_TAG.match(label)) and SPAN_TAG.match(label).group(2) in checks.types
        )
        if not known:
            raise InputError(
                f"{path}:{number}: unknown label '{label}' (the data's types:"
                f" {', '.join(checks.types)})"
            )
        labels.append(label)
    annotation = Annotation(sentence_spans(labels, checks.scheme))
    return ReviewedTask(f"line {header_line}", sentence, [annotation])


# ----------------------------------------------------------------- resolve and write back


@dataclass
class Resolved:
    """A task's labels after the rule (``spans`` None: not reviewed) and its ties."""

    spans: list[Span] | None
    ties: list[Span] = field(default_factory=list)
    why: str = ""  # why it is not reviewed


def check_rule(rule: str) -> str:
    """``--resolve``: ``latest``, ``majority`` or ``annotator:ID``."""
    if rule in ("latest", "majority") or (rule.startswith("annotator:") and rule[10:]):
        return rule
    raise InputError(f"--resolve '{rule}': choose latest, majority or annotator:ID")


def resolve(task: ReviewedTask, rule: str) -> Resolved:
    """One task's labels by ``rule``:

    - ``latest``: the annotation updated (else created) last, else the last listed;
    - ``majority``: the spans more than half of the annotations have exactly; a span
      exactly half of them have is a tie, listed and left out;
    - ``annotator:ID``: that annotator's annotation (id or email; their latest).
    """
    if not task.annotations:
        why = "every annotation cancelled" if task.cancelled else "no annotation"
        return Resolved(None, why=why)
    if rule == "latest":
        return Resolved(_latest(task.annotations).spans)
    if rule == "majority":
        counts = Counter(span for a in task.annotations for span in set(a.spans))
        voters = len(task.annotations)
        return Resolved(
            sorted(span for span, count in counts.items() if 2 * count > voters),
            sorted(span for span, count in counts.items() if 2 * count == voters),
        )
    wanted = rule.removeprefix("annotator:")
    theirs = [a for a in task.annotations if wanted in (a.annotator, a.email)]
    if not theirs:
        return Resolved(None, why=f"no annotation by {wanted}")
    return Resolved(_latest(theirs).spans)


def _latest(annotations: list[Annotation]) -> Annotation:
    from datetime import timezone

    earliest = datetime.min.replace(tzinfo=timezone.utc)
    return max(annotations, key=lambda a: (a.time or earliest, a.position))


@dataclass
class Merged:
    """What ``merge`` made: the dataset with its reviewed columns and ``review.json``."""

    dataset: object  # datasets.DatasetDict
    report: dict
    out: Path | None = None


def merge(
    spec: str,
    reviewed_path: Path,
    out: Path,
    rule: str = "latest",
    manifest_path: Path | None = None,
    columns: loading.Columns | None = None,
    force: bool = False,
    estimate=None,
) -> Merged:
    """Read the reviewed labels in ``reviewed_path`` back into ``spec`` and write the
    dataset to ``out`` (complete or not at all); see the module's docstring.
    ``estimate(manifest, merged split, scheme)``: what a focused review estimates
    (``studies.focus.estimate``), recorded as the report's ``compare``."""
    rule, out, reviewed_path = check_rule(rule), Path(out), Path(reviewed_path)
    if out.exists() and not force:
        raise InputError(f"-o {out}: exists; give --force to replace it")
    if not reviewed_path.is_file():
        raise InputError(f"{reviewed_path}: no such file (a Label Studio JSON export or"
                         f" the edited {CONLL})")  # fmt: skip
    manifest_path = Path(manifest_path or reviewed_path.parent / MANIFEST)
    manifest = read_manifest(manifest_path)
    dataset_dict = loading.load(spec, columns)
    checks = reviewable(manifest, manifest_path, dataset_dict, spec, reviewed_path)
    tasks = read_reviewed(reviewed_path, checks)
    resolved = {task.sentence: resolve(task, rule) for task in tasks}
    split = dataset_dict[checks.split]
    labels = _reviewed_labels(split, tasks, resolved, checks)
    merged = dict(dataset_dict)
    merged[checks.split], counts = _with_reviewed(split, labels)
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
    }
    import datasets

    # every review merged into this data so far: how each sample was drawn
    this = {"split": checks.split, "kind": manifest["kind"], "sentences": len(labels)}
    report["reviews"] = [*earlier_reviews(spec), this]
    if estimate is not None:  # a focused review: what it estimates (studies.focus)
        report["compare"] = estimate(manifest, merged[checks.split], checks.scheme)
    result = Merged(datasets.DatasetDict(merged), report, out)
    with staged_directory(out, replace=True) as staging:
        loading.write_parquet(result.dataset, staging)
        (staging / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return result


def earlier_reviews(spec) -> list[dict]:
    """The reviews merged into ``spec`` before (its ``review.json``, where ``spec`` is a
    folder that ``review merge`` wrote): ``{"split", "kind", "sentences"}`` each, ``kind``
    as the manifest says how the sentences were drawn (``sample``: uniformly at random;
    ``compare``: where runs disagree; ``detect``: the likely wrong labels)."""
    path = Path(str(spec)) / REPORT
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
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


def _reviewed_labels(split, tasks, resolved: dict, checks: Reviewable) -> dict[int, list[int]]:
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


def _with_reviewed(split, labels: dict[int, list[int]]) -> tuple[object, dict]:
    """``split`` with ``reviewed`` and ``reviewed_tags`` (reviewed sentences of an
    earlier merge stay reviewed unless reviewed again), and what changed."""
    import pyarrow as pa

    given, offsets = loading.flat_tags(split)
    columns = split.column_names
    if loading.REVIEWED_COLUMN in columns:
        reviewed = np.asarray(split.data.table.column(loading.REVIEWED_COLUMN), dtype=bool)
        tags = loading.flat_tags(split, loading.REVIEWED_TAGS_COLUMN)[0].copy()
    else:
        reviewed, tags = np.zeros(len(split), dtype=bool), given.copy()
    before = int(reviewed.sum())
    changed_words = changed_sentences = 0
    for row, ids in labels.items():
        begin, end = offsets[row], offsets[row + 1]
        tags[begin:end] = ids
        reviewed[row] = True
        differ = int(np.sum(given[begin:end] != np.asarray(ids)))
        changed_words += differ
        changed_sentences += differ > 0
    table = split.data.table

    def column(name):
        return table.column(name).combine_chunks() if name in columns else None

    made = loading.make_split(
        column("tokens"),
        column("tags"),
        loading.label_names(split),
        column("clean_tags"),
        column(loading.IGNORE_COLUMN),
        pa.array(reviewed),
        pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(tags)),
    )
    counts = {
        "reviewed_sentences": len(labels),
        "reviewed_before": before,
        "reviewed_in_split": int(reviewed.sum()),
        "reviewed_words": int(sum(len(ids) for ids in labels.values())),
        "changed_words": changed_words,
        "changed_sentences": changed_sentences,
    }
    return made, counts


def _task_counts(tasks: list[ReviewedTask], resolved: dict, manifest: dict) -> dict:
    return {
        "manifest_sentences": len(manifest["sentences"]),
        "tasks": len(tasks),
        "annotations": sum(len(task.annotations) for task in tasks),
        "cancelled": sum(task.cancelled for task in tasks),
        "multiply_annotated": sum(len(task.annotations) >= 2 for task in tasks),
        "unreviewed_tasks": sum(resolved[task.sentence].spans is None for task in tasks),
        "tied_spans": sum(len(resolved[task.sentence].ties) for task in tasks),
    }


def _agreement(tasks: list[ReviewedTask]) -> dict:
    from noisebench.data.agreement import agreement

    return agreement([[(a.name, a.spans) for a in task.annotations] for task in tasks])


def _listed(tasks, resolved: dict, checks: Reviewable, ties: bool) -> list[dict]:
    """The tasks with ties (their tied spans), or the tasks left unreviewed (why)."""
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
