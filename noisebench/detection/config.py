"""What a detection is asked for, checked before anything trains: the detector, its word
score, the folds, the review budget and the dynamics pass.

    noisebench detect noisebench:crowd --detector cv --folds 5 --budget 5% -o review-cv/

``record.py`` trains what the detector needs and records it, ``score.py`` turns the
records into word scores and rankings against the truth, ``fix.py`` writes a fixed
dataset, ``review.py`` the files for a reviewer.
"""

from __future__ import annotations

from dataclasses import dataclass

from noisebench.errors import InputError

DETECTORS = ("dynamics", "retag", "cv")
DYNAMICS_PASSES = ("train", "eval")  # recorded in the training passes, or one more per epoch
WORD_SCORES = {
    "dynamics": ("aum", "confidence", "variability", "early"),
    "retag": ("retag",),
    "cv": ("self_confidence", "normalized_margin"),
}
LEVELS = ("word", "entity", "sentence")


DETECT_SETTINGS = (
    "model",
    "loss",
    "method",
    "rate",
    "noise",
    "matrix",
    "entity_mix",
    "noise_profile",
    "epochs",
    "lr",
    "batch_size",
    "max_train_samples",
    "seed",
    "token_column",
    "tag_column",
    "labels",
    "precision",
)  # fmt: skip  (the run settings detect's own training takes, as train does)


@dataclass(frozen=True)
class DetectConfig:
    detector: str = "dynamics"
    score: str | None = None  # None: the detector's first (aum, retag, self_confidence)
    folds: int = 5
    budget: float = 0.10  # share of each level's units listed as issues for review
    # eval (default): also one inference pass per epoch, dropout off (it ranks better:
    # docs/results/detection.md); train: the training forward passes only, no extra pass
    dynamics_pass: str = "eval"

    @property
    def word_score(self) -> str:
        return self.score or WORD_SCORES[self.detector][0]

    def check(self) -> None:
        if self.detector not in DETECTORS:
            raise InputError(f"--detector '{self.detector}': choose one of {', '.join(DETECTORS)}")
        if self.word_score not in WORD_SCORES[self.detector]:
            raise InputError(
                f"--score {self.word_score}: the {self.detector} detector scores"
                f" {score_choices(self.detector)}"
            )
        if not 0.0 < self.budget <= 1.0:
            raise InputError(f"--budget {self.budget:g}: give a share in (0, 1], e.g. 0.05")
        if self.dynamics_pass not in DYNAMICS_PASSES:
            raise InputError(
                f"--dynamics-pass {self.dynamics_pass}: choose one of {', '.join(DYNAMICS_PASSES)}"
            )
        if self.detector == "cv" and self.folds < 2:
            raise InputError(f"--folds {self.folds}: cross-validation needs at least 2 folds")


def score_choices(detector: str) -> str:
    """The word scores a detector offers, for an error line."""
    return ", ".join(WORD_SCORES[detector])


def check_method(method: str) -> None:
    """A detection trains with any ``--method`` but an oracle's: an oracle sees the clean
    labels the detection is scored against (an unknown method is ``prepare``'s to refuse,
    as for ``train``)."""
    from noisebench.training import methods

    if methods.is_bound(method):
        raise InputError(
            f"--method {method}: an oracle trains on the clean labels the detection is"
            " scored against; choose none or a mask-* method"
        )


def parse_share(text: str) -> float:
    """``"5%"`` or ``"0.05"`` -> 0.05.

    >>> parse_share("5%"), parse_share("0.1")
    (0.05, 0.1)
    """
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise InputError(f"--budget '{text}': give a share such as 5% or 0.05") from None
    return value
