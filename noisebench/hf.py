"""noisebench's treatments inside a user's own Hugging Face ``Trainer``: the loss, the
masking by error type (``--method``) and span smoothing, as constructor arguments.

    from noisebench.hf import NoiseRobustTrainer

    trainer = NoiseRobustTrainer(
        model=model,  # any AutoModelForTokenClassification; tag names from its id2label
        args=training_args,  # report_to sends the masking diagnostics where it sends the loss
        train_dataset=train_dataset,  # "labels": -100 on sub-tokens and padding
        loss="gce", q=0.7, method="mask-missing", span_smoothing=0.1,
    )
    trainer.train()

Each training micro-batch: the model's logits ``(B, T, C)``; ``WordSelection.select``
(``methods.py``) sets the words it leaves out to -100, with its warm-up and threshold
refits counted on the Trainer's own steps (``state.global_step``; with gradient
accumulation, step ``g`` micro-batch ``m`` is selection step ``g * A + m`` of
``max_steps * A``, so every share of the run means what it means in ``noisebench
train`` and a refit happens once); span smoothing (``targets.py``) turns each sentence's
given labels (the positions whose label is not -100, in order) into target distributions
``(B, T, C)``; the loss (``losses.py``) averages over the words kept. Evaluation computes
the same loss on the given labels, leaving nothing out. At each epoch's end, what
``WordSelection.end_epoch()`` reports goes through ``Trainer.log`` (``masking/...``), so it
reaches ``state.log_history`` and TensorBoard, MLflow or W&B; the full reports, words
included, are kept in ``trainer.masking_reports``.

Oracle methods are refused: they need clean labels a user's data does not have. Not
carried over from ``noisebench train``: the loss warm-up (``--loss-warmup``), and the
selection's state in the Trainer's checkpoints (a resumed run starts the thresholds and
the refit's waiting confidences afresh, at the resumed step).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainerCallback

from noisebench.data.schemes import detect_scheme
from noisebench.training import card, methods, targets
from noisebench.training.losses import build_loss

IGNORE = methods.IGNORE
LOG_PREFIX = "masking/"


class NoiseRobustTrainer(Trainer):
    """A ``transformers.Trainer`` that trains with noisebench's loss, ``method`` and span
    smoothing. Every other argument is the Trainer's own.

    ``loss``, ``q``, ``s``: ``losses.build_loss``. ``method``, ``mask_warmup``,
    ``mask_cutoff``, ``mask_reading``: ``methods.WordSelection`` (``noisebench train
    --method`` and its options); ``error_profile`` (mask-auto only: a profile file or
    ``noisebench:<variant>``) chooses mask-missing or mask-entity before training, as
    ``--error-profile`` does. ``span_smoothing``, ``span_distance``: ``targets.py``.
    ``tag_names``: the label names by id (default: the model's ``config.id2label``);
    ``scheme``: their tag scheme (default: read from the names; IOB1 shares IOB2's
    names, so give it).
    """

    def __init__(
        self,
        *args,
        loss: str = "ce",
        q: float | None = None,
        s: float | None = None,
        method: str = "none",
        mask_warmup: float = methods.DEFAULT_MASK_WARMUP,
        mask_cutoff: float = methods.POSTERIOR_CUTOFF,
        mask_reading: str | None = None,
        error_profile: str | Path | None = None,
        span_smoothing: float = 0.0,
        span_distance: int = targets.DEFAULT_DISTANCE,
        tag_names: Sequence[str] | None = None,
        scheme: str | None = None,
        **kwargs,
    ) -> None:
        check_method(method, mask_reading, error_profile)
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError("NoiseRobustTrainer computes its own loss: give loss=, q=, s=")
        self.loss = build_loss(loss, q=q, s=s)
        super().__init__(*args, **kwargs)
        if self.args.label_smoothing_factor:
            raise ValueError(
                "label_smoothing_factor is the Trainer's own smoothing: give s= (and"
                " span_smoothing=) to NoiseRobustTrainer instead"
            )
        self.tag_names = list(tag_names or _model_tag_names(self.model))
        self.outside = self.tag_names.index("O") if "O" in self.tag_names else -1
        self.scheme = scheme or default_scheme(self.tag_names, self.outside)
        targets.check_span_smoothing(span_smoothing, span_distance, self.scheme)
        self.span_smoothing, self.span_distance = span_smoothing, span_distance
        self.method_options = (method, mask_warmup, mask_cutoff, mask_reading)
        self.method_choice = _profile_choice(error_profile) if error_profile else None
        self.selection: methods.WordSelection | None = None  # made when training starts
        self.masking_reports: list[dict] = []
        self._micro_batch = (-1, 0)  # (global step, micro-batch within it)
        self.add_callback(MaskingCallback(self))

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """The Trainer's save, and noisebench's model card beside the weights
        (``README.md``: the loss, method and smoothing it trained with, and its last
        evaluation)."""
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            self._write_card(output_dir or self.args.output_dir)

    def create_model_card(self, *args, **kwargs) -> None:
        """noisebench's card in place of the Trainer's (``push_to_hub`` writes it)."""
        if self.is_world_process_zero():
            self._write_card(self.args.output_dir)

    def _write_card(self, folder) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / card.CARD).write_text(card.trainer_card(self), encoding="utf-8")

    def start_selection(self, max_steps: int) -> None:
        """A fresh ``WordSelection`` over the run's ``max_steps * A`` micro-batches."""
        method, warmup, cutoff, reading = self.method_options
        accumulation = self.args.gradient_accumulation_steps
        self.selection = methods.WordSelection(
            method, self.outside, max_steps * accumulation, warmup, self.method_choice,
            cutoff, reading,
        )  # fmt: skip
        self._micro_batch = (-1, 0)

    def compute_loss(
        self, model, inputs: dict, return_outputs: bool = False, num_items_in_batch=None
    ):
        """noisebench's loss over the words that count (all of them outside training).

        The Trainer's ``num_items_in_batch`` counts the given labels of all accumulated
        micro-batches: each micro-batch's mean is weighted by its share of them, so
        accumulation gives one big batch's update (exactly, where nothing is left out);
        without it the Trainer divides the mean by the accumulation steps itself."""
        labels = inputs.pop("labels")  # (B, T)
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]  # (B, T, C)
        kept = self.selected_labels(logits, labels) if model.training else labels
        loss = self.loss(logits, kept, self.soft_targets(labels))  # mean over the kept words
        if num_items_in_batch is not None:
            loss = loss * (labels != IGNORE).sum() / num_items_in_batch
            if self.args.average_tokens_across_devices:  # as Trainer.compute_loss scales it
                processes = self.accelerator.num_processes // self.get_tp_size()
                loss = loss * (processes if self.args.n_gpu <= 1 else self.args.n_gpu)
        return (loss, outputs) if return_outputs else loss

    def selected_labels(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``labels`` (B, T) with the words left out at this micro-batch set to -100."""
        if self.selection is None:  # compute_loss called outside train(): nothing fitted
            self.start_selection(max(self.state.max_steps, 1))
        return self.selection.select(logits, labels, None, self._selection_step())

    def _selection_step(self) -> int:
        """``global_step * A + m`` for the ``m``-th micro-batch (0-based) of the step."""
        step, micro_batch = self._micro_batch
        micro_batch = micro_batch + 1 if step == self.state.global_step else 0
        self._micro_batch = (self.state.global_step, micro_batch)
        return self.state.global_step * self.args.gradient_accumulation_steps + micro_batch

    def soft_targets(self, labels: torch.Tensor) -> torch.Tensor | None:
        """Span-smoothed targets ``(B, T, C)`` of the given labels, or None without."""
        if not self.span_smoothing:
            return None
        return span_soft_labels(
            labels, self.tag_names, self.scheme, self.span_smoothing, self.span_distance
        )

    def log_masking(self) -> None:
        """This epoch's masking diagnostics through ``self.log`` (none for ``none``)."""
        report = self.selection.end_epoch() if self.selection is not None else None
        if report is not None:
            self.masking_reports.append(report)
            self.log(flat_numbers(report, LOG_PREFIX))


class MaskingCallback(TrainerCallback):
    """Starts the trainer's ``WordSelection`` with the run and reports it at epoch ends."""

    def __init__(self, trainer: NoiseRobustTrainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer.start_selection(state.max_steps)

    def on_epoch_end(self, args, state, control, **kwargs):
        self.trainer.log_masking()


def check_method(method: str, reading: str | None, error_profile) -> None:
    """``ValueError`` for an unknown method or reading, an oracle (it needs clean labels)
    or an error profile given to a method other than mask-auto.

    >>> check_method("oracle-mask", None, None)
    Traceback (most recent call last):
    ...
    ValueError: method 'oracle-mask' is an oracle bound: it reads clean labels, which a user's own data does not have (noisebench train runs it on data that has them)
    """  # noqa: E501
    if method not in methods.METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(methods.METHODS)}")
    if methods.needs_clean_labels(method):
        raise ValueError(
            f"method {method!r} is an oracle bound: it reads clean labels, which a user's own"
            " data does not have (noisebench train runs it on data that has them)"
        )
    if reading is not None and reading not in methods.READINGS:
        raise ValueError(f"mask_reading {reading!r}: choose one of {', '.join(methods.READINGS)}")
    if error_profile is not None and method != methods.AUTO:
        raise ValueError(f"error_profile is read by method 'mask-auto' only, not {method!r}")


def _profile_choice(error_profile: str | Path) -> str:
    """mask-missing or mask-entity, by the profile's dominant error type."""
    from noisebench.data import profiles

    choice, _ = methods.choose_from_profile(profiles.resolve(str(error_profile)))
    return choice


def _model_tag_names(model) -> list[str]:
    id2label = model.config.id2label
    return [id2label[i] for i in range(len(id2label))]


def default_scheme(names: Sequence[str], outside: int) -> str:
    """The tag scheme the names show (one ``O`` word read as data: IOB1 needs real data).

    >>> default_scheme(["O", "B-PER", "I-PER"], 0), default_scheme(["O", "S-X", "B-X"], 0)
    ('IOB2', 'IOBES')
    """
    return detect_scheme(names, np.array([max(outside, 0)]), np.array([0, 1]))


def span_soft_labels(
    labels: torch.Tensor, names: Sequence[str], scheme: str, eps: float, distance: int
) -> torch.Tensor:
    """``(B, T, C)`` float32 span-smoothed targets: each row's words are its positions
    whose label is not -100, in order; other positions get zero rows.

    >>> labels = torch.tensor([[-100, 1, 2, 0, -100]])  # [CLS] B-PER I-PER O [SEP]
    >>> span_soft_labels(labels, ["O", "B-PER", "I-PER"], "IOB2", 0.2, 1)[0, 1:4]
    tensor([[0.0500, 0.9500, 0.0000],
            [0.0500, 0.0500, 0.9000],
            [0.9500, 0.0000, 0.0500]])
    """
    rows = labels.cpu().numpy()  # (B, T)
    words = [row[row != IGNORE] for row in rows]
    soft = np.zeros((*rows.shape, len(names)), dtype=np.float32)
    for row, sentence in enumerate(targets.sentence_targets(words, names, scheme, eps, distance)):
        soft[row, rows[row] != IGNORE] = sentence
    return torch.from_numpy(soft).to(labels.device)


def flat_numbers(report: dict, prefix: str = "") -> dict[str, float]:
    """The numbers in a nested report, keyed by their path (words and None left out):
    what ``Trainer.log`` and its TensorBoard, MLflow and W&B callbacks take.

    >>> flat_numbers({"method": "mask-missing", "left_out_share": 0.1, "precision": None,
    ...               "thresholds": {"missing": 0.4}}, "masking/")
    {'masking/left_out_share': 0.1, 'masking/thresholds/missing': 0.4}
    """
    flat = {}
    for key, value in report.items():
        if isinstance(value, dict):
            flat |= flat_numbers(value, f"{prefix}{key}/")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = value
    return flat
