"""Fine-tune a Hugging Face encoder for token classification with a noise-robust loss.

    noisebench train --loss sgce --q 0.8 --s 0.1 --rate 0.4

Top to bottom: resolve the config (data, optional on-the-fly corruption, model, device),
tokenise once (cached; ``batches``), then the loop — length-grouped batches with dynamic padding,
forward, loss, backward, clip, AdamW step, linear warm-up/decay — with a validation
entity F1 after each epoch, the best weights kept, early stopping, and a checkpoint per
epoch that ``--resume`` continues from. The best weights then predict validation and
test; the run directory gets predictions, scores and, last, ``results.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from noisebench import data, methods, metrics, runs, sources, targets
from noisebench.batches import Encoded, collate, encode, length_grouped_batches, prefetched
from noisebench.errors import InputError
from noisebench.losses import build_loss
from noisebench.noise import NoiseConfig, corrupt_to_directory, default_output_dir, label_noise
from noisebench.schemes import NO_SCHEME

CHECKPOINT = "checkpoint"
VALIDATION_SHARE = 0.1
EVAL_BATCH_TOKENS = 16384  # padded sub-tokens per evaluation batch, at most
EVAL_PADDING = 0.05  # ... and at most this share of a batch's longest sentence is padding
LOSS_READ_EVERY = 25  # on CUDA, steps between reads of the loss (host syncs)


VALIDATION_LABELS = ("noisy", "clean")
# keys that ``TrainConfig.identity`` adds (they follow from the settings; not settings)
DERIVED_IDENTITY_KEYS = ("validation_noise",)


class TrainingFailed(RuntimeError):
    """The run cannot go on (a non-finite loss): exit 1, no results.json."""


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
    # mask-auto: a noise profile (file or noisebench:<variant>) that names the dominant
    # error type; None: the model's own disagreements during the warm-up decide
    error_profile: str | None = None
    # span-aware smoothing (targets.py): the share of each entity's mass moved to its
    # spans with a start or end up to span_distance words away; 0 = one-hot targets
    span_smoothing: float = 0.0
    span_distance: int = targets.DEFAULT_DISTANCE

    def identity(self) -> dict:
        """What determines the results (device, paths and output options excluded).
        The method and its settings appear only where they matter, so runs from before
        ``--method`` keep their names."""
        identity = asdict(self)
        identity["labels"] = list(self.labels) if self.labels else None
        if self.method not in (*methods.MASKING, methods.AUTO):
            del identity["mask_warmup"]
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
    def corrupts_validation(self) -> bool:
        """Simulated noise reaches the validation labels too (``--validation-labels noisy``)."""
        return bool(self.rate) and self.validation_labels == "noisy"


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


# ------------------------------------------------------------------------- resolving


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
    try:
        build_loss(config.loss, q=config.q, s=config.s)
    except ValueError as error:
        raise InputError(f"--loss {config.loss}: {error}") from None
    for name, value, low in (
        ("--epochs", config.epochs, 1),
        ("--batch-size", config.batch_size, 1),
        ("--max-length", config.max_length, 8),
        ("--bins", config.bins, 1),
    ):
        if value < low:
            raise InputError(f"{name} {value}: must be at least {low}")
    if config.max_train_samples is not None and config.max_train_samples < 1:
        raise InputError(f"--max-train-samples {config.max_train_samples}: must be at least 1")
    if not config.lr > 0:
        raise InputError(f"--lr {config.lr}: must be positive")
    if config.calibrate not in (None, "temperature"):
        raise InputError(f"--calibrate '{config.calibrate}': the only method is temperature")
    if not 0.0 <= config.loss_warmup <= 1.0:
        raise InputError(f"--loss-warmup {config.loss_warmup}: must be a fraction in [0, 1]")
    if config.validation_labels not in VALIDATION_LABELS:
        raise InputError(f"--validation-labels '{config.validation_labels}': choose noisy or clean")
    if config.method not in methods.METHODS:
        raise InputError(f"--method '{config.method}': choose one of {', '.join(methods.METHODS)}")
    if config.error_profile is not None and config.method != methods.AUTO:
        raise InputError(
            f"--error-profile is for --method mask-auto (this run's method: {config.method})"
        )
    if not 0.0 <= config.mask_warmup <= 1.0:
        raise InputError(f"--mask-warmup {config.mask_warmup}: must be a fraction in [0, 1]")
    targets.check_span_smoothing(config.span_smoothing, config.span_distance)
    resolved_device = resolve_device(device)
    columns = data.Columns(config.token_column, config.tag_column, config.labels)
    notes: list[str] = []
    if config.rate is not None:
        dataset = data.load(corrupted_copy(config, notes))
    else:
        dataset = data.load(config.data, columns, notes)
    dataset_name = data.dataset_name(config.data)
    dataset = _splits_for_training(dataset, config, notes)
    labels = data.label_names(dataset["train"])
    dataset = _method_labels(dataset, config, labels, notes)
    scheme = data.scheme(dataset)
    targets.check_span_smoothing(config.span_smoothing, config.span_distance, scheme)
    choice = _auto_choice(config, labels, notes)
    model_path = resolve_model(config.model)
    name = runs.run_name(config.identity(), dataset_name)
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
        Path(runs_dir) / name,
        notes,
        compile_model,
        choice,
    )


def corrupted_copy(config: TrainConfig, notes: list[str] | None = None) -> Path:
    """The training data corrupted as ``config`` asks, in the cache (made once, reused).

    With ``--validation-labels noisy`` the validation split gets the same noise (its own
    generator, so the training labels are the same either way); without a validation
    split, the one carved from train later is noisy anyway.
    """
    columns = data.Columns(config.token_column, config.tag_column, config.labels)
    noise_config = NoiseConfig(noise=config.noise, rate=config.rate, seed=config.seed)
    if config.corrupts_validation and "validation" in data.load(config.data, columns):
        noise_config = replace(noise_config, splits=("train", "validation"))
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
        order = np.random.default_rng([config.seed, 10]).permutation(len(train))
        size = max(1, round(VALIDATION_SHARE * len(train)))
        # flatten_indices: later code reads the Arrow table, which a bare select leaves whole
        result["validation"] = train.select(np.sort(order[:size])).flatten_indices()
        train = train.select(np.sort(order[size:])).flatten_indices()
        notes.append(
            f"no validation split: {size} sentences (a seeded 10% of train) became validation"
        )
    result["validation"] = _validation_labels(result["validation"], config, notes)
    if config.max_train_samples is not None and config.max_train_samples < len(train):
        train = train.select(range(config.max_train_samples)).flatten_indices()
    if len(train) == 0:
        raise InputError(f"{config.data}: no training sentences left")
    result["train"] = train
    if "test" not in result:
        notes.append("no test split: test scores are absent")
    return datasets.DatasetDict(result)


def _validation_labels(validation, config: TrainConfig, notes: list[str]):
    """The validation split with the labels that choose the best epoch in ``tags``."""
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
        raise InputError(
            f"--method {method}: an oracle needs the clean labels of the training words;"
            f" {config.data} has no clean_tags (corrupted data and noisebench:<variant> have"
            " them)"
        )
    if method != "oracle-clean":
        return dataset
    result = dict(dataset)
    result["train"] = _clean_labels_as_tags(train)
    notes.append("oracle-clean: trained on the clean labels of the training sentences (a bound)")
    return datasets.DatasetDict(result)


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
    from noisebench import profiles

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


def selection_labels(validation) -> str:
    """Which labels chose the best epoch: ``noisy`` (they differ from the split's
    ``clean_tags``), ``clean``, or ``as given`` (no clean labels to compare with)."""
    noise = label_noise(validation, NO_SCHEME)  # words only: no entity decoding needed
    if noise is None:
        return "as given"
    return "noisy" if noise["token_error_rate"] > 0 else "clean"


# ----------------------------------------------------------------------------- model


def load_model(model_path: str, labels: list[str]):
    import transformers
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, use_fast=True)
        model = AutoModelForTokenClassification.from_pretrained(
            model_path,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            ignore_mismatched_sizes=True,
            trust_remote_code=False,
            dtype=torch.float32,
        )
    except (OSError, ValueError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"--model {model_path}: cannot load it: {message}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(f"--model {model_path}: needs a fast (Rust) tokenizer for word alignment")
    return model, tokenizer


def optimizer_and_schedule(model, config: TrainConfig, total_steps: int):
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            plain = parameter.ndim < 2 or "LayerNorm" in name or "layer_norm" in name
            (no_decay if plain else decay).append(parameter)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
        fused=True,  # one kernel over all parameters: 4.6x faster than foreach on CPU
    )
    warmup = max(1, round(config.warmup_ratio * total_steps))

    def factor(step: int) -> float:  # linear warm-up to lr, then linear decay to 0
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@torch.inference_mode()
def predict(model, encoded: Encoded, tokens, labels: list[str], device, pad_id: int):
    """Word-level probabilities (softmax at each word's first sub-token) for a split."""
    model.eval()
    lengths = encoded.lengths()
    order = np.argsort(-lengths, kind="stable")
    word_counts = np.array([len(t) for t in encoded.tags])
    offsets = np.concatenate([[0], np.cumsum(word_counts)])
    probs = np.full((offsets[-1], len(labels)), np.nan, dtype=np.float32)
    for indices in evaluation_batches(lengths[order], EVAL_BATCH_TOKENS, EVAL_PADDING):
        indices = order[indices]
        batch = _to_device(collate(encoded, indices, pad_id, with_labels=False), device)
        with _autocast(device):
            logits = model(**batch).logits  # (B, T, C)
        batch_probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        for row, i in enumerate(indices):
            starts = encoded.word_starts[i]
            kept = np.flatnonzero(starts >= 0)
            probs[offsets[i] + kept] = batch_probs[row, starts[kept]]
    gold = np.concatenate(encoded.tags) if encoded.tags else np.zeros(0, dtype=np.int64)
    return runs.Predictions(labels, list(tokens), gold, probs, offsets)


def evaluation_batches(lengths: np.ndarray, budget: int, padding: float) -> list[np.ndarray]:
    """Cut ``lengths`` (sorted longest first) into batches of consecutive positions, each
    at most ``budget`` padded tokens and ending before a sentence shorter than
    ``1 - padding`` of its longest: little work on padding, large matrix products.

    >>> [b.tolist() for b in evaluation_batches(np.array([10, 9, 5, 5, 4, 1]), 20, 0.25)]
    [[0, 1], [2, 3, 4], [5]]
    """
    batches, begin = [], 0
    while begin < len(lengths):
        longest = max(1, int(lengths[begin]))
        end = min(len(lengths), begin + max(1, budget // longest))
        shortest_allowed = (1 - padding) * longest
        cut = (
            begin + 1 + int(np.searchsorted(-lengths[begin + 1 : end], -shortest_allowed, "right"))
        )
        batches.append(np.arange(begin, cut))
        begin = cut
    return batches


def _tokens(dataset) -> list[list[str]]:
    return dataset.data.table.column("tokens").to_pylist()


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ------------------------------------------------------------------------------ run


Progress = Callable[[dict], None]


def train(
    prepared: Prepared,
    *,
    resume: bool = False,
    save_model: bool = False,
    progress: Progress | None = None,
) -> dict:
    """Run the whole training; returns the ``results.json`` document."""
    config, device, run_dir = prepared.config, prepared.device, prepared.run_dir
    report = progress or (lambda event: None)
    checkpoint_file = run_dir / CHECKPOINT / "state.pt"
    _open_run_dir(prepared, resume, checkpoint_file)

    torch.manual_seed(config.seed)
    # what torch.compile builds (--compile; GCE/SGCE on CUDA) is kept for later runs
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(sources.home() / "compiled"))
    model, tokenizer = load_model(prepared.model_path, prepared.labels)
    model.to(device)
    cache_root = sources.home() / "tokenized"
    encoded = {
        split: encode(tokenizer, prepared.dataset[split], config.max_length, cache_root)
        for split in prepared.dataset
    }
    pad_id = tokenizer.pad_token_id or 0
    target_loss = build_loss(config.loss, q=config.q, s=config.s)
    train_set = encoded["train"]
    steps_per_epoch = math.ceil(len(train_set.input_ids) / config.batch_size)
    optimizer, schedule = optimizer_and_schedule(model, config, steps_per_epoch * config.epochs)
    warmup_steps = round(config.loss_warmup * steps_per_epoch * config.epochs)

    lengths = train_set.lengths()
    selection = methods.WordSelection(
        config.method,
        prepared.labels.index("O") if "O" in prepared.labels else -1,
        steps_per_epoch * config.epochs,
        config.mask_warmup,
        prepared.method_choice,
    )
    if not selection.active:  # clean labels ride along in the batches only where read
        train_set = replace(train_set, clean_tags=None)
    if config.span_smoothing:
        soft = targets.sentence_targets(
            train_set.tags,
            prepared.labels,
            prepared.scheme,
            config.span_smoothing,
            config.span_distance,
        )
        train_set = replace(train_set, soft_tags=soft)
    # the GPU runs ahead of the host: losses are read every so many steps, not each step
    sync_every = 1 if device.type == "cpu" else LOSS_READ_EVERY
    state = _initial_state()
    if resume:
        saved = torch.load(checkpoint_file, map_location="cpu", weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        torch.set_rng_state(saved["torch_rng"])
        state = saved["state"]
        if "method" in state:
            selection.load_state_dict(state["method"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    step_pass = _StepPass(model, prepared.compile_model, prepared.notes)
    best_validation = None  # validation predictions of the best epoch, if made in this process
    with open(run_dir / runs.LOG, "a") as log:
        while _another_epoch(state, config):
            epoch = state["epoch"] + 1
            model.train()
            batches = length_grouped_batches(
                lengths, config.batch_size, np.random.default_rng([config.seed, epoch])
            )
            started = time.perf_counter()
            steps = _StepLog(log, report, epoch, config.epochs, len(batches), sync_every)
            host_batches = _host_batches(train_set, batches, pad_id, device)
            for number, (indices, host_batch) in enumerate(host_batches, start=1):
                batch = _to_device(host_batch, device)
                labels = batch.pop("labels")
                clean = batch.pop("clean_labels", None)
                soft = batch.pop("soft_labels", None)
                loss_fn = scheduled_loss(config, target_loss, state["step"], warmup_steps)

                def contribute(logits, given, step=state["step"], clean=clean, soft=soft):
                    """Each word's label (or -100: left out) and target distribution."""
                    return selection.select(logits, given, clean, step), soft

                loss = step_pass(batch, labels, loss_fn, device, contribute)
                if state["step"] == 0:
                    state["first_step_seconds"] = _first_step_seconds(started, device)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                state["sentences"] += len(indices)
                state["tokens"] += int(lengths[indices].sum())  # from the host: no sync
                steps.add(number, state["step"], loss.detach(), schedule.get_last_lr()[0], indices)
            epoch_loss = steps.flush()
            state["seconds"] += time.perf_counter() - started
            state["compiled"] = step_pass.is_compiled
            log.flush()

            validation = predict(
                model,
                encoded["validation"],
                _tokens(prepared.dataset["validation"]),
                prepared.labels,
                device,
                pad_id,
            )
            f1 = metrics.span_scores(
                validation.sentences(validation.gold),
                validation.sentences(validation.predicted),
                prepared.scheme,
                config.strict,
            )["f1"]
            if _end_epoch(state, model, epoch, f1, epoch_loss / len(batches)):
                best_validation = validation  # the best weights' predictions, kept for the end
            masking = selection.end_epoch()
            if masking is not None:
                state["history"][-1]["masking"] = masking
            state["method"] = selection.state_dict()
            report(
                {
                    "event": "epoch",
                    "epoch": epoch,
                    "validation_f1": f1,
                    "loss": epoch_loss / len(batches),
                }
            )
            if _another_epoch(state, config):
                # (after the last epoch a checkpoint would be deleted at once: a run that
                # dies before its results resumes from the one before, to the same results)
                _save_checkpoint(checkpoint_file, model, optimizer, schedule, state)

    model.load_state_dict(state["best_model"])
    results = _finish(
        prepared, model, tokenizer, encoded, pad_id, state, save_model, best_validation
    )
    shutil.rmtree(run_dir / CHECKPOINT, ignore_errors=True)
    return results


def _another_epoch(state: dict, config: TrainConfig) -> bool:
    return state["epoch"] < config.epochs and state["stale_epochs"] < config.patience


def _to_device(batch: dict, device: torch.device) -> dict:
    """A collated batch on ``device``: through pinned memory, without blocking, on CUDA."""
    if device.type != "cuda":
        return {k: v.to(device) for k, v in batch.items()}
    return {k: _pinned(v).to(device, non_blocking=True) for k, v in batch.items()}


def _pinned(tensor: torch.Tensor) -> torch.Tensor:
    return tensor if tensor.is_pinned() else tensor.pin_memory()


def _host_batches(encoded: Encoded, batches: list[np.ndarray], pad_id: int, device):
    """``(indices, collated batch)`` for the epoch; on CUDA made a few ahead, in pinned
    memory, by a background thread while the GPU works (on CPU that thread would only
    take a core from the step)."""
    collated = ((indices, collate(encoded, indices, pad_id)) for indices in batches)
    if device.type != "cuda":
        return collated
    return prefetched((i, {k: _pinned(v) for k, v in b.items()}) for i, b in collated)


def _first_step_seconds(started: float, device: torch.device) -> float:
    """Wall time of the run's first step: start-up, and compiling with ``--compile``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # once per run
    return time.perf_counter() - started


@contextlib.contextmanager
def _deterministic_algorithms():
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


class _StepPass:
    """Forward, loss and backward of one batch, with the model ``torch.compile``d when
    asked. Compiling fails on some set-ups (no C++ compiler for the CPU backend, an
    operation the compiler does not support): the run then goes on with the plain model
    from the failed step and says so in its notes. ``torch.compile`` draws dropout masks
    from its own generator (seeded from ``--seed``), so a compiled run is as repeatable
    as a plain one but not identical to it. Repeatable needs deterministic kernels: the
    compiler's own embedding gradient adds rows from several threads in whatever order
    they finish (reruns differed by 1e-9 on 2 cores), so compiled steps run with
    ``torch.use_deterministic_algorithms`` on (warnings only), and only they."""

    def __init__(self, model, compile_model: bool, notes: list[str]) -> None:
        self.model, self.notes = model, notes
        self.compiled = None
        if compile_model:
            # cuBLAS is deterministic only with a fixed workspace, set before its first use
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            self.compiled = torch.compile(model, dynamic=True)

    def __call__(
        self, batch: dict, labels, loss_fn, device: torch.device, contribute
    ) -> torch.Tensor:
        if self.compiled is not None:
            try:
                with _deterministic_algorithms():
                    return self._run(self.compiled, batch, labels, loss_fn, device, contribute)
            except Exception as error:  # any compiler failure: go on without it
                self.compiled = None
                self.model.zero_grad(set_to_none=True)
                reason = (str(error).strip().splitlines() or [""])[0][:200]
                self.notes.append(
                    f"--compile failed ({type(error).__name__}: {reason}); trained without it"
                )
        return self._run(self.model, batch, labels, loss_fn, device, contribute)

    @property
    def is_compiled(self) -> bool:
        return self.compiled is not None

    @staticmethod
    def _run(model, batch: dict, labels, loss_fn, device: torch.device, contribute):
        with _autocast(device):
            logits = model(**batch).logits  # (B, T, C)
        loss = loss_fn(logits, *contribute(logits, labels))  # the words that count, and how
        loss.backward()
        return loss


class _StepLog:
    """The per-step losses of one epoch, kept on the device and read every ``every``
    steps (one host sync per read): each read writes their ``log.jsonl`` lines and
    progress events, and a non-finite loss stops the run naming its epoch and step."""

    def __init__(self, log, report, epoch: int, epochs: int, steps: int, every: int) -> None:
        self.log, self.report, self.every = log, report, every
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self.pending: list[tuple] = []
        self.total = 0.0

    def add(self, number: int, step: int, loss: torch.Tensor, lr: float, indices) -> None:
        self.pending.append((number, step, loss, lr, len(indices)))
        if len(self.pending) >= self.every:
            self.flush()

    def flush(self) -> float:
        """Read the pending losses; returns the sum of the epoch's losses so far."""
        if self.pending:
            values = torch.stack([entry[2] for entry in self.pending]).float().cpu().tolist()
            for (number, step, _, lr, sentences), value in zip(self.pending, values, strict=True):
                if not math.isfinite(value):
                    raise TrainingFailed(
                        f"loss became {value} at epoch {self.epoch}, step {number};"
                        " try a lower --lr"
                    )
                self.total += value
                event = {"epoch": self.epoch, "step": step, "loss": value, "lr": lr}
                self.log.write(json.dumps(event) + "\n")
                self.report(
                    {
                        "event": "step",
                        "epochs": self.epochs,
                        "steps": self.steps,
                        "epoch": self.epoch,
                        "step": number,
                        "loss": value,
                        "sentences": sentences,
                    }
                )
            self.pending = []
        return self.total


def _open_run_dir(prepared: Prepared, resume: bool, checkpoint_file: Path) -> None:
    """A fresh run folder with ``config.json`` (or the interrupted one, to resume)."""
    run_dir = prepared.run_dir
    if resume and not checkpoint_file.is_file():
        raise InputError(f"--resume: {run_dir} has no checkpoint to resume from")
    if not resume and run_dir.exists():
        shutil.rmtree(run_dir)  # an incomplete earlier attempt: start over
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.write_json(
        run_dir / runs.CONFIG,
        {
            "config": prepared.config.identity(),
            "run": run_dir.name,
            "model_path": prepared.model_path,
            "device": str(prepared.device),
            "versions": runs.library_versions(),
            "git_commit": runs.git_commit(),
        },
    )


def _initial_state() -> dict:
    return {
        "epoch": 0,
        "step": 0,
        "best_f1": -1.0,
        "best_epoch": 0,
        "best_model": None,
        "history": [],
        "seconds": 0.0,
        "sentences": 0,
        "tokens": 0,
        "stale_epochs": 0,
    }


def _end_epoch(state: dict, model, epoch: int, f1: float, mean_loss: float) -> bool:
    """Record the epoch; keep the weights if they are the best so far (returns True).

    Patience counts only once the model has left the trivial solution (F1 > 0): a bounded
    loss can sit at "everything O" for a few epochs before it learns.
    """
    counted = f1 <= state["best_f1"] and state["best_f1"] > 0
    state["history"].append(
        {"epoch": epoch, "loss": mean_loss, "validation_f1": f1, "counts_for_patience": counted}
    )
    state["epoch"] = epoch
    if f1 > state["best_f1"]:
        state.update(
            best_f1=f1,
            best_epoch=epoch,
            stale_epochs=0,
            best_model={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        )
        return True
    if counted:
        state["stale_epochs"] += 1
    return False


def scheduled_loss(config: TrainConfig, target, step: int, warmup_steps: int):
    """The loss for optimizer step ``step`` (0-based). During the first ``warmup_steps`` a
    CE start: GCE and SGCE with q ramped linearly from 0 (exactly CE, with the same
    smoothing) towards their target, every other loss as cross-entropy (same smoothing);
    then ``target``. Building a loss module is a few microseconds.

    >>> config = TrainConfig(loss="gce", q=0.8, loss_warmup=0.5)
    >>> target = build_loss("gce", q=0.8)
    >>> [round(scheduled_loss(config, target, step, 4).q, 6) for step in range(6)]
    [0.0, 0.2, 0.4, 0.6, 0.8, 0.8]
    >>> scheduled_loss(TrainConfig(loss="sce"), build_loss("sce"), 0, 4)
    CrossEntropy(s=0.0, ignore_index=-100, reduction='mean')
    """
    if step >= warmup_steps or config.loss == "ce":
        return target
    if config.loss in ("gce", "sgce"):
        return build_loss(config.loss, q=target.q * step / warmup_steps, s=config.s)
    return build_loss("ce", s=config.s)


def _save_checkpoint(path: Path, model, optimizer, schedule, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "state": state,
        },
        temporary,
    )
    os.replace(temporary, path)


def _finish(
    prepared: Prepared, model, tokenizer, encoded, pad_id, state, save_model, best_validation=None
) -> dict:
    """Predict with the best weights, write predictions and plots, then results.json."""
    config, run_dir, device = prepared.config, prepared.run_dir, prepared.device
    predictions = {"validation": best_validation} if best_validation is not None else {}
    for split in ("validation", "test"):
        if split in encoded and split not in predictions:
            predictions[split] = predict(
                model,
                encoded[split],
                _tokens(prepared.dataset[split]),
                prepared.labels,
                device,
                pad_id,
            )
        if split in predictions:
            runs.write_predictions(run_dir / f"predictions-{split}.parquet", predictions[split])
    if save_model:
        model.save_pretrained(run_dir / "model")
        tokenizer.save_pretrained(run_dir / "model")
    seconds = state["seconds"]
    peak = (
        torch.cuda.max_memory_allocated(device)
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    train_summary = {
        "epochs_run": state["epoch"],
        "best_epoch": state["best_epoch"],
        "seconds": seconds,
        "sentences_per_second": state["sentences"] / seconds if seconds else 0.0,
        "tokens_per_second": state["tokens"] / seconds if seconds else 0.0,
        "device": str(device),
        "peak_memory_mb": peak / 2**20,
        "steps": state["step"],
        # the first step's wall time (start-up; compiling, with --compile), in "seconds"
        "first_step_seconds": state.get("first_step_seconds"),
        "compiled": state.get("compiled", False),
        "history": state["history"],
        "validation_labels": selection_labels(prepared.dataset["validation"]),
        # the training labels used, against their clean version (None: no clean labels)
        "label_noise": label_noise(prepared.dataset["train"], prepared.scheme),
    }
    return write_results(
        run_dir, prepared.labels, prepared.scheme, config, train_summary, prepared.notes
    )


def write_results(
    run_dir: Path, labels, scheme, config: TrainConfig, train_summary: dict, notes: list[str]
) -> dict:
    """Score the saved predictions of ``run_dir`` and write plots and ``results.json``.

    ``noisebench score`` calls this too, so its numbers are train's numbers.
    """
    from noisebench import plots

    splits, saved = {}, {}
    for split in ("validation", "test"):
        path = run_dir / f"predictions-{split}.parquet"
        if path.is_file():
            saved[split] = runs.read_predictions(path)
            splits[split] = metrics.score_split(saved[split], scheme, config.strict, config.bins)
            plots.reliability_diagram(
                splits[split], f"{run_dir.name} ({split})", run_dir / f"reliability-{split}.png"
            )
    calibration = None
    if config.calibrate == "temperature" and {"validation", "test"} <= set(saved):
        calibration = metrics.temperature_report(saved["validation"], saved["test"], config.bins)
    results = {
        "schema_version": runs.SCHEMA_VERSION,
        "run": run_dir.name,
        "dataset": data.dataset_name(config.data),
        "config": config.identity(),
        "labels": labels,
        "scheme": scheme,
        "strict": config.strict,
        "bins": config.bins,
        "splits": splits,
        "train": train_summary,
        "calibration": calibration,
        "notes": notes,
        # splits whose predictions are not a model's work (metrics.degeneracy), or None
        "degenerate": {s: v["degenerate"] for s, v in splits.items() if v["degenerate"]} or None,
    }
    runs.write_json(run_dir / runs.RESULTS, results)
    return results


def config_from_results(results: dict, **overrides) -> TrainConfig:
    return replace(TrainConfig.from_identity(results["config"]), **overrides)


def evaluate_saved_model(
    run_dir: Path,
    spec: str,
    split: str = "test",
    columns: data.Columns | None = None,
    device: str = "auto",
) -> dict:
    """Score a run's saved model (``--save-model``) on another dataset's ``split``.

    Writes ``<run_dir>/eval/<dataset>/`` (predictions, reliability diagram, results.json)
    and returns its results. The data's label names must be the model's (any order).
    """
    model_dir = Path(run_dir) / "model"
    stored = runs.read_json(Path(run_dir) / runs.RESULTS)
    if stored is None or not (model_dir / "config.json").is_file():
        raise InputError(f"--model {run_dir}: not a finished run saved with --save-model")
    config = config_from_results(stored)
    resolved_device = resolve_device(device)
    dataset = data.load(spec, columns)
    if split not in dataset:
        raise InputError(f"--split {split}: {spec} has splits {', '.join(dataset)}")
    model, tokenizer = load_model(str(model_dir), stored["labels"])
    names = data.label_names(dataset[split])
    if set(names) != set(stored["labels"]):
        raise InputError(
            f"{spec}: label set {sorted(names)} differs from the model's {sorted(stored['labels'])}"
        )
    flat, offsets = data.flat_tags(dataset[split])
    to_model = np.array([stored["labels"].index(name) for name in names], dtype=np.int64)
    encoded = encode(tokenizer, dataset[split], config.max_length, sources.home() / "tokenized")
    encoded.tags = np.split(to_model[flat], offsets[1:-1])
    model.to(resolved_device)
    predictions = predict(
        model,
        encoded,
        _tokens(dataset[split]),
        stored["labels"],
        resolved_device,
        tokenizer.pad_token_id or 0,
    )
    out = Path(run_dir) / "eval" / data.dataset_name(spec)
    out.mkdir(parents=True, exist_ok=True)
    runs.write_predictions(out / f"predictions-{split}.parquet", predictions)
    scheme = data.scheme(dataset)
    scores = metrics.score_split(predictions, scheme, config.strict, config.bins)
    from noisebench import plots

    plots.reliability_diagram(
        scores, f"{Path(run_dir).name} on {spec} ({split})", out / f"reliability-{split}.png"
    )
    results = {
        "schema_version": runs.SCHEMA_VERSION,
        "run": Path(run_dir).name,
        "data": spec,
        "labels": stored["labels"],
        "scheme": scheme,
        "strict": config.strict,
        "bins": config.bins,
        "splits": {split: scores},
    }
    runs.write_json(out / runs.RESULTS, results)
    return results


def rescore(
    run_dir: Path, bins: int | None = None, strict: bool | None = None, calibrate: str | None = None
) -> dict:
    """Recompute every score of a run from its saved predictions; rewrite results.json."""
    run_dir = Path(run_dir)
    stored = runs.read_json(run_dir / runs.RESULTS)
    if stored is None or not any(run_dir.glob("predictions-*.parquet")):
        raise InputError(
            f"{run_dir}: not a finished noisebench run (no results.json or predictions)"
        )
    if bins is not None and bins < 1:
        raise InputError(f"--bins {bins}: must be at least 1")
    overrides = {
        k: v
        for k, v in (("bins", bins), ("strict", strict), ("calibrate", calibrate))
        if v is not None
    }
    config = config_from_results(stored, **overrides)
    return write_results(
        run_dir, stored["labels"], stored["scheme"], config, stored["train"], stored["notes"]
    )
