"""What every command shares: the typer apps, the consoles, and the error handling."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup
from typer.exceptions import TyperException

from noisebench.errors import InputError

DEBUG_VARIABLE = "NOISEBENCH_DEBUG"  # set to 1 for the traceback of an unexpected error


class OneLineErrors(TyperGroup):
    """Every command: an exception nobody expected ends as one line and exit 1, never a
    traceback (``NOISEBENCH_DEBUG=1`` raises it as it is, for a bug report)."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):  # typer's own ways out
            raise
        except Exception as error:
            if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
                raise
            reason = (str(error).strip().splitlines() or [""])[0][:300]
            stderr.print(
                Text.assemble(
                    ("error: ", "bold red"),
                    f"unexpected {type(error).__name__}"
                    + (f": {reason}" if reason else "")
                    + f" (a noisebench bug: please report it; {DEBUG_VARIABLE}=1 shows"
                    " the traceback)",
                ),
                soft_wrap=True,
            )
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=OneLineErrors,
    name="noisebench",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    help="Benchmark label-noise-robust training of token classifiers (NER first).",
)


def _print_version(asked: bool) -> None:
    if asked:
        from noisebench._version import __version__

        sys.stdout.write(f"noisebench {__version__}\n")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Benchmark label-noise-robust training of token classifiers (NER first)."""


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
