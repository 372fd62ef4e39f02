"""Everything a run needs, resolved and checked before anything is written.

    prepared = prepare(TrainConfig(data="noisebench:crowd", method="mask-missing"), "runs")

The data (loaded as given, or corrupted on the fly into the cache), its splits (a seeded
validation share carved from train where there is none; ``--max-train-samples``), the
labels that choose the best epoch (noisy or clean), what ``--method`` needs of the data
(clean labels for the oracles; ``oracle-clean`` trains on them), mask-auto's choice from
a profile, the model and the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from noisebench.data import loading as data
from noisebench.data import profiles, sources
from noisebench.data.noise import (
    NoiseConfig,
    corrupt_to_directory,
    default_output_dir,
    noise_choice,
)
from noisebench.data.noise import noise_config as noise_config_of
from noisebench.data.schemes import NO_SCHEME
from noisebench.errors import InputError
from noisebench.training import methods, precision, runs, targets
from noisebench.training.config import NOISES_WITHOUT_RATE, TrainConfig
from noisebench.training.losses import build_loss

VALIDATION_SHARE = 0.1


@dataclass
class Prepared:
    """What ``prepare`` resolved: everything the loop needs, nothing written yet."""

    config: TrainConfig
    dataset: object  # datasets.DatasetDict with train / validation / test
    dataset_name: str
    labels: list[str]
    scheme: str
    model_path: str
    device: torch.device
    run_dir: Path
    notes: list[str] = field(default_factory=list)
    compile_model: bool = False  # torch.compile the training forward pass (--compile)
    method_choice: str | None = None  # mask-auto's masking method, where a profile chose it

    @property
    def precision(self) -> str:
        """``fp32`` or ``bf16``: the number format of the model's forward passes."""
        return precision.resolve_precision(self.config.precision, self.device)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "--device cuda: no CUDA GPU is visible (torch.cuda.is_available() is False)"
        )
    if device not in ("cpu", "cuda"):
        raise InputError(f"--device '{device}': choose auto, cpu or cuda")
    return torch.device(device)


def resolve_model(spec: str) -> str:
    """A built-in model name, a local folder, or a Hub id -> what ``from_pretrained`` takes."""
    kind = check_model(spec)
    if kind == "builtin":
        return str(sources.fetch(sources.get_source(spec)))
    return str(Path(spec).expanduser()) if kind == "path" else spec


def check_model(spec: str) -> str:
    """Refuse a ``--model`` that cannot be loaded, fetching nothing; else say what it
    names: ``builtin``, ``path`` or ``hub``."""
    if spec in sources.SOURCES:
        if sources.get_source(spec).kind != "model":
            raise InputError(f"--model '{spec}' is a built-in dataset, not a model")
        return "builtin"
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(f"--model {path}: no config.json (not a Hugging Face model folder)")
        return "path"
    if data.HUB_ID.match(spec) and not path.exists():
        return "hub"
    builtins = ", ".join(n for n, s in sources.SOURCES.items() if s.kind == "model")
    raise InputError(f"--model '{spec}': no such folder (built-in models: {builtins})")


def prepare(
    config: TrainConfig, runs_dir: Path, device: str = "auto", compile_model: bool = False
) -> Prepared:
    """Check everything that can be wrong before anything is written."""
    _check_training_options(config)
    _check_method_options(config)
    resolved_device = resolve_device(device)
    notes: list[str] = []
    if note := precision.slow_note(config.precision, resolved_device):
        notes.append(note)
    config = precision.settle(config, resolved_device)  # as the run's name records it
    dataset, dataset_name, labels = _training_data(config, notes)
    scheme = data.scheme(dataset)
    targets.check_span_smoothing(config.span_smoothing, config.span_distance, scheme)
    choice = _auto_choice(config, labels, notes)
    model_path = resolve_model(config.model)
    if compile_model:
        notes.append(
            "--compile: the first training step compiles the model (about a minute on"
            " 2 CPU cores; cached under $NOISEBENCH_HOME/compiled for later runs)"
        )
    return Prepared(
        config,
        dataset,
        dataset_name,
        labels,
        scheme,
        model_path,
        resolved_device,
        runs.run_dir(Path(runs_dir), config.identity(), dataset_name),
        notes,
        compile_model,
        choice,
    )


def _check_training_options(config: TrainConfig) -> None:
    """The loss, the noise and the budget's numbers, each refused in one line."""
    try:
        build_loss(config.loss, q=config.q, s=config.s)
    except ValueError as error:
        raise InputError(f"--loss {config.loss}: {error}") from None
    check_noise(config)
    config.check()  # each setting against its declaration (config.setting)


def _check_method_options(config: TrainConfig) -> None:
    """``--method`` and its options, and span smoothing (before the data's scheme is known)."""
    if config.error_profile is not None and config.method != methods.AUTO:
        raise InputError(
            f"--error-profile is for --method mask-auto (this run's method: {config.method})"
        )
    targets.check_span_smoothing(config.span_smoothing, config.span_distance)


def _training_data(config: TrainConfig, notes: list[str]) -> tuple[object, str, list[str]]:
    """The run's data (corrupted on the fly where asked) with its splits for training and
    the labels ``--method`` trains on; its name; its label names."""
    columns = data.Columns(config.token_column, config.tag_column, config.labels)
    if config.adds_noise:
        dataset = data.load(corrupted_copy(config, notes))
    else:
        dataset = data.load(config.data, columns, notes)
    dataset_name = data.dataset_name(config.data)
    dataset = _splits_for_training(dataset, config, notes)
    labels = data.label_names(dataset["train"])
    dataset = _method_labels(dataset, config, labels, notes)
    ignored = ignored_words(dataset["train"])
    if ignored:
        words = len(data.flat_tags(dataset["train"])[0])
        notes.append(
            f"{ignored:,} of {words:,} training words ({ignored / words:.1%}) are left out of"
            f" training: the data's '{data.IGNORE_COLUMN}' column (noisebench detect --fix mask)"
        )
    return dataset, dataset_name, labels


def ignored_words(split) -> int:
    """How many words the split's ``ignore`` column leaves out of training (0 without it)."""
    flags = data.ignored(split)
    return 0 if flags is None else int(flags.sum())


def check_noise(config: TrainConfig) -> None:
    """The noise options combine as ``corrupt`` takes them (``noise.noise_choice``)."""
    noise_choice(config.noise, config.matrix, config.entity_mix, config.noise_profile)
    if config.noise in NOISES_WITHOUT_RATE:
        NoiseConfig(
            noise=config.noise, rate=config.rate, matrix={} if config.matrix else None,
            profile={} if config.noise_profile else None,
        )  # fmt: skip
    elif config.entity_mix is not None and config.rate is None:
        raise InputError("--entity-mix needs --rate (the share of entities it changes)")


def corrupted_copy(config: TrainConfig, notes: list[str] | None = None) -> Path:
    """The training data corrupted as ``config`` asks, in the cache (made once, reused).

    With ``--validation-labels noisy`` the validation split gets the same noise (its own
    generator, so the training labels are the same either way); without a validation
    split, the one carved from train later is noisy anyway.
    """
    columns = data.Columns(config.token_column, config.tag_column, config.labels)
    splits = ["train"]
    if config.corrupts_validation and "validation" in data.load(config.data, columns):
        splits.append("validation")
    noise_config = noise_config_of(
        config.noise, config.rate, config.seed, splits, config.matrix, config.entity_mix,
        config.noise_profile,
    )  # fmt: skip
    cached = sources.home() / "datasets" / default_output_dir(config.data, noise_config).name
    result = corrupt_to_directory(config.data, noise_config, cached, columns, force=True)
    if notes is not None:
        notes.extend(result.report.notes)
    return result.out


def _splits_for_training(dataset, config: TrainConfig, notes: list[str]):
    import datasets

    if "train" not in dataset:
        raise InputError(f"{config.data}: no train split (splits: {', '.join(dataset)})")
    train = dataset["train"]
    result = dict(dataset)
    if "validation" not in dataset:
        validation_rows, _ = carved_validation(len(train), config.seed)
        # flatten_indices: later code reads the Arrow table, which a bare select leaves whole
        result["validation"] = train.select(validation_rows).flatten_indices()
        notes.append(
            f"no validation split: {len(validation_rows)} sentences (a seeded 10% of train)"
            " became validation"
        )
    result["validation"] = _validation_labels(result["validation"], config, notes)
    rows = training_rows(dataset, config)
    if len(rows) < len(train):
        train = train.select(rows).flatten_indices()
    if len(train) == 0:
        raise InputError(f"{config.data}: no training sentences left")
    result["train"] = train
    if "test" not in result:
        notes.append("no test split: test scores are absent")
    return datasets.DatasetDict(result)


def carved_validation(sentences: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a train split of ``sentences`` that become validation (a seeded 10%)
    where the data has none, and the rows left for training; both sorted."""
    order = np.random.default_rng([seed, 10]).permutation(sentences)
    size = max(1, round(VALIDATION_SHARE * sentences))
    return np.sort(order[:size]), np.sort(order[size:])


def training_rows(dataset, config: TrainConfig) -> np.ndarray:
    """Which rows of the data's train split a run trains on, in order: all, less the
    validation carved from them where the data has none, cut at ``--max-train-samples``
    (so a training sentence's position maps back to the data: ``rows[position]``)."""
    rows = np.arange(len(dataset["train"]))
    if "validation" not in dataset:
        rows = carved_validation(len(rows), config.seed)[1]
    return rows[: config.max_train_samples]


def _validation_labels(validation, config: TrainConfig, notes: list[str]):
    """The validation split with the labels that choose the best epoch in ``tags``."""
    if config.validation_labels == "reviewed":
        return _reviewed_validation(validation, config, notes)
    if "clean_tags" not in validation.column_names:
        if config.validation_labels == "clean":
            raise InputError(
                f"--validation-labels clean: {config.data} has no clean_tags in its"
                " validation split (only corrupted data and noisebench:<variant> have them)"
            )
        return validation
    tags, _ = data.flat_tags(validation)
    clean, _ = data.flat_tags(validation, "clean_tags")
    differ = float(np.mean(tags != clean)) if len(tags) else 0.0
    if config.validation_labels == "clean":
        validation = _clean_labels_as_tags(validation)
        notes.append("the best epoch is chosen on the clean validation labels (oracle)")
    elif differ:
        notes.append(
            f"the best epoch is chosen on the noisy validation labels ({differ:.1%} of its"
            " words differ from the clean ones); --validation-labels clean for an oracle"
        )
    return validation


def _reviewed_validation(validation, config: TrainConfig, notes: list[str]):
    """``--validation-labels reviewed``: the reviewed validation sentences alone, their
    reviewed labels as the ``tags`` (and ``clean_tags``) that choose the best epoch."""
    # drawn at random, or by a design (weighted by it); chosen sentences are not the split
    sample = data.review_sample(validation)
    reviewed = sample.sentences
    if not reviewed.any():
        chosen = f" ({sample.left_out:,} reviewed ones were chosen for a reason)" * bool(
            sample.left_out
        )
        raise InputError(
            f"--validation-labels reviewed: {config.data} has no validation sentences reviewed"
            f" from a random sample{chosen} (noisebench review sample --split validation, or"
            " --split train where the validation sentences are carved from train; then"
            " noisebench review merge)"
        )
    if note := sample.note("--validation-labels reviewed"):
        notes.append(note)
    rows = np.flatnonzero(reviewed)
    table = validation.select(rows).flatten_indices().data.table
    labels = table.column(data.REVIEWED_TAGS_COLUMN).combine_chunks()
    notes.append(
        f"the best epoch is chosen on {int(reviewed.sum())} reviewed validation sentences"
        f" (of {len(validation)}), against their reviewed labels"
        + ", each weighted by its design (F1 of the split estimated)"
        * sample.designed
    )
    design = {}
    if sample.designed:  # the weights travel with the sentences: the loop scores by them
        design = {
            "review_stratum": pa.array(sample.strata[rows], pa.int32()),
            "extra": pa.table({data.REVIEW_WEIGHT_COLUMN: sample.weights[rows]}),
        }
    return data.make_split(
        table.column("tokens").combine_chunks(),
        labels,
        data.label_names(validation),
        clean_tags=labels,
        **design,
    )


def _clean_labels_as_tags(split):
    """``split`` with its ``clean_tags`` as the ``tags`` it trains or selects on."""
    table = split.data.table
    clean_column = table.column("clean_tags").combine_chunks()
    return data.make_split(
        table.column("tokens").combine_chunks(),
        clean_column,
        data.label_names(split),
        clean_tags=clean_column,
    )


def _method_labels(dataset, config: TrainConfig, labels: list[str], notes: list[str]):
    """Check that the data suits ``--method``; ``oracle-clean`` trains on clean labels."""
    import datasets

    method = config.method
    if method in (*methods.MASKING, methods.AUTO) and (
        "O" not in labels or data.scheme(dataset) == NO_SCHEME
    ):
        raise InputError(
            f"--method {method}: needs entity spans with an 'O' label; {config.data} has"
            f" {data.scheme(dataset)} tags"
        )
    if not methods.needs_clean_labels(method):
        return dataset
    train = dataset["train"]
    if "clean_tags" not in train.column_names:
        return _reviewed_oracle(dataset, config, notes)
    if method != "oracle-clean":
        return dataset
    result = dict(dataset)
    result["train"] = _clean_labels_as_tags(train)
    notes.append("oracle-clean: trained on the clean labels of the training sentences (a bound)")
    return datasets.DatasetDict(result)


def _reviewed_oracle(dataset, config: TrainConfig, notes: list[str]):
    """An oracle on data without clean labels knows the reviewed training sentences
    (``review merge``): ``oracle-clean`` trains on their reviewed labels, the masking
    oracles leave out their wrong words (``data.reviewed_truth``); the other sentences
    count as right. Refused without any."""
    import datasets

    train, method = dataset["train"], config.method
    reviewed = data.reviewed_sentences(train)
    if not reviewed.any():
        raise InputError(
            f"--method {method}: an oracle needs the clean labels of the training words;"
            f" {config.data} has no clean_tags (corrupted data and noisebench:<variant> have"
            " them) and no reviewed training sentences (noisebench review sample --split train,"
            " then review merge)"
        )
    known = f"{int(reviewed.sum())} reviewed training sentences (of {len(train)})"
    if method != "oracle-clean":
        notes.append(f"{method}: knows the wrong words of the {known}; the others count as right")
        return dataset
    truth, offsets = data.reviewed_truth(train)
    table = train.data.table
    notes.append(f"oracle-clean: trained on the reviewed labels of the {known}, the given"
                 " labels of the others")  # fmt: skip
    return datasets.DatasetDict(dict(dataset) | {"train": data.make_split(
        table.column("tokens").combine_chunks(),
        pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(truth)),
        data.label_names(train),
        **data.review_columns(train),
    )})  # fmt: skip


def _auto_choice(config: TrainConfig, labels: list[str], notes: list[str]) -> str | None:
    """mask-auto with ``--error-profile``: the masking method the profile's dominant error
    type calls for (said in a note); None otherwise."""
    if config.method != methods.AUTO:
        return None
    if config.error_profile is None:
        notes.append(
            "mask-auto: no --error-profile; the model's disagreements during the warm-up"
            " choose mask-missing or mask-entity"
        )
        return None

    profile = profiles.resolve(config.error_profile)
    choice, why = methods.choose_from_profile(profile)
    profile_types = {key.split("|")[0] for key in profile["cells"]}
    data_types = {label.split("-", 1)[-1] for label in labels if label != "O"}
    if profile_types != data_types:
        notes.append(
            f"mask-auto: the profile's types ({', '.join(sorted(profile_types))}) are not the"
            f" data's ({', '.join(sorted(data_types))}); chose from its type-agnostic rates"
        )
    notes.append(f"mask-auto chose {choice} from {config.error_profile}: {why}")
    return choice
