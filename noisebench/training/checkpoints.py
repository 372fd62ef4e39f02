"""A run's folder while it trains: ``config.json`` first, a checkpoint after each epoch
but the last (written to a temporary name, then renamed), and what ``--resume`` reads
back to continue to the same results."""

from __future__ import annotations

import os
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from noisebench.errors import InputError
from noisebench.training import runs
from noisebench.training.prepare import Prepared


def open_run_dir(prepared: Prepared, resume: bool, checkpoint_file: Path) -> None:
    """A fresh run folder with ``config.json`` (or the interrupted one, to resume).

    An incomplete earlier attempt in the folder is removed; a finished run (one with
    ``results.json``: its results, predictions, saved ``model/``) never is: training
    over it is refused, one line, and nothing is touched."""
    run_dir = prepared.run_dir
    if resume and not checkpoint_file.is_file():
        raise InputError(f"--resume: {run_dir} has no checkpoint to resume from")
    if not resume and run_dir.exists():
        if (run_dir / runs.RESULTS).exists():
            raise InputError(
                f"{run_dir}: holds a finished run ({runs.RESULTS}); refusing to replace it"
                " (delete the folder yourself to train it again)"
            )
        shutil.rmtree(run_dir)  # an incomplete earlier attempt: start over
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.write_json(
        run_dir / runs.CONFIG,
        {
            "config": prepared.config.identity(),
            "run": run_dir.name,
            "model_path": prepared.model_path,
            "device": str(prepared.device),
            "versions": runs.library_versions(),
            "git_commit": runs.git_commit(),
        },
    )


def initial_state() -> dict:
    return {
        "epoch": 0,
        "step": 0,
        "best_f1": -1.0,
        "best_epoch": 0,
        "best_model": None,
        "history": [],
        "seconds": 0.0,
        "sentences": 0,
        "tokens": 0,
        "stale_epochs": 0,
    }


def save_checkpoint(path: Path, model, optimizer, schedule, state: dict) -> None:
    """Weights, optimizer, schedule, every random generator the loop draws from (the CPU's
    and, where CUDA is in use, the run's GPU's) and the loop's state, as tensors and plain
    values only: ``load_checkpoint`` unpickles nothing else."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "torch_rng": torch.get_rng_state(),
            # the run's GPU (the current device): resumable on another machine's GPU
            "cuda_rng": [torch.cuda.get_rng_state()] if torch.cuda.is_initialized() else [],
            "state": plain(state),
        },
        temporary,
    )
    os.replace(temporary, path)


def load_checkpoint(path: Path, model, optimizer, schedule) -> dict:
    """Restore the weights, optimizer, schedule and random generators; returns the state.

    Run folders are shared (CI artefacts, a colleague's ``runs/``), so the file is read
    with ``weights_only=True``: a checkpoint that holds anything but tensors and plain
    values (a crafted pickle) is refused, never run."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        named = found.group(1) if found else ""
        cause = (
            "numpy arrays: made by an older noisebench"
            if named.startswith("numpy")
            else f"it names {named}"
            if named
            else "not a checkpoint"
        )
        raise InputError(
            f"{path}: refused: holds more than tensors and plain values ({cause}); "
            "delete its checkpoint/ folder to train from the start"
        ) from None
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])
    torch.set_rng_state(saved["torch_rng"])
    cuda_states = saved.get("cuda_rng") or []
    if cuda_states:
        if not torch.cuda.is_available():
            raise InputError(f"{path}: saved on a GPU; resume it where one is visible")
        torch.cuda.set_rng_state(cuda_states[0])
    return saved["state"]


def plain(value):
    """``value`` with numpy arrays as tensors and numpy scalars as Python numbers, so
    that ``torch.load(weights_only=True)`` reads it back.

    >>> plain({"a": np.float32(0.5), "b": [np.arange(2)], "c": (1, "x")})
    {'a': 0.5, 'b': [tensor([0, 1])], 'c': (1, 'x')}
    """
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(item) for item in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    return value
