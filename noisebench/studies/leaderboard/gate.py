"""Baselines and the regression gate: a leaderboard saved as a baseline, the current one
compared with it cell by cell (``cell_key``) in display units, a threshold per metric whose
sign gives the bad direction, and the result as JUnit XML for CI. A gate that compares no
cell, or misses a baseline cell, fails unless told to allow missing cells: a gate that
compares nothing guards nothing. Each cell missing on one side names the settings by
which it differs from the closest cell on the other (``max_train_samples 800 → 30``).

    noisebench leaderboard runs --baseline lb.json --fail-on f1:-0.5 --fail-on ece:+0.02
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from noisebench.atomic import write_text_atomic
from noisebench.errors import InputError
from noisebench.scoring.metrics import HIGHER_IS_BETTER, scale
from noisebench.studies.leaderboard.cells import ENTRY_FIELDS, cell_key
from noisebench.studies.leaderboard.labels import loss_label
from noisebench.training import runs

BASELINE_VERSION = 2  # 2: entries keyed by their settings; 1 (by row label) is still read
# the key of baselines from before settings (schema_version 1), by row label
V1_KEY_FIELDS = ("dataset", "noise", "rate", "loss", "q", "s", "split", "metric")


def save_baseline(path: Path, aggregated: list[dict]) -> None:
    entries = [{k: r[k] for k in (*ENTRY_FIELDS, "mean", "std", "n")} for r in aggregated]
    document = {"schema_version": BASELINE_VERSION, "entries": entries}
    write_text_atomic(Path(path), json.dumps(document, indent=1) + "\n")


def read_baseline(path: Path) -> list[dict]:
    document = runs.read_json(Path(path))
    if document is None:
        raise InputError(f"--baseline {path}: missing or not JSON")
    if document.get("schema_version") not in (1, BASELINE_VERSION) or "entries" not in document:
        raise InputError(f"--baseline {path}: not a noisebench baseline (no schema_version 1 or 2)")
    if not document["entries"]:
        raise InputError(f"--baseline {path}: holds no cells; a gate against it compares nothing")
    return document["entries"]


LEGACY_BASELINE = (
    "saved before baselines recorded every setting (schema_version 1): its entries are"
    " matched by dataset, noise, rate and row label, and only where one cell has them;"
    " re-save it with --save-baseline to compare model, epochs and every other setting"
)


def is_legacy(baseline: list[dict]) -> bool:
    """A baseline from before entries carried their settings (schema_version 1)."""
    return any("settings" not in entry for entry in baseline)


def parse_thresholds(specs: list[str]) -> dict[str, float]:
    """``["f1:-0.5", "ece:+0.02"]`` -> ``{"f1": -0.5, "ece": 0.02}``."""
    thresholds = {}
    for spec in specs:
        metric, _, delta = spec.partition(":")
        if metric not in HIGHER_IS_BETTER:
            raise InputError(f"--fail-on '{spec}': unknown metric '{metric}'")
        try:
            thresholds[metric] = float(delta)
        except ValueError:
            raise InputError(f"--fail-on '{spec}': expected METRIC:DELTA, e.g. f1:-0.5") from None
        if thresholds[metric] == 0 or not math.isfinite(thresholds[metric]):
            raise InputError(f"--fail-on '{spec}': DELTA must be a non-zero number with a sign")
    return thresholds


@dataclass
class GateResult:
    rows: list[dict]  # one per compared key: key fields, baseline, current, diff, status
    missing_in_current: list[dict]
    missing_in_baseline: list[dict]

    @property
    def regressions(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "regressed"]

    def failures(self, strict: bool, allow_missing: bool = False) -> list[dict]:
        """The keys that fail the gate: its regressions, the baseline's keys missing in the
        current runs (unless ``allow_missing``, and even then where no key was compared at
        all), and with ``strict`` the current keys missing in the baseline too."""
        failing = list(self.regressions)
        if not allow_missing or not self.rows:
            failing += self.missing_in_current
        if strict:
            failing += self.missing_in_baseline
        return failing


def compare(
    baseline: list[dict], aggregated: list[dict], thresholds: dict[str, float]
) -> GateResult:
    """Compare means in display units; a threshold's sign gives the bad direction. Cells
    match by ``cell_key``; a legacy baseline's entries (``is_legacy``) by dataset, noise,
    rate, row label, q, s, split and metric, and only where one current cell has that key
    (cells of several models or settings under one old key are compared with none); a
    baseline from before ``--precision`` (``before_precision``) likewise by ``cell_key``
    without the precision."""
    key_of = _legacy_key if is_legacy(baseline) else cell_key
    if not is_legacy(baseline) and before_precision(baseline):
        key_of = _key_without_precision
    before = {key_of(entry): entry for entry in baseline}
    current: dict[tuple, list[dict]] = {}
    for row in aggregated:
        current.setdefault(key_of(row), []).append(row)
    matched = sorted((k for k in before if len(current.get(k, [])) == 1), key=str)
    rows = []
    for key in matched:
        now = current[key][0]
        metric = now["metric"]
        unit = scale(metric)
        diff = (now["mean"] - before[key]["mean"]) * unit
        threshold = thresholds.get(metric)
        if threshold is None:
            status = "not gated"
        elif (threshold < 0 and diff < threshold) or (threshold > 0 and diff > threshold):
            status = "regressed"
        else:
            status = "ok"
        rows.append(
            _entry(now)
            | {
                "baseline": before[key]["mean"] * unit,
                "current": now["mean"] * unit,
                "diff": diff,
                "threshold": threshold,
                "status": status,
            }
        )
    missing_current = [_entry(before[k]) for k in sorted(set(before) - set(matched), key=str)]
    missing_baseline = [
        _entry(row) for key in sorted(set(current) - set(matched), key=str) for row in current[key]
    ]
    for entry in missing_current:  # baseline -> current
        entry["differs"] = differing(entry, [_entry(row) for row in aggregated], before=True)
    for entry in missing_baseline:
        entry["differs"] = differing(entry, list(before.values()), before=False)
    return GateResult(rows, missing_current, missing_baseline)


def differing(entry: dict, others: list[dict], before: bool) -> list[str]:
    """How ``entry`` differs from the closest of ``others`` (the fewest settings apart,
    among cells of the same split and metric), each as ``name baseline → current``
    (``before``: ``entry`` is the baseline's); empty where there is no such cell.

    >>> differing({"split": "test", "metric": "f1", "settings": {"max_train_samples": 800}},
    ...           [{"split": "test", "metric": "f1", "settings": {"max_train_samples": 30}}],
    ...           before=True)
    ['max_train_samples 800 → 30']
    """
    fields = [k for k in ENTRY_FIELDS if k not in ("settings", "loss")]
    place = (entry["split"], entry["metric"])
    candidates = [o for o in others if (o["split"], o["metric"]) == place]

    def changes(other: dict) -> list[str]:
        found = []
        mine, theirs = _flat(entry, fields), _flat(other, fields)
        for name in sorted(set(mine) | set(theirs)):
            if mine.get(name) != theirs.get(name):
                old, new = mine.get(name), theirs.get(name)
                if not before:
                    old, new = new, old
                found.append(f"{name} {_shown(old)} → {_shown(new)}")
        return found

    options = [changes(other) for other in candidates]
    return min(options, key=len) if options else []


def _flat(entry: dict, fields: list[str]) -> dict:
    return {**{k: entry.get(k) for k in fields}, **(entry.get("settings") or {})}


def _shown(value) -> str:
    return "unset" if value is None else str(value)


def before_precision(baseline: list[dict]) -> bool:
    """A baseline saved before runs' settings carried their precision."""
    return any("precision" not in entry["settings"] for entry in baseline)


def _key_without_precision(entry: dict) -> tuple:
    settings = {k: v for k, v in entry["settings"].items() if k != "precision"}
    return cell_key(entry | {"settings": settings})


def _legacy_key(entry: dict) -> tuple:
    return tuple(entry.get(k) for k in V1_KEY_FIELDS)


def _entry(row: dict) -> dict:
    return {k: row[k] for k in ENTRY_FIELDS if k in row}


def describe_key(row: dict) -> str:
    """``toyner tiny uniform@0.40 gce q=0.7 test f1`` (a legacy baseline's entries have
    no model)."""
    model = f" {row['model']}" if row.get("model") else ""
    return (
        f"{row['dataset']}{model} {row['noise']}@{row['rate']:.2f} {loss_label(row)}"
        f" {row['split']} {row['metric']}"
    )


def describe_missing(row: dict) -> str:
    """A cell missing on one side, and how it differs from the closest on the other."""
    differs = row.get("differs")
    if differs is None:
        return describe_key(row)
    if not differs:
        return f"{describe_key(row)} (no cell of its split and metric on the other side)"
    shown = ", ".join(differs[:4]) + (f", … {len(differs) - 4} more" if len(differs) > 4 else "")
    return f"{describe_key(row)} (closest differs: {shown})"


def write_junit(path: Path, gate: GateResult | None, failing: list[dict]) -> None:
    """The gate as JUnit XML: one test case per compared key (skipped where no threshold
    applies), a failure carrying the numbers for each regression, and keys missing on
    either side as failures when they fail the gate (the baseline's, unless
    ``--allow-missing``; the current runs' with ``--strict``), else skipped."""
    import xml.etree.ElementTree as ElementTree

    rows = gate.rows if gate is not None else []
    suite = ElementTree.Element("testsuite", name="noisebench regression gate")
    failed = {id(r) for r in failing}
    for row in rows:
        case = ElementTree.SubElement(
            suite, "testcase", classname=f"noisebench.gate.{row['metric']}", name=describe_key(row)
        )
        numbers = (
            f"baseline {row['baseline']:.4f}, current {row['current']:.4f}, diff {row['diff']:+.4f}"
        )
        if row["status"] == "regressed":
            message = f"{row['metric']} moved {row['diff']:+.4f} (threshold {row['threshold']:+g})"
            ElementTree.SubElement(case, "failure", message=message).text = numbers
        elif row["status"] == "not gated":
            ElementTree.SubElement(case, "skipped", message=f"no threshold ({numbers})")
        else:
            ElementTree.SubElement(case, "system-out").text = numbers
    for title, keys in (
        ("missing in current runs", gate.missing_in_current if gate else []),
        ("missing in baseline", gate.missing_in_baseline if gate else []),
    ):
        for key in keys:
            name = describe_missing(key)
            case = ElementTree.SubElement(
                suite, "testcase", classname=f"noisebench.gate.{key['metric']}", name=name
            )
            tag = "failure" if id(key) in failed else "skipped"
            ElementTree.SubElement(case, tag, message=title)
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    document = ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)
    write_text_atomic(Path(path), document + "\n")
