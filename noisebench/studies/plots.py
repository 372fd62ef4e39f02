"""Figures: reliability diagrams, metric-vs-noise curves, reliability grids. matplotlib
is imported inside each function, with the non-interactive Agg backend."""

from __future__ import annotations

from pathlib import Path

from noisebench.atomic import write_bytes_atomic
from noisebench.scoring.metrics import HIGHER_IS_BETTER, metric_title, scale


def run_figures(folder: Path, results: dict, title: str | None = None) -> None:
    """A run's figures from its ``results.json``: one reliability diagram per split,
    ``reliability-<split>.png`` in ``folder`` (a run folder or a saved model's eval folder)."""
    name = title or Path(folder).name
    for split, scores in results["splits"].items():
        reliability_diagram(scores, f"{name} ({split})", Path(folder) / f"reliability-{split}.png")


def reliability_diagram(split_scores: dict, title: str, path: Path) -> None:
    """Accuracy per confidence bin, the gap to the diagonal, ECE and MCE in the title.

    ``split_scores`` is a ``results.json`` split entry (it holds ``reliability`` bins).
    """
    plt = _pyplot()
    bins = split_scores["reliability"]
    width = bins[0]["hi"] - bins[0]["lo"]
    centres = [(b["lo"] + b["hi"]) / 2 for b in bins]
    accuracy = [b["accuracy"] or 0.0 for b in bins]
    confidence = [b["confidence"] if b["count"] else (b["lo"] + b["hi"]) / 2 for b in bins]
    figure, axis = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    axis.bar(
        centres,
        accuracy,
        width=width * 0.95,
        color="#4C72B0",
        edgecolor="black",
        linewidth=0.5,
        label="accuracy",
    )
    gaps = [
        c - a if b["count"] else 0.0 for a, c, b in zip(accuracy, confidence, bins, strict=True)
    ]
    axis.bar(
        centres,
        gaps,
        bottom=accuracy,
        width=width * 0.95,
        color="#DD8452",
        alpha=0.6,
        edgecolor="#C44E52",
        hatch="//",
        linewidth=0.5,
        label="gap to confidence",
    )
    axis.plot(
        [0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="perfect calibration"
    )
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_xlabel("confidence (top label)")
    axis.set_ylabel("accuracy")
    axis.set_title(
        f"{title}\nECE {split_scores['ece']:.4f}   MCE {split_scores['mce']:.4f}", fontsize=9
    )
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    _save(figure, Path(path), formats=("png",))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, stem: Path, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Write ``figure`` atomically as ``stem.<format>`` for each format (a ``stem`` that
    already ends in ``.png`` is written as is), and close it."""
    import io

    plt = _pyplot()
    written = []
    for suffix in formats:
        buffer = io.BytesIO()
        figure.savefig(buffer, format=suffix)
        path = stem if stem.suffix == f".{suffix}" else stem.with_name(f"{stem.name}.{suffix}")
        write_bytes_atomic(path, buffer.getvalue())
        written.append(path)
    plt.close(figure)
    return written


def metric_vs_noise(table, stem: Path) -> list[Path]:
    """One line per loss configuration: mean over seeds against the noise rate, with a
    band of one standard deviation. ``table`` is a ``leaderboard.tables.Pivot``."""
    plt = _pyplot()
    unit = scale(table.metric)
    figure, axis = plt.subplots(figsize=(6, 4), dpi=120)
    for row in table.rows:
        points = [
            (rate, table.cells[(row, rate)]) for rate in table.rates if (row, rate) in table.cells
        ]
        rates = [rate for rate, _ in points]
        means = [cell["mean"] * unit for _, cell in points]
        stds = [cell["std"] * unit for _, cell in points]
        (line,) = axis.plot(rates, means, marker="o", label=row)
        axis.fill_between(
            rates,
            [m - s for m, s in zip(means, stds, strict=True)],
            [m + s for m, s in zip(means, stds, strict=True)],
            color=line.get_color(),
            alpha=0.15,
        )
    better = "higher" if HIGHER_IS_BETTER[table.metric] else "lower"
    unit_name = "%" if unit == 100.0 else "fraction"
    label = f"{metric_title(table.metric)} ({unit_name}; {better} is better)"
    axis.set_xlabel(f"{'added ' if table.noisy_labels else ''}{table.noise} noise rate")
    axis.set_ylabel(label)
    axis.set_title(f"{table.metric} vs noise: {table.dataset}, {table.model}", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, stem)


def reliability_grid(panels: dict[tuple[str, float], dict], stem: Path, title: str) -> list[Path]:
    """Reliability diagrams in a grid: rows are loss configurations, columns noise rates.

    ``panels`` maps (loss label, rate) to a ``results.json`` split entry."""
    plt = _pyplot()
    rows = sorted({label for label, _ in panels})
    rates = sorted({rate for _, rate in panels})
    figure, axes = plt.subplots(
        len(rows), len(rates), figsize=(2.6 * len(rates), 2.6 * len(rows)), dpi=100, squeeze=False
    )
    for i, row in enumerate(rows):
        for j, rate in enumerate(rates):
            axis = axes[i][j]
            scores = panels.get((row, rate))
            axis.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=0.8)
            axis.set_xlim(0, 1)
            axis.set_ylim(0, 1)
            axis.tick_params(labelsize=6)
            if scores is None:
                axis.set_axis_off()
                continue
            bins = scores["reliability"]
            width = bins[0]["hi"] - bins[0]["lo"]
            axis.bar(
                [(b["lo"] + b["hi"]) / 2 for b in bins],
                [b["accuracy"] or 0 for b in bins],
                width=width * 0.95,
                color="#4C72B0",
            )
            axis.set_title(f"{row}, rate {rate:.2f}\nECE {scores['ece']:.3f}", fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return _save(figure, stem)
