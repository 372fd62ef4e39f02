"""Run claims: sweeps started on one runs folder divide its runs instead of training each.

    noisebench sweep --preset study --runs-dir /shared/runs   # the same, on each machine

Before a sweep trains a run it claims it: ``<runs>/.<run>.claim`` is created atomically
(``O_CREAT | O_EXCL``, atomic on local disks and on NFS v3 and later) holding the
claimant's host, pid and start time. A sweep that finds a live claim leaves the run to its
holder. The holder touches the file every ``HEARTBEAT_SECONDS`` while the run trains (its
modification time is the heartbeat) and removes it once the run has finished or failed.

A claim is stale, and the next sweep to reach the run takes it over, when

- its heartbeat is older than ``STALE_AFTER_SECONDS``, wherever it was made: its process
  is gone or stopped (a crashed machine, a killed job); the machines' clocks need to agree
  within a few minutes;
- or it was made on this machine (the same host name and pid namespace) by a process that
  no longer exists: taken over at once.

A live claim of another machine is left to it; deleting its file hands the run to the
next sweep that reaches it. Sweeps that find one stale claim at once race to take it
over: one of them wins (``_take_over``), the others see its new claim. The claim lives
beside the run's folder, not in it, because a run that starts afresh replaces its folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

HEARTBEAT_SECONDS = 60.0
STALE_AFTER_SECONDS = 600.0  # ten missed heartbeats


@dataclass(frozen=True)
class Claim:
    """A claim file as read: who made it (None where it could not be read, e.g. in the
    instant between its creation and its content) and its heartbeat (modification time)."""

    path: Path
    host: str | None
    pid: int | None
    pid_namespace: str | None  # /proc/self/ns/pid of the claimant, where there is one
    started: str | None  # ISO 8601, UTC
    token: str | None  # tells this claim from a later one of the same run
    heartbeat: float  # seconds since the epoch

    def describe(self) -> str:
        """``host, pid N`` as the sweep reports a run running elsewhere."""
        return f"{self.host or 'unknown host'}, pid {self.pid if self.pid is not None else '?'}"


class HeldElsewhere(Exception):
    """A live claim of another process holds the run."""

    def __init__(self, holder: Claim) -> None:
        super().__init__(f"{holder.path}: held by {holder.describe()}")
        self.holder = holder


def claim_file(run_dir: Path) -> Path:
    """Where ``run_dir``'s claim lives: beside it, hidden (``runs/.<run>.claim``)."""
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.claim"


def read(run_dir: Path) -> Claim | None:
    """``run_dir``'s claim, or None where it has none."""
    return _read(claim_file(run_dir))


def take(run_dir: Path) -> Claim:
    """Claim ``run_dir`` for this process, taking a stale claim over; raises
    ``HeldElsewhere`` (naming the holder) where a live claim holds it."""
    path = claim_file(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        mine = _create(path, Path(run_dir).name)
        if mine is not None:
            return mine
        holder = _read(path)
        if holder is None:
            continue  # released in the meantime: try again
        if not is_stale(holder) or not _take_over(path, holder):
            raise HeldElsewhere(holder)


def is_stale(claim: Claim, now: float | None = None) -> bool:
    """Whether ``claim`` may be taken over: its heartbeat is older than
    ``STALE_AFTER_SECONDS``, or it was made on this machine by a process that is gone."""
    now = time.time() if now is None else now
    if now - claim.heartbeat > STALE_AFTER_SECONDS:
        return True
    if claim.pid is None or (claim.host, claim.pid_namespace) != (_HOST, _pid_namespace()):
        return False  # another machine's claim: only its heartbeat tells
    return not _alive(claim.pid)


def release(claim: Claim) -> None:
    """Remove ``claim``'s file, where it still holds this claim."""
    current = _read(claim.path)
    if current is not None and current.token == claim.token:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(claim.path)


@contextlib.contextmanager
def kept(claim: Claim) -> Iterator[Claim]:
    """Hold ``claim`` while the block runs (a thread beats its heartbeat), and release it
    after, whether the block finished, failed or was interrupted."""
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(claim, stop), daemon=True)
    beat.start()
    try:
        yield claim
    finally:
        stop.set()
        beat.join()
        release(claim)


_HOST = socket.gethostname()


def _beat(claim: Claim, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        with contextlib.suppress(OSError):  # gone: nothing to beat (release says whose it is)
            os.utime(claim.path)


def _create(path: Path, run: str) -> Claim | None:
    """A new claim at ``path`` (created exclusively), or None where a claim is there."""
    holder = {
        "host": _HOST,
        "pid": os.getpid(),
        "pid_namespace": _pid_namespace(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "token": uuid.uuid4().hex,
    }
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return None
    try:
        with os.fdopen(descriptor, "w") as file:
            json.dump({"run": run, **holder}, file)
    except BaseException:
        os.unlink(path)
        raise
    return Claim(path, **holder, heartbeat=path.stat().st_mtime)


def _read(path: Path) -> Claim | None:
    try:
        heartbeat = path.stat().st_mtime
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        document = {}
    if not isinstance(document, dict):
        document = {}
    pid = document.get("pid")
    return Claim(
        path,
        document.get("host"),
        pid if isinstance(pid, int) and pid > 0 else None,
        document.get("pid_namespace"),
        document.get("started"),
        document.get("token"),
        heartbeat,
    )


def _take_over(path: Path, stale: Claim) -> bool:
    """Remove the claim judged ``stale``, unless another sweep is taking it over (False).

    Takers race: the one that creates a marker named after this very claim (its token and
    heartbeat) exclusively removes it, and only where it is still that claim, so no taker
    ever removes the new claim another made after judging. A marker older than a
    heartbeat is left from a taker that died in between, and removed."""
    marker = path.with_name(f"{path.name}.{_identity(stale)}.takeover")
    try:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        with contextlib.suppress(FileNotFoundError):
            if time.time() - marker.stat().st_mtime > HEARTBEAT_SECONDS:
                os.unlink(marker)
        return False
    try:
        current = _read(path)
        if current is not None and _identity(current) == _identity(stale):
            os.unlink(path)
    finally:
        os.unlink(marker)
    return True


def _identity(claim: Claim) -> str:
    """Tells a claim from any later one of the same run, and from itself once beaten again."""
    return f"{claim.token}-{claim.heartbeat:.9f}"


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) ends the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
