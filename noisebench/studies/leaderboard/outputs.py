"""A leaderboard on disk: its pivots as Markdown and CSV, the long table (one row per run,
split and metric) as CSV, JSON and Parquet, the verdict, and ``summary.md``, every file
written atomically, in a folder swapped in whole."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from noisebench.atomic import staged_directory, write_bytes_atomic, write_text_atomic
from noisebench.errors import InputError
from noisebench.studies.leaderboard.records import LEADERBOARD_DIR, Collected
from noisebench.studies.leaderboard.render import csv_text, pivot_csv, pivot_markdown
from noisebench.studies.leaderboard.settings import canonical
from noisebench.studies.leaderboard.tables import Pivot

LONG_FIELDS = (
    "run",
    "dataset",
    "model",
    "noise",
    "rate",
    "loss",
    "q",
    "s",
    "lr",
    "seed",
    "degenerate",
    "split",
    "metric",
    "value",
    "settings",
)
FORMATS = ("md", "csv", "json", "parquet")


def write_outputs(
    out: Path,
    collected: Collected,
    tables: list[Pivot],
    formats: list[str],
    findings: dict | None = None,
    findings_markdown: str | None = None,
) -> list[Path]:
    """Pivots as Markdown/CSV, the long table as CSV/Parquet/JSON, the verdict as Markdown
    (``findings_markdown``, rendered by ``verdict.markdown``: verdict sits above this
    module) and JSON, and ``summary.md`` (every table, then the verdict: made for a CI job
    summary); returns what it wrote."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise InputError(f"--format '{unknown[0]}': choose from {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(name: str, text: str) -> None:
        write_text_atomic(out / name, text)
        written.append(out / name)

    for table in tables:
        if "md" in formats:
            save(f"{table.name}.md", pivot_markdown(table))
        if "csv" in formats:
            save(f"{table.name}.csv", pivot_csv(table))
    if "md" in formats:
        parts = [pivot_markdown(table) for table in tables]
        if findings_markdown is not None:
            save("verdict.md", findings_markdown)
            parts.append(findings_markdown)
        save("summary.md", "\n".join(parts))
    if "json" in formats and findings is not None:
        save("verdict.json", json.dumps(findings, indent=1) + "\n")
    records = [{k: r[k] for k in LONG_FIELDS} for r in collected.records]
    # CSV and Parquet cells are flat: the settings there as JSON text
    flat = [r | {"settings": canonical(r["settings"])} for r in records]
    if "csv" in formats:
        save("runs.csv", csv_text(LONG_FIELDS, [[r[k] for k in LONG_FIELDS] for r in flat]))
    if "json" in formats:
        save("runs.json", json.dumps(records, indent=1) + "\n")
    if "parquet" in formats:
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(flat, schema=_long_schema()), sink)
        write_bytes_atomic(out / "runs.parquet", sink.getvalue().to_pybytes())
        written.append(out / "runs.parquet")
    return written


def _long_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("run", pa.string()),
            ("dataset", pa.string()),
            ("model", pa.string()),
            ("noise", pa.string()),
            ("rate", pa.float64()),
            ("loss", pa.string()),
            ("q", pa.float64()),
            ("s", pa.float64()),
            ("lr", pa.float64()),
            ("seed", pa.int64()),
            ("degenerate", pa.bool_()),
            ("split", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
            ("settings", pa.string()),
        ]
    )


def save_leaderboard(
    out: Path | None,
    folders: list[Path],
    write: Callable[[Path], list[Path]],
    note: Callable[[str], None],
) -> list[Path]:
    """``write(folder)`` into ``out``, or by default into ``leaderboard`` inside the first
    runs folder: built aside and swapped in whole, so it never mixes two leaderboards' files
    and no reader sees it half-written (``collect`` never takes it for a run). One ``note``
    says where; a default place that cannot be written is a warning, not an error."""
    if out is not None:
        try:
            written = write(out)
        except OSError as error:
            raise InputError(f"--out {out}: {error.strerror or error}") from None
    else:
        out = Path(folders[0]) / LEADERBOARD_DIR
        try:
            with staged_directory(out, replace=True) as staging:
                written = [out / path.relative_to(staging) for path in write(staging)]
        except OSError as error:
            note(
                f"warning: could not write the leaderboard to {out} ({error.strerror or error});"
                " choose a place with --out DIR"
            )
            return []
    note(f"wrote the leaderboard to {out} ({len(written)} files)")
    return written
