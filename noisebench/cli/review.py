"""``noisebench review``: a sample out for review, the reviewed labels back in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from noisebench.cli import options
from noisebench.cli.common import app, bad_input_exits, print_json, split_list, stderr, stdout
from noisebench.errors import InputError

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
            help="Design the sample to decide among these runs (repeat: --compare A"
            " --compare B --compare C): drawn by strata their predictions define (none,"
            " agree, disagree); review merge then estimates each run's F1 on the split and"
            " whether the best is decided.",
        ),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            help="With --compare RUNS-FOLDER: only the runs whose settings match KEY=VALUE"
            " (repeat; keys as results.json's config: loss, q, s, rate, noise, method, seed,"
            " ...): the runs of one leaderboard column (--where rate=0.4) or cell.",
            show_default=False,
        ),
    ] = None,
    continue_from: Annotated[
        Path | None,
        typer.Option(
            "--continue",
            help="The next batch of a designed review (review sample --compare): -n more"
            " sentences of the same design and seed, one look later.",
            show_default=False,
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

    To decide among runs: [bold]noisebench review sample my-data --split test -n 50
    --compare runs/A --compare runs/B --compare runs/C -o batch1[/], review and merge it,
    then [bold]noisebench review sample my-data-reviewed --continue batch1 -n 50 -o batch2[/]
    until the merge says decided.
    """
    with bad_input_exits():
        from noisebench.data import loading
        from noisebench.data.review import sampling
        from noisebench.studies import focus

        dataset = options.dataset(dataset, data_option, default=None)
        columns = loading.Columns(token_column, tag_column, split_list(labels))
        if continue_from is not None and (compare or where):
            raise InputError("--continue takes the runs of its design: leave out --compare")
        if where and not compare:
            raise InputError("--where chooses among the runs of --compare: name them")
        if continue_from is None:
            dataset = dataset or "conll2003"
        with stderr.status(f"sampling {dataset or continue_from}…"):
            if continue_from is not None:
                made = focus.continue_sample(dataset, continue_from, n, out, columns, force)
            elif compare:
                made = focus.sample(
                    dataset, split, n, seed, out, compare, columns, force, where or ()
                )
            else:
                made = sampling.sample(dataset, split, n, seed, out, columns, force)
    if json_output:
        print_json({"out": str(made.out), "manifest": made.manifest, "notes": made.notes})
        return
    from noisebench.data.review import files

    for note in made.notes:
        stderr.print(f"note: {note}", soft_wrap=True)
    manifest = made.manifest
    stdout.print(
        f"Sampled {len(manifest['sentences']):,} {manifest['split']} sentences of"
        f" {manifest['data']} (seed {manifest['seed']}) into [bold]{made.out}[/]: {files.TASKS},"
        f" {files.LABELLING_CONFIG}, {files.CONLL}, {files.MANIFEST}",
        soft_wrap=True,
    )
    stdout.print(next_steps(dataset, made.out), soft_wrap=True)


def next_steps(dataset: str, out: Path) -> str:
    """How to review a folder ``review sample`` or ``detect -o`` wrote, and merge it."""
    from noisebench.data.review import files

    return (
        f"Next: create a Label Studio project with {files.LABELLING_CONFIG} as its labelling"
        f" config, import {files.TASKS}, review and submit each task, Export → JSON; or in"
        f" {files.CONLL} correct the third column and mark each block you reviewed"
        " '# sentence N reviewed: yes'. Then [bold]noisebench review merge"
        f" {dataset} {out}/export.json -o {dataset.rstrip('/')}-reviewed[/]"
    )


@review_app.command()
def merge(
    dataset: Annotated[
        str | None,
        typer.Argument(help=options.DATA_HELP + " Or --data.", show_default=False),
    ] = None,
    reviewed: Annotated[
        Path | None,
        typer.Argument(
            help="A Label Studio JSON export (Export → JSON) or the edited review.conll.",
            show_default=False,
        ),
    ] = None,
    data_option: options.DataOption = None,
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

    A sentence counts as reviewed only where a reviewer said so: a submitted Label
    Studio annotation, or a [bold]review.conll[/] block marked [bold]reviewed: yes[/];
    a merge that reviews nothing is refused.

    Example: [bold]noisebench review merge my-data review/export.json -o my-data-reviewed[/]
    """
    with bad_input_exits():
        from noisebench.data import loading
        from noisebench.studies import focus

        if data_option is not None and reviewed is None:  # --data D REVIEWED
            dataset, reviewed = None, Path(dataset) if dataset is not None else None
        dataset = options.dataset(dataset, data_option, default=None)
        if dataset is None or reviewed is None:
            raise InputError("name the data and the reviewed file: review merge DATA REVIEWED"
                             " (or --data DATA REVIEWED)")  # fmt: skip
        columns = loading.Columns(token_column, tag_column, split_list(labels))
        with stderr.status(f"merging {reviewed} into {dataset}…"):
            merged = focus.merge(dataset, reviewed, out, resolve, manifest, columns, force)
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
    if counts.get("reviewed_again"):
        lines.append(
            f"{counts['reviewed_again']:,} sentences were reviewed again: their new labels"
            f" replace the earlier review's ({counts['changed_again_sentences']:,} of them"
            f" changed, {counts['changed_again_words']:,} words; the earlier labels are kept"
            " in review.json under reviewed_again)"
        )
    if counts.get("drafts_only"):
        lines.append(f"{counts['drafts_only']:,} tasks have only a draft, never submitted: not"
                     " reviewed")  # fmt: skip
    if counts.get("other_answers"):
        lines.append(f"{counts['other_answers']:,} tasks hold answers besides entity labels"
                     " (choices, text): kept in review.json under answers, not read as"
                     " labels")  # fmt: skip
    if report.get("compare"):
        lines += compare_lines(report["compare"])
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


def compare_lines(found: dict) -> list[str]:
    """What a designed review estimates, in words: each run's F1 on the split, and whether
    the best is decided."""
    runs = found["runs"]
    if "strata" not in found:
        return [f"no estimate: {found['why']}"]
    strata = ", ".join(f"{name} {size:,}" for name, size in found["strata"].items())
    level = found.get("level", 0.95)
    pairs = found.get("difference_level", level)
    between = f", each difference's at {100 * pairs:.2f}%" if len(runs) > 2 else ""
    lines = [f"Designed review, look {found.get('look', 1)}: {found['reviewed_sentences']:,}"
             f" reviewed sentences (strata: {strata}); intervals at {100 * level:.2f}%{between},"
             " so that every look together errs at most 5% of the time"]  # fmt: skip
    if found.get("skipped_sentences"):
        lines.append(f"{found['skipped_sentences']:,} sentences drawn by the design are not"
                     " reviewed in this data: the estimate holds if they were skipped at"
                     " random")  # fmt: skip
    if "f1" not in found:
        return [*lines, f"not yet: {found['why']}"]
    for run, entry in zip(runs, found["f1"], strict=True):
        low, high = entry["ci95"]
        lines.append(f"  {run}: F1 on the split {100 * entry['estimate']:.1f}"
                     f" [{100 * low:.1f}, {100 * high:.1f}]")  # fmt: skip
    best = runs[found["best"]]
    gaps = "; ".join(
        f"{runs[int(other)]} {100 * e['estimate']:+.1f} [{100 * e['ci95'][0]:+.1f},"
        f" {100 * e['ci95'][1]:+.1f}]"
        for other, e in found["against_best"].items()
    )
    for other in found.get("tied", []):
        lines.append(f"{runs[int(other)]} predicts {best}'s labels on every sentence: no review"
                     " tells them apart")  # fmt: skip
    if found["decided"]:
        lines.append(f"decided: {best} is best; ahead of each other run by (points): {gaps}")
    else:
        lines.append(
            f"not yet: {best} leads ({gaps} points behind it); about"
            f" {found['sentences_needed']:,} reviewed sentences would decide"
        )
    for run in found.get("changed_runs", []):
        lines.append(f"note: {run}'s predictions changed since the sample; the estimate is of"
                     " the predictions sampled from (kept in the manifest)")  # fmt: skip
    return lines


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
