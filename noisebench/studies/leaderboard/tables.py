"""Cells -> tables: one pivot per (dataset, model, noise) and metric, loss configurations
in rows and noise rates in columns, the best row of each column marked; and the cells'
reliability scores, for a grid of reliability diagrams."""

from __future__ import annotations

from dataclasses import dataclass

from noisebench.scoring.metrics import HIGHER_IS_BETTER
from noisebench.studies.leaderboard.labels import (
    describe_noise,
    is_bound_label,
    loss_label,
    rate_header,
)
from noisebench.studies.leaderboard.records import Collected
from noisebench.studies.leaderboard.settings import table_of


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
    """One table per (dataset, model, noise) and metric of the aggregated cells."""
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
            tables.append(
                Pivot(
                    dataset,
                    model,
                    noise,
                    metric,
                    rates,
                    rows,
                    cells,
                    _best_rows(cells, rates, metric),
                    any(r["noisy_labels"] for r in entries),
                )
            )
    return tables


def _best_rows(cells: dict[tuple[str, float], dict], rates: list[float], metric: str) -> dict:
    """Rate -> the row label of the column's best mean (bounds, the oracle methods, never
    count as the best, unless alone)."""
    better = max if HIGHER_IS_BETTER[metric] else min
    best = {}
    for rate in rates:
        column = [c for (_, r), c in cells.items() if r == rate]
        methods = [c for c in column if not is_bound_label(loss_label(c))] or column
        best[rate] = better(methods, key=lambda c: c["mean"])
    return {rate: loss_label(c) for rate, c in best.items()}


def reliability_panels(collected: Collected) -> dict[tuple, dict[tuple[str, float], dict]]:
    """Per table (dataset, model, noise): (row label, rate) -> the split scores of the
    cell's lowest seed, for a grid of reliability diagrams."""
    panels: dict[tuple, dict] = {}
    for record in sorted(collected.records, key=lambda r: r["seed"]):
        cell = (loss_label(record), record["rate"])
        panels.setdefault(table_of(record), {}).setdefault(
            cell, collected.reliability[record["run"]]
        )
    return panels
