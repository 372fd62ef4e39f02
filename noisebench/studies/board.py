"""One leaderboard as ``noisebench leaderboard`` makes it: the tables of the runs, their
verdict and the detections below the same folders, written beside the runs, and the gate
against a baseline. It sits above the ``leaderboard`` package and ``verdict`` (which
reads the leaderboard's records, labels and cells).

    noisebench leaderboard runs --out lb --plots
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from noisebench.atomic import write_text_atomic
from noisebench.detection import detections
from noisebench.errors import InputError
from noisebench.scoring.metrics import REVIEWED_SHOWN
from noisebench.studies import plots as figures
from noisebench.studies import verdict as verdicts
from noisebench.studies.leaderboard.cells import aggregate
from noisebench.studies.leaderboard.gate import (
    LEGACY_BASELINE,
    GateResult,
    compare,
    describe_key,
    is_legacy,
    parse_thresholds,
    read_baseline,
    save_baseline,
    write_junit,
)
from noisebench.studies.leaderboard.outputs import save_leaderboard, write_outputs
from noisebench.studies.leaderboard.records import Collected, collect
from noisebench.studies.leaderboard.tables import Pivot, pivots, reliability_panels
from noisebench.studies.leaderboard.tuning import select_tuned

Note = Callable[[str], None]  # tells the user one line (the CLI: on stderr)


@dataclass
class Request:
    """What ``noisebench leaderboard`` is asked (its options, parsed: see its ``--help``)."""

    runs_dirs: list[Path]
    split: str
    metrics: list[str]
    out: Path | None
    formats: list[str]
    plots: bool
    baseline: Path | None
    save_baseline: Path | None
    fail_on: list[str]
    strict: bool
    verdict: bool
    bootstrap: int
    junit: Path | None
    tuned: bool
    json_output: bool
    allow_missing: bool = False  # baseline cells missing in the current runs do not fail


@dataclass
class Board:
    """A leaderboard: its runs, cells and tables, the choices of ``--tuned``, the verdict,
    the detections' rows; once made (``make``, ``judge``), its files and its gate."""

    collected: Collected
    aggregated: list[dict]  # the cells (``aggregate``)
    tables: list[Pivot]
    tuning: list[dict] | None
    findings: dict | None  # the verdict
    detect_rows: list[dict] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    gate: GateResult | None = None
    failing: list[dict] = field(default_factory=list)  # the keys that fail the gate

    def repeated_runs(self) -> list[str]:
        """Runs left out of the cells: another run with the same settings and seed counts."""
        return sorted({run for row in self.aggregated for run in row["repeated_runs"]})


def make(request: Request, note: Note) -> Board:
    """The leaderboard ``request`` asks for: the baseline read, the runs and detections
    collected and tabulated, the files written (by default beside the runs; with
    ``--json`` only to ``--out``), the baseline saved and the gate compared; each option
    checked on the way, in an order that reports the first problem."""
    thresholds = parse_thresholds(request.fail_on)
    if request.plots and request.json_output and request.out is None:
        raise InputError("--plots with --json needs --out DIR (--json writes no files)")
    if request.fail_on and request.baseline is None:
        raise InputError("--fail-on needs --baseline FILE")
    reference = _reference(request.baseline, note)
    board = _tabulate(request, note)
    if request.out is not None or not request.json_output:
        folders = request.runs_dirs
        board.written = save(board, request.out, folders, request.formats, request.plots, note)
    if request.save_baseline is not None:
        save_baseline(request.save_baseline, board.aggregated)
    if reference is not None:
        board.gate = compare(reference, board.aggregated, thresholds)
        compared = {row["metric"] for row in board.gate.rows}
        for metric in thresholds:  # a threshold on nothing compared guards nothing
            if board.gate.rows and metric not in compared:
                raise InputError(
                    f"--fail-on {metric}: no compared key has this metric (compared:"
                    f" {', '.join(sorted(compared))}); the gate would guard nothing"
                )
    return board


def _reference(baseline: Path | None, note: Note) -> list[dict] | None:
    """The entries of ``--baseline`` (None without one), with a note on a legacy one."""
    if baseline is None:
        return None
    reference = read_baseline(baseline)
    if is_legacy(reference):
        note(f"note: --baseline {baseline}: {LEGACY_BASELINE}")
    return reference


def _tabulate(request: Request, note: Note) -> Board:
    """The runs and the detections below the runs folders, tabulated."""
    found, unreadable = detections.collect(request.runs_dirs)
    for line in unreadable:
        note(f"note: skipped an unreadable detection: {line}")
    collected = collect(request.runs_dirs, request.split, request.metrics)
    if collected.complete == 0 and not found:
        raise InputError(
            f"no complete runs in {', '.join(map(str, request.runs_dirs))}"
            f" ({len(collected.incomplete)} incomplete)"
        )
    if request.bootstrap < 1:
        raise InputError(f"--bootstrap {request.bootstrap}: must be at least 1")
    if request.junit is not None and request.baseline is None:
        raise InputError("--junit needs --baseline FILE")
    verdict = request.verdict and collected.complete > 0
    board = tabulate(
        collected, request.split, request.metrics, request.tuned, verdict, request.bootstrap
    )
    board.detect_rows = detections.rows(found, request.bootstrap)
    return board


def tabulate(
    collected: Collected,
    split: str,
    metric_names: list[str],
    tuned: bool,
    verdict: bool,
    replicates: int,
) -> Board:
    """The cells and tables of ``collected`` (with ``tuned``, of the chosen settings only)
    and, with ``verdict``, its verdict (``replicates`` bootstrap replicates)."""
    tuning = select_tuned(collected) if tuned else None
    aggregated = aggregate(collected.records)
    reviewed = [m for m in REVIEWED_SHOWN if any(r["metric"] == m for r in collected.records)]
    tables = pivots(aggregated, list(dict.fromkeys([*metric_names, *reviewed])))
    findings = verdict_of(collected, split, replicates) if verdict else None
    return Board(collected, aggregated, tables, tuning, findings)


def of_sweep(folders: list[Path], tuned: bool) -> Board:
    """The leaderboard a sweep ends with: test F1, ECE and MCE of its runs, and the
    verdict."""
    metrics = ["f1", "ece", "mce"]
    return tabulate(collect(folders, "test", metrics), "test", metrics, tuned, True, 1000)


def verdict_of(collected: Collected, split: str, replicates: int) -> dict | None:
    """The verdict is about test scores: None on another split."""
    return verdicts.verdicts(collected, replicates) if split == "test" else None


def save(
    board: Board, out: Path | None, folders: list[Path], formats: list[str], plots: bool, note: Note
) -> list[Path]:
    """The board's files (``write``) in ``out``, or by default in ``leaderboard`` inside
    the first runs folder, swapped in whole (``save_leaderboard``); what was written."""
    return save_leaderboard(out, folders, lambda folder: write(folder, board, formats, plots), note)


def write(folder: Path, board: Board, formats: list[str], plots: bool) -> list[Path]:
    """Tables, verdict, summary, detect table (and plots) in ``folder``; what was written."""
    findings = board.findings
    rendered = verdicts.markdown(findings) if findings is not None else None
    written = write_outputs(folder, board.collected, board.tables, formats, findings, rendered)
    if board.detect_rows:
        written.append(folder / "detect.md")
        write_text_atomic(folder / "detect.md", detections.markdown(board.detect_rows))
    if plots:
        written += _write_plots(folder, board)
    return written


def _write_plots(out: Path, board: Board) -> list[Path]:
    """Metric-vs-noise curves of the F1 and ECE tables, and a reliability grid per table."""
    written = []
    for table in board.tables:
        if table.metric in ("f1", "ece"):
            written += figures.metric_vs_noise(table, out / f"{table.name}-vs-noise")
    for (dataset, model, noise), panels in sorted(reliability_panels(board.collected).items()):
        stem = out / f"{dataset}-{model}-{noise}-reliability".replace("/", "--")
        written += figures.reliability_grid(panels, stem, f"{dataset}, {model}, {noise} noise")
    return written


def judge(board: Board, request: Request, note: Note) -> None:
    """The keys that fail the gate (``board.failing``: regressions, the baseline's keys
    missing in the current runs unless ``--allow-missing``, with ``--strict`` the current
    keys missing in the baseline too), and the gate as JUnit XML where ``--junit`` asks."""
    if board.gate is not None:
        board.failing = board.gate.failures(request.strict, request.allow_missing)
    if request.junit is not None:
        write_junit(request.junit, board.gate, board.failing)
        board.written.append(request.junit)
        note(f"wrote the gate to {request.junit}")


def document(board: Board) -> dict:
    """The board as ``--json`` prints it."""
    collected, gate = board.collected, board.gate
    document = {
        "complete_runs": collected.complete,
        "incomplete_runs": [str(p) for p in collected.incomplete],
        "entries": board.aggregated,
        "written": [str(p) for p in board.written],
        "verdict": board.findings,
        "tuning": board.tuning,
        "detect": board.detect_rows,
    }
    if gate is not None:
        document["gate"] = {
            "rows": gate.rows,
            "missing_in_current": gate.missing_in_current,
            "missing_in_baseline": gate.missing_in_baseline,
            "compared": len(gate.rows),
            "failed": [describe_key(r) for r in board.failing],
        }
    return document
