"""The draw of a review and its manifest: which sentences of which data, drawn how, and
the checks ``merge`` makes against it.

``manifest.json`` records the dataset's fingerprint, the split, the sentence rows (in the
order drawn), the seed, and ``kind``: ``sample`` (uniformly at random from the whole
split), ``compare`` (uniformly from the sentences where candidate runs disagree:
``studies.focus`` adds what it estimates from) or ``detect`` (the likely wrong labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from noisebench.atomic import staged_directory
from noisebench.data import loading
from noisebench.data.review import files
from noisebench.data.review.spans import entity_types
from noisebench.errors import InputError

SCHEMA_VERSION = 1


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
    """A drawn sample: the data it is of, its manifest, and what to tell the user;
    ``out`` once written."""

    dataset: object  # datasets.DatasetDict
    origin: Origin
    manifest: dict
    notes: list[str] = field(default_factory=list)
    out: Path | None = None


def check_out(out: Path, force: bool) -> Path:
    out = Path(out)
    if out.exists() and not force:
        raise InputError(f"-o {out}: exists; give --force to replace it")
    return out


def load_split(
    spec: str, split: str, n: int, columns: loading.Columns | None, notes: list[str]
):  # fmt: skip
    """The data a sample of ``n`` sentences of ``split`` is drawn from, both checked."""
    if n < 1:
        raise InputError(f"-n {n}: sample at least one sentence")
    dataset_dict = loading.load(spec, columns, notes)
    if split not in dataset_dict:
        raise InputError(f"--split {split}: {spec} has no such split ({', '.join(dataset_dict)})")
    return dataset_dict


def draw(
    spec: str, split: str, n: int, seed: int, columns: loading.Columns | None = None
) -> Sample:
    """Draw ``n`` sentences of ``split`` uniformly without replacement."""
    notes: list[str] = []
    dataset_dict = load_split(spec, split, n, columns, notes)
    size = len(dataset_dict[split])
    drawn = sample_rows(size, n, seed)
    if n >= size:
        notes.append(f"-n {n}: the {split} split has {size:,} sentences; all of them are listed")
    origin = Origin.of(spec, dataset_dict, split)
    manifest = origin.manifest("sample", split, drawn.tolist(), seed, n)
    return Sample(dataset_dict, origin, manifest, notes)


def write(drawn: Sample, out: Path, force: bool = False) -> Sample:
    """The sample's review folder (all files at once: complete or not at all), the given
    labels pre-filled."""
    out = check_out(out, force)
    split = drawn.dataset[drawn.manifest["split"]]
    tokens, tags = split.data.table.column("tokens"), split.data.table.column("tags")
    names = drawn.origin.labels
    sentences = []
    for row in drawn.manifest["sentences"]:
        labels = [names[t] for t in tags[row].as_py()]
        sentences.append(files.Sentence(row, tokens[row].as_py(), labels, labels))
    with staged_directory(out, replace=True) as staging:
        files.write(staging, sentences, names, drawn.origin.scheme, drawn.manifest)
    drawn.out = out
    return drawn


def sample(
    spec: str, split: str, n: int, seed: int, out: Path,
    columns: loading.Columns | None = None, force: bool = False,
) -> Sample:  # fmt: skip
    """Draw ``n`` sentences of ``split`` uniformly at random and write them for review."""
    check_out(out, force)
    return write(draw(spec, split, n, seed, columns), out, force)


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
