"""Data commands: corrupt a dataset, profile a noise."""

from __future__ import annotations

from collections import Counter
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
from noisebench.errors import InputError


@app.command(rich_help_panel="Data")
def corrupt(
    dataset: options.DatasetArgument = None,
    data_option: options.DataOption = None,
    rate: Annotated[float | None, typer.Option(help="Noise rate, a probability in [0, 1].")] = None,
    noise: options.Noise = None,
    matrix: options.Matrix = None,
    entity_mix: options.EntityMix = None,
    profile: options.Profile = None,
    splits: Annotated[str, typer.Option(help="Comma-separated splits to corrupt.")] = "train",
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output folder (default: data/DATASET-NOISE-RATE-seedSEED)."
        ),
    ] = None,
    token_column: options.TokenColumn = None,
    tag_column: options.TagColumn = None,
    labels: options.Labels = None,
    force: Annotated[bool, typer.Option(help="Replace a different existing output.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Inject label noise at a controlled rate; write Parquet and a noise report.

    Example: [bold]noisebench corrupt --rate 0.4[/]  (CoNLL-2003, uniform noise on train),
    or real crowd noise carried to another dataset:
    [bold]noisebench corrupt data/ --profile noisebench:crowd[/]
    """
    with bad_input_exits():
        from noisebench.data import loading as data
        from noisebench.data import noise as noise_models

        dataset = options.dataset(dataset, data_option)
        config = noise_models.noise_config(
            noise, rate, seed, split_list(splits) or (), matrix, entity_mix, profile
        )
        columns = data.Columns(token_column, tag_column, split_list(labels))
        with stderr.status(f"corrupting {dataset} ({config.noise} noise)…"):
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


@app.command(rich_help_panel="Data")
def profile(
    noisy: Annotated[
        str | None,
        typer.Argument(
            help="Noisy labels (or --data): a dataset with tags and clean_tags (a corrupted"
            " folder, noisebench:<variant>), or any dataset when CLEAN is given.",
            show_default=False,
        ),
    ] = None,
    clean: Annotated[
        str | None,
        typer.Argument(
            help="Clean labels over the same words (or --clean; default: NOISY's clean_tags).",
            show_default=False,
        ),
    ] = None,
    data_option: options.DataOption = None,
    clean_data: Annotated[
        str | None, typer.Option("--clean", help="As CLEAN.", show_default=False)
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the profile as JSON here.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Measure what a label noise is made of, entity by entity, as a reusable profile.

    Example: [bold]noisebench profile noisebench:crowd -o crowd.json[/], then
    [bold]noisebench corrupt my-data/ --profile crowd.json[/]
    """
    from noisebench.data import profiles

    with bad_input_exits():
        noisy = options.dataset(noisy, data_option, default=None)
        clean = options.dataset(clean, clean_data, default=None)
        if noisy is None:
            raise InputError("name the noisy labels: noisebench profile NOISY [CLEAN]")
        with stderr.status(f"profiling {noisy}…"):
            pair, origin = profiles.pair_from(noisy, clean)
            learned = profiles.learn(pair, origin)
        if out is not None:
            profiles.write(learned, out)
    if json_output:
        print_json(learned)
        return
    for renderable in profile_report(learned):
        stdout.print(renderable, soft_wrap=True)
    if learned["source"].get("reviewed_designed"):
        stderr.print(
            "note: the reviewed sentences of a designed review (review sample --compare) are"
            " weighted by their design: the rates are estimates of the split's",
            soft_wrap=True,
        )
    if left_out := learned["source"].get("reviewed_left_out"):
        stderr.print(
            f"note: {left_out:,} reviewed sentences chosen for a reason (detect's list,"
            " --compare) are left out: the profile is learned from the randomly drawn ones",
            soft_wrap=True,
        )
    if out is not None:
        stdout.print(
            f"Wrote [bold]{out}[/]; apply it with [bold]noisebench corrupt DATA --profile {out}[/]",
            soft_wrap=True,
        )


def profile_report(learned: dict) -> list:
    """Tables and lines that show a profile."""
    source = learned["source"]
    return [
        f"Noise profile of {source.get('noisy')} against {source.get('clean')}"
        f" ({', '.join(source.get('splits', []))}): {learned['sentences']:,} sentences,"
        f" {learned['words']:,} words, {learned['entities']:,} gold entities",
        f"Entity noise level {learned['entity_noise_level']:.4f} (1 − entity F1 of noisy"
        f" against clean); token error rate {learned['token_error_rate']:.4f}",
        _outcomes_table(learned),
        _retype_table(learned["retype"]),
        _boundary_line(learned),
        _spurious_line(learned),
        _consistency_line(learned["consistency"]),
        *_interval_lines(learned.get("intervals")),
    ]


def _interval_lines(intervals: dict | None) -> list[str]:
    """A profile learned from reviewed sentences: its rates' 95% bootstrap intervals."""
    if intervals is None:
        return []
    outcomes = ", ".join(
        f"{kind} [{low:.1%}, {high:.1%}]" for kind, (low, high) in intervals["outcomes"].items()
    )
    low, high = intervals["spurious_per_sentence"]
    return [
        f"On {intervals['sentences']:,} reviewed sentences, 95% bootstrap intervals"
        f" ({intervals['replicates']} replicates over sentences): {outcomes}; spurious"
        f" entities per sentence [{low:.3f}, {high:.3f}]"
    ]


def _outcomes_table(learned: dict) -> Table:
    summary = learned["summary"]
    table = Table(title="What happened to each gold entity (shares)")
    for column in ("by", "entities", *OUTCOME_COLUMNS):
        table.add_column(column, justify="left" if column == "by" else "right")
    table.add_row("all", f"{learned['entities']:,}", *_shares(summary["outcomes"]))
    for group, rows in (("type", summary["by_type"]), ("length", summary["by_length"])):
        for key, row in rows.items():
            label = f"{key} word{'s' if key != '1' else ''}" if group == "length" else key
            table.add_row(label, f"{row['entities']:,}", *_shares(row))
    return table


def _retype_table(retyped: dict) -> Table:
    retype = Table(title="Retyped entities: gold type → noisy type (counts)")
    types = sorted({t for row in retyped.values() for t in row} | set(retyped))
    retype.add_column("gold")
    for t in types:
        retype.add_column(t, justify="right")
    for gold, row in retyped.items():
        retype.add_row(gold, *(f"{row.get(t, 0):,}" if t != gold else "·" for t in types))
    return retype


def _boundary_line(learned: dict) -> str:
    boundary = learned["summary"]["boundary"]
    move_counts: Counter = Counter()
    for move in learned["boundary"]:
        move_counts[(move["left"], move["right"], move["pieces"])] += move["count"]
    moves = ", ".join(
        f"{left:+d}/{right:+d}" + (f" in {pieces} pieces" if pieces > 1 else "") + f" ({n:,})"
        for (left, right, pieces), n in move_counts.most_common(5)
    )
    return (
        f"Boundary errors: left edge grown {boundary['grown_left']:.0%} / shrunk"
        f" {boundary['shrunk_left']:.0%}, right edge grown {boundary['grown_right']:.0%} /"
        f" shrunk {boundary['shrunk_right']:.0%}, split {boundary['split']:.0%}, new type"
        f" {boundary['type_changed']:.0%}, {boundary['mean_words_moved']:.2f} words moved on"
        f" average; most common moves (left/right edge shift): {moves or 'none'}"
    )


def _spurious_line(learned: dict) -> str:
    summary, spurious = learned["summary"], learned["spurious"]
    return (
        f"Spurious entities: {summary['spurious_per_sentence']:.3f} per sentence"
        f" ({summary['spurious_per_entity']:.1%} of the gold count); types "
        + (", ".join(f"{t} {n:,}" for t, n in spurious["types"].items()) or "none")
        + "; lengths "
        + (", ".join(f"{k} word(s) {n:,}" for k, n in spurious["lengths"].items()) or "none")
    )


def _consistency_line(consistency: dict) -> str:
    kappa = consistency["kappa"]
    verdict = (
        "systematic"
        if kappa >= 0.5
        else "partly systematic"
        if kappa >= 0.2
        else "mostly independent of the surface form"
    )
    return (
        f"Consistency: {consistency['repeated_forms']:,} surface forms occur more than once;"
        f" two occurrences share their outcome {consistency['pair_agreement']:.1%} of the"
        f" time ({consistency['pair_agreement_if_independent']:.1%} if independent):"
        f" kappa {kappa:.2f}, {verdict}"
    )


OUTCOME_COLUMNS = ("kept", "missed", "retyped", "boundary")


def _shares(rates: dict) -> list[str]:
    return [f"{rates[outcome]:.1%}" for outcome in OUTCOME_COLUMNS]


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
    for split, counts in report.splits.items():
        if reviewed := counts.get("reviewed"):
            entity = reviewed.get("entity_noise_level")
            lines.append(
                f"{split}, on {reviewed['sentences']:,} reviewed sentences against their reviewed"
                f" labels (the given noise and the added): token error rate"
                f" {reviewed['realised_token_error_rate']:.4f}"
                + ("" if entity is None else f", entity noise level {entity:.4f}")
                + (f" ({reviewed['left_out']:,} reviewed sentences chosen for a reason left out)"
                   if reviewed.get("left_out") else "")
                + (" (a designed review's sentences, weighted by their design)"
                   if reviewed.get("designed") else "")
            )  # fmt: skip
    lines += [f"Note: {note}" for note in report.notes]
    return lines
