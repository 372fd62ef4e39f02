"""``noisebench detect`` as one call, for the command and the Python API alike: check
the request before anything trains, detect on prepared data (or read a finished run),
fix the data where asked, and write the review files.

    noisebench detect noisebench:crowd --epochs 2 --lr 3e-4 -o review
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from noisebench.data.schemes import NO_SCHEME
from noisebench.detection import review
from noisebench.detection.config import DetectConfig, check_method
from noisebench.detection.estimate import estimated_noise
from noisebench.detection.fix import MIN_F1, apply_fix, check_fix
from noisebench.detection.record import (
    clean_labels,
    detection_of_run,
    reviewed_truth,
    run_detection,
)
from noisebench.detection.score import Detection, detection_document
from noisebench.errors import InputError


@dataclass
class Detected:
    """A detection and what came of it: ``document`` is ``detection.json`` (with the
    fix's report under ``fix``), ``rows`` the issues listed for review, ``fixed`` the
    fixed dataset (``--fix``), ``out`` where the files went (None: nowhere)."""

    detection: Detection
    document: dict
    rows: list[dict]
    fixed: object | None = None  # a datasets.DatasetDict
    out: Path | None = None


def check_request(
    config: DetectConfig,
    method: str,
    fix: str | None,
    out: Path | None,
    min_f1: float,
    force: bool,
) -> None:
    """Everything about a detection that can be wrong before anything trains."""
    config.check()
    check_method(method)
    if fix is not None:
        check_fix(fix, out, min_f1)
    if out is not None and Path(out).exists() and not force:
        raise InputError(f"-o {out}: exists; give --force to replace it")


def detect(
    prepared,
    config: DetectConfig,
    *,
    run: Path | None = None,
    fix: str | None = None,
    min_f1: float = MIN_F1,
    out: Path | None = None,
    progress=None,
    note: Callable[[str], None] = lambda line: None,
) -> Detected:
    """Detect on ``prepared`` (training what ``config`` needs, or reading the finished
    ``run``), fix it with ``fix``, and write the review files (and the fixed splits)
    into ``out``. Tags without entity spans are ranked at word and sentence level only."""
    if run is not None:
        clean = clean_labels(prepared.dataset["train"])
        found = detection_of_run(Path(run), config, clean, {"trainings": 0})
    else:
        found = run_detection(prepared, config, progress)
    if prepared.scheme == NO_SCHEME:
        found = replace(found, spans=False)
        note(f"no entity spans in {prepared.config.data}'s tags: word and sentence levels only")
    document = detection_document(found, config, prepared, run)
    document["estimated_noise"] = estimated_noise(found, prepared.scheme)
    reviewed = reviewed_truth(prepared.dataset["train"]) if found.clean is None else None
    if reviewed is not None:  # the user's own truth: the reviewed training sentences
        rows, clean, left_out = reviewed
        document["reviewed"] = {
            "sentences": len(rows),
            "left_out": left_out,  # reviewed, but chosen (detect's list, --compare)
            "levels": found.on_sentences(rows, clean).report() if len(rows) else None,
        }
    fixed = None
    if fix is not None:
        fixed, document["fix"] = apply_fix(
            prepared.dataset, found, fix, config.budget, prepared.scheme, min_f1
        )
    if out is None:
        return Detected(found, document, review.issue_rows(found, config.budget), fixed)
    source = review.source_of(prepared)
    rows = review.write(out, found, config.budget, prepared.scheme, document, fixed, source)
    return Detected(found, document, rows, fixed, Path(out))
