"""Figures: reliability diagrams (and, later, metric-vs-noise curves). matplotlib is
imported inside each function, with the non-interactive Agg backend."""

from __future__ import annotations

from pathlib import Path

from noisebench.atomic import write_bytes_atomic


def reliability_diagram(split_scores: dict, title: str, path: Path) -> None:
    """Accuracy per confidence bin, the gap to the diagonal, ECE and MCE in the title.

    ``split_scores`` is a ``results.json`` split entry (it holds ``reliability`` bins).
    """
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    write_bytes_atomic(Path(path), buffer.getvalue())
