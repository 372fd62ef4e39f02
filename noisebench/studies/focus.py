"""A review designed to decide among candidate runs: each run's entity F1 on the whole
split, and every difference, estimated from a stratified sample.

    noisebench review sample my-data --split test -n 100 --compare runs/A --compare runs/B \\
        --compare runs/C -o review

The runs' saved predictions split the sentences into strata without any label: ``none``
(every run predicts no entity), ``agree`` (every run predicts the same labels, with an
entity) and ``disagree`` (the rest, where the runs can differ). Each stratum gets at least
two reviewed sentences where it has them (its variance needs two), and the rest of ``n``
goes by a fixed allocation, N_h · w_h with weights 1 (disagree), 0.25 (agree) and 0.1
(none): the runs' differences live where they disagree, and their levels (F1 needs every
gold entity) everywhere. A next batch (``--continue``) goes by Neyman's allocation, N_h ·
S_h, with S_h each stratum's estimated spread of the difference between the leading run
and its closest rival, from the sentences reviewed so far. Within a stratum the sentences
are drawn uniformly without replacement by the seed, so each reviewed sentence's inclusion
probability is n_h / N_h;
the manifest records the design (every sentence's stratum, the allocation, the order
drawn).

``review merge`` then estimates each run's F1 = 2·TP / (P + G) on the split (TP and G
estimated, P counted: ``scoring.design``) and every pairwise difference, with Student t
intervals that hold at small n, and says whether they decide: the best run, where its
difference to every other run excludes 0. The manifest keeps what the estimate needs (every
sentence's stratum and each run's predicted entities, each run's labels on the sampled
sentences, a hash of each predictions file), so a merge needs neither the runs nor where
they were, and says when a run's predictions changed since the sample.

Every merge of the design is a look; each look's intervals are at the level of a
group-sequential boundary over the sentences reviewed at every look so far
(``design.look_level``: Lan-DeMets spending by Pocock's function over the fraction of the
split reviewed), so looking after every batch and stopping at the first decision errs at
most 5% of the time.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from noisebench.data import loading
from noisebench.data.review import files, merging, sampling
from noisebench.errors import InputError
from noisebench.scoring import design
from noisebench.scoring.metrics import entity_spans
from noisebench.training import runs

STRATA = ("none", "agree", "disagree")
WEIGHTS = (0.1, 0.25, 1.0)  # the allocation's weight per sentence of each stratum
MINIMUM = 2  # reviewed sentences per stratum where it has them: its variance needs two


@dataclass
class Disagreement:
    """The candidate runs: their saved predictions of a split, and the strata they make."""

    run_dirs: list[Path]
    where: Sequence[str] = ()  # KEY=VALUE: only the runs whose settings match (select)

    def predictions(self, split, name: str) -> list[runs.Predictions]:
        """Each run's saved predictions of split ``name``, checked against its words; a
        folder of runs (a sweep's ``--runs-dir``) stands for every run in it, those that
        match ``where`` where given."""
        self.run_dirs = select(expand(self.run_dirs, name), self.where)
        if len(self.run_dirs) < 2:
            found = f": --where leaves {len(self.run_dirs)}" if self.where else ""
            raise InputError(f"--compare: name at least two runs{found}")
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


def expand(run_dirs: list[Path], split: str) -> list[Path]:
    """Each of ``run_dirs`` that is a folder of runs (no predictions of ``split`` of its
    own, runs with them inside) as the runs in it, sorted."""
    found = []
    for run_dir in run_dirs:
        inside = sorted(p.parent for p in Path(run_dir).glob(f"*/predictions-{split}.parquet"))
        if not prediction_file(run_dir, split).is_file() and inside:
            found += inside
        else:
            found.append(Path(run_dir))
    return list(dict.fromkeys(found))


def select(run_dirs: list[Path], where: Sequence[str]) -> list[Path]:
    """The runs whose settings (``config.json``, as ``results.json`` names them: loss, q,
    s, rate, noise, method, seed, lr, model, ...) match every ``KEY=VALUE`` of ``where``:
    the runs of one leaderboard cell (every setting but the seed) or column (``rate=0.4``).
    Numbers match by value (``rate=0.4`` matches 0.4), the rest as written; a key no run
    has, or a malformed condition, is refused in one line naming what there is."""
    if not where:
        return run_dirs
    wanted = []
    for condition in where:
        key, equals, value = condition.partition("=")
        if not equals or not key.strip():
            raise InputError(f"--where {condition!r}: write KEY=VALUE (e.g. --where rate=0.4)")
        wanted.append((key.strip(), value.strip()))
    settings = {run_dir: _settings(run_dir) for run_dir in run_dirs}
    known = set().union(*settings.values()) if settings else set()
    for key, _ in wanted:
        if key not in known:
            have = ", ".join(sorted(known))
            raise InputError(f"--where {key}: no run has this setting (the runs have: {have})")
    return [r for r, found in settings.items() if all(_matches(found.get(k), v) for k, v in wanted)]


def _settings(run_dir: Path) -> dict:
    for name in (runs.CONFIG, runs.RESULTS):
        found = runs.read_json(Path(run_dir) / name)  # None where missing or unreadable
        if isinstance(found, dict) and isinstance(found.get("config"), dict):
            return found["config"]
    return {}


def _matches(found, value: str) -> bool:
    """``found`` (a run's setting) against ``value`` as the user wrote it.

    >>> _matches(0.4, "0.4"), _matches(0.4, "0.40"), _matches("gce", "gce"), _matches(None, "none")
    (True, True, True, True)
    >>> _matches(1, "true"), _matches("gce", "sgce")
    (False, False)
    """
    if found is None:
        return value.lower() in ("none", "null", "")
    if isinstance(found, bool):
        return str(found).lower() == value.lower()
    if isinstance(found, int | float):
        try:
            return math.isclose(float(found), float(value))
        except ValueError:
            return False
    return str(found) == value


def prediction_file(run_dir, split: str) -> Path:
    return Path(run_dir) / f"predictions-{split}.parquet"


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def strata(labels: list[list[list[str]]], scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """Each sentence's stratum (index into ``STRATA``) and each run's predicted entities
    per sentence (R, S), from the runs' predicted labels (R lists of S sentences).

    >>> strata([[["O"], ["B-X"], ["B-X"]], [["O"], ["B-X"], ["O"]]], "IOB2")[0].tolist()
    [0, 1, 2]
    """
    counts = np.array([[len(s) for s in entity_spans(run, scheme)] for run in labels])
    same = np.array([all(run[s] == labels[0][s] for run in labels) for s in range(len(labels[0]))])
    none = counts.max(axis=0) == 0
    return np.where(none, 0, np.where(same, 1, 2)), counts


def allocate(sizes: np.ndarray, n: int, weights=WEIGHTS) -> np.ndarray:
    """Reviewed sentences per stratum: ``MINIMUM`` each where it has them, the rest by
    N_h · w_h (largest remainders), never more than a stratum holds; ``weights`` the
    fixed ``WEIGHTS`` before any review, each stratum's estimated spread after (Neyman).

    >>> allocate(np.array([300, 400, 300]), 100).tolist()
    [8, 24, 68]
    >>> allocate(np.array([300, 400, 300]), 100, [0.0, 0.0, 0.02]).tolist()  # after a review
    [2, 2, 96]
    """
    sizes = np.asarray(sizes)
    taken = np.minimum(sizes, MINIMUM)
    if taken.sum() >= n:
        return taken  # the minimum alone (more than n where n < 2 per stratum)
    weights = sizes * np.asarray(weights, dtype=np.float64)
    if not (weights[taken < sizes] > 0).any():  # no spread left anywhere: fill by size
        weights = sizes.astype(np.float64)
    while taken.sum() < min(n, sizes.sum()):
        open_ = taken < sizes
        share = np.where(open_, weights, 0.0)
        left = min(n, sizes.sum()) - taken.sum()
        wanted = _largest_remainders(share * left / share.sum(), left)
        taken = np.minimum(sizes, taken + wanted)
    return taken


def grow(sizes: np.ndarray, previous: np.ndarray, n: int, weights) -> np.ndarray:
    """``previous`` plus ``n`` more (fewer where the strata run out), spread towards what
    ``allocate`` would give the whole with these ``weights``: a stratum already past its
    share gets none, and no stratum more than it holds.

    >>> grow(np.array([300, 400, 300]), np.array([2, 2, 2]), 20, [0.0, 0.0, 1.0]).tolist()
    [2, 2, 22]
    >>> grow(np.array([3, 400, 300]), np.array([3, 22, 15]), 20, [1.0, 1.0, 1.0]).tolist()
    [3, 32, 25]
    """
    previous = np.asarray(previous)
    room = np.asarray(sizes) - previous
    need = np.maximum(allocate(sizes, int(previous.sum()) + n, weights) - previous, 0)
    added = np.zeros_like(previous)
    left = min(n, int(room.sum()))
    while added.sum() < left:
        open_ = added < room
        share = np.where(open_, need, 0).astype(np.float64)
        if share.sum() == 0:
            share = np.where(open_, room - added, 0).astype(np.float64)
        wanted = left - int(added.sum())
        added = np.minimum(room, added + _largest_remainders(share * wanted / share.sum(), wanted))
    return previous + added


def _largest_remainders(quotas: np.ndarray, total: int) -> np.ndarray:
    quotas = np.asarray(quotas, dtype=np.float64)
    whole = np.floor(quotas).astype(int)
    order = np.argsort(-(quotas - whole), kind="stable")
    whole[order[: max(total - whole.sum(), 0)]] += 1
    return whole


def sample(
    spec: str, split: str, n: int, seed: int, out: Path, run_dirs: list[Path],
    columns: loading.Columns | None = None, force: bool = False, where: Sequence[str] = (),
) -> sampling.Sample:  # fmt: skip
    """Draw ``n`` sentences by the stratified design the runs define (those matching
    ``where``: ``select``) and write them for review; the manifest's ``compare`` keeps the
    design and what ``estimate`` needs."""
    run_dirs = [Path(r) for r in run_dirs]
    return _batch(spec, split, n, seed, out, run_dirs, columns, force, where=where)


def continue_sample(
    spec: str | None, earlier: Path, n: int, out: Path,
    columns: loading.Columns | None = None, force: bool = False,
) -> sampling.Sample:  # fmt: skip
    """``review sample DATA --continue EARLIER``: ``n`` more sentences of the same design
    and seed, spread by Neyman's allocation on what ``DATA`` (the data the earlier
    batches were merged into) shows (``grow``); its manifest lists the new sentences for
    review and keeps every one drawn so far for the estimate. The runs must still be where
    the design names them, unchanged."""
    if spec is None:
        raise InputError("--continue: name the data the earlier batches were merged into"
                         " (review sample MY-DATA-REVIEWED --continue BATCH -n N)")  # fmt: skip
    manifest = sampling.read_manifest(Path(earlier) / files.MANIFEST)
    compare = manifest.get("compare") or {}
    if manifest.get("kind") != "compare" or "stratum" not in compare:
        raise InputError(f"--continue {earlier}: not a designed review (review sample --compare)")
    changed = _changed_runs(compare, manifest["split"])
    missing = [r for r in compare["runs"] if not prediction_file(r, manifest["split"]).is_file()]
    if changed or missing:
        raise InputError(
            f"--continue {earlier}: the run {(changed or missing)[0]} is "
            + ("re-predicted since the design" if changed else "not where the design names it")
            + ": its strata would differ; draw a new review with review sample --compare"
        )
    return _batch(
        spec, manifest["split"], n, manifest["seed"], out,
        [Path(r) for r in compare["runs"]], columns, force,
        previous=compare,
    )  # fmt: skip


def _batch(
    spec: str, split: str, n: int, seed: int, out: Path, run_dirs: list[Path],
    columns: loading.Columns | None, force: bool, previous: dict | None = None,
    where: Sequence[str] = (),
) -> sampling.Sample:  # fmt: skip
    sampling.check_out(out, force)
    focus = Disagreement(run_dirs, where)
    notes: list[str] = []
    dataset_dict = sampling.load_split(spec, split, n, columns, notes)
    origin = sampling.Origin.of(spec, dataset_dict, split)
    if previous is not None and origin.fingerprint != previous.get(
        "fingerprint", origin.fingerprint
    ):
        raise InputError(f"{spec}: another dataset than the design was drawn from")
    made = focus.predictions(dataset_dict[split], split)
    labels = [p.sentences(p.predicted) for p in made]
    stratum, counts = strata(labels, origin.scheme)
    sizes = np.bincount(stratum, minlength=len(STRATA))
    earlier: list[int] = []
    if previous is None:
        allocation = allocate(sizes, n)
        if allocation.sum() > n:
            notes.append(f"-n {n}: {int(allocation.sum())} sentences drawn, {MINIMUM} per"
                         " stratum at least (a stratum's variance needs two)")  # fmt: skip
    else:  # Neyman: n more where the leading runs' difference varies most
        earlier = list(previous.get("drawn", []))
        reviewed = loading.reviewed_sentences(dataset_dict[split])
        if not any(reviewed[r] for r in earlier):
            raise InputError(
                f"--continue: none of the design's sentences drawn so far is reviewed in {spec}:"
                " name the data the earlier batches were merged into"
            )
        weights = neyman_weights(previous, dataset_dict[split], origin.scheme) or WEIGHTS
        allocation = grow(sizes, np.asarray(previous["allocation"]), n, weights)
    before = set(earlier)
    rows = np.array([r for r in _draw(stratum, allocation, seed) if r not in before], np.int64)
    everything = np.array(earlier + rows.tolist(), dtype=np.int64)  # in the order drawn
    if not len(rows):
        raise InputError(f"-n {n}: every sentence of the split is drawn already")
    if allocation.sum() >= len(stratum):
        notes.append(f"-n {n}: the {split} split has {len(stratum):,} sentences; all are drawn")
    manifest = origin.manifest("compare", split, rows.tolist(), seed, n)
    hashes = [file_hash(prediction_file(r, split)) for r in focus.run_dirs]
    identity = json.dumps([hashes, seed, split, origin.fingerprint]).encode()
    manifest["compare"] = {
        # one design across its batches: every merge of it is a look (review.json reviews)
        "design": hashlib.sha256(identity).hexdigest()[:16],
        "runs": [str(r) for r in focus.run_dirs],
        "where": list(where or (previous or {}).get("where", [])),  # how they were chosen
        "predictions_sha256": hashes,
        "fingerprint": origin.fingerprint,
        "strata": list(STRATA),
        "sizes": sizes.tolist(),
        "allocation": allocation.tolist(),
        "batch": 1 if previous is None else previous.get("batch", 1) + 1,
        "drawn": everything.tolist(),  # every sentence drawn so far, in the order drawn
        "stratum": stratum.tolist(),  # every sentence's
        "words": [len(t) for t in dataset_dict[split]["tokens"]],
        "predicted_entities": counts.tolist(),  # (R, S): P needs no review
        "label_ids": label_ids(labels).tolist(),  # equal ids: equal labels
        "predicted": [[run[r] for r in everything] for run in labels],  # on the drawn ones
    }
    return sampling.write(sampling.Sample(dataset_dict, origin, manifest, notes), out, force)


def _draw(stratum: np.ndarray, allocation: np.ndarray, seed: int) -> np.ndarray:
    """The first ``allocation[h]`` of a seeded permutation of each stratum's rows (so a
    larger allocation with the same seed extends a smaller one), stratum by stratum."""
    rng = np.random.default_rng(seed)
    drawn = []
    for h, taken in enumerate(allocation):
        members = np.flatnonzero(stratum == h)
        drawn.append(members[rng.permutation(len(members))[:taken]])
    return np.concatenate(drawn).astype(np.int64)


def label_ids(labels: list[list[list[str]]]) -> np.ndarray:
    """(R, S): per sentence, the same id for runs that predict the same labels."""
    ids = np.zeros((len(labels), len(labels[0])), dtype=np.int64)
    for s in range(len(labels[0])):
        seen: dict[tuple, int] = {}
        for r, run in enumerate(labels):
            ids[r, s] = seen.setdefault(tuple(run[s]), len(seen))
    return ids


def merge(
    spec: str, reviewed: Path, out: Path, rule: str = "latest", manifest: Path | None = None,
    columns: loading.Columns | None = None, force: bool = False,
) -> merging.Merged:  # fmt: skip
    """``review merge``: the reviewed labels back into ``spec``, written to ``out``; a
    focused review's report carries what it estimates (``compare``)."""
    sampling.check_out(out, force)
    merged = merging.merge(spec, reviewed, rule, manifest, columns)
    report = merged.report
    drawn = report["manifest"]
    design_id = (drawn.get("compare") or {}).get("design")
    if design_id is not None:  # the looks: every merge of this design so far, this one too
        reviewed = loading.reviewed_sentences(merged.dataset[report["split"]])
        report["reviews"][-1]["design_reviewed"] = sum(
            bool(reviewed[r]) for r in drawn["compare"].get("drawn", drawn["sentences"])
        )
        looks = reviewed_at_looks([r for r in report["reviews"] if r.get("design") == design_id])
        drawn = drawn | {"compare": drawn["compare"] | {"look": len(looks), "looks": looks}}
    found = estimate(drawn, merged.dataset[report["split"]], merged.scheme)
    if found is not None:
        report["compare"] = found
    merging.write(merged, out, force)
    return merged


def reviewed_at_looks(reviews: list[dict]) -> list[int]:
    """The design's reviewed sentences at each of its merges (``review.json``'s
    ``reviews``, ``design_reviewed``; for merges that did not record it, the sentences
    merged so far)."""
    looks, merged = [], 0
    for review in reviews:
        merged += int(review.get("sentences") or 0)
        looks.append(int(review.get("design_reviewed", merged)))
    return looks


def neyman_weights(compare: dict, split, scheme: str) -> list[float] | None:
    """Each stratum's estimated spread of the difference between the leading run and
    its closest rival, from the design's sentences reviewed so far (None before any
    review, or where a stratum has none): the next batch goes where it varies most."""
    found = _estimates({"kind": "compare", "compare": compare, "sentences": []}, split, scheme)
    return leading_spreads(found) if isinstance(found, design.Estimates) else None


def leading_spreads(estimates: design.Estimates) -> list[float]:
    """Each stratum's spread of the difference between the leading run and its closest
    rival: the weights of Neyman's allocation."""
    best = int(np.argmax([f.estimate for f in estimates.f1]))
    rivals = [d for pair, d in estimates.differences.items() if best in pair]
    closest = min(rivals, key=lambda d: abs(d.estimate))
    return [closest.spreads.get(h, 0.0) for h in range(len(STRATA))]


def estimate(manifest: dict, split, scheme: str) -> dict | None:
    """What a designed review estimates (the module's docstring), from the manifest and
    the merged ``split`` (its ``reviewed``/``reviewed_tags``); None for other reviews."""
    compare = manifest.get("compare")
    if manifest.get("kind") != "compare" or not compare:
        return None
    found = _estimates(manifest, split, scheme)
    if isinstance(found, str) and "stratum" not in compare:
        return {"runs": compare.get("runs", []), "decided": False, "why": found}
    drawn = compare.get("drawn", manifest["sentences"])
    reviewed = loading.reviewed_sentences(split)
    count = int(sum(bool(reviewed[r]) for r in drawn))
    looks = compare.get("looks", [count])
    level, difference_level = levels(looks, len(compare["stratum"]), len(compare["runs"]))
    base = {
        "runs": compare["runs"],
        "reviewed_sentences": count,
        # sampled but not reviewed: the estimate holds if they are missing at random
        "skipped_sentences": int(sum(not reviewed[r] for r in drawn)),
        "look": len(looks),
        "looks": looks,  # the design's reviewed sentences at each
        # the level that keeps every look together at 95%: design.look_level; each
        # difference's, with 5% / (R − 1) spent (Bonferroni over the rivals of one run)
        "level": level,
        "difference_level": difference_level,
        "strata": dict(zip(STRATA, compare["sizes"], strict=True)),
        "allocation": compare["allocation"],
        "changed_runs": _changed_runs(compare, manifest["split"]),
    }
    if isinstance(found, str):
        return base | {"decided": False, "why": found}
    return base | decision(found, len(compare["stratum"]))


def _estimates(manifest: dict, split, scheme: str) -> design.Estimates | str:
    """``scoring.design``'s estimates from the design's reviewed sentences, or why there
    are none yet (a stratum without a reviewed sentence)."""
    compare = manifest["compare"]
    if "stratum" not in compare:  # issue 28's focused sample: its labels merge, no estimate
        return (
            "the review's manifest was written by an older noisebench and keeps no design;"
            " review sample --compare draws one"
        )
    names = loading.label_names(split)
    reviewed = loading.reviewed_sentences(split)
    drawn = compare.get("drawn", manifest["sentences"])
    positions = [i for i, r in enumerate(drawn) if r < len(reviewed) and reviewed[r]]
    rows = np.array([drawn[i] for i in positions], dtype=np.int64)
    population = design.Population(
        np.asarray(compare["stratum"]),
        np.asarray(compare["words"]),
        np.asarray(compare["predicted_entities"]),
        np.asarray(compare["label_ids"]),
    )
    covered = set(population.stratum[rows].tolist()) if len(rows) else set()
    missing = [STRATA[h] for h in np.flatnonzero(population.sizes) if h not in covered]
    if missing:
        return f"no reviewed sentence in {', '.join(missing)}"
    truth = entity_spans(
        [[names[t] for t in split[int(r)][loading.REVIEWED_TAGS_COLUMN]] for r in rows], scheme
    )
    found = [entity_spans([run[i] for i in positions], scheme) for run in compare["predicted"]]
    correct = np.array([[len(a & g) for a, g in zip(run, truth, strict=True)] for run in found])
    gold = np.array([len(g) for g in truth])
    looks = compare.get("looks", [len(rows)])
    reviewed_found = design.Reviewed(rows, correct, gold)
    return design.estimate(
        population, reviewed_found, *levels(looks, len(compare["stratum"]), len(correct))
    )


def levels(looks: list[int], split: int, runs: int) -> tuple[float, float]:
    """The level of each run's F1 interval and of each difference at the last of
    ``looks``: group-sequential boundaries spending 5% and, for the differences among
    ``runs`` runs, 5% / (R − 1) (``design.pair_level``)."""
    return (
        design.look_level(looks, split),
        design.look_level(looks, split, design.pair_level(0.95, runs)),
    )


def decision(estimates: design.Estimates, split_sentences: int) -> dict:
    """Each run's F1 interval, every difference, and whether they decide the best run:
    the one with the highest F1 whose difference to every other run excludes 0 (runs
    that predict the same labels as it everywhere are ties no review can break, listed
    apart); where not, about how many reviewed sentences would: the most any undecided
    rival needs, n · (half-width / gap)², capped at the split."""
    f1 = [_interval(i) for i in estimates.f1]
    best = int(np.argmax([i.estimate for i in estimates.f1]))
    against = {}
    for (a, b), interval in estimates.differences.items():
        if best in (a, b):
            other = b if a == best else a
            sign = 1.0 if a == best else -1.0
            against[other] = _interval(interval, sign)
    tied = sorted(o for o, e in against.items() if e["estimate"] == 0 == e["standard_error"])
    undecided = [
        e for o, e in against.items()
        if o not in tied and not (e["significant"] and e["estimate"] > 0)
    ]  # fmt: skip
    needed = None
    if undecided:
        n = estimates.reviewed
        wanted = [
            math.ceil(n * ((e["ci95"][1] - e["ci95"][0]) / 2 / max(e["estimate"], 1e-9)) ** 2)
            for e in undecided
        ]
        needed = min(split_sentences, max(n + 1, *wanted))
    return {
        "f1": f1,
        "best": best,
        "against_best": {str(k): v for k, v in sorted(against.items())},
        "tied": tied,  # predict the best run's labels everywhere
        "decided": not undecided and len(tied) < len(against),
        "sentences_needed": needed,
    }


def _interval(interval: design.Interval, sign: float = 1.0) -> dict:
    low, high = sorted((sign * interval.low, sign * interval.high))
    return {
        "estimate": sign * interval.estimate,
        "standard_error": interval.standard_error,
        "ci95": [low, high],
        "significant": interval.significant,
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
