"""The options every command that names a dataset, or corrupts one on the fly, shares:
declared once here, so ``corrupt``, ``train``, ``detect``, ``sweep`` and ``score`` read
them alike (``noise.noise_choice`` checks how they combine, the same for all)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from noisebench.errors import InputError

DATA_HELP = "Built-in name, file, folder or Hub id (org/name)."
DATA_PANEL = "Data"  # where --help shows them

DataOption = Annotated[
    str | None,
    typer.Option("--data", help=DATA_HELP, show_default=False, rich_help_panel=DATA_PANEL),
]

# -- columns: where the words and tags are, and the label names of integer tags
TokenColumn = Annotated[
    str | None,
    typer.Option(
        rich_help_panel=DATA_PANEL, help="Word column: a name, or a 0-based index for CoNLL."
    ),
]
TagColumn = Annotated[
    str | None,
    typer.Option(
        rich_help_panel=DATA_PANEL, help="Tag column: a name, or a 0-based index for CoNLL."
    ),
]
Labels = Annotated[
    str | None,
    typer.Option(rich_help_panel=DATA_PANEL, help="Label names in id order: O,B-PER,I-PER,..."),
]

# -- noise added on the fly (corrupt writes it; train, detect and sweep corrupt first)
Noise = Annotated[
    str | None,
    typer.Option(
        rich_help_panel=DATA_PANEL,
        help="uniform, pair, entity, matrix or profile (default: uniform; matrix with"
        " --matrix, profile with --profile).",
        show_default=False,
    ),
]
Matrix = Annotated[
    Path | None,
    typer.Option(
        rich_help_panel=DATA_PANEL,
        help='JSON noise matrix: {"B-PER": {"B-PER": 0.8, "B-ORG": 0.2}, ...}.',
    ),
]
EntityMix = Annotated[
    str | None,
    typer.Option(
        rich_help_panel=DATA_PANEL,
        help="Entity-noise event weights, e.g. missed=0.35,retyped=0.25,"
        "boundary=0.3,spurious=0.1 (the default).",
    ),
]
Profile = Annotated[
    str | None,
    typer.Option(
        "--profile",
        rich_help_panel=DATA_PANEL,
        help="Noise profile (implies --noise profile): a file from `noisebench profile`"
        " or a built-in one, noisebench:crowd, noisebench:weak, ...",
    ),
]


def dataset(positional: str | None, option: str | None, default: str | None = "conll2003"):
    """The dataset a command names, given as its argument or as ``--data`` (not both).

    >>> dataset(None, "noisebench:crowd"), dataset("x.conll", None), dataset(None, None)
    ('noisebench:crowd', 'x.conll', 'conll2003')
    """
    if positional is not None and option is not None and positional != option:
        raise InputError(f"name the dataset once: '{positional}' or --data '{option}'")
    return positional or option or default


def noise_fields(noise, matrix: Path | None, entity_mix, profile) -> dict:
    """The run config's fields that the noise options set, the noise model chosen as
    ``corrupt`` chooses it (``noise.noise_choice``)."""
    from noisebench.data.noise import noise_choice

    return {
        "noise": noise_choice(noise, matrix, entity_mix, profile),
        "matrix": None if matrix is None else str(matrix),
        "entity_mix": entity_mix,
        "noise_profile": profile,
    }
