"""A run's folder while it trains: ``config.json`` first, a checkpoint after each epoch
but the last (written to a temporary name, then renamed), and what ``--resume`` reads
back to continue to the same results."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from noisebench import runs
from noisebench.errors import InputError
from noisebench.resolve import Prepared

CHECKPOINT = "checkpoint"


def open_run_dir(prepared: Prepared, resume: bool, checkpoint_file: Path) -> None:
    """A fresh run folder with ``config.json`` (or the interrupted one, to resume)."""
    run_dir = prepared.run_dir
    if resume and not checkpoint_file.is_file():
        raise InputError(f"--resume: {run_dir} has no checkpoint to resume from")
    if not resume and run_dir.exists():
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
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "state": state,
        },
        temporary,
    )
    os.replace(temporary, path)


def load_checkpoint(path: Path, model, optimizer, schedule) -> dict:
    """Restore the weights, optimizer, schedule and torch generator; returns the state."""
    saved = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])
    torch.set_rng_state(saved["torch_rng"])
    return saved["state"]
