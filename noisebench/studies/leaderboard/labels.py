"""What a leaderboard calls things: a row's loss label (``gce q=0.7 +mask-missing``), a
table's labels (``uniform noise``) and a column (``rate 0.20``, ``as given``)."""

from __future__ import annotations

from pathlib import Path

from noisebench.training import runs
from noisebench.training.methods import is_bound

BOUND_SUFFIX = " (bound)"  # rows of oracle methods: what could be reached, not a method


def base_loss(config: dict) -> str:
    """A run's row label before the settings that differ join it: the loss and its
    treatments (``gce warmup=0.2 span=0.1 +mask-auto profile=crowd.json cutoff=0.7``)."""
    return (
        config["loss"]
        + _warmup_label(config)
        + _span_label(config)
        + method_label(config.get("method"))
        + _profile_label(config)
        + _reading_label(config)
    )


def _warmup_label(config: dict) -> str:
    """A CE start other than the default makes another method, never averaged with it
    (runs from before ``--loss-warmup`` existed had none)."""
    warmup = config.get("loss_warmup", 0.0)
    if config["loss"] == "ce" or warmup == runs.DEFAULT_LOSS_WARMUP:
        return ""
    return f" warmup={warmup:g}"


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


def loss_label(row: dict) -> str:
    parts = [row["loss"]]
    if row.get("q") is not None:
        parts.append(f"q={row['q']:g}")
    if row.get("s") is not None:
        parts.append(f"s={row['s']:g}")
    return " ".join(parts)


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
