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
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from noisebench.data import loading as data
from noisebench.data import sources
from noisebench.errors import InputError, one_line
from noisebench.scoring import metrics
from noisebench.training import memory, methods, runs, targets
from noisebench.training.batches import Encoded, collate, encode, length_grouped_batches, prefetched
from noisebench.training.checkpoints import (
    initial_state,
    load_checkpoint,
    open_run_dir,
    save_checkpoint,
)
from noisebench.training.config import TrainConfig
from noisebench.training.evaluate import (
    Figures,
    finish,
    load_model,
    pinned,
    predict,
    to_device,
    tokens_of,
)
from noisebench.training.losses import build_loss
from noisebench.training.precision import autocast
from noisebench.training.prepare import Prepared

LOSS_READ_EVERY = 25  # on CUDA, steps between reads of the loss (host syncs)


class TrainingFailed(RuntimeError):
    """The run cannot go on (a non-finite loss): exit 1, no results.json."""


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


Progress = Callable[[dict], None]
Observer = Callable[[int, np.ndarray, torch.Tensor, torch.Tensor], None]


def train(
    prepared: Prepared,
    *,
    resume: bool = False,
    save_model: bool = False,
    progress: Progress | None = None,
    observe: Observer | None = None,
    observe_epoch: Callable[[int, Callable[..., runs.Predictions]], None] | None = None,
    extra_predictions: dict | None = None,
    figures: Figures | None = None,
) -> dict:
    """Run the whole training; returns the ``results.json`` document (``figures`` of it
    drawn before it is written: ``evaluate.finish``).

    ``observe(epoch, sentence indices, logits, given labels)`` sees every training
    batch's logits (``noisebench detect`` records training dynamics with it; no extra
    pass); ``observe_epoch(epoch, predict)`` is called after each epoch, where
    ``predict(split="train")`` predicts a split of the run's data with the epoch's weights,
    dropout off (``detect --dynamics-pass eval``: one inference pass of the training split
    per epoch; ``benchmarks/review_epochs.py``: validation and test); ``extra_predictions`` (name ->
    split) are predicted by the best weights too and written as
    ``predictions-<name>.parquet``."""
    run = _set_up(prepared, resume, progress or (lambda event: None))
    best_validation = None  # validation predictions of the best epoch, if made in this process
    with open(prepared.run_dir / runs.LOG, "a") as log:
        while _another_epoch(run.state, prepared.config):
            epoch = run.state["epoch"] + 1
            mean_loss = _train_epoch(run, epoch, log, observe)
            validation, best = _evaluate_epoch(run, epoch, mean_loss, observe_epoch)
            if best:
                best_validation = validation  # the best weights' predictions, kept for the end
    return _finish(run, save_model, best_validation, extra_predictions, figures)


@dataclass
class _Run:
    """What the loop's steps share: the model, the encoded data, the optimizer and its
    schedule, the word selection and the state a checkpoint keeps."""

    prepared: Prepared
    report: Progress
    checkpoint_file: Path
    model: torch.nn.Module
    tokenizer: object
    cache_root: Path
    encoded: dict[str, Encoded]
    train_set: Encoded  # with the clean labels and soft targets the steps read
    lengths: np.ndarray  # (sentences,) tokens of each training sentence
    pad_id: int
    target_loss: torch.nn.Module
    loss_warmup_steps: int
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    selection: methods.WordSelection
    sync_every: int
    state: dict
    step_pass: _StepPass


def _set_up(prepared: Prepared, resume: bool, report: Progress) -> _Run:
    """The run folder, the model on its device, the encoded splits, the optimizer, the
    word selection and the state (from the checkpoint with ``resume``)."""
    config, device, run_dir = prepared.config, prepared.device, prepared.run_dir
    checkpoint_file = run_dir / runs.CHECKPOINT / "state.pt"
    open_run_dir(prepared, resume, checkpoint_file)

    torch.manual_seed(config.seed)
    memory_scope = memory.reset_peak(device)  # the run's own peak, where it can be reset
    # what torch.compile builds (--compile; GCE/SGCE on CUDA) is kept for later runs
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(sources.home() / "compiled"))
    model, tokenizer = load_model(prepared.model_path, prepared.labels)
    model.to(device)
    cache_root = sources.home() / "tokenized"
    encoded = {
        split: encode(tokenizer, prepared.dataset[split], config.max_length, cache_root)
        for split in prepared.dataset
    }
    target_loss = build_loss(config.loss, q=config.q, s=config.s)
    steps_per_epoch = math.ceil(len(encoded["train"].input_ids) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer, schedule = optimizer_and_schedule(model, config, total_steps)
    lengths = encoded["train"].lengths()
    selection = _word_selection(prepared, total_steps)
    train_set = _training_targets(prepared, encoded["train"], selection)
    state = initial_state()
    if resume:
        state = load_checkpoint(checkpoint_file, model, optimizer, schedule)
        if "method" in state:
            selection.load_state_dict(state["method"])
        started = state.get("precision", prepared.precision)
        if started != prepared.precision:  # one name, two devices' usual precisions
            raise InputError(
                f"--resume {run_dir}: its checkpoint trained in {started}, which this device"
                f" does not use under this run's name ({prepared.precision}); resume it on the"
                " kind of device it started on"
            )
    state["precision"] = prepared.precision
    state["peak_memory_scope"] = memory_scope
    return _Run(
        prepared=prepared,
        report=report,
        checkpoint_file=checkpoint_file,
        model=model,
        tokenizer=tokenizer,
        cache_root=cache_root,
        encoded=encoded,
        train_set=train_set,
        lengths=lengths,
        pad_id=tokenizer.pad_token_id or 0,
        target_loss=target_loss,
        loss_warmup_steps=round(config.loss_warmup * steps_per_epoch * config.epochs),
        optimizer=optimizer,
        schedule=schedule,
        selection=selection,
        # the GPU runs ahead of the host: losses are read every so many steps, not each step
        sync_every=1 if device.type == "cpu" else LOSS_READ_EVERY,
        state=state,
        step_pass=_StepPass(model, prepared.compile_model, prepared.notes, prepared.precision),
    )


def _word_selection(prepared: Prepared, total_steps: int) -> methods.WordSelection:
    """The run's ``--method`` over its ``total_steps`` optimizer steps."""
    config, labels = prepared.config, prepared.labels
    return methods.WordSelection(
        config.method,
        labels.index("O") if "O" in labels else -1,
        total_steps,
        config.mask_warmup,
        prepared.method_choice,
        config.mask_cutoff,
        config.mask_reading,
    )


def _training_targets(
    prepared: Prepared, train_set: Encoded, selection: methods.WordSelection
) -> Encoded:
    """The training split with what the steps read beside the labels: its clean labels
    where the word selection reads them, its span-smoothed targets where asked."""
    config = prepared.config
    if not selection.active:  # clean labels ride along in the batches only where read
        train_set = replace(train_set, clean_tags=None)
    elif train_set.clean_tags is None and methods.needs_clean_labels(config.method):
        # an oracle on data without clean labels: it knows the reviewed sentences only
        truth, offsets = data.reviewed_truth(prepared.dataset["train"])
        train_set = replace(train_set, clean_tags=np.split(truth, offsets[1:-1]))
    if config.span_smoothing:
        soft = targets.sentence_targets(
            train_set.tags,
            prepared.labels,
            prepared.scheme,
            config.span_smoothing,
            config.span_distance,
        )
        train_set = replace(train_set, soft_tags=soft)
    return train_set


def _train_epoch(run: _Run, epoch: int, log, observe: Observer | None) -> float:
    """One pass over the training batches (forward, loss, backward, clip, step, schedule),
    each step's loss to ``log.jsonl`` and the progress events; returns the mean loss."""
    config, device, state = run.prepared.config, run.prepared.device, run.state
    run.model.train()
    batches = length_grouped_batches(
        run.lengths, config.batch_size, np.random.default_rng([config.seed, epoch])
    )
    started = time.perf_counter()
    steps = _StepLog(log, run.report, epoch, config.epochs, len(batches), run.sync_every)
    host_batches = _host_batches(run.train_set, batches, run.pad_id, device)
    for number, (indices, host_batch) in enumerate(host_batches, start=1):
        batch = to_device(host_batch, device)
        labels = batch.pop("labels")
        clean = batch.pop("clean_labels", None)
        soft = batch.pop("soft_labels", None)
        loss_fn = scheduled_loss(config, run.target_loss, state["step"], run.loss_warmup_steps)

        def contribute(
            logits, given, step=state["step"], clean=clean, soft=soft, seen=(epoch, indices)
        ):
            """Each word's label (or -100: left out) and target distribution."""
            if observe is not None:
                observe(*seen, logits.detach(), given)
            return run.selection.select(logits, given, clean, step), soft

        loss = run.step_pass(batch, labels, loss_fn, device, contribute)
        if state["step"] == 0:
            state["first_step_seconds"] = _first_step_seconds(started, device)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.max_grad_norm)
        run.optimizer.step()
        run.schedule.step()
        run.optimizer.zero_grad(set_to_none=True)
        state["step"] += 1
        state["sentences"] += len(indices)
        state["tokens"] += int(run.lengths[indices].sum())  # from the host: no sync
        steps.add(number, state["step"], loss.detach(), run.schedule.get_last_lr()[0], indices)
    epoch_loss = steps.flush()
    state["seconds"] += time.perf_counter() - started
    state["compiled"] = run.step_pass.is_compiled
    log.flush()
    return epoch_loss / len(batches)


def _evaluate_epoch(
    run: _Run, epoch: int, mean_loss: float, observe_epoch: Callable | None
) -> tuple[runs.Predictions, bool]:
    """Validation entity F1 after an epoch, the best weights kept, the masking report,
    the progress event and (but after the last epoch) a checkpoint; returns the
    validation predictions and whether they are the best so far."""
    prepared, state = run.prepared, run.state
    validation = _predict_split(run, "validation")
    # a designed review's sentences (--validation-labels reviewed) weigh their design
    design = data.sentence_design(prepared.dataset["validation"])
    f1 = metrics.span_scores(
        validation.sentences(validation.gold),
        validation.sentences(validation.predicted),
        prepared.scheme,
        prepared.config.strict,
        None if design is None else design[0],
    )["f1"]
    if observe_epoch is not None:
        observe_epoch(epoch, lambda split="train": _predict_split(run, split))
    best = _end_epoch(state, run.model, epoch, f1, mean_loss)
    masking = run.selection.end_epoch()
    if masking is not None:
        state["history"][-1]["masking"] = masking
    state["method"] = run.selection.state_dict()
    run.report({"event": "epoch", "epoch": epoch, "validation_f1": f1, "loss": mean_loss})
    if _another_epoch(state, prepared.config):
        # (after the last epoch a checkpoint would be deleted at once: a run that
        # dies before its results resumes from the one before, to the same results)
        save_checkpoint(run.checkpoint_file, run.model, run.optimizer, run.schedule, state)
    return validation, best


def _predict_split(run: _Run, split: str) -> runs.Predictions:
    """Predictions of the current weights on a split of the run's data."""
    prepared = run.prepared
    return predict(
        run.model,
        run.encoded[split],
        tokens_of(prepared.dataset[split]),
        prepared.labels,
        prepared.device,
        run.pad_id,
        prepared.precision,
    )


def _finish(
    run: _Run, save_model: bool, best_validation, extra_predictions: dict | None, figures
) -> dict:
    """The best weights back, their predictions of ``extra_predictions``, then the
    results (``evaluate.finish``); the checkpoint is removed last."""
    prepared, config = run.prepared, run.prepared.config
    run.model.load_state_dict(run.state["best_model"])
    for name, split in (extra_predictions or {}).items():
        made = predict(
            run.model,
            encode(run.tokenizer, split, config.max_length, run.cache_root),
            tokens_of(split),
            prepared.labels,
            prepared.device,
            run.pad_id,
            prepared.precision,
        )
        runs.write_predictions(prepared.run_dir / f"predictions-{name}.parquet", made)
    results = finish(
        prepared,
        run.model,
        run.tokenizer,
        run.encoded,
        run.pad_id,
        run.state,
        save_model,
        best_validation,
        figures,
    )
    shutil.rmtree(prepared.run_dir / runs.CHECKPOINT, ignore_errors=True)
    return results


def _another_epoch(state: dict, config: TrainConfig) -> bool:
    return state["epoch"] < config.epochs and state["stale_epochs"] < config.patience


def _host_batches(encoded: Encoded, batches: list[np.ndarray], pad_id: int, device):
    """``(indices, collated batch)`` for the epoch; on CUDA made a few ahead, in pinned
    memory, by a background thread while the GPU works (on CPU that thread would only
    take a core from the step)."""
    collated = ((indices, collate(encoded, indices, pad_id)) for indices in batches)
    if device.type != "cuda":
        return collated
    return prefetched((i, {k: pinned(v) for k, v in b.items()}) for i, b in collated)


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

    def __init__(self, model, compile_model: bool, notes: list[str], precision: str) -> None:
        self.model, self.notes, self.precision = model, notes, precision
        self.compiled = None
        if compile_model:
            # cuBLAS is deterministic only with a fixed workspace, set before its first use
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            self.compiled = torch.compile(model, dynamic=True)

    def __call__(
        self, batch: dict, labels, loss_fn, device: torch.device, contribute
    ) -> torch.Tensor:
        if self.compiled is not None:
            contribute = _once(contribute)  # a retried batch is observed and counted once
            try:
                with _deterministic_algorithms():
                    return self._run(self.compiled, batch, labels, loss_fn, device, contribute)
            except torch._dynamo.exc.TorchDynamoException as error:  # the compiler failed
                self.compiled = None
                self.model.zero_grad(set_to_none=True)
                self.notes.append(f"--compile failed ({one_line(error)}); trained without it")
        return self._run(self.model, batch, labels, loss_fn, device, contribute)

    @property
    def is_compiled(self) -> bool:
        return self.compiled is not None

    def _run(self, model, batch: dict, labels, loss_fn, device: torch.device, contribute):
        with autocast(self.precision, device):
            logits = model(**batch).logits  # (B, T, C)
        loss = loss_fn(logits, *contribute(logits, labels))  # the words that count, and how
        loss.backward()
        return loss


def _once(function: Callable) -> Callable:
    """``function``, called at most once: later calls return the first call's result."""
    made: list = []

    def call(*args):
        if not made:
            made.append(function(*args))
        return made[0]

    return call


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
