"""``--tuned``: per loss and set-up, keep the runs of the setting (lr, q, s) with the best
mean validation F1 over seeds (the runs of a ``sweep --tune``)."""

from __future__ import annotations

import numpy as np

from noisebench.studies.leaderboard.records import Collected
from noisebench.studies.leaderboard.settings import (
    TUNED,
    canonical,
    label_settings,
    row_label,
    setting_text,
    table_of,
)


def _trial(record: dict) -> tuple:
    return tuple(record["settings"].get(name) for name in TUNED)


def _trial_family(record: dict) -> tuple:
    """The runs a tuning chooses among: equal in every setting but lr, q, s and the seed."""
    rest = {k: v for k, v in record["settings"].items() if k not in TUNED}
    return record["dataset"], record["model"], record["base_loss"], canonical(rest)


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
            [setting_text(record["settings"], "lr")]
            + [f"{name}={value:g}" for name, value in (("q", q), ("s", s)) if value is not None]
        )
        others = [name for name in named[table_of(record)] if name not in TUNED]
        choices.append(
            {k: record[k] for k in ("dataset", "model", "noise", "rate")}
            | {
                "loss": row_label(record, others),
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
