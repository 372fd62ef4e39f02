"""The Python API: noisebench's commands as functions with typed results.

    import noisebench as nb

    noisy = nb.corrupt("conll2003", rate=0.4, seed=0)
    run = nb.train(data=str(noisy.out), loss="sgce", q=0.8, s=0.1)
    print(run.test.f1, run.test.ece)
    board = nb.leaderboard("runs")

Each parameter is named as its command-line option (``--max-train-samples`` is
``max_train_samples``), with the same default. ``train``'s parameters are generated
from the run settings' declarations (``TrainConfig``), as the command's options are.
Bad input raises ``InputError`` naming the parameter; nothing is half-written.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from noisebench.errors import InputError
from noisebench.training.config import TRAIN_FIELDS, TrainConfig, option_name

# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Scores:
    """One split's scores against its labels (``results.json``'s split entry)."""

    f1: float  # entity F1 (seqeval), 0-1
    precision: float
    recall: float
    ece: float  # word-level expected calibration error
    mce: float
    entity_ece: float | None  # over predicted entities; None where there are none
    brier: float
    nll: float
    n_sentences: int

    @classmethod
    def of(cls, split: dict) -> Scores:
        return cls(**{name: split.get(name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Run:
    """A finished training run (``nb.train``); ``results`` is its whole ``results.json``."""

    run_dir: Path
    config: TrainConfig
    validation: Scores | None
    test: Scores | None
    best_epoch: int
    epochs_run: int
    seconds: float
    results: dict

    @classmethod
    def of(cls, run_dir: Path, results: dict) -> Run:
        splits, summary = results["splits"], results.get("train") or {}
        return cls(
            run_dir=Path(run_dir),
            config=TrainConfig.from_identity(results["config"]),
            validation=Scores.of(splits["validation"]) if "validation" in splits else None,
            test=Scores.of(splits["test"]) if "test" in splits else None,
            best_epoch=summary.get("best_epoch"),
            epochs_run=summary.get("epochs_run"),
            seconds=summary.get("seconds"),
            results=results,
        )


# ----------------------------------------------------------------------------- errors


@contextlib.contextmanager
def _named_parameters(function: Callable) -> Iterator[None]:
    """Re-raise ``InputError`` with each ``--option`` of ``function``'s parameters
    written as the parameter's name (``--max-train-samples 0`` -> ``max_train_samples 0``)."""
    names = set(inspect.signature(function).parameters) | set(_SETTING_PARAMETERS)

    def parameter(match: re.Match) -> str:
        name = match.group(1).replace("-", "_")
        return name if name in names else match.group(0)

    try:
        yield
    except InputError as error:
        raise InputError(re.sub(r"--([a-z][a-z0-9-]*)", parameter, str(error))) from error


def _api(function: Callable) -> Callable:
    @functools.wraps(function)
    def call(*args, **kwargs):
        with _named_parameters(function):
            return function(*args, **kwargs)

    return call


def _listed(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None or isinstance(value, tuple):
        return value
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip()) or None
    return tuple(value)


# --------------------------------------------------------------------------- commands


@_api
def corrupt(
    dataset: str = "conll2003",
    *,
    rate: float | None = None,
    noise: str | None = None,
    matrix: str | Path | None = None,
    entity_mix: str | None = None,
    profile: str | None = None,
    splits: str | Sequence[str] = ("train",),
    seed: int = 0,
    out: str | Path | None = None,
    token_column: str | None = None,
    tag_column: str | None = None,
    labels: str | Sequence[str] | None = None,
    force: bool = False,
):
    """Inject label noise into ``dataset`` and write it as Parquet with ``noise.json``.

    Returns a ``CorruptResult``: ``out`` (the folder, a valid ``data`` for ``train``),
    ``report`` (a ``NoiseReport``: realised token error rate, entity noise level,
    confusion) and ``up_to_date`` (the folder already held exactly this). Options as
    ``noisebench corrupt``'s."""
    from noisebench.data import loading
    from noisebench.data import noise as noise_models

    config = noise_models.noise_config(
        noise, rate, seed, _listed(splits) or (), matrix, entity_mix, profile
    )
    columns = loading.Columns(token_column, tag_column, _listed(labels))
    return noise_models.corrupt_to_directory(
        dataset, config, Path(out) if out is not None else None, columns, force
    )


# the settings' parameters: named as their options (noise_profile is --profile)
_SETTING_PARAMETERS = {
    option_name(n)[2:].replace("-", "_"): n for n, f in TRAIN_FIELDS.items() if f.metadata["cli"]
}


def train(
    *,
    device: str = "auto",
    compile: bool = False,
    runs_dir: str | Path = "runs",
    save_model: bool = False,
    resume: bool = False,
    progress: Callable[[dict], None] | None = None,
    **settings,
) -> Run:
    """Fine-tune a model on ``data`` with a (robust) loss and score it; a finished run
    with the same settings is read back, not retrained (as ``noisebench train``).

    Returns a ``Run``: ``run_dir``, ``config``, ``validation`` and ``test`` ``Scores``,
    ``best_epoch``, ``epochs_run``, ``seconds`` and the whole ``results``.
    ``progress`` receives the loop's events (steps, epochs) as dicts.
    """
    from noisebench.studies import plots
    from noisebench.training import loop, runs
    from noisebench.training.prepare import prepare

    unknown = sorted(set(settings) - set(_SETTING_PARAMETERS))
    if unknown:
        raise TypeError(f"train() got an unexpected keyword argument '{unknown[0]}'")
    given = {_SETTING_PARAMETERS[k]: v for k, v in settings.items()}
    given.setdefault("noise", None)  # chosen from the other noise options, as the CLI does
    config = TrainConfig.of_options(**given)
    prepared = prepare(config, Path(runs_dir), device, compile)
    if not resume and runs.is_complete(prepared.run_dir):
        return Run.of(prepared.run_dir, runs.read_json(prepared.run_dir / runs.RESULTS))
    results = loop.train(prepared, resume=resume, save_model=save_model, progress=progress)
    plots.run_figures(prepared.run_dir, results)
    return Run.of(prepared.run_dir, results)


def _parameter(name: str) -> inspect.Parameter:
    setting = _SETTING_PARAMETERS[name]
    field = TRAIN_FIELDS[setting]
    default = None if setting == "noise" else field.default
    annotation = "str | None" if setting == "noise" else field.type
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def _documented(function: Callable, own: Callable) -> Callable:
    """``function`` with ``own``'s parameters after the settings' (their declarations'
    defaults), and each setting's help in its docstring: what ``help(nb.train)`` shows."""
    settings = [_parameter(name) for name in _SETTING_PARAMETERS]
    kept = [p for p in inspect.signature(own).parameters.values() if p.kind is not p.VAR_KEYWORD]
    function.__signature__ = inspect.Signature([*settings, *kept], return_annotation="Run")
    lines = [
        f"    {name}: {TRAIN_FIELDS[setting].metadata['help']}"
        for name, setting in _SETTING_PARAMETERS.items()
    ]
    function.__doc__ = (
        (own.__doc__ or "") + "\n    Settings (as train's options):\n\n" + "\n".join(lines) + "\n"
    )
    return function


train = _documented(_api(train), train)
