"""The number format of a run's matrix products (``--precision auto|fp32|bf16``).

``bf16`` runs the model's forward pass under bfloat16 autocast; the loss, the softmax,
the probabilities saved and every score stay in fp32. ``auto`` takes bf16 where the
device multiplies it natively (CUDA, as always; a CPU with AVX512-BF16 or AMX, where a
matrix product takes about half the fp32 time) and fp32 elsewhere.

The resolved precision names the run, but runs from before ``--precision`` keep their
names: those trained in fp32 on CPU and in bf16 on CUDA, the device's *usual* precision,
which a config records as ``None`` (``settle``). A leaderboard reads a run's precision
with ``of_results``, so runs of different precisions never pool.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING

from noisebench.errors import InputError

if TYPE_CHECKING:
    import torch

    from noisebench.training.config import TrainConfig

PRECISIONS = ("auto", "fp32", "bf16")
# what each device used before --precision (the runs' names mean it where none is given)
USUAL = {"cpu": "fp32", "cuda": "bf16"}
# the CPU capabilities (torch.cpu.get_capabilities) that multiply bf16 natively
NATIVE_CPU_BF16 = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 natively (not by converting to fp32)."""
    import torch  # (not at import: the config imports this module, and --help needs no torch)

    if device.type == "cuda":
        return True
    capabilities = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return any(capabilities.get(name) for name in NATIVE_CPU_BF16)


def resolve_precision(requested: str | None, device: torch.device) -> str:
    """``fp32`` or ``bf16``: ``auto`` as the device multiplies best, ``None`` (a run from
    before ``--precision``, or one settled to its device's usual) as ``USUAL``."""
    if requested is None:
        return USUAL.get(device.type, "fp32")
    if requested == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if requested not in PRECISIONS:
        raise InputError(f"--precision {requested!r}: choose one of {', '.join(PRECISIONS)}")
    return requested


def settle(config: TrainConfig, device: torch.device) -> TrainConfig:
    """``config`` with its precision as its run's name records it: ``None`` where it
    resolves to the device's usual one (older runs' names stay), else ``fp32``/``bf16``."""
    resolved = resolve_precision(config.precision, device)
    return replace(config, precision=None if resolved == USUAL.get(device.type) else resolved)


def slow_note(requested: str | None, device: torch.device) -> str | None:
    """A one-line warning where bf16 is asked for on a processor that only emulates it."""
    if requested == "bf16" and not native_bf16(device):
        return (
            "--precision bf16: this processor has no native bfloat16 (AVX512-BF16 or AMX);"
            " torch emulates it, slower than fp32 (--precision auto uses fp32 here)"
        )
    return None


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context of a forward pass in ``precision`` (``resolve_precision``'s answer)."""
    import torch

    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def of_results(results: dict) -> str:
    """The precision a finished run computed in: as it recorded it, else its device's
    usual (runs from before ``--precision``).

    >>> of_results({"config": {}, "train": {"device": "cuda:0"}})
    'bf16'
    """
    stated = results.get("train", {}).get("precision") or results.get("config", {}).get("precision")
    if stated:
        return stated
    device = str(results.get("train", {}).get("device", "cpu")).split(":")[0]
    return USUAL.get(device, "fp32")
