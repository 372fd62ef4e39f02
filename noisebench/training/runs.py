"""Run directories: naming, resolved config, ``results.json``, predictions, atomic writes.

A run lives in ``runs/<name>/`` with ``<name>`` =
``<dataset>-<noise><rate>-<loss>-q<q>-s<s>-seed<seed>-<hash8>``, the hash taken over the
fully resolved config. ``results.json`` is written last and atomically, so a run without
it is incomplete: sweeps rerun it, leaderboards skip it.

Files: ``config.json`` (resolved config, library versions, git commit when known),
``log.jsonl`` (per step: epoch, step, loss, lr), ``predictions-<split>.parquet`` (one row
per sentence: tokens, gold, pred, confidence and probs per word; label names in the
schema metadata), ``results.json``, ``reliability-<split>.png``, ``checkpoint/`` while
training, ``model/`` with ``--save-model``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from noisebench._version import __version__
from noisebench.atomic import write_bytes_atomic, write_text_atomic
from noisebench.errors import InputError

SCHEMA_VERSION = 1
# A CE start over the first 10% of steps (train --loss-warmup): on the quick preset's budget
# it rescued GCE and SGCE from the all-O solution on clean labels and never cost F1.
DEFAULT_LOSS_WARMUP = 0.1
RESULTS = "results.json"
CHECKPOINT = "checkpoint"  # a checkpoint per epoch while the run trains
CONFIG = "config.json"
LOG = "log.jsonl"
METADATA_KEY = b"noisebench"


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]


def run_name(config: dict, dataset: str) -> str:
    """``conll2003-uniform0.40-sgce-q0.8-s0.1-seed0-1a2b3c4d`` (``given`` where the run
    trains on the dataset's own labels, whether clean or real noise: no ``--rate``, or rate
    0; ``matrix-<file>`` and ``profile-<name>`` for those noises; ``-span0.1`` with span
    smoothing and ``-mask-missing`` where a ``--method`` is used, before the seed)."""
    if config.get("matrix"):
        return _name(config, dataset, f"matrix-{_stem(config['matrix'])}")
    if config.get("noise_profile"):
        return _name(config, dataset, f"profile-{_stem(config['noise_profile'])}")
    rate = config.get("rate")
    return _name(config, dataset, "given" if not rate else f"{config['noise']}{rate:.2f}")


def _stem(spec: str) -> str:
    """``flips.json`` -> ``flips``, ``noisebench:crowd`` -> ``noisebench-crowd``."""
    return Path(spec.replace(":", "-")).stem


def legacy_run_name(config: dict, dataset: str) -> str:
    """The name the same run had before its noise was named ``given``: ``clean`` without
    ``--rate``, ``uniform0.00`` (its noise model) at rate 0; the hash is the same."""
    rate = config.get("rate")
    return _name(config, dataset, "clean" if rate is None else f"{config['noise']}{rate:.2f}")


def run_dir(runs_dir: Path, config: dict, dataset: str) -> Path:
    """Where a run lives: its folder under the current name, or the folder an earlier
    version made for the same run (same hash) where only that one exists and it finished
    or holds a checkpoint, so those runs are found, not trained again."""
    current = Path(runs_dir) / run_name(config, dataset)
    legacy = Path(runs_dir) / legacy_run_name(config, dataset)
    started = (legacy / RESULTS).is_file() or (legacy / CHECKPOINT).is_dir()
    return legacy if legacy != current and started and not current.exists() else current


def _name(config: dict, dataset: str, noise: str) -> str:
    q = "" if config.get("q") is None else f"-q{config['q']:g}"
    s = "" if config.get("s") is None else f"-s{config['s']:g}"
    method = f"-{config['method']}" if config.get("method", "none") != "none" else ""
    if config.get("mask_cutoff") is not None:
        method += f"-cut{config['mask_cutoff']:g}"
    if config.get("mask_reading") is not None:
        method += f"-{config['mask_reading']}"
    span = ""
    if config.get("span_smoothing"):
        distance = config.get("span_distance", 1)
        span = f"-span{config['span_smoothing']:g}" + (f"d{distance}" if distance != 1 else "")
    return (
        f"{dataset}-{noise}-{config['loss']}{q}{s}{span}{method}-seed{config['seed']}"
        f"-{config_hash(config)}"
    )


def write_json(path: Path, document: dict) -> None:
    write_text_atomic(path, json.dumps(document, indent=2) + "\n")


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def is_complete(run_dir: Path) -> bool:
    results = read_json(Path(run_dir) / RESULTS)
    return results is not None and results.get("schema_version") == SCHEMA_VERSION


def library_versions() -> dict:
    import datasets
    import torch
    import transformers

    return {
        "noisebench": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "numpy": np.__version__,
    }


def hardware(device) -> dict:
    """What the arithmetic ran on: the processor (the GPU's name on CUDA; else the CPU's
    model, with the device's kind where it is not the CPU, such as ``(mps)``) and the CPU
    threads. Runs that differ in either differ in the order of their additions (across
    devices, in their kernels too), which re-draws a run about as much as a new seed
    (docs/performance.md). A resumed run records the hardware that finished it."""
    import platform

    import torch

    kind = torch.device(device).type
    if kind == "cuda" and torch.cuda.is_available():
        return {"processor": torch.cuda.get_device_name(torch.device(device)),
                "threads": torch.get_num_threads()}  # fmt: skip
    processor = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                processor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if kind != "cpu":
        processor = f"{processor} ({kind})"
    return {"processor": processor, "threads": torch.get_num_threads()}


def git_commit() -> str | None:
    """The commit of the noisebench checkout, when it is one."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() or None if completed.returncode == 0 else None


@dataclass
class Predictions:
    """Word-level predictions of one split: flat arrays plus sentence offsets.

    ``probs`` is (W, C) float32; a word the model never saw (cut by ``max_length``) has a
    row of NaN, is predicted ``O`` and is left out of the calibration scores.
    """

    labels: list[str]
    tokens: list[list[str]]
    gold: np.ndarray  # (W,) label ids
    probs: np.ndarray  # (W, C) float32
    offsets: np.ndarray  # (S + 1,)
    # where the split has reviewed sentences (review merge): which (S,), and the reviewed
    # labels (W,; the given ones elsewhere, never read there)
    reviewed: np.ndarray | None = None
    reviewed_gold: np.ndarray | None = None
    # a designed review's (S,) weight and stratum of each reviewed sentence
    # (data.ReviewSample; 0 elsewhere; None: the reviewed sentences weigh the same):
    # reviewed_part's weights
    review_weights: np.ndarray | None = None
    review_strata: np.ndarray | None = None
    # (S,) the weight and stratum these sentences are scored with (a reviewed part of a
    # designed review, or a split of its sentences alone); None: all weigh 1
    weights: np.ndarray | None = None
    strata: np.ndarray | None = None
    # the review scored against: its fingerprint (data.loading.review_fingerprint), the
    # reviewed sentences left out as not drawn at random, whether draws were recorded
    review: dict | None = None

    @property
    def scored(self) -> np.ndarray:
        return ~np.isnan(self.probs[:, 0]) if len(self.probs) else np.zeros(0, dtype=bool)

    @property
    def predicted(self) -> np.ndarray:
        outside = self.labels.index("O") if "O" in self.labels else 0
        safe = np.where(self.scored[:, None], self.probs, -1.0)
        return np.where(self.scored, safe.argmax(axis=1), outside) if len(self.probs) else safe

    def reviewed_part(self) -> Predictions | None:
        """The reviewed sentences alone, scored against their reviewed labels (None where
        the split has none)."""
        if self.reviewed is None or not self.reviewed.any():
            return None
        rows = np.flatnonzero(self.reviewed)
        words = np.concatenate(
            [np.arange(self.offsets[r], self.offsets[r + 1]) for r in rows]
        ).astype(np.int64)
        counts = np.diff(self.offsets)[rows]
        designed = self.review_weights is not None
        return Predictions(
            labels=self.labels,
            tokens=[self.tokens[r] for r in rows],
            gold=self.reviewed_gold[words],
            probs=self.probs[words],
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            weights=self.review_weights[rows] if designed else None,
            strata=self.review_strata[rows] if designed else None,
        )

    def word_weights(self) -> np.ndarray | None:
        """Each scored word's weight, its sentence's (None without a design): in the order
        of ``probs[scored]``, as the calibration scores take them."""
        if self.weights is None:
            return None
        return np.repeat(self.weights, np.diff(self.offsets)).astype(np.float64)[self.scored]

    def sentences(self, ids: np.ndarray) -> list[list[str]]:
        names = np.array(self.labels, dtype=object)[ids]
        return [
            names[a:b].tolist() for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)
        ]


def write_predictions(path: Path, predictions: Predictions) -> None:
    import pyarrow.parquet as pq

    offsets = pa.array(predictions.offsets.astype(np.int32))
    names = np.array(predictions.labels, dtype=object)
    confidence = predictions.probs.max(axis=1).astype(np.float32)  # NaN rows stay NaN
    num_classes = len(predictions.labels)
    probs = pa.FixedSizeListArray.from_arrays(
        pa.array(predictions.probs.astype(np.float32).reshape(-1)), num_classes
    )
    table = pa.table(
        {
            "tokens": pa.array(predictions.tokens, type=pa.list_(pa.string())),
            "gold": pa.ListArray.from_arrays(offsets, pa.array(names[predictions.gold].tolist())),
            "pred": pa.ListArray.from_arrays(
                offsets, pa.array(names[predictions.predicted].tolist(), type=pa.string())
            ),
            "confidence": pa.ListArray.from_arrays(offsets, pa.array(confidence)),
            "probs": pa.ListArray.from_arrays(offsets, probs),
        }
    )
    if predictions.reviewed is not None:
        reviewed_gold = names[predictions.reviewed_gold].tolist()
        table = table.append_column("reviewed", pa.array(predictions.reviewed, type=pa.bool_()))
        table = table.append_column(
            "reviewed_gold", pa.ListArray.from_arrays(offsets, pa.array(reviewed_gold))
        )
    designs = (("review_", predictions.review_weights, predictions.review_strata),
               ("", predictions.weights, predictions.strata))  # fmt: skip
    for prefix, weights, strata in designs:  # a designed review's weights and strata
        if weights is not None:
            table = table.append_column(f"{prefix}weight", pa.array(weights, pa.float64()))
            table = table.append_column(f"{prefix}stratum", pa.array(strata, pa.int32()))
    metadata = json.dumps(
        {"labels": predictions.labels, "schema_version": SCHEMA_VERSION}
        | ({"review": predictions.review} if predictions.review is not None else {})
    )
    table = table.replace_schema_metadata({METADATA_KEY: metadata.encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_bytes_atomic(path, sink.getvalue().to_pybytes())


def read_predictions(path: Path) -> Predictions:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        metadata = json.loads(table.schema.metadata[METADATA_KEY])
        labels = metadata["labels"]
    except (OSError, KeyError, TypeError, ValueError, pa.ArrowException) as error:
        raise InputError(f"{path}: not a noisebench predictions file ({error})") from None
    gold_column = table.column("gold").combine_chunks()
    index = {name: i for i, name in enumerate(labels)}
    gold = np.array([index[g] for g in gold_column.values.to_pylist()], dtype=np.int64)
    probs_column = table.column("probs").combine_chunks()
    probs = np.asarray(probs_column.values.values, dtype=np.float32).reshape(-1, len(labels))
    reviewed = reviewed_gold = None
    if "reviewed" in table.column_names:
        reviewed = np.asarray(table.column("reviewed").to_pylist(), dtype=bool)
        names = table.column("reviewed_gold").combine_chunks().values.to_pylist()
        reviewed_gold = np.array([index[name] for name in names], dtype=np.int64)

    def design(prefix: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        if f"{prefix}weight" not in table.column_names:
            return None, None
        weights = table.column(f"{prefix}weight").to_numpy()
        strata = table.column(f"{prefix}stratum").to_numpy()
        return np.asarray(weights, dtype=np.float64), np.asarray(strata, dtype=np.int64)

    review_weights, review_strata = design("review_")
    weights, strata = design("")
    return Predictions(
        labels=labels,
        tokens=table.column("tokens").to_pylist(),
        gold=gold,
        probs=probs,
        offsets=np.asarray(gold_column.offsets, dtype=np.int64),
        reviewed=reviewed,
        reviewed_gold=reviewed_gold,
        review=metadata.get("review"),
        review_weights=review_weights,
        review_strata=review_strata,
        weights=weights,
        strata=strata,
    )
