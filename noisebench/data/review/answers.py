"""What reviewers said: a task (a sentence of the manifest) and its annotations, as the
readers (``labelstudio``, ``conll``) give them to ``resolve``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from noisebench.data.schemes import Span


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
    """A task of the export (or a block of the CoNLL file) and its annotations; a task
    without one is not reviewed, ``pending`` says why where the reader knows."""

    name: str  # how messages name it: "task 17" (Label Studio's id), "line 12"
    sentence: int
    annotations: list[Annotation]
    cancelled: int = 0
    pending: str = ""  # e.g. "a draft, never submitted"; "not marked reviewed"
    answers: list[dict] = field(default_factory=list)  # result items other than labels
