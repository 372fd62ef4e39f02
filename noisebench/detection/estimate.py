"""How noisy are my labels, without any review? A model-based estimate.

The detecting model's confident contradictions (the ``--fix relabel`` rule applied
everywhere it holds, with no budget: ``fix.relabelled``) stand in for the clean labels;
the given labels are profiled against them (``data.profiles.learn``): the word error
rate, the entity noise level, and what happened to each (estimated) true entity, kept,
missed, retyped or with a boundary moved, and the spurious entities. It is an estimate,
labelled so everywhere: a model trained on the noisy labels agrees with many of their
errors, so the rates are lower bounds more than measurements (docs/results/
noise-estimate.md compares them with the truth on NoiseBench).
"""

from __future__ import annotations

import itertools

import numpy as np

from noisebench.data.profiles import Pair, learn
from noisebench.data.schemes import NO_SCHEME
from noisebench.detection.fix import noise_matrix, relabelled
from noisebench.detection.score import Detection
from noisebench.errors import InputError

ERRORS = ("missed", "retyped", "boundary")  # what can happen to a true entity, besides kept


def estimated_noise(detection: Detection, scheme: str) -> dict | None:
    """The model-based estimate of ``detection``'s training labels' noise (None for tags
    without spans or a model that saw no word)."""
    if scheme == NO_SCHEME or detection.probs is None or np.isnan(detection.probs).all():
        return None
    matrix = noise_matrix(detection.given, detection.probs)
    estimated, _ = relabelled(detection, 1.0, scheme, matrix)
    names = np.array(detection.labels, dtype=object)
    offsets = detection.offsets
    cut = list(itertools.pairwise(offsets))
    pair = Pair(
        detection.tokens,
        [names[detection.given[a:b]].tolist() for a, b in cut],
        [names[estimated[a:b]].tolist() for a, b in cut],
    )
    try:
        profile = learn(pair)
    except InputError:  # no entity left to profile
        return None
    outcomes = profile["summary"]["outcomes"]
    errors = {kind: outcomes.get(kind, 0.0) for kind in ERRORS}
    return {
        "estimate": "model-based (the detecting model's confident contradictions)",
        "word_error_rate": profile["token_error_rate"],
        "entity_noise_level": profile["entity_noise_level"],
        "outcomes": outcomes,
        "spurious_per_entity": profile["summary"]["spurious_per_entity"],
        "dominant_error": max(errors, key=errors.get) if any(errors.values()) else None,
    }
