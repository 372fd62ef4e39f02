"""A run's peak memory, in MiB (2**20 bytes), and what the figure covers.

On CUDA: the memory torch allocated on the run's device since the run started. On CPU:
the peak resident set of the process. On Linux the kernel's peak is reset when the run
starts (``/proc/self/clear_refs``), so a run trained inside a sweep's process reports
its own peak; where that cannot be done the figure is the whole process's peak so far,
and ``peak_memory_scope`` says so.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

PROC = Path("/proc/self")


def reset_peak(device: torch.device) -> str:
    """Start counting the peak now; returns the scope the figure will have: "run" or
    "process" (the peak of the process so far could not be reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return "run"
    try:
        (PROC / "clear_refs").write_text("5")  # resets VmHWM, the peak resident set
    except OSError:
        return "process"
    return "run" if _vm_hwm_bytes() is not None else "process"


def peak_mib(device: torch.device) -> float:
    """The peak since ``reset_peak`` (or the process's), in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    resident = _vm_hwm_bytes()
    if resident is None:
        resident = max_rss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return resident / 2**20


def max_rss_bytes(ru_maxrss: int, platform: str = sys.platform) -> int:
    """``ru_maxrss`` in bytes: the kernel gives kibibytes on Linux, bytes on macOS.

    >>> max_rss_bytes(1024, "linux"), max_rss_bytes(1024, "darwin")
    (1048576, 1024)
    """
    return ru_maxrss if platform == "darwin" else ru_maxrss * 1024


def _vm_hwm_bytes() -> int | None:
    """The process's peak resident set from ``/proc/self/status`` (Linux), or None."""
    try:
        lines = (PROC / "status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # "VmHWM:   808744 kB"
    return None
