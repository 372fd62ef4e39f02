"""How far is simulated noise from real noise? CE on NoiseBench's variants, on their
profiles applied to the clean labels, and on plain entity noise at the same level.

    python benchmarks/real_noise_gap.py --epochs 2 --lr 1e-4 --out real-noise-gap.md

For each variant it trains CE three times on the same 5,885 sentences and the same recipe,
validating on labels as noisy as the training labels (NoiseBench's protocol):

- ``real``: ``noisebench:<variant>`` as it is;
- ``profile``: ``noisebench:clean`` corrupted with ``--profile noisebench:<variant>`` on
  train and validation;
- ``entity``: ``noisebench:clean`` corrupted with ``--noise entity`` at the rate whose
  entity noise level on train matches the variant's (found by bisection).

Each run scores the same test set (CleanCoNLL's in the exact build). Uses the exact build
when CleanCoNLL's files are cached (``noisebench sources fetch noisebench``), else the
offline build, and says which. Prints (and with ``--out`` writes) a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from noisebench.data import loading as data
from noisebench.data import noise, profiles, realnoise

VARIANTS = ("expert", "crowdbest", "crowd", "distant", "weak", "llm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--work", type=Path, default=Path("real-noise-gap"))
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--independent",
        action="store_true",
        help="also train on the profile with consistency removed (kappa 0): does it matter?",
    )
    args = parser.parse_args()
    build, _ = realnoise.available_build()
    rows = []
    for variant in args.variants.split(","):
        level = entity_noise_level(f"noisebench:{variant}")
        datasets = {
            "real": f"noisebench:{variant}",
            "profile": corrupt_with_profile(variant, args),
            "entity": corrupt_with_entity_noise(level, args),
        }
        if args.independent:
            datasets["independent"] = corrupt_with_profile(variant, args, independent=True)
        row = {"variant": variant, "level": level}
        for kind, spec in datasets.items():
            row[f"{kind}_level"] = entity_noise_level(spec)
            row[kind] = train_ce(spec, args)
            print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    clean = train_ce("noisebench:clean", args)
    table = render(rows, clean, build, args)
    print(table)
    if args.out:
        args.out.write_text(table)


def entity_noise_level(spec: str) -> float:
    """1 - entity F1 of the train split's tags against its clean_tags."""
    dataset = data.load(spec)["train"]
    names = data.label_names(dataset)
    tags, offsets = data.flat_tags(dataset)
    clean, _ = data.flat_tags(dataset, "clean_tags")
    gold, predicted, matched = noise._span_agreement(clean, tags, offsets, names)
    return 1 - 2 * matched / (gold + predicted)


def corrupt_with_profile(variant: str, args, independent: bool = False) -> str:
    profile = profiles.resolve(f"noisebench:{variant}")
    if independent:
        profile = profile | {"consistency": profile["consistency"] | {"kappa": 0.0}}
    config = noise.NoiseConfig(
        noise="profile",
        seed=args.seed,
        splits=("train", "validation"),
        profile=profile,
        profile_name=f"noisebench:{variant}",
    )
    out = args.work / "data" / (f"profile-{variant}" + ("-independent" if independent else ""))
    return str(noise.corrupt_to_directory("noisebench:clean", config, out, force=True).out)


def corrupt_with_entity_noise(level: float, args) -> str:
    clean = data.load("noisebench:clean")
    low, high = 0.0, 1.0
    for _ in range(12):  # bisection on the rate: the level grows with it
        rate = (low + high) / 2
        config = noise.NoiseConfig(noise="entity", rate=round(rate, 4), seed=args.seed)
        _, report = noise.corrupt(clean, config)
        if report.entity_noise_level < level:
            low = rate
        else:
            high = rate
    config = noise.NoiseConfig(
        noise="entity", rate=round(rate, 4), seed=args.seed, splits=("train", "validation")
    )
    out = args.work / "data" / f"entity-{rate:.4f}"
    return str(noise.corrupt_to_directory("noisebench:clean", config, out, force=True).out)


def train_ce(spec: str, args) -> dict:
    command = [
        sys.executable, "-m", "noisebench", "train", "--json", "--data", spec, "--loss", "ce",
        "--epochs", str(args.epochs), "--lr", repr(args.lr), "--seed", str(args.seed),
        "--model", args.model, "--runs-dir", str(args.work / "runs"), "--patience", "99",
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    results = json.loads(completed.stdout)
    test = results["splits"]["test"]
    return {"f1": 100 * test["f1"], "ece": test["ece"], "run": results["run_dir"]}


def render(rows: list[dict], clean: dict, build: str, args) -> str:
    kinds = [k for k in ("real", "profile", "independent", "entity") if k in rows[0]]
    lines = [
        f"CE, `{args.model}`, {args.epochs} epochs at lr {args.lr}, seed {args.seed};"
        f" NoiseBench {build} build, train/dev per NoiseBench (dev as noisy as train);"
        f" test F1 on the clean test set. Clean labels: {clean['f1']:.2f}.",
        "",
        "| variant | entity noise on train ("
        + " / ".join(kinds)
        + ") | "
        + " | ".join(f"{k} F1" for k in kinds)
        + " | "
        + " | ".join(f"{k} − real" for k in kinds[1:])
        + " |",
        "|---|---|" + "---:|" * (2 * len(kinds) - 1),
    ]
    for row in rows:
        levels = " / ".join(f"{100 * row[f'{k}_level']:.1f}" for k in kinds)
        scores = " | ".join(f"{row[k]['f1']:.2f}" for k in kinds)
        gaps = " | ".join(f"{row[k]['f1'] - row['real']['f1']:+.2f}" for k in kinds[1:])
        lines.append(f"| {row['variant']} | {levels} | {scores} | {gaps} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
