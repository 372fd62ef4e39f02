"""Study commands: sweep a grid, show and gate leaderboards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from noisebench.cli import options
from noisebench.cli.common import (
    app,
    bad_input_exits,
    print_json,
    split_list,
    stderr,
    stdout,
)
from noisebench.training.config import SWEEP_SETTINGS

GRID, TUNING, RUNNING = "Grid", "Tuning", "Running"  # sweep --help's own panels


@app.command(rich_help_panel="Studies")
@options.with_settings(
    *SWEEP_SETTINGS,
    unset=True,
    help={"error_profile": "Noise profile for the mask-auto runs (train --help)."},
)
def sweep(
    config_file: Annotated[
        Path | None, typer.Argument(help="TOML file with the same keys as the flags.")
    ] = None,
    preset: Annotated[
        str | None, typer.Option(rich_help_panel=GRID, help="quick (laptop) or study (GPU).")
    ] = None,
    losses: Annotated[
        str | None, typer.Option(rich_help_panel=GRID, help="e.g. ce,gce,sgce")
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=GRID,
            help="--method values crossed with the losses, e.g. none,mask-missing",
        ),
    ] = None,
    span_smoothing: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=GRID, help="--span-smoothing values crossed with the losses, e.g. 0,0.1"
        ),
    ] = None,
    q: Annotated[
        str | None, typer.Option(rich_help_panel=GRID, help="q values for gce/sgce, e.g. 0.2,0.4")
    ] = None,
    s: Annotated[
        str | None, typer.Option(rich_help_panel=GRID, help="s values for sgce, e.g. 0,0.1")
    ] = None,
    rates: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=GRID,
            help="Noise rates, e.g. 0,0.2,0.4 (default 0,0.4; 0 alone, the labels as given,"
            " for data without clean labels: your own).",
        ),
    ] = None,
    seeds: Annotated[str | None, typer.Option(rich_help_panel=GRID, help="e.g. 0,1,2")] = None,
    data: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=GRID,
            help="Datasets, comma-separated (default conll2003), e.g."
            " conll2003,noisebench:crowd,noisebench:weak.",
        ),
    ] = None,
    validation_labels: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=GRID,
            help="Labels that choose each run's best epoch: noisy (the same noise as train;"
            " default), clean (oracle), or noisy,clean for both.",
        ),
    ] = None,
    tune: Annotated[
        list[str] | None,
        typer.Option(
            rich_help_panel=TUNING,
            help="Tune per loss on validation F1: NAME=V1,V2 for lr (every loss), q"
            " (gce/sgce) or s (sgce); repeat, e.g. --tune lr=1e-5,5e-5,2e-4 --tune q=0.3,0.7.",
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=TUNING,
            help="Settings per loss when tuning (default: the smallest loss's search space,"
            " so every loss gets the same number; larger spaces are sampled, seeded).",
        ),
    ] = None,
    runs_dir: Annotated[
        Path | None,
        typer.Option(rich_help_panel=RUNNING, help="Where run folders go (default runs)."),
    ] = None,
    jobs: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=RUNNING,
            help="Runs in parallel processes, or auto (default): on GPUs as many per GPU as"
            " its free memory and the cores allow, else 1.",
        ),
    ] = None,
    backend: Annotated[
        str | None, typer.Option(rich_help_panel=RUNNING, help="local or ray.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(rich_help_panel=RUNNING, help="Print the plan; run nothing.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", rich_help_panel=RUNNING, help="Print JSON on stdout.")
    ] = False,
    **settings,
) -> None:
    """Run a grid of trainings (losses x q x s x rates x seeds), resumably. A run setting
    not given takes the preset's (or the TOML file's) value, else train's default.

    Example: [bold]noisebench sweep --preset quick[/]
    """
    flags = {**locals(), **settings}  # every option by its parameter name, as typer passed it
    from noisebench.studies import sweep as sweeps

    with bad_input_exits():
        config = sweeps.build_config(preset, config_file, sweeps.options_overrides(flags))
        planned = sweeps.plan(config)
    if note := sweeps.as_given_note(config):
        stderr.print(f"note: {note}", soft_wrap=True)
    if dry_run:
        _show_plan(config, planned, json_output)
        return
    outcome = _sweep_with_progress(config, planned)
    _show_outcome(config, outcome, json_output)
    if outcome.failed:
        raise typer.Exit(1)


def _show_plan(config, planned, json_output: bool) -> None:
    """``--dry-run``: every planned run and its status, as JSON or as a table."""
    if json_output:
        print_json([p.to_dict() for p in planned])
        return
    table = Table(title=f"Sweep plan: {len(planned)} runs in {config.runs_dir}")
    columns = ("#", "data", "loss", "lr", "q", "s", "rate", "validation", "seed", "status")
    for column in columns:
        table.add_column(column)
    for number, item in enumerate(planned, start=1):
        run = item.config
        table.add_row(
            str(number),
            run.data,
            run.loss + ("" if run.method == "none" else f" +{run.method}"),
            f"{run.lr:g}",
            _maybe(run.q),
            _maybe(run.s),
            run.noise if run.rate is None else f"{run.rate:.2f}",
            run.validation_labels,
            str(run.seed),
            item.status,
        )
    stdout.print(table)


def _show_outcome(config, outcome, json_output: bool) -> None:
    """What the sweep did, as JSON or as counts and failures followed by the leaderboard."""
    degenerate = outcome.degenerate()
    if json_output:
        print_json(
            {
                "completed": [str(p) for p in outcome.completed],
                "skipped": [str(p) for p in outcome.skipped],
                "elsewhere": [str(p) for p in outcome.elsewhere],
                "failed": [{"run_dir": str(p), "error": e} for p, e in outcome.failed],
                "degenerate": [str(p) for p in degenerate],
            }
        )
        return
    stdout.print(
        f"{len(outcome.completed)} runs trained, {len(outcome.skipped)} already complete, "
        + (f"{len(outcome.elsewhere)} trained by another sweep, " if outcome.elsewhere else "")
        + f"{len(outcome.failed)} failed, {len(degenerate)} degenerate"
        + (" (learned nothing; marked † in the leaderboard)" if degenerate else ""),
        soft_wrap=True,
    )
    for run_dir, error in outcome.failed:
        stdout.print(f"failed: {run_dir}: {error}", soft_wrap=True)
    if outcome.completed or outcome.skipped or outcome.elsewhere:
        _show_leaderboard([Path(config.runs_dir)], tuned=bool(config.tune))


def _maybe(value) -> str:
    return "" if value is None else f"{value:g}"


def _sweep_with_progress(config, planned):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from noisebench.studies import backends

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

        finished = {"runs": 0}
        plain = not stderr.is_terminal  # a CI log or nohup: a line per run, not a bar

        def update(item, status: str) -> None:
            if status in ("completed", "failed", "completed elsewhere"):
                progress.update(task, advance=1, latest=f"{status}: {item.run_dir.name}")
                finished["runs"] += 1
                if plain:
                    elapsed = progress.tasks[0].elapsed or 0.0
                    stderr.print(
                        f"sweep: {finished['runs']}/{todo} {status} {item.run_dir.name}"
                        f" ({elapsed:.0f} s in)",
                        soft_wrap=True,
                        highlight=False,
                    )
            elif status.startswith("running elsewhere"):  # another sweep on this runs folder
                waiting = f"waiting for {item.run_dir.name}, {status}"
                progress.update(task, latest=waiting)
                if plain:
                    stderr.print(f"sweep: {waiting}", soft_wrap=True, highlight=False)

        with bad_input_exits():
            try:
                return backends.run_sweep(config, update)
            except KeyboardInterrupt:
                stderr.print("sweep stopped; run the same command again to resume", soft_wrap=True)
                raise typer.Exit(130) from None


TABLES, GATE, OUTPUT = "Tables", "Gate", "Output"  # leaderboard --help's panels


@app.command(rich_help_panel="Studies")
def leaderboard(
    runs_dirs: Annotated[
        list[Path] | None, typer.Argument(help="Runs folders (default: runs).", show_default=False)
    ] = None,
    split: Annotated[str, typer.Option(rich_help_panel=TABLES, help="Split to rank on.")] = "test",
    metric: Annotated[
        str, typer.Option(rich_help_panel=TABLES, help="Comma-separated metrics.")
    ] = "f1,ece,mce",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            rich_help_panel=OUTPUT,
            help="Write the tables, the verdict (and plots) here. Default: a 'leaderboard'"
            " folder inside the first runs folder, replaced as a whole (with --json: none).",
            show_default=False,
        ),
    ] = None,
    format: Annotated[
        str, typer.Option(rich_help_panel=OUTPUT, help="Any of md,csv,json,parquet.")
    ] = "md,csv,json,parquet",
    plots: Annotated[
        bool,
        typer.Option(
            rich_help_panel=OUTPUT, help="Also metric-vs-noise and reliability plots (PNG, SVG)."
        ),
    ] = False,
    baseline: Annotated[
        Path | None, typer.Option(rich_help_panel=GATE, help="Baseline JSON to compare with.")
    ] = None,
    save_baseline: Annotated[
        Path | None,
        typer.Option(rich_help_panel=GATE, help="Store this leaderboard as a baseline."),
    ] = None,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            rich_help_panel=GATE, help="METRIC:DELTA, e.g. f1:-0.5 or ece:+0.02 (repeat)."
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(rich_help_panel=GATE, help="Current keys missing in the baseline fail too."),
    ] = False,
    allow_missing: Annotated[
        bool,
        typer.Option(
            rich_help_panel=GATE,
            help="Baseline keys missing in the current runs do not fail the gate (a gate that"
            " compares no key still fails).",
        ),
    ] = False,
    verdict: Annotated[
        bool,
        typer.Option(
            rich_help_panel=TABLES,
            help="End with the verdict: best loss per setting, paired bootstrap intervals"
            " against CE, CE + temperature scaling, degenerate runs.",
        ),
    ] = True,
    bootstrap: Annotated[
        int,
        typer.Option(
            rich_help_panel=TABLES, help="Paired bootstrap replicates for the verdict's intervals."
        ),
    ] = 1000,
    junit: Annotated[
        Path | None,
        typer.Option(
            rich_help_panel=GATE, help="With --baseline: write the gate as JUnit XML here."
        ),
    ] = None,
    tuned: Annotated[
        bool,
        typer.Option(
            rich_help_panel=TABLES,
            help="Per loss, keep the setting (lr, q, s) with the best mean validation F1"
            " over seeds, and show its test scores (the runs of a sweep --tune).",
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", rich_help_panel=OUTPUT, help="Print JSON on stdout.")
    ] = False,
) -> None:
    """Tables over losses, q, s, rates and seeds, written to runs/leaderboard; a regression
    gate for CI.

    Example: [bold]noisebench leaderboard runs --out lb --plots[/]

    Gate: [bold]noisebench leaderboard --baseline b.json --fail-on f1:-0.5 --fail-on ece:+0.02[/]
    """
    from noisebench.studies import board as boards

    with bad_input_exits():
        request = boards.Request(
            runs_dirs=runs_dirs or [Path("runs")],
            split=split,
            metrics=list(split_list(metric) or ()),
            out=out,
            formats=list(split_list(format) or ()),
            plots=plots,
            baseline=baseline,
            save_baseline=save_baseline,
            fail_on=fail_on or [],
            strict=strict,
            allow_missing=allow_missing,
            verdict=verdict,
            bootstrap=bootstrap,
            junit=junit,
            tuned=tuned,
            json_output=json_output,
        )
        board = boards.make(request, _note)
    boards.judge(board, request, _note)
    if json_output:
        print_json(boards.document(board))
    else:
        _print_board(board)
    if board.failing:
        raise typer.Exit(1)


def _print_detections(detect_rows: list[dict]) -> None:
    table = Table(title="detect: finding the wrong labels (AP vs cleanlab: paired over sentences)")
    for column in (
        "dataset",
        "detector",
        "level",
        "AP",
        "P@5%",
        "R@5%",
        "AUROC",
        "vs cleanlab",
        "vs best",
        "cost",
    ):
        table.add_column(
            column, justify="left" if column in ("dataset", "detector", "level") else "right"
        )
    from noisebench.detection.detections import best_text, versus_text

    for row in detect_rows:
        table.add_row(
            row["dataset"],
            row["detector"],
            row["level"],
            f"{row['ap']:.3f}",
            f"{row['precision_at_5']:.3f}",
            f"{row['recall_at_5']:.3f}",
            "—" if row["auroc"] is None else f"{row['auroc']:.3f}",
            versus_text(row["vs_cleanlab"]),
            best_text(row["vs_best"]),
            f"{row['trainings']} × train, {row['seconds'] or 0:.0f} s",
        )
    stdout.print(table)


def _note(line: str) -> None:
    stderr.print(line, soft_wrap=True)


def _show_leaderboard(folders: list[Path], tuned: bool) -> None:
    """The end of a sweep: the leaderboard and verdict, shown and written beside the runs."""
    from noisebench.studies import board as boards
    from noisebench.studies.leaderboard.outputs import FORMATS

    board = boards.of_sweep(folders, tuned)
    _print_tables(board)
    boards.save(board, None, folders, list(FORMATS), False, _note)


def _print_board(board) -> None:
    """The leaderboard on the terminal: its tables, how many runs, and the gate."""
    _print_tables(board)
    collected = board.collected
    stdout.print(
        f"{collected.complete} complete runs; skipped {len(collected.incomplete)} incomplete",
        soft_wrap=True,
    )
    repeated = board.repeated_runs()
    if repeated:
        stderr.print(
            f"note: {len(repeated)} run(s) left out of the tables: another run with the"
            f" same settings and seed is counted instead ({', '.join(repeated)})",
            soft_wrap=True,
        )
    if board.gate is not None:
        _print_gate(board.gate, board.failing)


def _print_tables(board) -> None:
    """The choices of --tuned, the pivots with their footnotes, the verdict, detections."""
    from noisebench.studies.leaderboard.render import footnotes, pivot_table

    if board.tuning is not None:
        _print_tuning(board.tuning)
    for table in board.tables:
        stdout.print(pivot_table(table))
        for footnote in footnotes(table):
            stdout.print(footnote, soft_wrap=True)
    if board.findings is not None:
        _print_verdict(board.findings)
    if board.detect_rows:
        _print_detections(board.detect_rows)


def _print_tuning(tuning: list[dict]) -> None:
    stdout.print("[bold]Tuned on validation F1[/] (mean over seeds; test scores below)")
    for choice in tuning:
        stdout.print(
            f"{choice['dataset']} {choice['noise']}@{choice['rate']:.2f} {choice['loss']}:"
            f" {choice['label']} (validation F1 {choice['validation_f1'] * 100:.2f}, best of"
            f" {choice['trials']} setting(s))",
            soft_wrap=True,
        )


def _print_verdict(findings: dict) -> None:
    from rich.markup import escape

    from noisebench.studies import verdict

    stdout.print("[bold]Verdict[/]")
    for line in verdict.text(findings):
        stdout.print(escape(line), soft_wrap=True)


def _print_gate(gate, failing) -> None:
    from noisebench.studies.leaderboard.gate import describe_key, describe_missing
    from noisebench.studies.leaderboard.render import gate_table

    stdout.print(gate_table(gate))
    missing = {id(key) for key in gate.missing_in_current + gate.missing_in_baseline}
    for title, keys in (
        ("missing in current runs", gate.missing_in_current),
        ("missing in baseline", gate.missing_in_baseline),
    ):
        for key in keys:
            stdout.print(f"{title}: {describe_missing(key)}", soft_wrap=True)
    failed = {id(row) for row in failing}
    allowed = [key for key in gate.missing_in_current if id(key) not in failed]
    if allowed:
        stderr.print(
            f"warning: {len(allowed)} baseline keys missing in the current runs, not compared"
            " (allowed by --allow-missing)",
            soft_wrap=True,
        )
    if failing:
        why = " (it compared no key: nothing guarded)" if not gate.rows else ""
        stderr.print(f"gate failed: {len(failing)} keys{why}", soft_wrap=True)
        for row in failing:
            shown = describe_missing(row) if id(row) in missing else describe_key(row)
            stderr.print(f"  {shown}", soft_wrap=True)
    else:
        stdout.print("gate passed", soft_wrap=True)
