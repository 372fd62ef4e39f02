"""Run folders -> records: every complete run contributes one record per (split, metric),
with what tells it apart (dataset, model, noise, rate, its row label and settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from noisebench.data.loading import dataset_name
from noisebench.errors import InputError
from noisebench.scoring.metrics import HIGHER_IS_BETTER, REVIEWED_SHOWN, metric_value
from noisebench.studies.leaderboard.labels import base_loss
from noisebench.studies.leaderboard.settings import (
    is_oracle,
    label_settings,
    noise_and_rate,
    run_settings,
)
from noisebench.training import runs

LEADERBOARD_DIR = "leaderboard"  # the default output folder, inside the runs folder
ORACLE_SUFFIX = " (oracle: clean validation labels)"


@dataclass
class Collected:
    records: list[dict] = field(default_factory=list)  # the long table
    complete: int = 0
    incomplete: list[Path] = field(default_factory=list)
    reliability: dict[str, dict] = field(default_factory=dict)  # run name -> split scores
    run_dirs: dict[str, Path] = field(default_factory=dict)  # run name -> its folder


def collect(folders: list[Path], split: str, metric_names: list[str]) -> Collected:
    """Read every run folder below ``folders`` (a folder may itself be a run; a
    ``leaderboard`` folder inside is what this package wrote, never a run)."""
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
        "loss": base_loss(config),
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
    # its reviewed scores weigh a designed review's sentences by their design
    identity["review_designed"] = bool((scores.get("review") or {}).get("designed"))
    identity["noisy_labels"] = labels_noisy_as_given(results, dataset)
    history = (results.get("train") or {}).get("history") or []
    identity["validation_history"] = [epoch["validation_f1"] for epoch in history]
    identity["base_loss"] = identity["loss"]  # before the settings that differ join it
    identity["validation_f1"] = (results["splits"].get("validation") or {}).get("f1")
    shown = [*metric_names, *(m for m in REVIEWED_SHOWN if "reviewed" in scores)]
    for metric in dict.fromkeys(shown):
        value = metric_value(scores, metric)
        if value is None:  # runs scored before the metric existed, or no spans
            continue
        collected.records.append(
            {**identity, "split": split, "metric": metric, "value": float(value)}
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
