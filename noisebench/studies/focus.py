"""A review focused where two runs disagree, and what it estimates without bias.

    noisebench review sample my-data --split test -n 100 --compare runs/A runs/B -o review

Two runs predict the same labels on most sentences; only the others (the *disagreement
stratum*, D) can tell them apart. On a sentence outside D both runs find exactly the same
entities, so the difference in correctly found entities over the whole split is

    ΔTP = TP_A − TP_B = Σ_{s ∈ D} (tp_A(s) − tp_B(s))

and a uniform sample of n of D's |D| sentences, reviewed, estimates it without bias:

    ΔTP^ = |D| / n · Σ_{s ∈ sample} (tp_A(s) − tp_B(s)),

with the usual without-replacement standard error |D| · sqrt((1 − n/|D|) · var / n). The
difference in predicted entities, ΔP, needs no review (it is counted on every sentence),
so the difference in wrong predictions is ΔFP^ = ΔP − ΔTP^, unbiased too. These are
differences in *counts*; F1 on the reviewed sentences of a focused sample is not an
estimate of F1 on the split (those sentences are the hard ones), so use a random sample
(``review sample`` without ``--compare``) for scores, and a focused one to rank two runs
with fewer reviewed sentences.

The manifest keeps what the estimate needs: each run's predicted labels on every sampled
sentence, its predicted entities over the split (ΔP), and a hash of its predictions file.
``review merge`` estimates from the manifest alone, wherever the runs are now, and says
so where a run's predictions changed since the sample.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from noisebench.data import loading
from noisebench.data.review import merging, sampling
from noisebench.errors import InputError
from noisebench.scoring.metrics import entity_spans
from noisebench.training import runs

Z_975 = 1.959964  # the normal 97.5% quantile


@dataclass
class Disagreement:
    """The sentences of a split on which some of ``run_dirs`` predict differently."""

    run_dirs: list[Path]

    def predictions(self, split, name: str) -> list[runs.Predictions]:
        """Each run's saved predictions of split ``name``, checked against its words."""
        if len(self.run_dirs) < 2:
            raise InputError("--compare: name at least two runs")
        words = split["tokens"]
        found = []
        for run_dir in self.run_dirs:
            path = prediction_file(run_dir, name)
            if not path.is_file():
                raise InputError(f"--compare {run_dir}: no predictions of the {name} split")
            made = runs.read_predictions(path)
            if made.tokens != words:
                raise InputError(
                    f"--compare {run_dir}: its {name} predictions are of other sentences than"
                    f" the data's {name} split"
                )
            found.append(made)
        return found

    def rows(self, made: list[runs.Predictions], name: str) -> np.ndarray:
        """The rows where the runs' predictions (``predictions``) differ."""
        first = made[0].sentences(made[0].predicted)
        differ = np.zeros(len(first), dtype=bool)
        for other in made[1:]:
            labels = other.sentences(other.predicted)
            differ |= np.array([a != b for a, b in zip(first, labels, strict=True)], dtype=bool)
        if not differ.any():
            raise InputError(
                f"--compare: the runs predict the same labels on every {name} sentence"
            )
        return np.flatnonzero(differ)


def prediction_file(run_dir, split: str) -> Path:
    return Path(run_dir) / f"predictions-{split}.parquet"


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sample(
    spec: str, split: str, n: int, seed: int, out: Path, run_dirs: list[Path],
    columns: loading.Columns | None = None, force: bool = False,
) -> sampling.Sample:  # fmt: skip
    """Draw ``n`` sentences uniformly from those where ``run_dirs`` disagree and write
    them for review; the manifest's ``compare`` keeps what ``estimate`` needs."""
    sampling.check_out(out, force)
    focus, made = Disagreement([Path(r) for r in run_dirs]), []

    def pool(data):
        made.extend(focus.predictions(data, split))
        return focus.rows(made, split)

    drawn = sampling.draw(spec, split, n, seed, columns, pool)
    rows, scheme = drawn.manifest["sentences"], drawn.origin.scheme
    drawn.manifest["compare"] = {
        "runs": [str(r) for r in focus.run_dirs],
        "disagreement_sentences": drawn.manifest["pool_sentences"],
        "split_sentences": len(drawn.dataset[split]),
        "predictions_sha256": [file_hash(prediction_file(r, split)) for r in focus.run_dirs],
        # ΔP needs no review: each run's predicted entities, counted over the whole split
        "predicted_entities": [_predicted_entities(p, scheme) for p in made],
        # each run's labels on each sampled sentence: the estimate needs nothing else
        "predicted": [_labels_of(p, rows) for p in made],
    }
    return sampling.write(drawn, out, force)


def merge(
    spec: str, reviewed: Path, out: Path, rule: str = "latest", manifest: Path | None = None,
    columns: loading.Columns | None = None, force: bool = False,
) -> merging.Merged:  # fmt: skip
    """``review merge``: the reviewed labels back into ``spec``, written to ``out``; a
    focused review's report carries what it estimates (``compare``)."""
    sampling.check_out(out, force)
    merged = merging.merge(spec, reviewed, rule, manifest, columns)
    report = merged.report
    found = estimate(report["manifest"], merged.dataset[report["split"]], merged.scheme)
    if found is not None:
        report["compare"] = found
    merging.write(merged, out, force)
    return merged


def _labels_of(predictions: runs.Predictions, rows: list[int]) -> list[list[str]]:
    labels = predictions.sentences(predictions.predicted)
    return [labels[r] for r in rows]


def _predicted_entities(predictions: runs.Predictions, scheme: str) -> int:
    return sum(len(s) for s in entity_spans(predictions.sentences(predictions.predicted), scheme))


def estimate(manifest: dict, split, scheme: str) -> dict | None:
    """The unbiased estimates a focused review gives (the module's docstring), from the
    manifest and the merged ``split`` (its ``reviewed``/``reviewed_tags``); None for
    other reviews."""
    compare = manifest.get("compare")
    if manifest.get("kind") != "compare" or not compare or len(compare["runs"]) != 2:
        return None
    if "predicted" not in compare:
        raise InputError(
            "the review's manifest was written by an older noisebench and does not keep the"
            " runs' predictions: draw the review again with review sample --compare"
        )
    names = loading.label_names(split)
    reviewed = loading.reviewed_sentences(split)
    positions = [i for i, r in enumerate(manifest["sentences"]) if reviewed[r]]
    rows = [manifest["sentences"][i] for i in positions]
    if not rows:
        return None
    truth = entity_spans(
        [[names[t] for t in split[r][loading.REVIEWED_TAGS_COLUMN]] for r in rows], scheme
    )
    found = [
        entity_spans([labels[i] for i in positions], scheme) for labels in compare["predicted"]
    ]
    differences = np.array(
        [len(a & gold) - len(b & gold) for a, b, gold in zip(*found, truth, strict=True)],
        dtype=np.float64,
    )
    pool, n = compare["disagreement_sentences"], len(rows)
    total, error = stratum_total(differences, pool)
    predicted = compare["predicted_entities"]
    return {
        "runs": compare["runs"],
        "reviewed_sentences": n,
        # sampled but not reviewed: the estimate holds if they are missing at random
        "skipped_sentences": len(manifest["sentences"]) - n,
        "disagreement_sentences": pool,
        "correct_entities": _interval(total, error),  # ΔTP = TP_A − TP_B
        "predicted_entities": predicted[0] - predicted[1],  # ΔP, counted, no review needed
        "wrong_entities": _interval(predicted[0] - predicted[1] - total, error),  # ΔFP
        "changed_runs": _changed_runs(compare, manifest["split"]),
    }


def _changed_runs(compare: dict, split: str) -> list[str]:
    """The runs whose predictions file is where the manifest names it but differs from
    the one sampled from (re-predicted since): the estimate is of the sampled ones."""
    changed = []
    for run, digest in zip(compare["runs"], compare.get("predictions_sha256", []), strict=False):
        path = prediction_file(run, split)
        if path.is_file() and file_hash(path) != digest:
            changed.append(run)
    return changed


def stratum_total(sampled: np.ndarray, pool: int) -> tuple[float, float | None]:
    """The total over a stratum of ``pool`` units estimated from a uniform sample without
    replacement of its values ``sampled``: ``pool · mean`` (unbiased), and its standard
    error ``pool · sqrt((1 − n/pool) · s² / n)`` (0 when the sample is the whole stratum;
    None from a single unit of a larger stratum: its spread is unknown).

    >>> stratum_total(np.array([1.0, 0.0, 2.0]), 6)
    (6.0, 2.449489742783178)
    >>> stratum_total(np.array([1.0, 0.0, 2.0]), 3)
    (3.0, 0.0)
    """
    n = len(sampled)
    total = float(pool * sampled.mean())
    if n >= pool:
        return total, 0.0
    if n < 2:
        return total, None
    variance = float(sampled.var(ddof=1))
    return total, pool * math.sqrt((1 - n / pool) * variance / n)


def _interval(value: float, error: float | None) -> dict:
    if error is None:
        return {"estimate": value, "standard_error": None, "ci95": None, "significant": False}
    return {
        "estimate": value,
        "standard_error": error,
        "ci95": [value - Z_975 * error, value + Z_975 * error],
        "significant": abs(value) > Z_975 * error,
    }
