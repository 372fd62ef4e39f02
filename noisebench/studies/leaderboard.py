"""Leaderboards: aggregate complete runs over seeds, pivot, write, and gate regressions.

    noisebench leaderboard runs --out lb --plots
    noisebench leaderboard runs --baseline lb.json --fail-on f1:-0.5 --fail-on ece:+0.02

Every complete run contributes one record per (split, metric). A cell pools the runs whose
settings (``run_settings``: the resolved config but the seed) are equal, and aggregates
them over seeds: mean, sample standard deviation, n, and a 95% Student-t confidence
interval when n >= 3. Pivots put loss configurations in rows and noise rates in columns;
where the runs of one table differ in another setting, every row names it
(``ce epochs=4``). F1, precision and recall are shown and compared in percentage points;
ECE, MCE, Brier and NLL as fractions. By default the tables go to ``<runs>/leaderboard/``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from noisebench.atomic import write_bytes_atomic, write_text_atomic
from noisebench.data.loading import dataset_name
from noisebench.errors import InputError
from noisebench.scoring.paired import decimals
from noisebench.training import runs
from noisebench.training.config import (
    DERIVED_IDENTITY_KEYS,
    NOISE_SETTINGS,
    NOISES_WITHOUT_RATE,
    TrainConfig,
)
from noisebench.training.methods import is_bound

HIGHER_IS_BETTER = {
    "f1": True,
    "precision": True,
    "recall": True,
    "ece": False,
    "mce": False,
    "brier": False,
    "nll": False,
    "entity_ece": False,  # predicted entities' joint confidence against exact match
    "entity_mce": False,
    "entity_word_ece": False,  # words whose prediction or gold label is an entity
    "ece_equal_mass": False,  # equal-count bins (adaptive ECE)
    "entity_ece_equal_mass": False,
}
PERCENT_METRICS = {"f1", "precision", "recall"}
# what tells cells (and baseline entries) apart: every setting but the seed, in `settings`
KEY_FIELDS = ("dataset", "model", "settings", "split", "metric")
# what a cell's row and a baseline entry say about it (``loss``: the row label)
ENTRY_FIELDS = (
    "dataset",
    "model",
    "noise",
    "rate",
    "loss",
    "q",
    "s",
    "settings",
    "split",
    "metric",
)
# the key of baselines from before settings (schema_version 1), by row label
V1_KEY_FIELDS = ("dataset", "noise", "rate", "loss", "q", "s", "split", "metric")
# config keys that never tell runs apart: the seed (a cell pools over it), keys that follow
# from others, and where the data and the model lie (the dataset and model columns name them)
NOT_SETTINGS = ("seed", "data", "model", *DERIVED_IDENTITY_KEYS)
# settings that the row label (loss and its treatments, q, s) or the table already names
NAMED_ELSEWHERE = (
    "noise",
    "rate",
    "loss",
    "q",
    "s",
    "loss_warmup",
    "span_smoothing",
    "span_distance",
    "method",
    "mask_cutoff",
    "mask_reading",
    "error_profile",
)
# settings a config holds only where they apply (``TrainConfig.identity``): a run without
# one has none, which differs from no other run's
WHERE_THEY_APPLY = ("mask_warmup", *NOISE_SETTINGS)
TUNED = ("lr", "q", "s")  # what ``sweep --tune`` varies and ``select_tuned`` chooses among
SETTING_ORDER = tuple(f.name for f in fields(TrainConfig))
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
BASELINE_VERSION = 2  # 2: entries keyed by their settings; 1 (by row label) is still read
LEADERBOARD_DIR = "leaderboard"  # the default output folder, inside the runs folder
# two-sided 95% Student-t quantiles, by degrees of freedom
T_975 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    11: 2.201,
    12: 2.179,
    13: 2.160,
    14: 2.145,
    15: 2.131,
    16: 2.120,
    17: 2.110,
    18: 2.101,
    19: 2.093,
    20: 2.086,
    25: 2.060,
    30: 2.042,
    40: 2.021,
    60: 2.000,
    120: 1.980,
}


def scale(metric: str) -> float:
    """Display and gate unit: percentage points for F1/P/R, fractions otherwise."""
    return 100.0 if metric in PERCENT_METRICS else 1.0


def t_quantile(degrees: int) -> float:
    eligible = [d for d in T_975 if d <= degrees]
    return T_975[max(eligible)] if degrees <= 120 else 1.960


# ---------------------------------------------------------------------------- collect


@dataclass
class Collected:
    records: list[dict] = field(default_factory=list)  # the long table
    complete: int = 0
    incomplete: list[Path] = field(default_factory=list)
    reliability: dict[str, dict] = field(default_factory=dict)  # run name -> split scores
    run_dirs: dict[str, Path] = field(default_factory=dict)  # run name -> its folder


def collect(folders: list[Path], split: str, metric_names: list[str]) -> Collected:
    """Read every run folder below ``folders`` (a folder may itself be a run; a
    ``leaderboard`` folder inside is what this module wrote, never a run)."""
    for metric in metric_names:
        if metric not in HIGHER_IS_BETTER:
            raise InputError(f"--metric '{metric}': choose from {', '.join(HIGHER_IS_BETTER)}")
    collected = Collected()
    for folder in folders:
        if not Path(folder).is_dir():
            raise InputError(f"{folder}: no such runs folder")
        candidates = (
            [folder]
            if (Path(folder) / runs.CONFIG).exists()
            else sorted(
                p
                for p in Path(folder).iterdir()
                if p.name != LEADERBOARD_DIR and (p / runs.CONFIG).exists()
            )
        )
        for run_dir in candidates:
            results = runs.read_json(run_dir / runs.RESULTS)
            if results is None or results.get("schema_version") != runs.SCHEMA_VERSION:
                collected.incomplete.append(run_dir)
                continue
            collected.complete += 1
            collected.run_dirs[run_dir.name] = run_dir
            _add_run(collected, run_dir, results, split, metric_names)
    label_settings(collected.records)
    return collected


def run_settings(results: dict) -> dict:
    """Every setting a run was trained with but the seed, written one way where several
    spellings train alike, so that runs pool exactly when this is equal: no paths (the
    dataset and model columns name them), no CE start for CE (it is CE throughout), a CE
    start of 0 for runs from before ``--loss-warmup``, ``clean`` validation labels for
    every oracle run (``is_oracle``) and ``noisy`` (as given) for any other run from before
    ``--validation-labels``, a noise profile by its file name.

    >>> run_settings({"config": {"data": "x/toy", "model": "m", "loss": "ce", "rate": None,
    ...     "noise": "uniform", "seed": 3, "epochs": 4, "loss_warmup": 0.1}})
    {'loss': 'ce', 'rate': 0.0, 'noise': 'none', 'epochs': 4, 'validation_labels': 'noisy'}
    """
    config = results["config"]
    settings = {k: v for k, v in config.items() if k not in NOT_SETTINGS}
    settings["noise"], settings["rate"] = noise_and_rate(config)
    if config["loss"] == "ce":
        settings.pop("loss_warmup", None)
    else:
        settings["loss_warmup"] = config.get("loss_warmup", 0.0)
    if settings.get("method") == "none":
        del settings["method"]
    if settings.get("error_profile"):
        settings["error_profile"] = Path(settings["error_profile"]).name
    oracle = is_oracle(results)
    settings["validation_labels"] = "clean" if oracle else config.get("validation_labels", "noisy")
    return settings


def noise_and_rate(config: dict) -> tuple[str, float]:
    """The noise a run added to its data and its rate: ``("none", 0.0)`` without any;
    a matrix or a profile sets every rate itself (shown as 0).

    >>> noise_and_rate({"noise": "uniform", "rate": 0.4})
    ('uniform', 0.4)
    >>> noise_and_rate({"noise": "uniform", "rate": None})
    ('none', 0.0)
    >>> noise_and_rate({"noise": "matrix", "rate": None, "matrix": "flips.json"})
    ('matrix', 0.0)
    """
    if config.get("noise") in NOISES_WITHOUT_RATE:
        return config["noise"], 0.0
    if config.get("rate") is None:
        return "none", 0.0
    return config["noise"], float(config["rate"])


def _setting_text(settings: dict, name: str) -> str:
    """``epochs=4``, ``lr=5e-05``; ``lr=?`` for a run whose config does not record it.

    >>> _setting_text({"lr": 5e-05, "max_train_samples": None}, "lr")
    'lr=5e-05'
    >>> _setting_text({"max_train_samples": None}, "max_train_samples")
    'max_train_samples=none'
    >>> _setting_text({}, "epochs")
    'epochs=?'
    """
    if name not in settings:
        return f"{name}=?"
    value = settings[name]
    if value is None:
        text = "none"
    elif isinstance(value, float):
        text = format(value, "g")
    elif isinstance(value, (list, tuple)):
        text = ",".join(map(str, value))
    else:
        text = str(value)
    return f"{name}={text}"


def _table(record: dict) -> tuple:
    return record["dataset"], record["model"], record["noise"]


def _by_table(records: list[dict]) -> dict[tuple, list[dict]]:
    """The records of each table (dataset, model, noise)."""
    tables: dict[tuple, list[dict]] = {}
    for record in records:
        tables.setdefault(_table(record), []).append(record)
    return tables


def differing_settings(records: list[dict], always: tuple[str, ...] = ()) -> list[str]:
    """The settings in which the runs of ``records`` differ (a run that does not record a
    setting differs from one that does), beyond those their row labels and tables already
    name; ``always`` joins them whatever. In ``TrainConfig`` order."""
    values: dict[str, set[str]] = {}
    for record in records:
        for name in record["settings"].keys() - set(NAMED_ELSEWHERE):
            values.setdefault(name, set()).add(_setting_text(record["settings"], name))
    for record in records:
        for name in values.keys() - record["settings"].keys() - set(WHERE_THEY_APPLY):
            values[name].add("?")
    named = {name for name, seen in values.items() if len(seen) > 1} | set(always)
    order = {name: i for i, name in enumerate(SETTING_ORDER)}
    return sorted(named, key=lambda name: (order.get(name, len(order)), name))


def label_settings(records: list[dict], always: tuple[str, ...] = ()) -> dict[tuple, list[str]]:
    """Name in each row label the settings in which the runs of its table differ
    (``ce epochs=4``), only then, so the rows and gate keys of a study of one set-up stay
    as they were; ``always`` is named in every row (``--tuned``: the chosen lr). Returns
    the names per table (dataset, model, noise)."""
    named = {}
    for table, members in _by_table(records).items():
        named[table] = differing_settings(members, always)
        for record in members:
            record["loss"] = _label(record, named[table])
    return named


def set_ups(records: list[dict]) -> dict[str, str]:
    """Run name -> its set-up (``epochs=4``), where the runs of its table differ in a
    setting that is neither a tuning trial's (lr, q, s) nor a method's own; "" elsewhere.
    The verdict compares losses within one set-up."""
    found = {}
    for members in _by_table(records).values():
        names = [n for n in differing_settings(members) if n not in (*TUNED, *WHERE_THEY_APPLY)]
        for record in members:
            found[record["run"]] = " ".join(_setting_text(record["settings"], n) for n in names)
    return found


def _label(record: dict, names: list[str]) -> str:
    settings = record["settings"]
    shown = [
        _setting_text(settings, name)
        for name in names
        if name in settings or name not in WHERE_THEY_APPLY
    ]
    return " ".join([record["base_loss"], *shown])


def _trial(record: dict) -> tuple:
    return tuple(record["settings"].get(name) for name in TUNED)


def _trial_family(record: dict) -> tuple:
    """The runs a tuning chooses among: equal in every setting but lr, q, s and the seed."""
    rest = {k: v for k, v in record["settings"].items() if k not in TUNED}
    return record["dataset"], record["model"], record["base_loss"], _canonical(rest)


def _canonical(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)


def select_tuned(collected: Collected) -> list[dict]:
    """Per loss and set-up (every setting but lr, q, s and the seed), keep only the runs
    of the setting (lr, q, s) with the best mean validation F1 over seeds (first in sorted
    order on a tie); rows then name the chosen lr. Returns the choices."""
    scores: dict[tuple, dict[tuple, dict[str, float]]] = {}
    for record in collected.records:
        validation = record.get("validation_f1")
        runs_of = scores.setdefault(_trial_family(record), {}).setdefault(_trial(record), {})
        runs_of[record["run"]] = -1.0 if validation is None else validation
    chosen = {}
    for family, settings in scores.items():
        order = sorted(settings, key=lambda k: tuple(-1 if v is None else v for v in k))
        chosen[family] = max(order, key=lambda k: np.mean(list(settings[k].values())))
    kept = [r for r in collected.records if _trial(r) == chosen[_trial_family(r)]]
    named = label_settings(kept, always=("lr",))
    choices, first = [], {}
    for record in kept:
        first.setdefault(_trial_family(record), record)
    for family, record in first.items():
        lr, q, s = chosen[family]
        label = " ".join(
            [_setting_text(record["settings"], "lr")]
            + [f"{name}={value:g}" for name, value in (("q", q), ("s", s)) if value is not None]
        )
        others = [name for name in named[_table(record)] if name not in TUNED]
        choices.append(
            {k: record[k] for k in ("dataset", "model", "noise", "rate")}
            | {
                "loss": _label(record, others),
                "lr": lr,
                "q": q,
                "s": s,
                "label": label,
                "validation_f1": float(np.mean(list(scores[family][chosen[family]].values()))),
                "trials": len(scores[family]),
            }
        )
    collected.records = kept
    return sorted(choices, key=lambda c: (c["dataset"], c["noise"], c["rate"], c["loss"]))


def _warmup_label(config: dict) -> str:
    """A CE start other than the default makes another method, never averaged with it
    (runs from before ``--loss-warmup`` existed had none)."""
    warmup = config.get("loss_warmup", 0.0)
    if config["loss"] == "ce" or warmup == runs.DEFAULT_LOSS_WARMUP:
        return ""
    return f" warmup={warmup:g}"


ORACLE_SUFFIX = " (oracle: clean validation labels)"
BOUND_SUFFIX = " (bound)"  # rows of oracle methods: what could be reached, not a method


def method_label(method: str | None) -> str:
    """`` +mask-missing`` after the loss; oracle methods also say they are bounds.

    >>> method_label("none"), method_label("mask-missing"), method_label("oracle-clean")
    ('', ' +mask-missing', ' +oracle-clean (bound)')
    """
    if method in (None, "none"):
        return ""
    return f" +{method}" + (BOUND_SUFFIX if is_bound(method) else "")


def _span_label(config: dict) -> str:
    """Span-smoothed runs are their own row (``ce span=0.1``; ``span=0.1/2`` at 2 words)."""
    eps = config.get("span_smoothing")
    if not eps:
        return ""
    distance = config.get("span_distance", 1)
    return f" span={eps:g}" + (f"/{distance}" if distance != 1 else "")


def _reading_label(config: dict) -> str:
    """Masking read otherwise than by default is its own row (``cutoff=0.7``, ``literal``)."""
    cutoff, reading = config.get("mask_cutoff"), config.get("mask_reading")
    return (f" cutoff={cutoff:g}" if cutoff is not None else "") + (
        f" {reading}" if reading is not None else ""
    )


def _profile_label(config: dict) -> str:
    """mask-auto runs that a profile steered are their own row (``profile=crowd.json``)."""
    profile = config.get("error_profile")
    return f" profile={Path(profile).name}" if profile else ""


def is_bound_label(label: str) -> bool:
    return label.endswith(BOUND_SUFFIX) or BOUND_SUFFIX + " " in label


def is_oracle(results: dict) -> bool:
    """Whether clean validation labels chose the model of a run trained on noisy labels:
    asked for (``--validation-labels clean``), or a run from before validation noise
    followed train noise (its simulated noise left validation clean)."""
    config = results["config"]
    chosen_on = (results.get("train") or {}).get("validation_labels")
    noisy_train = bool(config.get("rate"))
    return config.get("validation_labels") == "clean" or (noisy_train and chosen_on == "clean")


def _add_run(
    collected: Collected, run_dir: Path, results: dict, split: str, metric_names: list[str]
) -> None:
    config = results["config"]
    noise, rate = noise_and_rate(config)
    dataset = results.get("dataset") or dataset_name(config["data"])
    if is_oracle(results):  # an oracle run never mixes with others
        dataset += ORACLE_SUFFIX
    identity = {
        "run": run_dir.name,
        "dataset": dataset,
        "model": Path(config["model"]).name if Path(config["model"]).exists() else config["model"],
        "noise": noise,
        "rate": rate,
        "loss": config["loss"]
        + _warmup_label(config)
        + _span_label(config)
        + method_label(config.get("method"))
        + _profile_label(config)
        + _reading_label(config),
        "q": config.get("q"),
        "s": config.get("s"),
        "lr": config.get("lr"),
        "seed": config["seed"],
        "settings": run_settings(results),
    }
    scores = results["splits"].get(split)
    if scores is None:
        return
    identity["degenerate"] = bool(scores.get("degenerate"))
    identity["noisy_labels"] = labels_noisy_as_given(results, dataset)
    history = (results.get("train") or {}).get("history") or []
    identity["validation_history"] = [epoch["validation_f1"] for epoch in history]
    identity["base_loss"] = identity["loss"]  # before the settings that differ join it
    identity["validation_f1"] = (results["splits"].get("validation") or {}).get("f1")
    for metric in metric_names:
        if scores.get(metric) is None:  # runs scored before the metric existed, or no spans
            continue
        collected.records.append(
            {**identity, "split": split, "metric": metric, "value": float(scores[metric])}
        )
    collected.reliability[run_dir.name] = scores


def labels_noisy_as_given(results: dict, dataset: str) -> bool:
    """Whether the dataset's own training labels are noisy, before any added noise: a
    NoiseBench variant other than ``clean``, or a run without added noise whose training
    labels differ from their clean version (a corrupted folder given as data, say)."""
    if real_noise_dataset(dataset):
        return True
    if results["config"].get("rate"):
        return False  # the recorded label noise includes the added noise
    noise = (results.get("train") or {}).get("label_noise") or {}
    return bool(noise.get("token_error_rate") or noise.get("entity_noise_level"))


def real_noise_dataset(dataset: str) -> bool:
    """A NoiseBench variant with real annotation noise (every one but ``clean``)."""
    name = dataset.removesuffix(ORACLE_SUFFIX)
    return name.startswith("noisebench-") and not name.startswith("noisebench-clean")


def describe_noise(noise: str, rates, noisy_labels: bool) -> str:
    """What the labels of a table or a verdict are: the dataset's own, plus any noise
    added to them.

    >>> describe_noise("uniform", [0.0, 0.2], False)
    'uniform noise'
    >>> describe_noise("uniform", [0.0], True)
    "the dataset's own noisy labels, no added noise"
    >>> describe_noise("uniform", [0.0, 0.1], True)
    "the dataset's own noisy labels + added uniform noise"
    >>> describe_noise("none", [0.0], False)
    'labels as given, no added noise'
    """
    added = noise != "none" and any(rates)
    own = "the dataset's own noisy labels" if noisy_labels else "labels as given"
    if added:
        return f"{own} + added {noise} noise" if noisy_labels else f"{noise} noise"
    return f"{own}, no added noise"


def rate_header(rate: float, noise: str, noisy_labels: bool) -> str:
    """A pivot's column: ``rate 0.20`` for simulated noise on clean labels; ``as given``
    and ``+ 0.10`` where the labels are noisy already or nothing was added."""
    if not rate:
        return "rate 0.00" if noise != "none" and not noisy_labels else "as given"
    return f"+ {rate:.2f}" if noisy_labels else f"rate {rate:.2f}"


# --------------------------------------------------------------------------- aggregate


def cell_key(entry: dict) -> tuple:
    """What tells cells apart: dataset, model, split, metric and every setting but the seed
    (a record of ``collect``, a row of ``aggregate`` or a baseline entry)."""
    return tuple(_canonical(entry[k]) if k == "settings" else entry[k] for k in KEY_FIELDS)


def aggregate(records: list[dict]) -> list[dict]:
    """Mean, std (ddof 1), n and a 95% CI (n >= 3) per cell (``cell_key``), over seeds."""
    cells: dict[tuple, list[dict]] = {}
    for record in records:
        cells.setdefault(cell_key(record), []).append(record)
    rows = []
    for everyone in cells.values():
        members, repeated = one_per_seed(everyone)
        array = np.asarray([r["value"] for r in members], dtype=np.float64)
        std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
        half_width = (
            t_quantile(len(array) - 1) * std / math.sqrt(len(array)) if len(array) >= 3 else None
        )
        rows.append(
            {k: members[0][k] for k in ENTRY_FIELDS}
            | {
                "mean": float(array.mean()),
                "std": std,
                "n": len(array),
                "ci95": half_width,
                # runs that learned nothing (see metrics)
                "degenerate": sum(int(r.get("degenerate", False)) for r in members),
                # the dataset's own labels are noisy
                "noisy_labels": any(r.get("noisy_labels") for r in members),
                # validation F1 gained at the last epoch, where it was still rising (or None)
                "still_improving": still_improving(
                    [r.get("validation_history") or [] for r in members]
                ),
                # runs left out: another run of the cell had the same seed (a copy)
                "repeated_runs": repeated,
            }
        )
    return rows


def one_per_seed(records: list[dict]) -> tuple[list[dict], list[str]]:
    """A cell's records with one run per seed (the first by run name: two runs with the
    same settings and seed are copies, not evidence), and the names of the others.

    >>> one_per_seed([{"seed": 0, "run": "b"}, {"seed": 0, "run": "a"}, {"seed": 1, "run": "c"}])
    ([{'seed': 0, 'run': 'a'}, {'seed': 1, 'run': 'c'}], ['b'])
    """
    kept: dict = {}
    repeated = []
    for record in sorted(records, key=lambda r: (r["seed"], r["run"])):
        if record["seed"] in kept:
            repeated.append(record["run"])
        else:
            kept[record["seed"]] = record
    return list(kept.values()), repeated


STILL_RISING = 0.01  # validation F1 gained at the last epoch that calls a run unfinished


def still_improving(histories: list[list[float]], threshold: float = STILL_RISING) -> float | None:
    """How much validation F1 a loss gained at its last epoch, where that epoch was its
    best and the gain beats both ``threshold`` and the spread over seeds (sample std of
    the last epoch's F1); None otherwise. Then its score says more about the budget than
    about the loss. ``histories``: validation F1 per epoch, one list per seed; seeds that
    stopped early (lists of other lengths) mean it was not still improving.

    >>> round(still_improving([[0.30, 0.51]]), 3)          # +21 points at the last epoch
    0.21
    >>> still_improving([[0.70, 0.705]]) is None           # +0.5: under the threshold
    True
    >>> still_improving([[0.5, 0.6], [0.5, 0.4]]) is None  # the mean did not rise
    True
    >>> still_improving([[0.6, 0.75], [0.6, 0.61]]) is None  # +8 < the seeds' std, 9.9
    True
    >>> still_improving([[0.5, 0.7, 0.6]]) is None         # the best epoch was not the last
    True
    """
    if not histories or len({len(h) for h in histories}) != 1 or len(histories[0]) < 2:
        return None
    mean = np.mean(np.asarray(histories, dtype=np.float64), axis=0)
    if int(np.argmax(mean)) != len(mean) - 1:
        return None
    rise = float(mean[-1] - mean[-2])
    last = [h[-1] for h in histories]
    spread = float(np.std(last, ddof=1)) if len(last) > 1 else 0.0
    return rise if rise > max(threshold, spread) else None


def reliability_panels(collected: Collected) -> dict[tuple, dict[tuple[str, float], dict]]:
    """Per table (dataset, model, noise): (row label, rate) -> the split scores of the
    cell's lowest seed, for a grid of reliability diagrams."""
    panels: dict[tuple, dict] = {}
    for record in sorted(collected.records, key=lambda r: r["seed"]):
        cell = (loss_label(record), record["rate"])
        panels.setdefault(_table(record), {}).setdefault(cell, collected.reliability[record["run"]])
    return panels


def loss_label(row: dict) -> str:
    parts = [row["loss"]]
    if row.get("q") is not None:
        parts.append(f"q={row['q']:g}")
    if row.get("s") is not None:
        parts.append(f"s={row['s']:g}")
    return " ".join(parts)


@dataclass
class Pivot:
    """One table: a (dataset, model, noise) group and one metric."""

    dataset: str
    model: str
    noise: str
    metric: str
    rates: list[float]
    rows: list[str]  # loss-configuration labels
    cells: dict[tuple[str, float], dict]  # (row, rate) -> aggregated entry
    best: dict[float, str]  # rate -> best row label
    noisy_labels: bool = False  # the dataset's own labels are noisy (before added noise)

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.model}-{self.noise}-{self.metric}".replace("/", "--")

    @property
    def title(self) -> str:
        noise = describe_noise(self.noise, self.rates, self.noisy_labels)
        return f"{self.dataset}, {self.model}, {noise}"

    def header(self, rate: float) -> str:
        return rate_header(rate, self.noise, self.noisy_labels)


def pivots(aggregated: list[dict], metric_names: list[str]) -> list[Pivot]:
    tables = []
    groups = sorted({(r["dataset"], r["model"], r["noise"]) for r in aggregated})
    for dataset, model, noise in groups:
        for metric in metric_names:
            entries = [
                r
                for r in aggregated
                if (r["dataset"], r["model"], r["noise"], r["metric"])
                == (dataset, model, noise, metric)
            ]
            if not entries:
                continue
            order = sorted(
                {
                    (
                        r["loss"],
                        r["q"] if r["q"] is not None else -1,
                        r["s"] if r["s"] is not None else -1,
                        loss_label(r),
                    )
                    for r in entries
                }
            )
            rows = [label for *_, label in order]
            rates = sorted({r["rate"] for r in entries})
            cells = {(loss_label(r), r["rate"]): r for r in entries}
            better = max if HIGHER_IS_BETTER[metric] else min
            best = {}
            for rate in rates:
                column = [c for (_, r), c in cells.items() if r == rate]
                # bounds (oracle methods) never count as the best, unless alone
                methods = [c for c in column if not is_bound_label(loss_label(c))] or column
                best[rate] = better(methods, key=lambda c: c["mean"])
            tables.append(
                Pivot(
                    dataset,
                    model,
                    noise,
                    metric,
                    rates,
                    rows,
                    cells,
                    {rate: loss_label(c) for rate, c in best.items()},
                    any(r["noisy_labels"] for r in entries),
                )
            )
    return tables


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
    return lines


# ----------------------------------------------------------------------------- writing


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
    flat = [r | {"settings": _canonical(r["settings"])} for r in records]
    if "csv" in formats:
        save("runs.csv", _csv(LONG_FIELDS, [[r[k] for k in LONG_FIELDS] for r in flat]))
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


def pivot_markdown(table: Pivot) -> str:
    unit = "percent" if scale(table.metric) == 100.0 else "fraction"
    direction = "higher" if HIGHER_IS_BETTER[table.metric] else "lower"
    lines = [
        f"### {table.metric} ({unit}, {direction} is better): {table.title}",
        "",
        "| loss | " + " | ".join(table.header(rate) for rate in table.rates) + " |",
        "|---|" + "---:|" * len(table.rates),
    ]
    for row in table.rows:
        cells = []
        for rate in table.rates:
            text = format_cell(table.cells.get((row, rate)), table.metric)
            cells.append(f"**{text}**" if table.best.get(rate) == row else text)
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    notes = footnotes(table)
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


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
    return _csv(header, rows)


def _csv(header, rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return buffer.getvalue()


# ------------------------------------------------------------------------- the gate


def save_baseline(path: Path, aggregated: list[dict]) -> None:
    entries = [{k: r[k] for k in (*ENTRY_FIELDS, "mean", "std", "n")} for r in aggregated]
    document = {"schema_version": BASELINE_VERSION, "entries": entries}
    write_text_atomic(Path(path), json.dumps(document, indent=1) + "\n")


def read_baseline(path: Path) -> list[dict]:
    document = runs.read_json(Path(path))
    if document is None:
        raise InputError(f"--baseline {path}: missing or not JSON")
    if document.get("schema_version") not in (1, BASELINE_VERSION) or "entries" not in document:
        raise InputError(f"--baseline {path}: not a noisebench baseline (no schema_version 1 or 2)")
    return document["entries"]


LEGACY_BASELINE = (
    "saved before baselines recorded every setting (schema_version 1): its entries are"
    " matched by dataset, noise, rate and row label, and only where one cell has them;"
    " re-save it with --save-baseline to compare model, epochs and every other setting"
)


def is_legacy(baseline: list[dict]) -> bool:
    """A baseline from before entries carried their settings (schema_version 1)."""
    return any("settings" not in entry for entry in baseline)


def parse_thresholds(specs: list[str]) -> dict[str, float]:
    """``["f1:-0.5", "ece:+0.02"]`` -> ``{"f1": -0.5, "ece": 0.02}``."""
    thresholds = {}
    for spec in specs:
        metric, _, delta = spec.partition(":")
        if metric not in HIGHER_IS_BETTER:
            raise InputError(f"--fail-on '{spec}': unknown metric '{metric}'")
        try:
            thresholds[metric] = float(delta)
        except ValueError:
            raise InputError(f"--fail-on '{spec}': expected METRIC:DELTA, e.g. f1:-0.5") from None
        if thresholds[metric] == 0 or not math.isfinite(thresholds[metric]):
            raise InputError(f"--fail-on '{spec}': DELTA must be a non-zero number with a sign")
    return thresholds


@dataclass
class GateResult:
    rows: list[dict]  # one per compared key: key fields, baseline, current, diff, status
    missing_in_current: list[dict]
    missing_in_baseline: list[dict]

    @property
    def regressions(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "regressed"]


def compare(
    baseline: list[dict], aggregated: list[dict], thresholds: dict[str, float]
) -> GateResult:
    """Compare means in display units; a threshold's sign gives the bad direction. Cells
    match by ``cell_key``; a legacy baseline's entries (``is_legacy``) by dataset, noise,
    rate, row label, q, s, split and metric, and only where one current cell has that key
    (cells of several models or settings under one old key are compared with none)."""
    key_of = _legacy_key if is_legacy(baseline) else cell_key
    before = {key_of(entry): entry for entry in baseline}
    current: dict[tuple, list[dict]] = {}
    for row in aggregated:
        current.setdefault(key_of(row), []).append(row)
    matched = sorted((k for k in before if len(current.get(k, [])) == 1), key=str)
    rows = []
    for key in matched:
        now = current[key][0]
        metric = now["metric"]
        unit = scale(metric)
        diff = (now["mean"] - before[key]["mean"]) * unit
        threshold = thresholds.get(metric)
        if threshold is None:
            status = "not gated"
        elif (threshold < 0 and diff < threshold) or (threshold > 0 and diff > threshold):
            status = "regressed"
        else:
            status = "ok"
        rows.append(
            _entry(now)
            | {
                "baseline": before[key]["mean"] * unit,
                "current": now["mean"] * unit,
                "diff": diff,
                "threshold": threshold,
                "status": status,
            }
        )
    missing_current = [_entry(before[k]) for k in sorted(set(before) - set(matched), key=str)]
    missing_baseline = [
        _entry(row) for key in sorted(set(current) - set(matched), key=str) for row in current[key]
    ]
    return GateResult(rows, missing_current, missing_baseline)


def _legacy_key(entry: dict) -> tuple:
    return tuple(entry.get(k) for k in V1_KEY_FIELDS)


def _entry(row: dict) -> dict:
    return {k: row[k] for k in ENTRY_FIELDS if k in row}


def describe_key(row: dict) -> str:
    """``toyner tiny uniform@0.40 gce q=0.7 test f1`` (a legacy baseline's entries have
    no model)."""
    model = f" {row['model']}" if row.get("model") else ""
    return (
        f"{row['dataset']}{model} {row['noise']}@{row['rate']:.2f} {loss_label(row)}"
        f" {row['split']} {row['metric']}"
    )


def write_junit(path: Path, gate: GateResult | None, failing: list[dict]) -> None:
    """The gate as JUnit XML: one test case per compared key (skipped where no threshold
    applies), a failure carrying the numbers for each regression, and keys missing on
    either side as failures when they fail the gate (``--strict``), else skipped."""
    import xml.etree.ElementTree as ElementTree

    rows = gate.rows if gate is not None else []
    suite = ElementTree.Element("testsuite", name="noisebench regression gate")
    failed = {describe_key(r) for r in failing}
    for row in rows:
        case = ElementTree.SubElement(
            suite, "testcase", classname=f"noisebench.gate.{row['metric']}", name=describe_key(row)
        )
        numbers = (
            f"baseline {row['baseline']:.4f}, current {row['current']:.4f}, diff {row['diff']:+.4f}"
        )
        if row["status"] == "regressed":
            message = f"{row['metric']} moved {row['diff']:+.4f} (threshold {row['threshold']:+g})"
            ElementTree.SubElement(case, "failure", message=message).text = numbers
        elif row["status"] == "not gated":
            ElementTree.SubElement(case, "skipped", message=f"no threshold ({numbers})")
        else:
            ElementTree.SubElement(case, "system-out").text = numbers
    for title, keys in (
        ("missing in current runs", gate.missing_in_current if gate else []),
        ("missing in baseline", gate.missing_in_baseline if gate else []),
    ):
        for key in keys:
            name = describe_key(key)
            case = ElementTree.SubElement(
                suite, "testcase", classname=f"noisebench.gate.{key['metric']}", name=name
            )
            tag = "failure" if name in failed else "skipped"
            ElementTree.SubElement(case, tag, message=title)
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    document = ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)
    write_text_atomic(Path(path), document + "\n")
