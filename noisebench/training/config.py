"""The settings of a training run: what names, hashes and reproduces it.

from noisebench.training.config import TrainConfig
config = TrainConfig(loss="sgce", q=0.8, s=0.1, rate=0.4)
config.identity()  # what config.json and results.json store; hashed into the run name
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from noisebench.errors import InputError
from noisebench.training import methods, runs, targets

VALIDATION_LABELS = ("noisy", "clean")


NOISE_SETTINGS = ("matrix", "entity_mix", "noise_profile")
NOISES_WITHOUT_RATE = ("matrix", "profile")  # their file sets every flip probability

# keys that ``TrainConfig.identity`` adds (they follow from the settings; not settings)
DERIVED_IDENTITY_KEYS = ("validation_noise", "matrix_crc32", "noise_profile_crc32")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run; the resolved form of it names and hashes the run."""

    data: str = "conll2003"
    loss: str = "ce"
    q: float | None = None
    s: float | None = None
    model: str = "minilm-l6"
    noise: str = "uniform"
    rate: float | None = None  # None: train on the data as given
    # the other noise models' settings (corrupt --matrix, --entity-mix, --profile); in
    # the identity only where given
    matrix: str | None = None
    entity_mix: str | None = None
    noise_profile: str | None = None
    epochs: int = 3
    lr: float = 5e-5
    batch_size: int = 32
    max_length: int = 128
    max_train_samples: int | None = None
    seed: int = 0
    patience: int = 2
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    strict: bool = False
    bins: int = 10
    calibrate: str | None = None  # "temperature"
    token_column: str | None = None
    tag_column: str | None = None
    labels: tuple[str, ...] | None = None
    # Which validation labels choose the best epoch: "noisy" = the split's ``tags`` as
    # given (realistic: a user's dev labels are as noisy as the training labels), "clean"
    # = its ``clean_tags`` (an oracle, for comparison).
    validation_labels: str = "noisy"
    # Share of all optimizer steps that start with cross-entropy: GCE/SGCE ramp q from 0
    # (exactly CE) to its target over them, MAE/SCE/NCE+RCE use CE until they end.
    loss_warmup: float = runs.DEFAULT_LOSS_WARMUP
    # what each word contributes beside the loss (methods.py): "none" = the loss alone
    method: str = "none"
    mask_warmup: float = methods.DEFAULT_MASK_WARMUP  # share of steps without masking
    # where a refit puts the threshold (the confident component's posterior), and how the
    # rule is read (methods.READINGS; None: the method's default, methods.group_readings);
    # in the identity only when not the defaults
    mask_cutoff: float = methods.POSTERIOR_CUTOFF
    mask_reading: str | None = None
    # mask-auto: a noise profile (file or noisebench:<variant>) that names the dominant
    # error type; None: the model's own disagreements during the warm-up decide
    error_profile: str | None = None
    # span-aware smoothing (targets.py): the share of each entity's mass moved to its
    # spans with a start or end up to span_distance words away; 0 = one-hot targets
    span_smoothing: float = 0.0
    span_distance: int = targets.DEFAULT_DISTANCE

    def __post_init__(self) -> None:
        if self.mask_reading == methods.READINGS[0] and self.method != methods.AUTO:
            object.__setattr__(self, "mask_reading", None)  # the default, said explicitly

    def identity(self) -> dict:
        """What determines the results (device, paths and output options excluded).
        The method and its settings appear only where they matter, so runs from before
        ``--method`` keep their names."""
        identity = asdict(self)
        identity["labels"] = list(self.labels) if self.labels else None
        masking = self.method in (*methods.MASKING, methods.AUTO)
        if not masking:
            del identity["mask_warmup"]
        for key, default in (
            ("mask_cutoff", methods.POSTERIOR_CUTOFF),
            ("mask_reading", None),
        ):
            if not masking or identity[key] == default:
                del identity[key]
        for key in NOISE_SETTINGS:
            if identity[key] is None:  # older runs keep their names
                del identity[key]
        for key in ("matrix", "noise_profile"):  # a file's content, not only its name
            if identity.get(key) and Path(identity[key]).is_file():
                content = Path(identity[key]).read_bytes()
                identity[f"{key}_crc32"] = f"{zlib.crc32(content):08x}"
        if self.method != methods.AUTO:
            del identity["error_profile"]
        if self.method == "none":
            del identity["method"]
        if not self.span_smoothing:  # as for the method: older runs keep their names
            del identity["span_smoothing"], identity["span_distance"]
        if self.corrupts_validation:  # runs from before 0.3 kept clean validation labels here
            identity["validation_noise"] = "as train"
        return identity

    @classmethod
    def from_identity(cls, identity: dict) -> TrainConfig:
        """The config back from ``identity()`` (as ``config.json`` and ``results.json``
        store it): derived keys dropped, keys of older runs filled with their defaults.

        >>> config = TrainConfig(loss="sgce", q=0.8, s=0.1, rate=0.4, labels=("O", "B-X"))
        >>> TrainConfig.from_identity(config.identity()) == config
        True
        """
        stored = {k: v for k, v in identity.items() if k not in DERIVED_IDENTITY_KEYS}
        unknown = sorted(set(stored) - {f.name for f in fields(cls)})
        if unknown:
            raise InputError(
                f"run config has unknown setting '{unknown[0]}': it was made by a newer"
                " noisebench; upgrade to read it"
            )
        if stored.get("labels"):
            stored["labels"] = tuple(stored["labels"])
        return cls(**stored)

    @property
    def adds_noise(self) -> bool:
        """The training data is corrupted first: a ``--rate``, a matrix or a profile."""
        return self.rate is not None or self.noise in NOISES_WITHOUT_RATE

    @property
    def corrupts_validation(self) -> bool:
        """Simulated noise reaches the validation labels too (``--validation-labels noisy``)."""
        changes_labels = bool(self.rate) or self.noise in NOISES_WITHOUT_RATE
        return changes_labels and self.validation_labels == "noisy"
