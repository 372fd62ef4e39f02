"""The options every command that names a dataset, or corrupts one on the fly, shares:
declared once here, so ``corrupt``, ``train``, ``detect``, ``sweep`` and ``score`` read
them alike (``noise.noise_choice`` checks how they combine, the same for all)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, get_type_hints

import typer

from noisebench.errors import InputError
from noisebench.training.config import TRAIN_FIELDS, TrainConfig, option_name

DATA_HELP = "Built-in name, file, folder or Hub id (org/name)."
DATA_PANEL = "Data"  # where --help shows them

# the dataset as a command's first argument (or --data, DataOption; options.dataset)
DatasetArgument = Annotated[
    str | None,
    typer.Argument(help=DATA_HELP + " Or --data; default conll2003.", show_default=False),
]
DataOption = Annotated[
    str | None,
    typer.Option("--data", help=DATA_HELP, show_default=False, rich_help_panel=DATA_PANEL),
]

# how the command line takes the settings whose Python type is not the option's own:
# --noise is chosen together with --matrix and --profile (noise.noise_choice), --matrix
# names a file, --labels is one comma-separated list
CLI_TYPES = {"noise": str | None, "matrix": Path | None, "labels": str | None}
CLI_DEFAULTS = {"noise": None}


def setting_option(name: str, help: str | None = None, unset: bool = False):
    """The option of run setting ``name``, generated from its declaration in
    ``TrainConfig`` (type, help, panel, option name); ``help`` overrides the help;
    ``unset``: optional, not given by default."""
    field = TRAIN_FIELDS[name]
    hint = CLI_TYPES.get(name) or get_type_hints(TrainConfig)[name]
    flag = option_name(name)
    if hint is bool:  # --strict/--no-strict: the child command line says either
        flag = f"{flag}/--no-{flag[2:]}"
    option = typer.Option(
        flag,
        help=help or field.metadata["help"],
        rich_help_panel=field.metadata["panel"],
        show_default=not unset and name not in CLI_DEFAULTS and field.default is not None,
    )
    if unset:
        hint = hint | None
    return Annotated[hint, option]


def with_settings(*names: str, help: dict[str, str] | None = None, unset: bool = False):
    """Give a command the options of these run settings (every settable one when none
    are named), each as a keyword argument named as its field, defaulting to the field's
    default: the command reads them from ``**settings``. ``help``: a setting's help where
    the command means something more particular by it. ``unset``: every default None
    (not given; the command layers them over a preset, as ``sweep``)."""

    def add(command):
        chosen = names or [n for n, f in TRAIN_FIELDS.items() if f.metadata["cli"]]
        own = inspect.signature(command, eval_str=True).parameters.values()
        generated = [
            inspect.Parameter(
                n,
                inspect.Parameter.KEYWORD_ONLY,
                default=None if unset else CLI_DEFAULTS.get(n, TRAIN_FIELDS[n].default),
                annotation=setting_option(n, (help or {}).get(n), unset),
            )
            for n in chosen
        ]
        kept = [p for p in own if p.kind is not inspect.Parameter.VAR_KEYWORD]
        positional = [p for p in kept if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        keyword = [p for p in kept if p.kind is inspect.Parameter.KEYWORD_ONLY]
        command.__signature__ = inspect.Signature([*positional, *generated, *keyword])
        return command

    return add


# the data options other commands share with train (corrupt, detect, sweep, profile)
TokenColumn = setting_option("token_column")
TagColumn = setting_option("tag_column")
Labels = setting_option("labels")
Noise = setting_option("noise")
Matrix = setting_option("matrix")
EntityMix = setting_option("entity_mix")
Profile = setting_option("noise_profile")


def dataset(positional: str | None, option: str | None, default: str | None = "conll2003"):
    """The dataset a command names, given as its argument or as ``--data`` (not both).

    >>> dataset(None, "noisebench:crowd"), dataset("x.conll", None), dataset(None, None)
    ('noisebench:crowd', 'x.conll', 'conll2003')
    """
    if positional is not None and option is not None and positional != option:
        raise InputError(f"name the dataset once: '{positional}' or --data '{option}'")
    return positional or option or default
