"""Records -> cells: the runs of one cell have equal settings but the seed; a cell holds
their mean, sample standard deviation, n and a 95% Student-t confidence interval (n >= 3),
one run per seed."""

from __future__ import annotations

import math

import numpy as np

from noisebench.scoring.design import t_quantile
from noisebench.studies.leaderboard.settings import canonical

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


def cell_key(entry: dict) -> tuple:
    """What tells cells apart: dataset, model, split, metric and every setting but the seed
    (a record of ``collect``, a row of ``aggregate`` or a baseline entry)."""
    return tuple(canonical(entry[k]) if k == "settings" else entry[k] for k in KEY_FIELDS)


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
                "review_designed": any(r.get("review_designed") for r in members),
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
