"""``noisebench review``: a sample out for review, the reviewed labels back in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from noisebench.cli import options
from noisebench.cli.common import app, bad_input_exits, print_json, split_list, stderr, stdout

review_app = typer.Typer(
    no_args_is_help=True,
    help="Review a sample of your labels in Label Studio (or a CoNLL file) and bring the"
    " reviewed labels back as known-clean labels.\n\n"
    "Example: [bold]noisebench review sample my-data --split validation -n 300 -o review[/],"
    " then [bold]noisebench review merge my-data export.json -o my-data-reviewed[/]",
)
app.add_typer(review_app, name="review", rich_help_panel="Data")

Force = Annotated[bool, typer.Option(help="Replace an existing output folder.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


@review_app.command()
def sample(
    dataset: options.DatasetArgument = None,
    data_option: options.DataOption = None,
    split: Annotated[str, typer.Option(help="The split to sample sentences of.")] = "validation",
    n: Annotated[
        int,
        typer.Option(
            "-n",
            "--sentences",
            help="Sentences to review (drawn uniformly without replacement; all of the split"
            " if it has fewer).",
        ),
    ] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the draw.")] = 0,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Folder for the review files.", show_default=False),
    ] = ...,
    token_column: options.TokenColumn = None,
    tag_column: options.TagColumn = None,
    labels: options.Labels = None,
    force: Force = False,
    compare: Annotated[
        list[Path] | None,
        typer.Option(
            help="Draw from the sentences where these runs (repeat: --compare A --compare"
            " B) predict differently: fewer reviewed sentences rank them (review merge"
            " then estimates their difference in right and wrong entities without bias).",
        ),
    ] = None,
    json_output: Json = False,
) -> None:
    """Write a seeded random sample of a split's sentences for review.

    Label Studio tasks with the current labels as pre-annotations
    ([bold]labelstudio.json[/]), the project's labelling config
    ([bold]labelstudio-config.xml[/]), a CoNLL file whose third column is the label to
    review ([bold]review.conll[/]) and [bold]manifest.json[/] (dataset fingerprint,
    split, sentences, seed), which [bold]review merge[/] checks the review against.

    Example: [bold]noisebench review sample my-data --split validation -n 300 -o review[/]
    """
    with bad_input_exits():
        from noisebench.data import loading, review

        dataset = options.dataset(dataset, data_option)
        columns = loading.Columns(token_column, tag_column, split_list(labels))
        from noisebench.studies.focus import Disagreement

        focus = Disagreement(list(compare)) if compare else None
        with stderr.status(f"sampling {dataset}…"):
            made = review.sample(dataset, split, n, seed, out, columns, force, focus)
    if json_output:
        print_json({"out": str(made.out), "manifest": made.manifest, "notes": made.notes})
        return
    for note in made.notes:
        stderr.print(f"note: {note}", soft_wrap=True)
    manifest = made.manifest
    stdout.print(
        f"Sampled {len(manifest['sentences']):,} {manifest['split']} sentences of"
        f" {manifest['data']} (seed {seed}) into [bold]{made.out}[/]: {review.TASKS},"
        f" {review.LABELLING_CONFIG}, {review.CONLL}, {review.MANIFEST}",
        soft_wrap=True,
    )
    stdout.print(
        f"Next: create a Label Studio project with {review.LABELLING_CONFIG} as its labelling"
        f" config, import {review.TASKS}, review, Export → JSON; or edit the third column"
        f" of {review.CONLL}. Then [bold]noisebench review merge {dataset}"
        f" {made.out}/export.json -o {dataset.rstrip('/')}-reviewed[/]",
        soft_wrap=True,
    )


@review_app.command()
def merge(
    dataset: Annotated[str, typer.Argument(help=options.DATA_HELP, show_default=False)],
    reviewed: Annotated[
        Path,
        typer.Argument(
            help="A Label Studio JSON export (Export → JSON) or the edited review.conll.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Folder for the dataset with the reviewed labels.",
            show_default=False,
        ),
    ] = ...,
    resolve: Annotated[
        str,
        typer.Option(
            help="Several annotations of a task: latest (updated last), majority (spans more"
            " than half of them have; ties left out) or annotator:ID (a Label Studio user id"
            " or email)."
        ),
    ] = "latest",
    manifest: Annotated[
        Path | None,
        typer.Option(help="The review's manifest.json (default: beside REVIEWED)."),
    ] = None,
    token_column: options.TokenColumn = None,
    tag_column: options.TagColumn = None,
    labels: options.Labels = None,
    force: Force = False,
    json_output: Json = False,
) -> None:
    """Bring reviewed labels back into the data as known-clean labels.

    Checks the review against its manifest and the data (bad input: one line naming the
    task id or line, exit 2, nothing written), resolves several reviewers by
    [bold]--resolve[/], reports their agreement on spans, and writes the data with two
    more columns on the reviewed split: [bold]reviewed[/] (per sentence) and
    [bold]reviewed_tags[/].

    Example: [bold]noisebench review merge my-data review/export.json -o my-data-reviewed[/]
    """
    with bad_input_exits():
        from noisebench.data import loading, review

        columns = loading.Columns(token_column, tag_column, split_list(labels))
        from noisebench.studies import focus

        with stderr.status(f"merging {reviewed} into {dataset}…"):
            merged = review.merge(
                dataset, reviewed, out, resolve, manifest, columns, force, focus.estimate
            )
    if json_output:
        print_json({"out": str(out), **merged.report})
        return
    for renderable in merge_report(merged.report):
        stdout.print(renderable, soft_wrap=True)
    stdout.print(f"Wrote [bold]{out}[/]", soft_wrap=True)


def merge_report(report: dict) -> list:
    """The tables and lines that show a merge."""
    counts = report["counts"]
    summary = Table(title=f"Reviewed labels from {report['reviewed_file']} ({report['resolve']})")
    summary.add_column("")
    summary.add_column("count", justify="right")
    c = {key: f"{value:,}" for key, value in counts.items()}
    for label, value in (
        ("sentences in the manifest", c["manifest_sentences"]),
        ("tasks read", c["tasks"]),
        ("annotations (cancelled ones left out)", f"{c['annotations']} ({c['cancelled']})"),
        ("tasks with several annotations", c["multiply_annotated"]),
        ("sentences reviewed", c["reviewed_sentences"]),
        ("… whose labels changed", c["changed_sentences"]),
        ("words reviewed / changed", f"{c['reviewed_words']} / {c['changed_words']}"),
        ("tasks not reviewed", c["unreviewed_tasks"]),
        ("tied spans (left out)", c["tied_spans"]),
    ):
        summary.add_row(label, value)
    lines: list = [summary]
    if counts["reviewed_before"]:
        lines.append(
            f"{counts['reviewed_before']:,} sentences were reviewed before; the split now has"
            f" {counts['reviewed_in_split']:,} reviewed sentences"
        )
    agreement = report["agreement"]
    if agreement["tasks"]:
        lines.append(_agreement_table(agreement))
    if counts["tasks"] and not counts["annotations"]:
        lines.append(
            f"no task of {report['reviewed_file']} has an annotation: export the reviewed"
            " project from Label Studio with Export → JSON"
        )
    unreviewed = [f"not reviewed: {row['task']} (sentence {row['sentence']}): {row['why']}"
                  for row in report["unreviewed"]]  # fmt: skip
    ties = [
        f"tie: {row['task']} (sentence {row['sentence']}): "
        + ", ".join(f"'{s['text']}' {s['type']}" for s in row["spans"])
        for row in report["ties"]
    ]
    return lines + _first(unreviewed) + _first(ties)


def _first(lines: list[str], shown: int = 10) -> list[str]:
    """At most ``shown`` lines, and how many more ``review.json`` lists."""
    more = len(lines) - shown
    return lines[:shown] + ([f"… and {more:,} more in review.json"] if more > 0 else [])


def _agreement_table(agreement: dict) -> Table:
    table = Table(
        title=f"Agreement on spans: pairwise F1 over {agreement['tasks']:,} tasks with several"
        f" annotations ({agreement['pairs']:,} pairs)"
    )
    for column in ("type / annotators", "spans", "exact", "overlap"):
        table.add_column(column, justify="left" if column.startswith("type") else "right")

    def row(label: str, scores: dict, style: str | None = None) -> None:
        table.add_row(
            label,
            f"{scores['spans']:,}",
            *("—" if scores[k] is None else f"{scores[k]:.3f}" for k in ("exact", "overlap")),
            style=style,
        )

    row("all", agreement, "bold")
    for type_, scores in agreement["by_type"].items():
        row(type_, scores)
    for scores in agreement["by_annotators"]:
        row(f"{' & '.join(scores['annotators'])} ({scores['tasks']:,} tasks)", scores)
    return table
