"""The settings of a training run: what names, hashes and reproduces it.

from noisebench.training.config import TrainConfig
config = TrainConfig(loss="sgce", q=0.8, s=0.1, rate=0.4)
config.identity()  # what config.json and results.json store; hashed into the run name
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from noisebench.errors import InputError
from noisebench.training import methods, precision, runs, targets

VALIDATION_LABELS = ("noisy", "clean", "reviewed")


NOISE_SETTINGS = ("matrix", "entity_mix", "noise_profile")
NOISES_WITHOUT_RATE = ("matrix", "profile")  # their file sets every flip probability

# keys that ``TrainConfig.identity`` adds (they follow from the settings; not settings)
DERIVED_IDENTITY_KEYS = ("validation_noise", "matrix_crc32", "noise_profile_crc32")


DATA, BUDGET, LOSS, METHOD, EVALUATION = (
    "Data",
    "Model and budget",
    "Loss",
    "Method",
    "Evaluation",
)  # the panels of ``train --help``, in this order


def setting(
    default,
    help: str,
    panel: str,
    *,
    check=None,
    option: str | None = None,
    cli: bool = True,
):
    """A run setting, declared once: its default, its help (``train --help``, the Python
    API's ``help(nb.train)``), where ``--help`` shows it, its ``check`` (value -> what is
    wrong with it, or None; ``TrainConfig.check``) and its option's name (default
    ``--<name>``); ``cli=False``: fixed for every command (no option)."""
    metadata = {"help": help, "panel": panel, "check": check, "option": option, "cli": cli}
    return field(default=default, metadata=metadata)


def at_least(low: int):
    """A check: a number at least ``low`` (None passes: not set)."""
    return lambda value: None if value is None or value >= low else f"must be at least {low}"


def positive(value) -> str | None:
    return None if value > 0 else "must be positive"


def fraction(value) -> str | None:
    return None if 0.0 <= value <= 1.0 else "must be a fraction in [0, 1]"


def posterior(value) -> str | None:
    return None if 0.0 < value < 1.0 else "must be a posterior in (0, 1)"


def one_of(choices, problem: str | None = None):
    """A check: one of ``choices`` (``problem``: what to say otherwise)."""
    named = ", ".join(c for c in choices if c is not None)
    return lambda value: None if value in choices else problem or f"choose one of {named}"


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run; the resolved form of it names and hashes the run.

    Each field is one setting, declared once (``setting``): it generates ``train``'s
    option, the Python API's parameter and the sweep's child command line."""

    data: str = setting("conll2003", "Built-in name, file, folder or Hub id.", DATA)
    loss: str = setting("ce", "ce (the baseline), mae, gce, sgce, sce or nce+rce.", LOSS)
    q: float | None = setting(None, "GCE/SGCE q (default 0.7).", LOSS)
    s: float | None = setting(None, "Label smoothing s in [0, 1).", LOSS)
    model: str = setting("minilm-l6", "minilm-l6, a model folder or a Hub id.", BUDGET)
    noise: str = setting(
        "uniform",
        "uniform, pair, entity, matrix or profile (default: uniform; matrix with --matrix,"
        " profile with --profile).",
        DATA,
    )
    # None: train on the data as given
    rate: float | None = setting(None, "Corrupt the training split at this rate first.", DATA)
    # the other noise models' settings (corrupt --matrix, --entity-mix, --profile); in
    # the identity only where given
    matrix: str | None = setting(
        None, 'JSON noise matrix: {"B-PER": {"B-PER": 0.8, "B-ORG": 0.2}, ...}.', DATA
    )
    entity_mix: str | None = setting(
        None,
        "Entity-noise event weights, e.g. missed=0.35,retyped=0.25,boundary=0.3,spurious=0.1"
        " (the default).",
        DATA,
    )
    noise_profile: str | None = setting(
        None,
        "Noise profile (implies --noise profile): a file from `noisebench profile` or a"
        " built-in one, noisebench:crowd, noisebench:weak, ...",
        DATA,
        option="--profile",
    )
    epochs: int = setting(3, "Maximum epochs.", BUDGET, check=at_least(1))
    lr: float = setting(5e-5, "Peak learning rate (AdamW).", BUDGET, check=positive)
    batch_size: int = setting(32, "Sentences per batch.", BUDGET, check=at_least(1))
    max_length: int = setting(128, "Sub-tokens per training sentence.", BUDGET, check=at_least(8))
    max_train_samples: int | None = setting(
        None, "Keep the first K training sentences.", DATA, check=at_least(1)
    )
    seed: int = setting(0, "Seed of every random choice.", BUDGET)
    # resolved before the run is named (precision.settle): None there is the device's
    # usual precision (fp32 on CPU, bf16 autocast on CUDA), as runs from before it
    precision: str | None = setting(
        "auto",
        "Number format of the model's matrix products: auto (bf16 autocast where the device"
        " multiplies bf16 natively: CUDA, CPUs with AVX512-BF16 or AMX; else fp32), fp32 or"
        " bf16. Losses, probabilities and scores stay fp32.",
        BUDGET,
        check=one_of((None, *precision.PRECISIONS)),
    )
    patience: int = setting(
        2,
        "Stop after this many epochs without a better validation F1, counted only once the"
        " F1 has left 0 (a slow starter is not stopped while still at 0). At least 1;"
        " --patience equal to --epochs never stops early.",
        BUDGET,
        check=at_least(1),  # 0 would stop before any epoch counted
    )
    warmup_ratio: float = setting(0.1, "Share of steps of linear lr warm-up.", BUDGET, cli=False)
    weight_decay: float = setting(0.01, "AdamW weight decay.", BUDGET, cli=False)
    max_grad_norm: float = setting(1.0, "Gradient clipping norm.", BUDGET, cli=False)
    strict: bool = setting(False, "seqeval strict mode in the data's tag scheme.", EVALUATION)
    bins: int = setting(10, "Calibration bins.", EVALUATION, check=at_least(1))
    calibrate: str | None = setting(
        None,
        "'temperature': also report post-hoc scaled ECE/MCE.",
        EVALUATION,
        check=one_of((None, "temperature"), "the only method is temperature"),
    )
    token_column: str | None = setting(
        None, "Word column: a name, or a 0-based index for CoNLL.", DATA
    )
    tag_column: str | None = setting(
        None, "Tag column: a name, or a 0-based index for CoNLL.", DATA
    )
    labels: tuple[str, ...] | None = setting(
        None, "Label names in id order: O,B-PER,I-PER,...", DATA
    )
    # Which validation labels choose the best epoch: "noisy" = the split's ``tags`` as
    # given (realistic: a user's dev labels are as noisy as the training labels), "clean"
    # = its ``clean_tags`` (an oracle, for comparison).
    validation_labels: str = setting(
        "noisy",
        "Labels that choose the best epoch: noisy (the validation split's tags as given;"
        " realistic), clean (its clean_tags; an oracle) or reviewed (its reviewed sentences"
        " only, with their reviewed labels: noisebench review merge).",
        EVALUATION,
        check=one_of(VALIDATION_LABELS, "choose noisy, clean or reviewed"),
    )
    # Share of all optimizer steps that start with cross-entropy: GCE/SGCE ramp q from 0
    # (exactly CE) to its target over them, MAE/SCE/NCE+RCE use CE until they end.
    loss_warmup: float = setting(
        runs.DEFAULT_LOSS_WARMUP,
        "Share of all steps that start with cross-entropy: gce/sgce ramp q from 0 (= CE) to"
        " --q over them; mae, sce and nce+rce use CE until they end.",
        LOSS,
        check=fraction,
    )
    # what each word contributes beside the loss (methods.py): "none" = the loss alone
    method: str = setting(
        "none",
        "What each word contributes beside the loss: none, mask-missing, mask-entity,"
        " mask-all, mask-auto (masking by error type), or a bound on data with clean labels:"
        " oracle-mask, oracle-mask-disagree, oracle-clean.",
        METHOD,
        check=one_of(methods.METHODS),
    )
    mask_warmup: float = setting(
        methods.DEFAULT_MASK_WARMUP,
        "Share of steps before masking starts (mask-* methods).",
        METHOD,
        check=fraction,
    )
    # where a refit puts the threshold (the confident component's posterior), and how the
    # rule is read (methods.READINGS; None: the method's default, methods.group_readings);
    # in the identity only when not the defaults
    mask_cutoff: float = setting(
        methods.POSTERIOR_CUTOFF,
        "mask-*: a refit puts the threshold where the confident component's posterior"
        " reaches this (default 0.3, the paper's).",
        METHOD,
        check=posterior,
    )
    mask_reading: str | None = setting(
        None,
        "mask-*: overrule (a disagreeing prediction above the threshold leaves the word out)"
        " or literal (the paper's text: words count while above it). Default: overrule;"
        " mask-auto overrules missed entities and reads entity labels literally.",
        METHOD,
        check=one_of((None, *methods.READINGS)),
    )
    # mask-auto: a noise profile (file or noisebench:<variant>) that names the dominant
    # error type; None: the model's own disagreements during the warm-up decide
    error_profile: str | None = setting(
        None,
        "mask-auto: a noise profile (noisebench profile -o FILE, or noisebench:<variant>)"
        " whose dominant error type picks mask-missing or mask-entity; without it the"
        " model's disagreements in the warm-up decide.",
        METHOD,
    )
    # span-aware smoothing (targets.py): the share of each entity's mass moved to its
    # spans with a start or end up to span_distance words away; 0 = one-hot targets
    span_smoothing: float = setting(
        0.0,
        "Span-aware smoothing: move this share of each entity's mass to the spans whose"
        " start or end is moved by up to --span-distance words (0: off; composes with --s"
        " and every loss).",
        METHOD,
    )
    span_distance: int = setting(
        targets.DEFAULT_DISTANCE, "Words an entity edge may move under --span-smoothing.", METHOD
    )

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
        if self.precision is None:  # the device's usual precision: older runs' names
            del identity["precision"]
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
        stored.setdefault("precision", None)  # older runs: their device's usual precision
        return cls(**stored)

    def check(self) -> None:
        """Each setting against its declaration's check, in field order: the first
        problem as one line naming the option, ``--epochs 0: must be at least 1``."""
        for name, declared in TRAIN_FIELDS.items():
            check, value = declared.metadata["check"], getattr(self, name)
            problem = check(value) if check is not None else None
            if problem is not None:
                shown = repr(value) if isinstance(value, str) else value
                raise InputError(f"{option_name(name)} {shown}: {problem}")

    @classmethod
    def of_options(cls, **given) -> TrainConfig:
        """The config of settings as the command line and the Python API give them:
        ``labels`` one comma-separated list or a sequence, ``matrix`` a path, and the
        noise model chosen from the noise options as ``corrupt`` chooses it (``--profile``
        implies ``profile``, ``--matrix`` ``matrix``; ``noise.noise_choice``)."""
        from noisebench.data.noise import noise_choice

        labels, matrix = given.get("labels"), given.get("matrix")
        if isinstance(labels, str):  # "" stays an (empty, refused) list, as corrupt's
            labels = [part.strip() for part in labels.split(",") if part.strip()]
        noise_options = (given.get(n) for n in ("noise", "matrix", "entity_mix", "noise_profile"))
        return cls(
            **given
            | {
                "noise": noise_choice(*noise_options),
                "labels": tuple(labels) if labels is not None else None,
                "matrix": None if matrix is None else str(matrix),
            }
        )

    @property
    def adds_noise(self) -> bool:
        """The training data is corrupted first: a ``--rate``, a matrix or a profile."""
        return self.rate is not None or self.noise in NOISES_WITHOUT_RATE

    @property
    def corrupts_validation(self) -> bool:
        """Simulated noise reaches the validation labels too (``--validation-labels noisy``)."""
        changes_labels = bool(self.rate) or self.noise in NOISES_WITHOUT_RATE
        return changes_labels and self.validation_labels == "noisy"


def option_name(name: str) -> str:
    """A setting's command-line option: ``--profile`` for ``noise_profile``, else
    ``--<name>`` with dashes."""
    meta = TRAIN_FIELDS[name].metadata
    return meta["option"] or "--" + name.replace("_", "-")


TRAIN_FIELDS = {f.name: f for f in fields(TrainConfig)}
# settings that no command exposes: fixed at their defaults
FIXED_SETTINGS = tuple(n for n, f in TRAIN_FIELDS.items() if not f.metadata["cli"])
# the settings a sweep takes one value of for all its runs (``SweepConfig`` has a field of
# each name; None there: the preset's or the TOML's); its grid's axes (data, loss, method,
# span_smoothing, q, s, rate, seed, validation_labels) are its own options
SWEEP_SETTINGS = (
    "model", "noise", "epochs", "loss_warmup", "batch_size", "max_train_samples", "matrix",
    "entity_mix", "noise_profile", "token_column", "tag_column", "labels", "lr", "error_profile",
    "precision",
)  # fmt: skip
