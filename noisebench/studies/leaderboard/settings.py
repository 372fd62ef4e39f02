"""Which settings tell runs apart: a run's settings (its config but the seed, written one
way), the settings in which the runs of one table differ, and the row labels that name
them (``ce epochs=4``)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from noisebench.training import precision
from noisebench.training.config import (
    DERIVED_IDENTITY_KEYS,
    NOISE_SETTINGS,
    NOISES_WITHOUT_RATE,
    TrainConfig,
)

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


def run_settings(results: dict) -> dict:
    """Every setting a run was trained with but the seed, written one way where several
    spellings train alike, so that runs pool exactly when this is equal: no paths (the
    dataset and model columns name them), no CE start for CE (it is CE throughout), a CE
    start of 0 for runs from before ``--loss-warmup``, ``clean`` validation labels for
    every oracle run (``is_oracle``) and ``noisy`` (as given) for any other run from before
    ``--validation-labels``, a noise profile by its file name, the precision the run
    computed in (``precision.of_results``: fp32 on CPU, bf16 on CUDA before ``--precision``).

    >>> run_settings({"config": {"data": "x/toy", "model": "m", "loss": "ce", "rate": None,
    ...     "noise": "uniform", "seed": 3, "epochs": 4, "loss_warmup": 0.1}})
    {'loss': 'ce', 'rate': 0.0, 'noise': 'none', 'epochs': 4, 'precision': 'fp32', \
'validation_labels': 'noisy'}
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
    settings["precision"] = precision.of_results(results)  # older runs: their device's usual
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


def is_oracle(results: dict) -> bool:
    """Whether clean validation labels chose the model of a run trained on noisy labels:
    asked for (``--validation-labels clean``), or a run from before validation noise
    followed train noise (its simulated noise left validation clean)."""
    config = results["config"]
    chosen_on = (results.get("train") or {}).get("validation_labels")
    noisy_train = bool(config.get("rate"))
    return config.get("validation_labels") == "clean" or (noisy_train and chosen_on == "clean")


def canonical(settings: dict) -> str:
    """Settings as one comparable text (JSON, sorted keys)."""
    return json.dumps(settings, sort_keys=True)


def setting_text(settings: dict, name: str) -> str:
    """``epochs=4``, ``lr=5e-05``; ``lr=?`` for a run whose config does not record it.

    >>> setting_text({"lr": 5e-05, "max_train_samples": None}, "lr")
    'lr=5e-05'
    >>> setting_text({"max_train_samples": None}, "max_train_samples")
    'max_train_samples=none'
    >>> setting_text({}, "epochs")
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


def table_of(record: dict) -> tuple:
    """The table a record belongs to: (dataset, model, noise)."""
    return record["dataset"], record["model"], record["noise"]


def by_table(records: list[dict]) -> dict[tuple, list[dict]]:
    """The records of each table (dataset, model, noise)."""
    tables: dict[tuple, list[dict]] = {}
    for record in records:
        tables.setdefault(table_of(record), []).append(record)
    return tables


def differing_settings(records: list[dict], always: tuple[str, ...] = ()) -> list[str]:
    """The settings in which the runs of ``records`` differ (a run that does not record a
    setting differs from one that does), beyond those their row labels and tables already
    name; ``always`` joins them whatever. In ``TrainConfig`` order."""
    values: dict[str, set[str]] = {}
    for record in records:
        for name in record["settings"].keys() - set(NAMED_ELSEWHERE):
            values.setdefault(name, set()).add(setting_text(record["settings"], name))
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
    for table, members in by_table(records).items():
        named[table] = differing_settings(members, always)
        for record in members:
            record["loss"] = row_label(record, named[table])
    return named


def set_ups(records: list[dict]) -> dict[str, str]:
    """Run name -> its set-up (``epochs=4``), where the runs of its table differ in a
    setting that is neither a tuning trial's (lr, q, s) nor a method's own; "" elsewhere.
    The verdict compares losses within one set-up."""
    found = {}
    for members in by_table(records).values():
        names = [n for n in differing_settings(members) if n not in (*TUNED, *WHERE_THEY_APPLY)]
        for record in members:
            found[record["run"]] = " ".join(setting_text(record["settings"], n) for n in names)
    return found


def row_label(record: dict, names: list[str]) -> str:
    """The record's loss and treatments, then each of ``names`` (``epochs=4``), but a
    setting that does not apply to its run."""
    settings = record["settings"]
    shown = [
        setting_text(settings, name)
        for name in names
        if name in settings or name not in WHERE_THEY_APPLY
    ]
    return " ".join([record["base_loss"], *shown])
