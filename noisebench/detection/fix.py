"""Write a fixed dataset from a detection (``--fix``, ``-o DIR``).

    noisebench detect noisebench:crowd --fix relabel --budget 5% -o fixed/

``relabel`` writes the suggested spans over a stretch of a sentence where the given and
suggested spans disagree, only where the suggestion of every word the model contradicts
there is more likely right than the given label (the model's probabilities weighed by a
noise matrix that confident learning estimates from them), at most ``--budget`` of the
words, and refuses a model below ``--min-f1`` validation F1; ``mask`` leaves the most
suspect ``--budget`` of the words out of training, ``drop`` the most suspect sentences.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from noisebench.data.schemes import NO_SCHEME, decode_spans, encode_spans
from noisebench.detection.rankings import ranked_order
from noisebench.detection.score import Detection, flagged_words, top_share
from noisebench.errors import InputError

FIXES = ("relabel", "mask", "drop")
MIN_F1 = 0.5  # --fix relabel refuses suggestions from a model below this validation F1


def check_fix(fix: str, out: Path | None, min_f1: float) -> None:
    """A ``--fix`` that can be made, checked before anything trains: a known kind, a
    folder to write it to and an F1 threshold in [0, 1]."""
    _check_kind(fix)
    if out is None:
        raise InputError("--fix writes a dataset: give the folder with -o DIR")
    if not 0.0 <= min_f1 <= 1.0:
        raise InputError(f"--min-f1 {min_f1:g}: give an F1 in [0, 1], e.g. 0.5")


def _check_kind(fix: str) -> None:
    if fix not in FIXES:
        raise InputError(f"--fix {fix}: choose one of {', '.join(FIXES)}")


def apply_fix(
    dataset, detection: Detection, fix: str, share: float, scheme: str, min_f1: float = MIN_F1
):
    """The data fixed: at most ``share`` of the words relabelled to their suggestions
    where those are more likely right (``relabel``: ``relabelled``), or the most suspect
    ``share`` of the words left out of training (``mask``: the ``ignore`` column) or of
    the sentences dropped (``drop``). Validation and test stay as they are; ``clean_tags``
    is kept. Returns the new DatasetDict and what changed."""
    import datasets

    _check_kind(fix)
    if fix == "relabel":
        check_strength(detection, min_f1)
    split = dataset["train"]
    report: dict = {"fix": fix, "budget": share}
    if fix == "drop":
        dropped = np.sort(top_share(detection.rankings()["sentence"], share))
        kept = np.setdiff1d(np.arange(len(split)), dropped)
        train = split.select(kept).flatten_indices()
        report["dropped_sentences"] = len(dropped)
    elif fix == "relabel":
        if detection.probs is None:
            raise InputError("--fix relabel: this detection has no probabilities to weigh")
        matrix = noise_matrix(detection.given, detection.probs)
        tags, counts = relabelled(detection, share, scheme, matrix)
        report |= counts | {"validation_f1": detection.validation_f1, "min_f1": min_f1}
        train = _rewritten(split, detection, tags)
    else:
        flagged = flagged_words(detection, share)
        train = _rewritten(split, detection, detection.given, ignore=flagged)
        report["masked_words"] = int(flagged.sum())
    fixed = datasets.DatasetDict({**dataset, "train": train})
    report["noise_before"] = remaining_noise(split, scheme)
    report["noise_after"] = remaining_noise(train, scheme)
    return fixed, report


def _rewritten(split, detection: Detection, tags: np.ndarray, ignore: np.ndarray | None = None):
    """The training ``split`` with the flat ``tags`` (one per word) and, for ``mask``, the
    ``ignore`` column (bool per word); its words, ``clean_tags`` and reviewed sentences
    (``review merge``) as they were."""
    import pyarrow as pa

    from noisebench.data import loading as data

    table = split.data.table
    tokens = table.column("tokens").combine_chunks()
    clean = table.column("clean_tags").combine_chunks() if detection.clean is not None else None
    offsets = pa.array(detection.offsets.astype(np.int32))
    column = pa.ListArray.from_arrays(offsets, pa.array(tags, pa.int64()))
    flags = None if ignore is None else pa.ListArray.from_arrays(offsets, pa.array(ignore))
    review = data.review_columns(split)
    return data.make_split(tokens, column, detection.labels, clean, ignore=flags, **review)


def check_strength(detection: Detection, min_f1: float) -> None:
    """A model below ``min_f1`` validation F1 suggests too many wrong labels to write
    them over the given ones (and the estimate of which suggestions are more likely
    right comes from the same model): refused, one line, with the way past it."""
    f1 = detection.validation_f1
    if f1 is not None and f1 < min_f1:
        raise InputError(
            f"--fix relabel: the detecting model's validation F1 is {f1:.3f}, below --min-f1"
            f" {min_f1:g}: too weak to relabel by (train longer or on more data, use --fix"
            " mask or drop, or give --min-f1 0 to relabel anyway)"
        )


def noise_matrix(given: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``P(given label i | true label j)``, (C, C), each column summing to one (a label
    never given: zeros), from confident learning's estimate of the joint distribution of
    given and true labels (cleanlab's calibrated confident joint: per-class thresholds,
    the average probability of each label on the words given it) over the words the
    model saw."""
    from cleanlab.count import estimate_joint

    seen = ~np.isnan(probs[:, 0])
    joint = estimate_joint(given[seen], probs[seen].astype(np.float64))  # (given, true)
    totals = joint.sum(axis=0, keepdims=True)
    return np.divide(joint, totals, out=np.zeros_like(joint), where=totals > 0)


def confident_suggestions(
    given: np.ndarray, suggested: np.ndarray, probs: np.ndarray, matrix: np.ndarray
) -> np.ndarray:
    """Bool per word: its suggestion ``s`` differs from its given label ``g`` and is the
    more likely of the two to be its true label. With the model's probabilities ``p`` as
    P(true | words) and ``matrix`` as P(given | true), P(true = c | words, given = g) is
    proportional to ``matrix[g, c] * p[c]``: the test is ``matrix[g, s] * p[s] >
    matrix[g, g] * p[g]``. A relabel that passes lowers the expected number of wrong words
    (by the difference of the two posteriors); any other raises it. With 1% of the labels
    wrong the suggestion needs some 100 times the given label's probability; a word the
    model never saw (NaN) is never relabelled.

    >>> matrix = np.array([[0.9, 0.3], [0.1, 0.7]])  # P(given | true): columns sum to 1
    >>> probs = np.array([[0.3, 0.7], [0.05, 0.95], [0.6, 0.4]])
    >>> confident_suggestions(np.array([0, 0, 1]), np.array([1, 1, 0]), probs, matrix).tolist()
    [False, True, False]
    """
    rows = np.arange(len(given))
    seen = ~np.isnan(probs[:, 0])
    p = np.where(seen[:, None], probs, 0.0)
    for_suggested = matrix[given, suggested] * p[rows, suggested]
    for_given = matrix[given, given] * p[rows, given]
    return seen & (suggested != given) & (for_suggested > for_given)


def disagreements(given: list[str], suggested: list[str]) -> list[tuple[int, int]]:
    """A sentence's stretches ``(start, end)`` where its given and suggested spans differ:
    each group of spans chained by overlap (given with suggested) that is not the same on
    both sides. A stretch never cuts a span of either side.

    >>> disagreements("B-PER I-PER O B-LOC".split(), "B-ORG O B-LOC I-LOC".split())
    [(0, 2), (2, 4)]
    >>> disagreements("B-PER I-PER O O".split(), "B-PER I-PER O B-LOC".split())
    [(3, 4)]
    """
    given_spans, suggested_spans = decode_spans(given), decode_spans(suggested)
    members = sorted(
        [(*span, 0) for span in given_spans] + [(*span, 1) for span in suggested_spans]
    )
    stretches: list[tuple[int, int]] = []
    group: list[tuple] = []
    for member in [*members, (len(given), len(given), "", 0)]:  # a sentinel closes the last
        if group and member[0] >= max(m[1] for m in group):
            sides = [{m[:3] for m in group if m[3] == side} for side in (0, 1)]
            if sides[0] != sides[1]:
                stretches.append((group[0][0], max(m[1] for m in group)))
            group = []
        group.append(member)
    return stretches


def write_stretch(
    current: list[str], suggested: list[str], start: int, end: int, scheme: str
) -> list[str] | None:
    """``current`` (a sentence's labels) with the suggested spans inside ``start:end``,
    written in the scheme, and its other labels kept; None where the sentence would not
    then decode to exactly its spans outside the stretch and the suggested ones inside
    (next to a label left invalid in the given data, say).

    >>> write_stretch("O B-PER I-PER O".split(), "O B-LOC I-PER O".split(), 1, 3, "IOB2")
    ['O', 'B-LOC', 'B-PER', 'O']
    """
    inside = [s for s in decode_spans(suggested) if start <= s[0] and s[1] <= end]
    outside = [s for s in decode_spans(current) if s[1] <= start or s[0] >= end]
    intended = sorted(outside + inside)
    encoded = encode_spans(intended, len(current), scheme)
    written = [*current[:start], *encoded[start:end], *current[end:]]
    return written if decode_spans(written) == intended else None


def relabelled(
    detection: Detection, share: float, scheme: str, matrix: np.ndarray
) -> tuple[np.ndarray, dict]:
    """The given labels with the suggestions written over the stretches where they are
    more likely right (``confident_suggestions`` with the noise ``matrix``, between
    labels the model has learned, ``learned_labels``: for every word the model
    contradicts there), the most suspect stretch first (its worst word's score), while at
    most ``share`` of the words change: the budget is a cap, not a quota. Spans are
    relabelled whole (``disagreements``, ``write_stretch``: valid in the scheme, the other
    words keep their labels); tags without spans word by word. Returns the labels and
    the counts."""
    given, suggested, probs = detection.given, detection.suggested, detection.probs
    seen = ~np.isnan(probs[:, 0])  # the words the model saw
    learned = learned_labels(given, suggested, seen, len(detection.labels))
    confident = confident_suggestions(given, suggested, probs, matrix)
    confident &= learned[given] & learned[suggested]
    cap = max(1, round(share * len(given)))
    stretches = _stretches(detection, scheme)  # (sentence, first word, one past the last)
    worst = np.array(
        [np.nanmax(detection.word_scores[a:b], initial=-np.inf) for _, a, b in stretches]
    )
    out, index = given.copy(), {name: i for i, name in enumerate(detection.labels)}
    changed = written_stretches = 0
    for k in ranked_order(np.where(np.isneginf(worst), np.nan, worst)):
        sentence, begin, end = stretches[k]
        contradicted = suggested[begin:end] != given[begin:end]
        if not confident[begin:end][contradicted].all():
            continue
        first, last = detection.offsets[sentence], detection.offsets[sentence + 1]
        written = _with_stretch(detection, out[first:last], first, begin, end, scheme)
        if written is None or any(label not in index for label in written):
            continue
        ids = np.array([index[label] for label in written])
        more = int((ids != out[first:last]).sum())
        if changed + more > cap:
            continue
        out[first:last] = ids
        changed, written_stretches = changed + more, written_stretches + 1
    return out, {
        "relabelled_words": int((out != given).sum()),
        "relabelled_stretches": written_stretches,
        "contradicted_words": int((seen & (suggested != given)).sum()),
        "confident_words": int(confident.sum()),
        "budget_words": cap,
        "unlearned_labels": [detection.labels[k] for k in np.flatnonzero(~learned)],
    }


def _with_stretch(
    detection: Detection, current: np.ndarray, first: int, begin: int, end: int, scheme: str
) -> list[str] | None:
    """A sentence's ``current`` labels (its words from flat position ``first``) as names,
    with the suggestions written over the flat stretch ``begin:end`` (``write_stretch``;
    tags without spans: the one word's suggestion)."""
    names = [detection.labels[t] for t in current]
    if scheme == NO_SCHEME:
        written = [*names[: begin - first], detection.labels[detection.suggested[begin]]]
        return written + names[end - first :]
    last = first + len(current)
    proposal = [detection.labels[t] for t in detection.suggested[first:last]]
    return write_stretch(names, proposal, begin - first, end - first, scheme)


def learned_labels(
    given: np.ndarray, suggested: np.ndarray, seen: np.ndarray, labels: int
) -> np.ndarray:
    """Bool per label (``labels`` of them): the model predicts it for at least half of
    the training words given it (of those it saw). Confident learning assumes every label
    is right more often than not, so a label the model contradicts on most of its own
    training words is one it has not learned, and its contradictions there say nothing
    about the labels: no word is relabelled from or to it. A label never given is not
    learned either.

    >>> given, suggested = np.array([0, 0, 1, 1, 1, 2]), np.array([0, 1, 1, 2, 2, 2])
    >>> learned_labels(given, suggested, np.ones(6, dtype=bool), 4).tolist()
    [True, False, True, False]
    """
    agreed = np.bincount(given[seen & (given == suggested)], minlength=labels)
    words = np.bincount(given[seen], minlength=labels)
    return (words > 0) & (2 * agreed >= words)


def _stretches(detection: Detection, scheme: str) -> list[tuple[int, int, int]]:
    """``(sentence, first word, one past the last)``, flat word positions, of every
    disagreement (``disagreements``; each word apart for tags without spans)."""
    names = np.array(detection.labels, dtype=object)
    found = []
    for sentence, (first, last) in enumerate(itertools.pairwise(detection.offsets)):
        given, suggested = detection.given[first:last], detection.suggested[first:last]
        if scheme == NO_SCHEME:
            found += [
                (sentence, first + w, first + w + 1) for w in np.flatnonzero(given != suggested)
            ]
        elif (given != suggested).any():
            pairs = disagreements(list(names[given]), list(names[suggested]))
            found += [(sentence, first + a, first + b) for a, b in pairs]
    return found


def remaining_noise(split, scheme: str) -> dict | None:
    """The noise report of a training split's labels against its clean ones, over the
    words that count for training (those its ``ignore`` column keeps)."""
    from noisebench.data import loading as data
    from noisebench.data.noise import label_noise

    report = label_noise(split, scheme)
    if report is None or data.IGNORE_COLUMN not in split.column_names:
        return report
    if "clean_tags" not in split.column_names:  # measured on reviewed sentences: as it is
        return report
    tags, _ = data.flat_tags(split)
    clean, _ = data.flat_tags(split, "clean_tags")
    counted = ~data.ignored(split)
    wrong = tags != clean
    return {
        **report,
        "token_error_rate_counted": float(wrong[counted].mean()) if counted.any() else 0.0,
        "ignored_words": int((~counted).sum()),
        "ignored_truly_wrong": int(wrong[~counted].sum()),
    }


def reviewed_labels(detection: Detection, flagged: np.ndarray, scheme: str) -> np.ndarray:
    """The labels a review proposes (``review.py``): the given labels with the
    ``flagged`` words (bool per word) set to their suggested labels, each sentence then
    written back in its scheme (``encode(decode())``), so the result is a valid tag
    sequence whatever the suggestions were (tags without spans take the suggestions as
    they are)."""
    index = {name: i for i, name in enumerate(detection.labels)}
    out = detection.given.copy()
    out[flagged] = detection.suggested[flagged]
    if scheme == NO_SCHEME:
        return out
    for begin, end in itertools.pairwise(detection.offsets):
        if not flagged[begin:end].any():
            continue
        names = [detection.labels[t] for t in out[begin:end]]
        written = encode_spans(decode_spans(names), end - begin, scheme)
        if all(label in index for label in written):
            out[begin:end] = [index[label] for label in written]
    return out


def fix_summary(report: dict) -> list[str]:
    """What a fix did (``apply_fix``'s report), in lines for the terminal: for
    ``relabel`` the words relabelled against the budget and what the model contradicts;
    for every fix the word error rate (and entity noise) before and after, where the data
    has clean labels."""
    lines = []
    if report["fix"] == "relabel":
        lines.append(
            f"--fix relabel: {report['relabelled_words']:,} word(s) relabelled (at most"
            f" {report['budget_words']:,}: {report['budget']:.0%} of the words); the model"
            f" contradicts {report['contradicted_words']:,}, {report['confident_words']:,} of"
            " them more likely right than their given label"
            + _unlearned(report.get("unlearned_labels"))
        )
    before, after = report["noise_before"], report["noise_after"]
    if before is not None and after is not None:
        lines.append(
            f"--fix {report['fix']} at {report['budget']:.0%}: word error rate"
            f" {before['token_error_rate']:.2%} -> {after['token_error_rate']:.2%}"
            + _counted(after)
            + _entity_noise(before, after)
        )
    return lines


def _unlearned(labels: list[str] | None) -> str:
    if not labels:
        return ""
    return f" (none from or to a label it has not learned: {', '.join(labels)})"


def _counted(after: dict) -> str:
    if "token_error_rate_counted" not in after:
        return ""
    return f" ({after['token_error_rate_counted']:.2%} of the words that count)"


def _entity_noise(before: dict, after: dict) -> str:
    if before.get("entity_noise_level") is None or after.get("entity_noise_level") is None:
        return ""
    return f", entity noise {before['entity_noise_level']:.1%} -> {after['entity_noise_level']:.1%}"
