"""Training commands: train a model, score a run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from noisebench.cli import options
from noisebench.cli.common import (
    app,
    bad_input_exits,
    print_json,
    stderr,
    stdout,
)
from noisebench.errors import InputError


@app.command(rich_help_panel="Training")
@options.with_settings()  # every run setting, declared once in TrainConfig
def train(
    *,
    device: Annotated[
        str, typer.Option(rich_help_panel="Model and budget", help="auto, cpu or cuda.")
    ] = "auto",
    compile_model: Annotated[
        bool,
        typer.Option(
            "--compile",
            rich_help_panel="Model and budget",
            help="torch.compile the model for training (falls back to the plain model if"
            " compiling fails). Dropout then draws from the compiler's generator: repeatable,"
            " but not the same numbers as without. Slower on CPU (measured).",
        ),
    ] = False,
    runs_dir: Annotated[
        Path, typer.Option(rich_help_panel="Output", help="Where run folders go.")
    ] = Path("runs"),
    save_model: Annotated[
        bool, typer.Option(rich_help_panel="Output", help="Keep the best model in <run>/model.")
    ] = False,
    resume: Annotated[
        bool, typer.Option(rich_help_panel="Output", help="Continue an interrupted run.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", rich_help_panel="Output", help="Print JSON on stdout.")
    ] = False,
    **settings,
) -> None:
    """Fine-tune an encoder with a (robust) loss; score F1 and calibration.

    Example: [bold]noisebench train --loss sgce --q 0.8 --s 0.1 --rate 0.4[/]
    """
    from noisebench.training import loop as training
    from noisebench.training.config import TrainConfig
    from noisebench.training.prepare import prepare

    with bad_input_exits():
        config = TrainConfig.of_options(**settings)
        with stderr.status("loading data and model…"):
            prepared = prepare(config, runs_dir, device, compile_model)
        for note in prepared.notes:
            stderr.print(f"note: {note}", soft_wrap=True)
        results = runs_results_if_complete(prepared.run_dir, resume)
        if results is None:
            results = _train_with_progress(training, prepared, resume, save_model)
        else:
            stderr.print(f"{prepared.run_dir} is already complete; showing its results")
    warn_if_degenerate(results)
    if json_output:
        print_json({"run_dir": str(prepared.run_dir), **results})
        return
    _print_results(results, prepared.run_dir)


def runs_results_if_complete(run_dir: Path, resume: bool) -> dict | None:
    from noisebench.training import runs

    if resume or not runs.is_complete(run_dir):
        return None
    return runs.read_json(run_dir / runs.RESULTS)


def _train_with_progress(training, prepared, resume: bool, save_model: bool) -> dict:
    from noisebench.studies import plots

    with training_progress() as update:
        try:
            return training.train(
                prepared,
                resume=resume,
                save_model=save_model,
                progress=update,
                figures=plots.run_figures,
            )
        except training.TrainingFailed as error:
            stderr.print(Text.assemble(("run failed: ", "bold red"), str(error)), soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            stderr.print(
                f"interrupted; continue with --resume ({prepared.run_dir})", soft_wrap=True
            )
            raise typer.Exit(130) from None


@contextlib.contextmanager
def training_progress() -> Iterator:
    """A progress bar on stderr, and the ``progress`` callback of ``train`` that drives
    it (steps, epochs; ``fold`` events of cross-validation)."""
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[speed]:.1f} sent/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr) as progress:
        task = progress.add_task("training", total=None, loss=float("nan"), speed=0.0)
        started = {"time": None, "sentences": 0}

        def update(event: dict) -> None:
            if event["event"] == "fold":
                progress.console.print(f"training fold {event['fold']} of {event['folds']}")
                return
            if event["event"] == "epoch":
                progress.console.print(
                    f"epoch {event['epoch']}: train loss {event['loss']:.4f}, validation F1"
                    f" {100 * event['validation_f1']:.2f}"
                )
                started["time"] = None
                return
            now = time.perf_counter()
            if started["time"] is None or event["step"] == 1:
                started.update(time=now, sentences=0)
            started["sentences"] += event["sentences"]
            elapsed = now - started["time"]
            progress.update(
                task,
                description=f"epoch {event['epoch']}/{event['epochs']}",
                total=event["steps"],
                completed=event["step"],
                loss=event["loss"],
                speed=started["sentences"] / elapsed if elapsed > 0 else 0.0,
            )

        yield update


def warn_if_degenerate(results: dict) -> None:
    """One line on stderr when a run learned nothing: its F1 is not a score."""
    degenerate = results.get("degenerate")
    if not degenerate:
        return
    split = "test" if "test" in degenerate else next(iter(degenerate))
    config = results.get("config") or {}
    loss = config.get("loss", "")
    stderr.print(
        f"[bold yellow]warning:[/] degenerate run: {degenerate[split]['reason']} on {split};"
        f" its F1 is not a measured score. Likely cause: the model never left the trivial"
        f" one-label solution ({loss or 'this'} loss, {config.get('epochs', '?')} epochs at lr"
        f" {config.get('lr', '?')}); {degenerate_advice(config)}",
        soft_wrap=True,
    )


def degenerate_advice(config: dict) -> str:
    """What to try after a degenerate run, starting from the run's own settings.

    >>> degenerate_advice({"loss": "sgce", "q": 0.8, "epochs": 2, "lr": 5e-5,
    ...                    "loss_warmup": 0.2})
    ... # doctest: +NORMALIZE_WHITESPACE
    'try a longer CE start than its 0.2 (--loss-warmup 0.4), more epochs than its 2
    (--epochs 4), a higher learning rate than its 5e-05 (--lr 0.0001), a lower q than its
    0.8 (--q 0.4), or --loss ce'
    >>> degenerate_advice({"loss": "ce", "epochs": 3, "lr": 3e-4})
    ... # doctest: +NORMALIZE_WHITESPACE
    'try more epochs than its 3 (--epochs 6) or another learning rate than its 0.0003
    (--lr 0.00015 or 0.0006)'
    """
    from noisebench.training import runs
    from noisebench.training.losses import LOSSES

    loss = config.get("loss") or "ce"
    epochs, lr = config.get("epochs"), config.get("lr")
    more_epochs = f"more epochs than its {epochs} (--epochs {2 * epochs})" if epochs else ""
    if loss == "ce":
        other_lr = f"another learning rate than its {lr:g} (--lr {lr / 2:g} or {2 * lr:g})"
        return "try " + " or ".join(part for part in (more_epochs, other_lr if lr else "") if part)
    tries = []
    warmup = config.get("loss_warmup")
    if warmup is None:
        warmup = runs.DEFAULT_LOSS_WARMUP
    if warmup == 0:
        tries.append(f"a CE start (--loss-warmup {runs.DEFAULT_LOSS_WARMUP:g})")
    elif warmup < 1:
        tries.append(
            f"a longer CE start than its {warmup:g} (--loss-warmup {min(1.0, 2 * warmup):g})"
        )
    tries.append(more_epochs)
    if lr:
        tries.append(f"a higher learning rate than its {lr:g} (--lr {2 * lr:g})")
    if loss in LOSSES and LOSSES[loss].takes_q:
        q = config.get("q")
        q = LOSSES[loss].default_q if q is None else q
        if q > 0:
            tries.append(f"a lower q than its {q:g} (--q {q / 2:g})")
    return "try " + ", ".join(part for part in tries if part) + ", or --loss ce"


def _print_results(results: dict, run_dir: Path) -> None:
    table = Table(title=f"{run_dir.name}")
    columns = ("split", "F1", "P", "R", "ECE", "MCE", "Brier", "NLL", "words", "entities")
    for column in columns:
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, scores in results["splits"].items():
        table.add_row(
            split,
            f"{100 * scores['f1']:.2f}",
            f"{100 * scores['precision']:.2f}",
            f"{100 * scores['recall']:.2f}",
            f"{scores['ece']:.4f}",
            f"{scores['mce']:.4f}",
            f"{scores['brier']:.4f}",
            f"{scores['nll']:.4f}",
            f"{scores['n_words']:,}",
            f"{scores['n_entities']:,}",
        )
    stdout.print(table)
    summary = results.get("train") or {}
    if summary:
        stdout.print(
            f"{summary['epochs_run']} epochs (best {summary['best_epoch']}) in"
            f" {summary['seconds']:.1f} s on {summary['device']}:"
            f" {summary['sentences_per_second']:.1f} sentences/s,"
            f" {summary['tokens_per_second']:.0f} tokens/s, peak memory"
            f" {summary['peak_memory_mb']:.0f} MiB"
            f"{' (process peak)' if summary.get('peak_memory_scope') == 'process' else ''}",
            soft_wrap=True,
        )
    calibration = results.get("calibration")
    if calibration:
        stdout.print(
            f"Temperature scaling (T = {calibration['temperature']:.3f}, fitted on validation):"
            f" test ECE {calibration['ece_before']:.4f} → {calibration['ece_after']:.4f},"
            f" MCE {calibration['mce_before']:.4f} → {calibration['mce_after']:.4f}",
            soft_wrap=True,
        )
    stdout.print(f"Run: [bold]{run_dir}[/]", soft_wrap=True)


@app.command(rich_help_panel="Training")
def score(
    run_dirs: Annotated[
        list[Path] | None, typer.Argument(help="Run folders to rescore.", show_default=False)
    ] = None,
    split: Annotated[str, typer.Option(help="Split to show.")] = "test",
    bins: Annotated[int | None, typer.Option(help="Calibration bins (default: the run's).")] = None,
    strict: Annotated[
        bool | None,
        typer.Option("--strict/--no-strict", help="seqeval strict mode in the data's tag scheme."),
    ] = None,
    calibrate: Annotated[str | None, typer.Option(help="'temperature'.")] = None,
    model: Annotated[
        Path | None, typer.Option(help="A run saved with --save-model, to evaluate on --data.")
    ] = None,
    data: Annotated[str | None, typer.Option(help="Dataset for --model.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (with --model).")] = "auto",
    precision: options.setting_option(
        "precision", help="With --model: auto, fp32 or bf16, as train --precision."
    ) = "auto",
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Recompute F1, ECE, MCE, Brier and NLL from a run's saved predictions.

    Example: [bold]noisebench score runs/*[/]

    A saved model on other data: [bold]noisebench score --model RUN --data other.conll[/]
    """
    from noisebench.studies import plots
    from noisebench.training.evaluate import evaluate_saved_model, rescore

    with bad_input_exits():
        if model is not None:
            if data is None:
                raise InputError("--model needs --data (the dataset to evaluate on)")

            def figures(folder: Path, results: dict) -> None:
                plots.run_figures(folder, results, f"{model.name} on {data}")

            from noisebench.training.precision import slow_note
            from noisebench.training.prepare import resolve_device

            if note := slow_note(precision, resolve_device(device)):
                stderr.print(note, soft_wrap=True)
            evaluated = evaluate_saved_model(
                model, data, split, device=device, figures=figures, precision=precision
            )
            all_results = [evaluated]
            folders = [model]
        else:
            if not run_dirs:
                raise InputError("name at least one run folder (or --model RUN --data D)")
            folders = run_dirs
            all_results = [rescore(d, bins, strict, calibrate, plots.run_figures) for d in folders]
    for results in all_results:
        warn_if_degenerate(results)
    if json_output:
        print_json([{"run_dir": str(d), **r} for d, r in zip(folders, all_results, strict=True)])
        return
    for folder, results in zip(folders, all_results, strict=True):
        shown = {
            "splits": {k: v for k, v in results["splits"].items() if k == split},
            "train": results.get("train"),
            "calibration": results.get("calibration"),
        }
        if not shown["splits"]:
            raise typer.Exit(_missing_split(folder, split, results))
        _print_results(shown, Path(folder))


def _missing_split(folder: Path, split: str, results: dict) -> int:
    stderr.print(
        f"error: {folder} has no '{split}' scores (splits: {', '.join(results['splits'])})",
        soft_wrap=True,
    )
    return 2
