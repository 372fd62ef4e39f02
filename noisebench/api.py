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
from typing import TYPE_CHECKING

from noisebench.detection.config import DETECT_SETTINGS
from noisebench.detection.fix import MIN_F1
from noisebench.errors import InputError
from noisebench.training.config import SWEEP_SETTINGS, TRAIN_FIELDS, TrainConfig, option_name

if TYPE_CHECKING:
    from noisebench.detection.detect import Detected

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


SHORT_OPTIONS = {"-o": "out"}


@contextlib.contextmanager
def _named_parameters(function: Callable) -> Iterator[None]:
    """Re-raise ``InputError`` with each ``--option`` of ``function``'s parameters
    written as the parameter's name (``--max-train-samples 0`` -> ``max_train_samples 0``)."""
    names = set(inspect.signature(function).parameters) | set(map(_parameter_name, TRAIN_FIELDS))

    def parameter(match: re.Match) -> str:
        name = SHORT_OPTIONS.get(match.group(0)) or match.group(1).replace("-", "_")
        return name if name in names else match.group(0)

    try:
        yield
    except InputError as error:
        message = re.sub(r"(?<![\w-])(?:--([a-z][a-z0-9-]*)|-o\b)", parameter, str(error))
        raise InputError(message) from error


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
    data: str = "conll2003",
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
    """Inject label noise into ``data`` and write it as Parquet with ``noise.json``.

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
        data, config, Path(out) if out is not None else None, columns, force
    )


def _parameter_name(setting: str) -> str:
    """A run setting's parameter: named as its option (``noise_profile`` is ``profile``)."""
    return option_name(setting)[2:].replace("-", "_")


def _with_settings(settings: Sequence[str], *, unset: bool = False):
    """Give an API function these run settings as keyword parameters named as their
    options, with their declarations' defaults (``unset``: None, not given) and help; the
    function receives them as ``settings``, keyed by field name, every one present."""

    def wrap(function: Callable) -> Callable:
        names = {_parameter_name(s): s for s in settings}
        generated = [_setting_parameter(name, setting, unset) for name, setting in names.items()]
        own = [p for p in inspect.signature(function).parameters.values() if p.name != "settings"]
        positional = [p for p in own if p.kind is not p.KEYWORD_ONLY]
        keyword = [p for p in own if p.kind is p.KEYWORD_ONLY]

        @functools.wraps(function)
        def call(*args, **kwargs):
            unknown = sorted(set(kwargs) - {p.name for p in own} - set(names))
            if unknown:
                raise TypeError(
                    f"{function.__name__}() got an unexpected keyword argument '{unknown[0]}'"
                )
            given = {p.name: kwargs.pop(p.name, p.default) for p in generated}
            with _named_parameters(call):
                return function(*args, settings={names[k]: v for k, v in given.items()}, **kwargs)

        call.__signature__ = inspect.Signature(
            [*positional, *generated, *keyword],
            return_annotation=inspect.signature(function).return_annotation,
        )
        lines = [f"    {n}: {TRAIN_FIELDS[s].metadata['help']}" for n, s in names.items()]
        call.__doc__ = f"{function.__doc__}\n    Run settings:\n\n" + "\n".join(lines) + "\n"
        return call

    return wrap


def _setting_parameter(name: str, setting: str, unset: bool) -> inspect.Parameter:
    field = TRAIN_FIELDS[setting]
    default = None if unset or setting == "noise" else field.default  # noise: noise_choice
    annotation = "str | None" if setting == "noise" else field.type
    if unset and "None" not in annotation:
        annotation += " | None"
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


@_with_settings([n for n, f in TRAIN_FIELDS.items() if f.metadata["cli"]])
def train(
    *,
    device: str = "auto",
    compile: bool = False,
    runs_dir: str | Path = "runs",
    save_model: bool = False,
    resume: bool = False,
    progress: Callable[[dict], None] | None = None,
    settings: dict,
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

    prepared = prepare(TrainConfig.of_options(**settings), Path(runs_dir), device, compile)
    if not resume and runs.is_complete(prepared.run_dir):
        return Run.of(prepared.run_dir, runs.read_json(prepared.run_dir / runs.RESULTS))
    results = loop.train(
        prepared,
        resume=resume,
        save_model=save_model,
        progress=progress,
        figures=plots.run_figures,
    )
    return Run.of(prepared.run_dir, results)


@_with_settings(DETECT_SETTINGS)
def detect(
    data: str = "conll2003",
    *,
    detector: str = "dynamics",
    score: str | None = None,
    folds: int = 5,
    dynamics_pass: str = "eval",
    budget: str | float | None = None,
    fix: str | None = None,
    min_f1: float = MIN_F1,
    run: str | Path | None = None,
    out: str | Path | None = None,
    force: bool = False,
    device: str = "auto",
    runs_dir: str | Path = "runs",
    progress: Callable[[dict], None] | None = None,
    settings: dict,
) -> Detected:
    """Rank every training label of ``data`` by how likely it is wrong, score the
    ranking against the clean labels where the data has them, fix the data (``fix``:
    relabel, mask or drop, written to ``out``) and write the review files to ``out``.

    Returns a ``Detected``: the ``detection`` (every word's score and suggestion), its
    ``document`` (``detection.json``: each level's scores under ``levels``, the fix's
    report under ``fix``), the issue ``rows``, the ``fixed`` dataset and ``out``.
    """
    from noisebench.detection.config import DetectConfig, parse_share
    from noisebench.detection.detect import check_request
    from noisebench.detection.detect import detect as detected
    from noisebench.detection.record import prepared_of_run
    from noisebench.training.prepare import prepare

    share = parse_share(str(budget) if budget is not None else ("5%" if fix else "10%"))
    config = DetectConfig(detector, score, folds, share, dynamics_pass)
    out = Path(out) if out is not None else None
    check_request(config, settings["method"], fix, out, min_f1, force)
    if run is not None:
        prepared = prepared_of_run(Path(run), device)
    else:
        config_of_run = TrainConfig.of_options(**settings | {"data": data})
        prepared = prepare(config_of_run, Path(runs_dir), device)
    return detected(
        prepared, config, run=run, fix=fix, min_f1=min_f1, out=out, progress=progress
    )  # fmt: skip


@dataclass(frozen=True)
class Sweep:
    """A sweep's runs: each ``planned`` run with its status before the sweep ("done",
    "resume", "run"), and what happened to them (``dry_run``: nothing): trained by this
    sweep, complete before it, trained by another sweep on the same runs folder
    meanwhile (``elsewhere``), failed."""

    runs_dir: Path
    planned: list
    completed: list[Path]
    skipped: list[Path]
    elsewhere: list[Path]
    failed: list[tuple[Path, str]]
    degenerate: list[Path]


@_with_settings(SWEEP_SETTINGS, unset=True)
def sweep(
    config_file: str | Path | None = None,
    *,
    preset: str | None = None,
    losses: str | Sequence[str] | None = None,
    methods: str | Sequence[str] | None = None,
    span_smoothing: str | Sequence[float] | None = None,
    q: str | Sequence[float] | None = None,
    s: str | Sequence[float] | None = None,
    rates: str | Sequence[float] | None = None,
    seeds: str | Sequence[int] | None = None,
    data: str | Sequence[str] | None = None,
    validation_labels: str | Sequence[str] | None = None,
    tune: dict[str, Sequence[float]] | Sequence[str] | None = None,
    trials: int | None = None,
    runs_dir: str | Path | None = None,
    jobs: int | str | None = None,
    backend: str | None = None,
    dry_run: bool = False,
    progress: Callable | None = None,
    settings: dict,
) -> Sweep:
    """Run a grid of trainings (losses x methods x q x s x rates x seeds over datasets),
    resumably: a preset, then ``config_file`` (TOML), then the parameters given. Lists
    are sequences or comma-separated text; ``tune`` maps lr, q or s to the values to try.
    ``nb.leaderboard(sweep.runs_dir)`` tabulates the runs.

    ``progress(planned_run, status)`` hears each run start and finish, and where another
    sweep on the same runs folder trains it ("running elsewhere (HOST, pid PID)", then
    "completed elsewhere"): sweeps started on one runs folder divide its runs.
    """
    from noisebench.studies import backends
    from noisebench.studies import sweep as sweeps

    options = {k: v for k, v in locals().items() if k not in ("settings", "progress")}
    overrides = sweeps.options_overrides(options | settings)
    config = sweeps.build_config(
        preset, Path(config_file) if config_file is not None else None, overrides
    )
    planned = sweeps.plan(config)
    if dry_run:
        return Sweep(Path(config.runs_dir), planned, [], [], [], [], [])
    outcome = backends.run_sweep(config, progress)
    done = (outcome.completed, outcome.skipped, outcome.elsewhere, outcome.failed)
    return Sweep(Path(config.runs_dir), planned, *done, outcome.degenerate())


@dataclass(frozen=True)
class Cell:
    """One cell of a leaderboard: a metric's mean over seeds of one set-up (the runs whose
    settings are equal apart from the seed), with its spread."""

    dataset: str
    model: str
    noise: str
    rate: float | None
    loss: str  # the row label: the loss and what else tells the set-up apart
    q: float | None
    s: float | None
    settings: dict
    split: str
    metric: str
    mean: float
    std: float
    n: int  # seeds
    ci95: float | None  # half-width of the 95% interval (n >= 3)
    degenerate: int  # runs that learned nothing
    noisy_labels: bool  # scored against labels that are themselves noisy
    still_improving: float | None  # validation F1 still rising at the last epoch by this
    repeated_runs: list[str]  # runs left out: another run of the cell had the same seed
    review_designed: bool = False  # reviewed scores weighted by a designed review


@dataclass(frozen=True)
class Leaderboard:
    """A leaderboard: its ``cells``, the ``verdict`` (as ``verdict.json`` holds it, and
    as text), the files ``written``, and the gate's ``failing`` keys (with a baseline)."""

    cells: list[Cell]
    verdict: dict | None
    verdict_text: str | None
    tuning: list[dict] | None
    written: list[Path]
    failing: list[dict]
    complete_runs: int

    @property
    def passed(self) -> bool:
        """The gate passed (or there was none)."""
        return not self.failing


@_api
def leaderboard(
    runs_dirs: str | Path | Sequence[str | Path] = "runs",
    *,
    split: str = "test",
    metric: str | Sequence[str] = "f1,ece,mce",
    out: str | Path | None = None,
    format: str | Sequence[str] = "md,csv,json,parquet",
    plots: bool = False,
    baseline: str | Path | None = None,
    save_baseline: str | Path | None = None,
    fail_on: str | Sequence[str] = (),
    strict: bool = False,
    allow_missing: bool = False,
    verdict: bool = True,
    bootstrap: int = 1000,
    junit: str | Path | None = None,
    tuned: bool = False,
) -> Leaderboard:
    """Tables over losses, q, s, rates and seeds of the runs in ``runs_dirs``, written to
    ``out`` (default: ``leaderboard/`` in the first runs folder), with the verdict and,
    against a ``baseline``, the regression gate (``fail_on``: e.g. ``["f1:-0.5"]``).
    As ``noisebench leaderboard``."""
    from noisebench.studies import board as boards
    from noisebench.studies.verdict import markdown

    folders = [runs_dirs] if isinstance(runs_dirs, (str, Path)) else list(runs_dirs)
    optional = {"out": out, "baseline": baseline, "save_baseline": save_baseline, "junit": junit}
    paths = {k: Path(v) if v is not None else None for k, v in optional.items()}
    request = boards.Request(
        runs_dirs=[Path(f) for f in folders],
        split=split,
        metrics=list(_listed(metric) or ()),
        formats=list(_listed(format) or ()),
        plots=plots,
        fail_on=[fail_on] if isinstance(fail_on, str) else list(fail_on),
        strict=strict,
        allow_missing=allow_missing,
        verdict=verdict,
        bootstrap=bootstrap,
        tuned=tuned,
        json_output=False,
        **paths,
    )
    board = boards.make(request, lambda line: None)
    boards.judge(board, request, lambda line: None)
    findings = board.findings
    return Leaderboard(
        cells=[Cell(**row) for row in board.aggregated],
        verdict=findings,
        verdict_text=markdown(findings) if findings is not None else None,
        tuning=board.tuning,
        written=board.written,
        failing=board.failing,
        complete_runs=board.collected.complete,
    )


@_api
def review_sample(
    data: str = "conll2003",
    *,
    split: str = "validation",
    n: int = 300,
    seed: int = 0,
    out: str | Path,
    token_column: str | None = None,
    tag_column: str | None = None,
    labels: str | Sequence[str] | None = None,
    force: bool = False,
    compare: Sequence[str | Path] | None = None,
    continue_from: str | Path | None = None,
    where: Sequence[str] = (),
):
    """Draw ``n`` sentences of ``split`` uniformly at random (seeded) and write them for
    review into ``out``: Label Studio tasks, the labelling config, an editable CoNLL file
    and the manifest; with ``compare`` (two or more run folders, or a folder of runs), by
    the stratified design those runs define (those whose settings match every
    ``KEY=VALUE`` of ``where``); with ``continue_from`` (an earlier designed
    review's folder), its next ``n`` sentences. As ``noisebench review sample``; returns a
    ``Sample`` (``out``, ``manifest``, ``notes``)."""
    from noisebench.data import loading
    from noisebench.data.review import sampling
    from noisebench.studies import focus

    columns = loading.Columns(token_column, tag_column, _listed(labels))
    if continue_from is not None:
        return focus.continue_sample(data, Path(continue_from), n, Path(out), columns, force)
    if compare:
        runs = [Path(r) for r in compare]
        return focus.sample(data, split, n, seed, Path(out), runs, columns, force, where)
    return sampling.sample(data, split, n, seed, Path(out), columns, force)


@_api
def review_merge(
    data: str,
    reviewed: str | Path,
    *,
    out: str | Path,
    resolve: str = "latest",
    manifest: str | Path | None = None,
    token_column: str | None = None,
    tag_column: str | None = None,
    labels: str | Sequence[str] | None = None,
    force: bool = False,
):
    """Bring reviewed labels back: a Label Studio JSON export (or the edited CoNLL file)
    of a review of ``data``, checked against its manifest, written to ``out`` with the
    reviewed sentences marked (``reviewed``, ``reviewed_tags``, ``review_draw``, and for a
    designed review ``review_stratum``). As
    ``noisebench review merge``; returns a ``Merged`` (``dataset``, ``report``: counts,
    agreement, ties, sentences reviewed again, what a focused review estimates)."""
    from noisebench.data import loading
    from noisebench.studies import focus

    columns = loading.Columns(token_column, tag_column, _listed(labels))
    manifest_path = Path(manifest) if manifest is not None else None
    return focus.merge(data, Path(reviewed), Path(out), resolve, manifest_path, columns, force)
