"""The ``detect`` table of ``noisebench leaderboard``: every ``noisebench detect -o DIR``
folder found (a folder given, or one level below it), one row per dataset x detector x
level, and each detector against cleanlab's K-fold default (``cv``, self-confidence) on
the same data, paired: the AP difference with a bootstrap over training sentences; and
against the detector with the highest AP on the same data and level (the best against
the runner-up), paired alike.

    noisebench leaderboard runs review-dynamics review-cv
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from noisebench.detection import rankings, review
from noisebench.errors import one_line

DETECTION_FILE = "detection.json"
REFERENCE = ("cv", "self_confidence")  # cleanlab's default: the baseline every row faces
REPLICATES = 1000


def collect(folders: list[Path]) -> tuple[list[dict], list[str]]:
    """The detection documents below ``folders``, each with its ``folder``, and a line for
    each ``detection.json`` that could not be read (skipped, and said so)."""
    found, unreadable = [], []
    for folder in folders:
        folder = Path(folder)
        candidates = [folder] if (folder / DETECTION_FILE).is_file() else []
        if folder.is_dir() and not candidates:
            candidates = sorted(p for p in folder.iterdir() if (p / DETECTION_FILE).is_file())
        for candidate in candidates:
            path = candidate / DETECTION_FILE
            try:
                document = json.loads(path.read_text())
            except (OSError, ValueError) as error:
                unreadable.append(f"{path}: {one_line(error)}")
                continue
            found.append({**document, "folder": str(candidate)})
    return found, unreadable


def name_of(document: dict) -> str:
    """``dynamics (aum)``, ``dynamics (aum, eval pass)``, ``cv k=5 (self_confidence)``,
    ``retag (retag) +mask-missing`` (trained with ``detect --method``)."""
    folds = f" k={document['folds']}" if document.get("folds") else ""
    passes = ", eval pass" if document.get("dynamics_pass") == "eval" else ""
    method = _method(document)
    treated = f" +{method}" if method else ""
    return f"{document['detector']}{folds} ({document['score']}{passes}){treated}"


def _method(document: dict) -> str | None:
    """The ``--method`` its training used (None: the loss alone)."""
    return (document.get("training") or {}).get("method")


def is_reference(document: dict) -> bool:
    """cleanlab's default: ``cv`` self-confidence on a plain training (no ``--method``)."""
    return (document["detector"], document["score"]) == REFERENCE and not _method(document)


def rows(documents: list[dict], replicates: int = REPLICATES, seed: int = 0) -> list[dict]:
    """One row per dataset x detector x level, with AP, P/R at 5%, AUROC, the cost, and
    (where cleanlab's default ran on the same data) the paired AP difference to it."""
    table, folders = [], []  # folders: each row's detect folder
    scores = {d["folder"]: review.read_word_scores(Path(d["folder"])) for d in documents}
    for document in documents:
        levels = document.get("levels")
        if not levels:
            continue
        reference = _reference(document, documents, scores)
        for level in ("word", "entity", "sentence"):
            measured = levels.get(level)
            if measured is None:
                continue
            row = {
                "dataset": document["dataset"],
                "detector": name_of(document),
                "level": level,
                "ap": measured["ap"],
                "precision_at_5": measured["budgets"]["5%"]["precision"],
                "recall_at_5": measured["budgets"]["5%"]["recall"],
                "auroc": measured["auroc"],
                "truly_wrong": measured["truly_wrong"],
                "units": measured["units"],
                "trainings": document["cost"].get("trainings"),
                "seconds": document["cost"].get("seconds"),
                "vs_cleanlab": None,
                "vs_best": None,
            }
            if reference is not None and level in ("word", "sentence"):
                mine, theirs = scores[document["folder"]], scores[reference["folder"]]
                row["vs_cleanlab"] = paired_ap(mine, theirs, level, replicates, seed)
            table.append(row)
            folders.append(document["folder"])
    _against_the_best(table, folders, scores, replicates, seed)
    return table


def _against_the_best(
    table: list[dict], folders: list[str], scores: dict, replicates: int, seed: int
) -> None:
    """``vs_best`` on word and sentence rows (``folders``: each row's detect folder): each
    detector's AP minus the best one's on the same training words and level (the best:
    minus the runner-up), paired."""
    groups: dict[tuple, list[tuple[dict, dict]]] = {}
    for row, folder in zip(table, folders, strict=True):
        mine = scores.get(folder)
        if row["level"] == "entity" or mine is None or "truly_wrong" not in mine:
            continue
        key = (row["dataset"], row["level"], mine["given"].tobytes())
        groups.setdefault(key, []).append((row, mine))
    for members in groups.values():
        ranked = sorted(members, key=lambda member: -member[0]["ap"])
        best = ranked[0]
        others = [m for m in ranked if m[0]["detector"] != best[0]["detector"]]  # no copy
        if not others:
            continue
        for row, mine in members:
            if row["detector"] == best[0]["detector"] and row is not best[0]:
                continue  # a second folder of the same detector: not compared
            other, theirs = others[0] if row is best[0] else best
            row["vs_best"] = paired_ap(mine, theirs, row["level"], replicates, seed) | {
                "against": other["detector"],
                "best": row is best[0],
            }


def _reference(document: dict, documents: list[dict], scores: dict) -> dict | None:
    """cleanlab's default on the same training words (not the document itself)."""
    if is_reference(document):
        return None
    mine = scores.get(document["folder"])
    if mine is None or "truly_wrong" not in mine:
        return None
    for other in documents:
        theirs = scores.get(other["folder"])
        if not is_reference(other) or theirs is None:
            continue
        same = other["dataset"] == document["dataset"] and len(theirs["given"]) == len(
            mine["given"]
        )
        if same and np.array_equal(theirs["given"], mine["given"]):
            return other
    return None


def paired_ap(mine: dict, theirs: dict, level: str, replicates: int, seed: int) -> dict:
    """AP(mine) - AP(theirs) at the word or sentence level, with a 95% bootstrap interval
    over training sentences (both rankings scored on the same resampled sentences)."""
    sentence = mine["sentence"]
    sentences = int(sentence.max()) + 1 if len(sentence) else 0
    if level == "sentence":  # each sentence by its worst word, as detect ranks them
        offsets = np.concatenate([[0], np.cumsum(np.bincount(sentence, minlength=sentences))])
        wrong = mine["truly_wrong"].astype(bool)
        mine_ranked = rankings.sentence_ranking(mine["score"], offsets, wrong)
        a, truth = mine_ranked.score, mine_ranked.truth
        b = rankings.sentence_ranking(theirs["score"], offsets, wrong).score
        unit_sentence = np.arange(sentences)
    else:
        a, b, truth, unit_sentence = mine["score"], theirs["score"], mine["truly_wrong"], sentence
    rng = np.random.default_rng([seed, 18])
    differences = np.empty(replicates)
    orders = (rankings.ranked_order(a), rankings.ranked_order(b))
    for replicate in range(replicates):
        counts = np.bincount(rng.integers(0, sentences, sentences), minlength=sentences)
        weights = counts[unit_sentence].astype(np.float64)
        differences[replicate] = _weighted_ap(orders[0], truth, weights) - _weighted_ap(
            orders[1], truth, weights
        )
    estimate = _weighted_ap(orders[0], truth, np.ones(len(truth))) - _weighted_ap(
        orders[1], truth, np.ones(len(truth))
    )
    low, high = np.percentile(differences, [2.5, 97.5])
    return {
        "difference": float(estimate),
        "ci95": [float(low), float(high)],
        "significant": bool(low > 0 or high < 0),
        "replicates": replicates,
    }


def _weighted_ap(order: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> float:
    """AP of the ranking ``order`` with each unit counted ``weights`` times (a bootstrap
    resample): sum over hits of precision at the hit, over the weighted positives. Ties
    are broken by position (the bootstrap compares rankings, not thresholds).

    >>> round(_weighted_ap(np.array([0, 1, 2, 3]), np.array([1, 0, 1, 0]), np.ones(4)), 6)
    0.833333
    """
    w = weights[order]
    hits = w * truth[order]
    positives = hits.sum()
    if positives == 0:
        return 0.0
    precision = np.cumsum(hits) / np.maximum(np.cumsum(w), 1e-12)
    return float((precision * hits).sum() / positives)


def markdown(table: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| dataset | detector | level | AP | P@5% | R@5% | AUROC | AP vs cleanlab cv"
        " | AP vs best | trainings | s |",
        "|---|---|---|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for row in table:
        lines.append(
            f"| {row['dataset']} | {row['detector']} | {row['level']} | {row['ap']:.3f} |"
            f" {row['precision_at_5']:.3f} | {row['recall_at_5']:.3f} |"
            f" {'—' if row['auroc'] is None else format(row['auroc'], '.3f')} |"
            f" {versus_text(row['vs_cleanlab'])} | {best_text(row['vs_best'])} |"
            f" {row['trainings']} | {row['seconds'] or 0:.0f} |"
        )
    return "\n".join(lines) + "\n"


def best_text(entry: dict | None) -> str:
    """``best (+0.024 [+0.010, +0.036] over retag)`` or the difference to the best."""
    if entry is None:
        return "—"
    if entry["best"]:
        return f"best ({versus_text(entry)} over {entry['against']})"
    return versus_text(entry)


def versus_text(entry: dict | None) -> str:
    if entry is None:
        return "—"
    low, high = entry["ci95"]
    return f"{entry['difference']:+.3f} [{low:+.3f}, {high:+.3f}]"
