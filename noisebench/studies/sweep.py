"""Planning a sweep: the grids expanded into runs, each with what to do about it.

    noisebench sweep --preset quick
    noisebench sweep study.toml --jobs 4

A sweep is a list of grids (losses x q x s x rates) crossed with seeds. ``q`` applies
only to the losses that take it (gce, sgce), ``s`` only to sgce; duplicate configs are
dropped. A run that has ``results.json`` is skipped, one with a checkpoint is resumed,
any other is rerun, so a sweep stopped with Ctrl-C continues where it stopped when
started again. Every run is a ``noisebench train`` (``train_command``); running them is
``studies.backends``.
"""

from __future__ import annotations

import itertools
import sys
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from noisebench.data import loading as data
from noisebench.data.loading import dataset_name
from noisebench.data.noise import noise_choice
from noisebench.errors import InputError
from noisebench.training import precision, runs
from noisebench.training.config import (
    NOISES_WITHOUT_RATE,
    SWEEP_SETTINGS,
    VALIDATION_LABELS,
    TrainConfig,
    option_name,
)
from noisebench.training.losses import LOSSES
from noisebench.training.methods import METHODS
from noisebench.training.prepare import check_model, resolve_device

SMOOTHED_LOSSES = ("sgce",)  # the losses whose definition includes label smoothing s
BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class Grid:
    losses: tuple[str, ...] = ("ce", "gce", "sgce")
    data: tuple[str, ...] | None = None  # this grid's datasets (None: the study's)
    methods: tuple[str, ...] = ("none",)  # --method values, crossed with the losses
    span_smoothing: tuple[float, ...] = (0.0,)  # --span-smoothing values, crossed too
    q: tuple[float, ...] = (0.7,)
    s: tuple[float, ...] = (0.1,)
    rates: tuple[float, ...] = (0.0, 0.4)


@dataclass(frozen=True)
class SweepConfig:
    """A whole study: the grids, and the settings every run shares."""

    grids: tuple[Grid, ...] = (Grid(),)
    data: tuple[str, ...] = ("conll2003",)  # one study across several datasets
    model: str = "minilm-l6"
    noise: str = "uniform"
    seeds: tuple[int, ...] = (0,)
    epochs: int = 3
    lr: float = 5e-5
    loss_warmup: float = runs.DEFAULT_LOSS_WARMUP
    # labels that choose each run's best epoch: "noisy" (the same noise as train; what a
    # user has) and/or "clean" (an oracle); both may sit in one study
    validation_labels: tuple[str, ...] = ("noisy",)
    batch_size: int = 32
    max_train_samples: int | None = None
    error_profile: str | None = None  # for the mask-auto runs (see train --error-profile)
    precision: str = "auto"  # each run resolves it on its device (train --precision)
    # the other noise models' settings and the data's columns, as train takes them
    matrix: str | None = None
    entity_mix: str | None = None
    noise_profile: str | None = None
    token_column: str | None = None
    tag_column: str | None = None
    labels: tuple[str, ...] | None = None
    # per-loss tuning: (("lr", (1e-5, 5e-5)), ("q", (0.3, 0.7))); lr applies to every
    # loss, q to gce/sgce, s to sgce, each replacing the single value or grid list
    tune: tuple[tuple[str, tuple[float, ...]], ...] = ()
    trials: int | None = None  # settings per loss when tuning (default: the smallest space)
    runs_dir: str = "runs"
    jobs: int | str = "auto"  # processes at once; "auto": packed by GPU memory and cores
    backend: str = "local"


PRESETS = {
    # The laptop check (6 runs, 474 s from an empty cache on 2 CPU cores with native bf16,
    # where a plain fp32 Trainer runs 91.8 sentences/s; docs/results/quick-study.md):
    # under real annotation noise (NoiseBench's crowd labels) CE, GCE, SGCE and the
    # treatment that works there (CE + mask-missing); under simulated noise of the same
    # entity noise level on the same sentences (uniform noise on 10% of the words of the
    # clean labels) CE and SGCE (the better bounded loss there); each on its first 2,000
    # training sentences, the best epoch chosen on the noisy validation labels.
    "quick": SweepConfig(
        grids=(
            Grid(("ce", "gce", "sgce"), ("noisebench:crowd",), q=(0.7,), s=(0.1,), rates=(0.0,)),
            Grid(("ce",), ("noisebench:crowd",), methods=("mask-missing",), rates=(0.0,)),
            Grid(("ce", "sgce"), ("noisebench:clean",), q=(0.7,), s=(0.1,), rates=(0.1,)),
        ),
        # 6 epochs: the first budget tried (2, 4, 6) at which no run was still improving
        # at its last epoch (4 left SGCE rising by 1.4 and 4.1 validation F1 points)
        epochs=6,
        lr=3e-4,
        # a CE start over 20% of the steps: at 2 epochs (126 steps) 10% left GCE and SGCE
        # at all-O on the crowd labels, 20% got both out (GCE test F1 0.00 -> 30.53)
        loss_warmup=0.2,
        max_train_samples=2000,
    ),
    # The reference study's grid, for a GPU: 36 GCE and 45 SGCE configs, three seeds.
    "study": SweepConfig(
        grids=(
            Grid(
                losses=("gce",),
                q=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
                s=(0.0,),
                rates=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
            ),
            Grid(
                losses=("sgce",),
                q=(0.0, 0.6, 0.8),
                s=(0.0, 0.05, 0.1, 0.15, 0.2),
                rates=(0.0, 0.2, 0.6),
            ),
        ),
        seeds=(0, 1, 2),
    ),
}
GRID_KEYS = {
    "losses",
    "methods",
    "span_smoothing",
    "q",
    "s",
    "rates",
}  # top-level keys that set every grid
GRID_TABLE_KEYS = GRID_KEYS | {"data"}  # keys of a [[grid]] table
TUNABLE = ("lr", "q", "s")


def build_config(preset: str | None, toml_file: Path | None, overrides: dict) -> SweepConfig:
    """Preset, then TOML file, then flags (``overrides``; None means not given). Where
    nothing gives the rates, a dataset without clean labels (``has_clean_labels``) is
    trained as given (rate 0 alone) instead of getting the default 40% noise on top."""
    if preset is not None and preset not in PRESETS:
        raise InputError(f"--preset '{preset}': choose one of {', '.join(PRESETS)}")
    config = PRESETS[preset] if preset else SweepConfig()
    toml = _read_toml(toml_file) if toml_file is not None else {}
    if toml_file is not None:
        config = _apply(config, toml, str(toml_file))
    config = _apply(config, {k: v for k, v in overrides.items() if v is not None}, "flags")
    _validate(config)
    rates_given = (
        preset is not None
        or overrides.get("rates") is not None
        or "rates" in toml
        or any("rates" in table for table in toml.get("grid", []) if isinstance(table, dict))
    )
    if not rates_given and config.noise not in NOISES_WITHOUT_RATE:
        config = _as_given(config)
    return config


def _as_given(config: SweepConfig) -> SweepConfig:
    """Each grid's datasets without clean labels at rate 0 alone (never noise the user did
    not ask for); a grid that also holds data with clean labels is split per dataset, so
    those keep the grid's rates."""
    columns = data.Columns(config.token_column, config.tag_column, config.labels)
    given = {spec: not has_clean_labels(spec, columns) for spec in datasets_of(config)}
    grids = []
    for grid in config.grids:
        specs = grid.data or config.data
        if all(given[spec] for spec in specs):
            grids.append(replace(grid, rates=(0.0,)))
        elif not any(given[spec] for spec in specs):
            grids.append(grid)
        else:
            grids += [
                replace(grid, data=(spec,), rates=(0.0,) if given[spec] else grid.rates)
                for spec in specs
            ]
    return replace(config, grids=tuple(grids))


def has_clean_labels(spec: str, columns: data.Columns) -> bool:
    """Whether ``spec`` has clean labels beside its given ones, for the default rates to
    corrupt: a built-in source, ``noisebench:<variant>``, or a local dataset with a
    ``clean_tags`` column (a corrupted copy). A user's own labels (reviewed or not) have
    none; a Hub id is not fetched to find out.

    >>> has_clean_labels("conll2003", data.Columns()), has_clean_labels("org/ner", data.Columns())
    (True, False)
    """
    from noisebench.data import sources

    if Path(spec).expanduser().exists():
        return any(
            "clean_tags" in split.column_names for split in data.load(spec, columns).values()
        )
    return spec in sources.SOURCES or data.family_of(spec) is not None


def datasets_of(config: SweepConfig) -> list[str]:
    return list(dict.fromkeys(d for g in config.grids for d in (g.data or config.data)))


def as_given_note(config: SweepConfig) -> str | None:
    """The plan's line where a sweep trains labels without a clean copy as given: the
    datasets that every grid holding them trains at rate 0 alone."""
    if config.noise in NOISES_WITHOUT_RATE:
        return None
    columns = data.Columns(config.token_column, config.tag_column, config.labels)
    as_given = [
        spec
        for spec in datasets_of(config)
        if all(g.rates == (0.0,) for g in config.grids if spec in (g.data or config.data))
        and not has_clean_labels(spec, columns)
    ]
    if not as_given:
        return None
    return (
        f"{', '.join(as_given)}: your own labels (no clean copy), trained as given (rate 0, no"
        " noise added); --rates 0,0.4 adds simulated noise on top"
    )


def _read_toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: invalid TOML: {error}") from None


def _apply(config: SweepConfig, values: dict, origin: str) -> SweepConfig:
    known = {f.name for f in fields(SweepConfig)} - {"grids"} | GRID_KEYS | {"grid"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"{origin}: unknown key '{unknown[0]}' (keys: {', '.join(sorted(known))})")
    grids = config.grids
    if "grid" in values:
        if not isinstance(values["grid"], list) or not values["grid"]:
            raise InputError(f"{origin}: 'grid' must be a list of tables ([[grid]])")
        grids = tuple(_grid(Grid(), table, origin) for table in values["grid"])
    grid_values = {k: values[k] for k in GRID_KEYS if k in values}
    if grid_values:
        grids = tuple(_grid(grid, grid_values, origin) for grid in grids)
    plain = {k: v for k, v in values.items() if k not in GRID_KEYS | {"grid"}}
    if "tune" in plain:
        plain["tune"] = _tune(plain["tune"], origin)
    if "seeds" in plain:
        plain["seeds"] = tuple(_as_list(plain["seeds"], int, "seeds", origin))
    for key in ("data", "validation_labels", "labels"):
        if key in plain:
            plain[key] = tuple(_as_list(plain[key], str, key, origin))
    if "data" in plain and "grid" not in values:  # replaces the datasets of earlier grids
        grids = tuple(replace(grid, data=None) for grid in grids)
    try:
        return replace(config, grids=grids, **plain)
    except TypeError as error:
        raise InputError(f"{origin}: {error}") from None


def _tune(table, origin: str) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """``{"lr": [1e-5, 5e-5], "q": [0.3]}`` -> the sorted, hashable form of SweepConfig."""
    if not isinstance(table, dict):
        raise InputError(f"{origin}: 'tune' must be a table, e.g. [tune] lr = [1e-5, 5e-5]")
    unknown = sorted(set(table) - set(TUNABLE))
    if unknown:
        raise InputError(f"{origin}: cannot tune '{unknown[0]}' (tunable: {', '.join(TUNABLE)})")
    return tuple(
        (key, tuple(_as_list(table[key], float, f"tune.{key}", origin)))
        for key in TUNABLE
        if key in table
    )


# the sweep's options that take one value for the whole study, as SweepConfig holds them
SCALAR_OPTIONS = (
    "error_profile", "model", "epochs", "lr", "loss_warmup", "trials", "batch_size",
    "max_train_samples", "token_column", "tag_column", "backend", "entity_mix",
    "noise_profile", "precision",
)  # fmt: skip
TEXT_LISTS = ("losses", "methods", "data", "validation_labels", "labels")
NUMBER_LISTS = ("span_smoothing", "q", "s", "rates")


def options_overrides(options: dict) -> dict:
    """The sweep's options (the command's, or the Python API's parameters) as
    ``SweepConfig`` values: each list as comma-separated text or a sequence, ``tune`` as
    ``NAME=V1,V2`` texts or a mapping, None where not given (``build_config``)."""
    noise, matrix = options.get("noise"), options.get("matrix")
    entity_mix, profile = options.get("entity_mix"), options.get("noise_profile")
    seeds, tune, runs_dir = options.get("seeds"), options.get("tune"), options.get("runs_dir")
    if isinstance(tune, dict):
        tune = [f"{name}={','.join(map(str, values))}" for name, values in tune.items()]
    seed_numbers = _numbers(seeds)
    return (
        {name: options.get(name) for name in SCALAR_OPTIONS}
        | {name: _texts(options.get(name)) for name in TEXT_LISTS}
        | {name: _numbers(options.get(name)) for name in NUMBER_LISTS}
        | {
            "noise": noise_choice(noise, matrix, entity_mix, profile)
            if (matrix, entity_mix, profile) != (None, None, None)
            else noise,
            "matrix": None if matrix is None else str(matrix),
            "seeds": None if seed_numbers is None else tuple(int(x) for x in seed_numbers),
            "tune": parse_tune(tune) if tune else None,
            "runs_dir": None if runs_dir is None else str(runs_dir),
            "jobs": parse_jobs(options.get("jobs")),
        }
    )


def _texts(value) -> tuple[str, ...] | None:
    """``"a,b"`` or ``["a", "b"]`` -> ``("a", "b")``; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(str(part) for part in value)


def _numbers(value) -> tuple[float, ...] | None:
    texts = _texts(value)
    if texts is None:
        return None
    try:
        return tuple(float(text) for text in texts)
    except ValueError:
        raise InputError(f"'{value}' is not a comma-separated list of numbers") from None


def parse_jobs(value) -> int | str | None:
    """``--jobs``: a number of processes, or ``auto`` (None: not given)."""
    if value is None or value == "auto" or isinstance(value, int):
        return value
    try:
        return int(value)
    except ValueError:
        raise InputError(f"--jobs {value}: a number of processes (at least 1) or auto") from None


def parse_tune(specs: list[str]) -> dict[str, list[float]]:
    """``["lr=1e-5,5e-5", "q=0.3,0.7"]`` -> ``{"lr": [1e-05, 5e-05], "q": [0.3, 0.7]}``."""
    table = {}
    for spec in specs:
        key, _, values = spec.partition("=")
        try:
            table[key.strip()] = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise InputError(f"--tune '{spec}': expected NAME=V1,V2, e.g. lr=1e-5,5e-5") from None
        if not table[key.strip()]:
            raise InputError(f"--tune '{spec}': expected NAME=V1,V2, e.g. lr=1e-5,5e-5")
    return table


def _grid(base: Grid, table: dict, origin: str) -> Grid:
    unknown = sorted(set(table) - GRID_TABLE_KEYS)
    if unknown:
        keys = ", ".join(sorted(GRID_TABLE_KEYS))
        raise InputError(f"{origin}: unknown grid key '{unknown[0]}' (keys: {keys})")
    converted = {}
    for key, kind in (
        ("losses", str),
        ("methods", str),
        ("span_smoothing", float),
        ("q", float),
        ("s", float),
        ("rates", float),
        ("data", str),
    ):
        if key in table:
            converted[key] = tuple(_as_list(table[key], kind, key, origin))
    return replace(base, **converted)


def _as_list(value, kind, key: str, origin: str) -> list:
    items = value if isinstance(value, (list, tuple)) else [value]
    try:
        return [kind(item) for item in items]
    except (TypeError, ValueError):
        raise InputError(
            f"{origin}: '{key}' must be a list of {kind.__name__}s, got {value!r}"
        ) from None


def _validate(config: SweepConfig) -> None:
    """Refuse a study that a run would refuse, before any run starts."""
    for grid in config.grids:
        _validate_grid(grid)
    if not config.seeds:
        raise InputError("--seeds: give at least one seed")
    noise_choice(config.noise, config.matrix, config.entity_mix, config.noise_profile)
    if config.noise in NOISES_WITHOUT_RATE and any(g.rates != Grid().rates for g in config.grids):
        raise InputError(f"--rates has no effect with --noise {config.noise}: it sets every rate")
    _validate_tuning(config)
    if not config.data:
        raise InputError("--data: give at least one dataset")
    for labels in config.validation_labels:
        if labels not in VALIDATION_LABELS:
            raise InputError(
                f"--validation-labels '{labels}': choose noisy, clean, reviewed or several"
            )
    if not config.validation_labels:
        raise InputError("--validation-labels: give noisy, clean or both")
    if config.jobs != "auto" and not (isinstance(config.jobs, int) and config.jobs >= 1):
        raise InputError(f"--jobs {config.jobs}: a number of processes (at least 1) or auto")
    if config.backend not in BACKENDS:
        raise InputError(f"--backend '{config.backend}': choose local or ray")


def _validate_grid(grid: Grid) -> None:
    """Refuse the losses, methods and values no run would take."""
    for loss in grid.losses:
        if loss not in LOSSES:
            raise InputError(f"--losses: unknown loss '{loss}' (losses: {', '.join(LOSSES)})")
    for method in grid.methods:
        if method not in METHODS:
            raise InputError(
                f"--methods: unknown method '{method}' (methods: {', '.join(METHODS)})"
            )
    for eps in grid.span_smoothing:
        if not 0.0 <= eps < 1.0:
            raise InputError(f"--span-smoothing: {eps:g} must be in [0, 1)")
    for rate in grid.rates:
        if not 0.0 <= rate <= 1.0:
            raise InputError(f"--rates: {rate} is not a probability in [0, 1]")
    for q in grid.q:
        if q < 0:
            raise InputError(f"--q: {q} must be >= 0")
    for s in grid.s:
        if not 0.0 <= s < 1.0:
            raise InputError(f"--s: {s} must be in [0, 1)")
    if not (grid.losses and grid.rates and grid.methods):
        raise InputError("a grid needs at least one loss, one method and one rate")


def _validate_tuning(config: SweepConfig) -> None:
    """Refuse tuned values, settings no studied loss takes, and trials without tuning."""
    for key, values in config.tune:
        if not values:
            raise InputError(f"--tune {key}: give at least one value")
        if key == "lr" and min(values) <= 0:
            raise InputError(f"--tune lr: {min(values)} must be positive")
    studied = list(dict.fromkeys(loss for grid in config.grids for loss in grid.losses))
    for key, _ in config.tune:
        if not any(key in tunable(loss) for loss in studied):
            takers = ", ".join(name for name in LOSSES if key in tunable(name))
            raise InputError(
                f"--tune {key}: no loss in the study takes {key} (losses:"
                f" {', '.join(studied)}); only {takers} do"
            )
    if config.trials is not None and config.trials < 1:
        raise InputError(f"--trials {config.trials}: must be at least 1")
    if config.trials is not None and not config.tune:
        raise InputError("--trials needs --tune")


# the run settings every run of a sweep shares (config.SWEEP_SETTINGS, each a SweepConfig
# field); the tuned lr and mask-auto's error profile are set per run, as the grid's axes
SHARED_SETTINGS = tuple(n for n in SWEEP_SETTINGS if n not in ("lr", "error_profile"))


def expand(config: SweepConfig) -> list[TrainConfig]:
    """Every run of the sweep, in grid order, without duplicates."""
    planned: dict[TrainConfig, None] = {}
    trials = tuning_budget(config)
    pairs = [(d, g) for g in config.grids for d in (g.data or config.data)]
    for (dataset, grid), labels in itertools.product(pairs, config.validation_labels):
        for loss, method, eps in itertools.product(grid.losses, grid.methods, grid.span_smoothing):
            settings = loss_settings(config, grid, loss, trials)
            rates = (None,) if config.noise in NOISES_WITHOUT_RATE else grid.rates
            for rate, (lr, q, s), seed in itertools.product(rates, settings, config.seeds):
                run = TrainConfig(
                    **{name: getattr(config, name) for name in SHARED_SETTINGS},
                    data=dataset,
                    loss=loss,
                    method=method,
                    error_profile=config.error_profile if method == "mask-auto" else None,
                    span_smoothing=eps,
                    q=q,
                    s=s,
                    rate=rate,
                    lr=lr,
                    seed=seed,
                    validation_labels=labels,
                )
                planned[run] = None
    return list(planned)


def tunable(loss: str) -> set[str]:
    """The settings ``--tune`` may vary for ``loss``: lr always, q and s where it has them.

    >>> sorted(tunable("sgce")), sorted(tunable("ce"))
    (['lr', 'q', 's'], ['lr'])
    """
    return (
        {"lr"}
        | ({"q"} if LOSSES[loss].takes_q else set())
        | ({"s"} if loss in SMOOTHED_LOSSES else set())
    )


def _search_space(config: SweepConfig, grid: Grid, loss: str) -> list[tuple]:
    """Every (lr, q, s) a loss may take: tuned values replace the single ones."""
    tune = dict(config.tune)
    q_values = tune.get("q", grid.q) if "q" in tunable(loss) else (None,)
    s_values = tune.get("s", grid.s) if "s" in tunable(loss) else (None,)
    return list(itertools.product(tune.get("lr", (config.lr,)), q_values, s_values))


def tuning_budget(config: SweepConfig) -> int | None:
    """Settings per loss when tuning: ``trials``, else the smallest loss's search space,
    so that every loss gets the same number; None without tuning (the grid as given)."""
    if not config.tune:
        return None
    if config.trials is not None:
        return config.trials
    sizes = [len(_search_space(config, g, loss)) for g in config.grids for loss in g.losses]
    return min(sizes)


def loss_settings(config: SweepConfig, grid: Grid, loss: str, trials: int | None) -> list[tuple]:
    """The (lr, q, s) settings a loss is trained with: all of its search space, or, when
    the space is larger than the budget, that many drawn without replacement by a
    generator seeded with the loss's name (the same draw on every machine and rerun)."""
    space = _search_space(config, grid, loss)
    if trials is None or len(space) <= trials:
        return space
    rng = np.random.default_rng([zlib.crc32(loss.encode()), len(space), trials])
    return [space[i] for i in sorted(rng.choice(len(space), trials, replace=False))]


@dataclass
class PlannedRun:
    config: TrainConfig
    run_dir: Path
    status: str  # "done" (has results.json), "resume" (has a checkpoint) or "run"

    def to_dict(self) -> dict:
        named = as_named(self.config)
        return {"run_dir": str(self.run_dir), "status": self.status, **named.identity()}


def as_named(run: TrainConfig) -> TrainConfig:
    """``run`` as its name records it: its precision resolved on the device that its
    ``noisebench train`` picks here (``precision.settle``)."""
    return precision.settle(run, resolve_device("auto"))


def check_inputs(config: SweepConfig) -> None:
    """Refuse the datasets and the model that the runs would refuse, before any run
    starts (and in ``--dry-run``): nothing is fetched, local files are read."""
    columns = data.Columns(config.token_column, config.tag_column, config.labels)
    for dataset in dict.fromkeys(d for g in config.grids for d in (g.data or config.data)):
        data.check(dataset, columns)
    check_model(config.model)


def plan(config: SweepConfig) -> list[PlannedRun]:
    """Every run with its status; the datasets and the model checked first."""
    check_inputs(config)
    planned = []
    device = resolve_device("auto")  # where each run's train resolves its precision
    for run in expand(config):
        run.check()  # each setting as train checks it (--epochs 0 is refused here too)
        named = precision.settle(run, device).identity()
        run_dir = runs.run_dir(Path(config.runs_dir), named, dataset_name(run.data))
        planned.append(PlannedRun(run, run_dir, run_status(run_dir)))
    return planned


def run_status(run_dir: Path) -> str:
    """What a sweep does about the run in ``run_dir`` (``PlannedRun.status``): nothing
    ("done"), resume it ("resume") or train it ("run")."""
    if runs.is_complete(run_dir):
        return "done"
    if (run_dir / runs.CHECKPOINT / "state.pt").is_file():
        return "resume"
    return "run"


def train_command(run: TrainConfig, runs_dir: str, resume: bool) -> list[str]:
    """The ``noisebench train`` command line of ``run``: every setting that differs from
    its default, generated from the config's fields (a new setting needs no line here)."""
    command = [sys.executable, "-m", "noisebench", "train", "--json", "--runs-dir", runs_dir]
    for setting in fields(TrainConfig):
        value = getattr(run, setting.name)
        if value == setting.default:
            continue
        option = option_name(setting.name)
        if isinstance(value, bool):
            command.append(option if value else "--no-" + option[2:])
        elif isinstance(value, tuple):
            command += [option, ",".join(value)]
        else:
            command += [option, repr(value) if isinstance(value, float) else str(value)]
    return command + (["--resume"] if resume else [])


def unique_corruptions(configs: Iterable[TrainConfig]) -> list[TrainConfig]:
    """One run for each corrupted copy the runs need (the same data, noise and its
    settings, seed, and validation labels share one), so each copy is written once."""
    seen: dict[tuple, TrainConfig] = {}
    for run in configs:
        if run.adds_noise:
            key = (
                run.data, run.noise, run.rate, run.matrix, run.entity_mix, run.noise_profile,
                run.seed, run.corrupts_validation,
            )  # fmt: skip
            seen.setdefault(key, run)
    return list(seen.values())
