"""The one writer of review folders (``review sample`` and ``detect -o``):

- ``labelstudio.json``: one Label Studio task per sentence: ``data`` with ``text`` = the
  words joined by single spaces, ``sentence`` = its row in the split, and ``split``; the
  labels to review as pre-annotations (``predictions``, never ``annotations``: a
  reviewer submits them to review the sentence);
- ``labelstudio-config.xml``: the labelling config for the entity types;
- ``review.conll``: the same sentences for a text editor (``conll``);
- ``manifest.json``: what ``merge`` checks the review against (``sampling``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from noisebench.data.review import conll
from noisebench.data.review.spans import entity_types, sentence_spans, word_starts

MANIFEST = "manifest.json"
TASKS = "labelstudio.json"
LABELLING_CONFIG = "labelstudio-config.xml"
CONLL = "review.conll"
REPORT = "review.json"  # what ``review merge`` writes beside the merged data
FROM_NAME, TO_NAME = "label", "text"  # the control and object names of the labelling config
GIVEN_LABELS_MODEL = "noisebench-given-labels"  # a sample's pre-annotations: the labels as given


@dataclass(frozen=True)
class Sentence:
    """A sentence to review: its row, words, given labels and the labels to review
    (pre-filled), the words to point at, and what the pre-annotations record."""

    row: int
    words: list[str]
    given: list[str]
    to_review: list[str]
    flagged: list[bool] | None = None
    prediction: dict | None = None  # model_version, score


def write(
    folder: Path, sentences: list[Sentence], labels: list[str], scheme: str,
    manifest: dict | None,
) -> None:  # fmt: skip
    """The four files into ``folder`` (a staging folder the caller renames into place);
    ``manifest.json`` only with a ``manifest``."""
    data = {"split": manifest["split"]} if manifest is not None else {}
    tasks = [
        label_studio_task(
            s.row, s.words, s.to_review, scheme, data,
            s.prediction or {"model_version": GIVEN_LABELS_MODEL},
        )
        for s in sentences
    ]  # fmt: skip
    blocks = [
        line
        for s in sentences
        for line in conll.block(s.row, s.words, s.given, s.to_review, s.flagged)
    ]
    (folder / TASKS).write_text(json.dumps(tasks, indent=1) + "\n")
    (folder / LABELLING_CONFIG).write_text(labelling_config(entity_types(labels, scheme)))
    (folder / CONLL).write_text("\n".join(blocks) + ("\n" if blocks else ""))
    if manifest is not None:
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


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
    labels = "".join(f"    <Label value={quoteattr(t)}/>\n" for t in sorted(types))
    return (
        f'<View>\n  <Labels name="{FROM_NAME}" toName="{TO_NAME}">\n{labels}  </Labels>\n'
        f'  <Text name="{TO_NAME}" value="${TO_NAME}"/>\n</View>\n'
    )
