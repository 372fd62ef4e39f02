"""``noisebench detect``: find the wrong labels, measure how well, write a review."""

from __future__ import annotations

import contextlib
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
from noisebench.detection.config import DETECT_SETTINGS
from noisebench.detection.fix import MIN_F1

DETECTION, FIX, OUTPUT = "Detection", "Fix", "Output"  # the panels of detect --help


@app.command(rich_help_panel="Data")
@options.with_settings(
    *DETECT_SETTINGS,
    help={
        "epochs": "Epochs per training.",
        "seed": "Seed of every random choice (and the folds).",
        "method": "As --method of train (none, mask-missing, mask-entity, mask-all,"
        " mask-auto): the trained model's suggestions come from the treatment. Oracles are"
        " refused.",
    },
)
def detect(
    data: options.DatasetArgument = None,
    data_option: options.DataOption = None,
    detector: Annotated[
        str,
        typer.Option(
            rich_help_panel=DETECTION,
            help="dynamics (one training run, recorded as it trains; default), retag (the"
            " trained model's contradictions) or cv (K-fold out-of-sample probabilities"
            " scored by cleanlab).",
        ),
    ] = "dynamics",
    score: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=DETECTION,
            help="Word score: dynamics aum (default), confidence, variability or early;"
            " cv self_confidence (default) or normalized_margin.",
        ),
    ] = None,
    folds: Annotated[
        int, typer.Option(rich_help_panel=DETECTION, help="cv: folds (K trainings).")
    ] = 5,
    dynamics_pass: Annotated[
        str,
        typer.Option(
            rich_help_panel=DETECTION,
            help="dynamics: eval (also one inference pass over the training words per"
            " epoch, dropout off; default) or train (the training passes only, dropout on;"
            " no extra pass).",
        ),
    ] = "eval",
    budget: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=DETECTION,
            help="Share of each level listed for review (default 10%); with --fix (default"
            " 5%) the most words relabelled (a cap: fewer where the model is unsure), or the"
            " words masked or sentences dropped, e.g. 5% or 0.05.",
        ),
    ] = None,
    fix: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=FIX,
            help="Write a fixed dataset to -o: relabel (whole spans take the model's"
            " suggestions where those are more likely right than the given labels; --budget"
            " caps the words changed), mask (the most suspect words left out of training) or"
            " drop (the most suspect sentences).",
        ),
    ] = None,
    min_f1: Annotated[
        float,
        typer.Option(
            rich_help_panel=FIX,
            help="--fix relabel refuses a detecting model below this validation F1 (its"
            " suggestions are too weak to trust); 0 relabels anyway.",
        ),
    ] = MIN_F1,
    run: Annotated[
        Path | None,
        typer.Option(
            rich_help_panel=DETECTION,
            help="Reuse a finished run that noisebench detect trained (no training).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            rich_help_panel=OUTPUT,
            help="Folder for issues, review files and scores.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", rich_help_panel=OUTPUT, help="Replace an existing -o folder.")
    ] = False,
    top: Annotated[
        int, typer.Option(rich_help_panel=OUTPUT, help="Suspect sentences shown in the terminal.")
    ] = 5,
    device: Annotated[
        str, typer.Option(rich_help_panel="Model and budget", help="auto, cpu or cuda.")
    ] = "auto",
    runs_dir: Annotated[
        Path, typer.Option(rich_help_panel=OUTPUT, help="Where the trainings go.")
    ] = Path("runs"),
    json_output: Annotated[
        bool, typer.Option("--json", rich_help_panel=OUTPUT, help="Print JSON on stdout.")
    ] = False,
    **settings,
) -> None:
    """Rank every training label by how likely it is wrong (words, entities, sentences);
    score the ranking against the clean labels where the data has them.

    Example: [bold]noisebench detect noisebench:crowd --epochs 2 --lr 3e-4 -o review[/]
    """
    from noisebench.detection.config import DetectConfig, parse_share
    from noisebench.detection.detect import check_request
    from noisebench.detection.record import prepared_of_run
    from noisebench.training.config import TrainConfig
    from noisebench.training.prepare import prepare

    with bad_input_exits():
        share = parse_share(budget or ("5%" if fix else "10%"))
        config = DetectConfig(detector, score, folds, share, dynamics_pass)
        check_request(config, settings["method"], fix, out, min_f1, force)
        if run is not None:
            prepared = prepared_of_run(run, device)
        else:
            dataset = options.dataset(data, data_option)
            train_config = TrainConfig.of_options(data=dataset, **settings)
            with stderr.status("loading data and model…"):
                prepared = prepare(train_config, runs_dir, device)
        for note in prepared.notes:
            stderr.print(f"note: {note}", soft_wrap=True)
        detected = _detect(prepared, config, run, fix, min_f1, out)
    if json_output:
        print_json({**detected.document, "out": str(out) if out else None})
        return
    _print_detection(detected.document, detected.rows, top, out)


def _detect(prepared, config, run: Path | None, fix: str | None, min_f1: float, out):
    """``detection.detect.detect`` with its training's progress on stderr."""
    from noisebench.cli.training import training_progress
    from noisebench.detection.detect import detect
    from noisebench.training.loop import TrainingFailed

    def note(line: str) -> None:
        stderr.print(f"note: {line}", soft_wrap=True)

    trains = run is None  # --run reads a finished run: no progress to show
    with training_progress() if trains else contextlib.nullcontext() as update:
        try:
            return detect(
                prepared, config, run=run, fix=fix, min_f1=min_f1, out=out, progress=update,
                note=note,
            )  # fmt: skip
        except TrainingFailed as error:
            stderr.print(Text.assemble(("run failed: ", "bold red"), str(error)))
            raise typer.Exit(1) from None


def _print_detection(document: dict, rows: list[dict], top: int, out: Path | None) -> None:
    from noisebench.detection.detections import name_of
    from noisebench.detection.fix import fix_summary

    cost = document["cost"]
    stdout.print(
        f"{name_of(document)} on {document['dataset']}:"
        f" {cost.get('trainings', 0)} training(s), {cost.get('seconds', 0):.0f} s"
    )
    reviewed = document.get("reviewed")
    if document["levels"] is not None:
        stdout.print(_scores_table(document["levels"]))
    elif reviewed is not None and reviewed["levels"] is not None:
        title = f"Against the reviewed labels, on {reviewed['sentences']:,} reviewed sentences"
        title += " drawn at random"
        stdout.print(_scores_table(reviewed["levels"], title))
    else:
        stdout.print("no clean labels: the ranking cannot be scored here")
    if reviewed is not None and reviewed.get("left_out"):
        stderr.print(
            f"note: {reviewed['left_out']:,} reviewed training sentences were chosen for a"
            " reason or by a design (detect's list, --compare) and are left out of the"
            " detector's scores: graded on sentences it chose, a detector would grade its own"
            " picks, and a design's sentences need weights that a ranking's scores do not take",
            soft_wrap=True,
        )
    estimate = document.get("estimated_noise")
    if estimate is not None:
        shares = ", ".join(f"{k} {v:.1%}" for k, v in estimate["outcomes"].items())
        stdout.print(
            "Estimated noise (model-based, no review; likely low): word error rate"
            f" {estimate['word_error_rate']:.1%}, entity noise"
            f" {estimate['entity_noise_level']:.1%}; of the true entities {shares};"
            f" mostly {estimate['dominant_error'] or 'none'}",
            soft_wrap=True,
        )
    for text in _suspect_sentences(rows, top):
        stdout.print(text, soft_wrap=True)
    fix = document.get("fix")
    for line in fix_summary(fix) if fix is not None else []:
        stdout.print(line)
    if out is not None:
        written = "issues.parquet, issues.jsonl, review.conll, labelstudio.json"
        stdout.print(f"wrote {out}/ ({written}{', the fixed splits' if fix else ''})")


def _scores_table(report: dict, title: str = "Against the clean labels") -> Table:
    """Each level's scores against the clean labels, one row per level."""
    table = Table(title=f"{title} (AP: average precision)")
    for column in ("level", "truly wrong", "AP", "P@5%", "R@5%", "P@k", "AUROC"):
        table.add_column(column, justify="left" if column == "level" else "right")
    for level, scores in report.items():
        at5, at_k = scores["budgets"]["5%"], scores["budgets"]["k"]
        table.add_row(
            level,
            f"{scores['truly_wrong']:,} of {scores['units']:,}",
            f"{scores['ap']:.3f}",
            f"{at5['precision']:.3f}",
            f"{at5['recall']:.3f}",
            f"{at_k['precision']:.3f}",
            "—" if scores["auroc"] is None else f"{scores['auroc']:.3f}",
        )
    return table


def _suspect_sentences(rows: list[dict], top: int) -> list[Text]:
    """The ``top`` most suspect sentences, their flagged words marked with the given and
    the suggested label."""
    words = {}
    for row in rows:
        if row["level"] == "word":
            words.setdefault(row["sentence"], set()).add(row["start"])
    shown = []
    for row in [r for r in rows if r["level"] == "sentence"][:top]:
        text = Text(f"#{row['sentence']} ({row['score']:.3f}): ")
        suspects = words.get(row["sentence"], set())
        for position, word in enumerate(row["words"]):
            given, suggested = row["given"][position], row["suggested"][position]
            if position in suspects:
                text.append(word, style="bold red")
                text.append(f" [{given} → {suggested}]", style="yellow")
            else:
                text.append(word)
            text.append(" ")
        shown.append(text)
    return shown
