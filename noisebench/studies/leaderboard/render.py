"""Pivots and the gate as text: a cell (``61.2 ± 1.5 (n=3)``), the footnotes that explain
its marks, a pivot as Markdown, CSV or a rich table, and the gate as a rich table."""

from __future__ import annotations

import csv
import io

from rich.table import Table

from noisebench.scoring.metrics import HIGHER_IS_BETTER, REVIEWED, metric_title, scale
from noisebench.scoring.paired import decimals
from noisebench.studies.leaderboard.cells import STILL_RISING
from noisebench.studies.leaderboard.gate import GateResult, describe_key
from noisebench.studies.leaderboard.tables import Pivot

DEGENERATE_MARK = "†"
STILL_IMPROVING_MARK = "↑"


def format_cell(entry: dict | None, metric: str) -> str:
    """``mean ± std (n=N)``, with ``†`` when some of its runs were degenerate; the digits
    follow the spread over seeds (two significant digits of the std).

    >>> format_cell({"mean": 0.0, "std": 0.0, "n": 1, "degenerate": 1}, "f1")
    '0.00† (n=1)'
    >>> format_cell({"mean": 0.6123, "std": 0.015, "n": 3}, "f1")
    '61.2 ± 1.5 (n=3)'
    """
    if entry is None:
        return "–"
    unit = scale(metric)
    digits = 2 if unit == 100.0 else 4
    if entry["n"] > 1:
        digits = decimals(entry["std"] * unit, digits)
    text = f"{entry['mean'] * unit:.{digits}f}"
    if entry["n"] > 1:
        text += f" ± {entry['std'] * unit:.{digits}f}"
    if entry.get("degenerate"):
        text += DEGENERATE_MARK
    if entry.get("still_improving") is not None:
        text += STILL_IMPROVING_MARK
    return text + f" (n={entry['n']})"


def footnotes(table: Pivot) -> list[str]:
    """The lines that explain ``†`` and ``↑`` under a table that has such cells."""
    lines = []
    marked = [c for c in table.cells.values() if c.get("degenerate")]
    if marked:
        runs_marked = sum(c["degenerate"] for c in marked)
        lines.append(
            f"{DEGENERATE_MARK} degenerate: {runs_marked} run(s) in {len(marked)} cell(s)"
            " predicted one label for nearly every word or no entity at all; such a number is"
            " not a measured score (results.json: 'degenerate')."
        )
    rising = [c for c in table.cells.values() if c.get("still_improving") is not None]
    if rising:
        lines.append(
            f"{STILL_IMPROVING_MARK} still improving: {len(rising)} cell(s) whose validation F1"
            f" rose by more than {STILL_RISING * 100:g} point(s) (and the seed spread) at the"
            " last epoch, their best; a longer budget may change these numbers."
        )
    designed = [c for c in table.cells.values() if c.get("review_designed")]
    if table.metric.startswith(REVIEWED) and designed:
        which = "" if len(designed) == len(table.cells) else f" ({len(designed)} of the cells)"
        lines.append(
            f"reviewed{which}: the reviewed sentences of a designed review (review sample"
            " --compare) weigh their design (stratum's sentences over its reviewed ones):"
            " these are estimates of the split's scores."
        )
    return lines


def pivot_markdown(table: Pivot) -> str:
    unit = "percent" if scale(table.metric) == 100.0 else "fraction"
    direction = "higher" if HIGHER_IS_BETTER[table.metric] else "lower"
    lines = [
        f"### {metric_title(table.metric)} ({unit}, {direction} is better): {table.title}",
        "",
        "| loss | " + " | ".join(table.header(rate) for rate in table.rates) + " |",
        "|---|" + "---:|" * len(table.rates),
    ]
    for row in table.rows:
        lines.append(f"| {row} | " + " | ".join(_row_cells(table, row, "**{}**")) + " |")
    notes = footnotes(table)
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def pivot_table(table: Pivot) -> Table:
    """A pivot as a rich table for the terminal (its footnotes are printed under it)."""
    unit = "%" if scale(table.metric) == 100.0 else "fraction"
    better = "higher" if HIGHER_IS_BETTER[table.metric] else "lower"
    title = f"{metric_title(table.metric)} ({unit}, {better} is better) — {table.title}"
    rich_table = Table(title=title)
    rich_table.add_column("loss")
    for rate in table.rates:
        rich_table.add_column(table.header(rate), justify="right")
    for row in table.rows:
        rich_table.add_row(row, *_row_cells(table, row, "[bold green]{}[/]"))
    return rich_table


def _row_cells(table: Pivot, row: str, best: str) -> list[str]:
    """A row's cells as text, each column's best cell written with the format ``best``."""
    cells = []
    for rate in table.rates:
        text = format_cell(table.cells.get((row, rate)), table.metric)
        cells.append(best.format(text) if table.best.get(rate) == row else text)
    return cells


CSV_PARTS = ("mean", "std", "n", "ci95", "degenerate", "still_improving")


def pivot_csv(table: Pivot) -> str:
    header = ["loss"] + [f"{rate:.2f} {part}" for rate in table.rates for part in CSV_PARTS]
    rows = []
    for row in table.rows:
        values: list = [row]
        for rate in table.rates:
            entry = table.cells.get((row, rate))
            values += [entry[k] if entry else "" for k in CSV_PARTS]
        rows.append(["" if v is None else v for v in values])
    return csv_text(header, rows)


def csv_text(header, rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return buffer.getvalue()


def gate_table(gate: GateResult) -> Table:
    """The gate's compared keys as a rich table: baseline, current, diff, threshold, status."""
    table = Table(title="Regression gate: current − baseline")
    for column in ("key", "baseline", "current", "diff", "threshold", "status"):
        table.add_column(column, justify="left" if column in ("key", "status") else "right")
    for row in gate.rows:
        style = {"regressed": "bold red", "ok": "green"}.get(row["status"], "")
        threshold = "" if row["threshold"] is None else f"{row['threshold']:+g}"
        table.add_row(
            describe_key(row),
            f"{row['baseline']:.4f}",
            f"{row['current']:.4f}",
            f"{row['diff']:+.4f}",
            threshold,
            f"[{style}]{row['status']}[/]" if style else row["status"],
        )
    return table
