"""Running a sweep's plan: each dataset corrupted once, then every run not yet done.

Every run is a ``noisebench train``: one after another in the sweep's own process where
runs go one at a time (no GPUs to share), else each in a process of its own, as many at
once as the GPUs' memory and the cores allow, or each in a Ray task. A run that fails is
recorded and the others go on; Ctrl-C stops the children without a half-written run.

Each run is trained under a claim (``studies.claims``) taken where it starts, so sweeps
started on one runs folder (several terminals, CI jobs or machines sharing a disk) divide
its runs: a run another sweep holds is left to it, and once a sweep has trained the runs
it claimed it waits for those, training any whose claim ends without results itself, so
that every sweep ends with the whole grid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from noisebench.errors import InputError
from noisebench.studies import claims
from noisebench.studies.sweep import (
    PlannedRun,
    SweepConfig,
    plan,
    run_status,
    train_command,
    unique_corruptions,
)
from noisebench.training import runs
from noisebench.training.prepare import corrupted_copy


@dataclass
class SweepOutcome:
    completed: list[Path] = field(default_factory=list)  # trained by this sweep
    skipped: list[Path] = field(default_factory=list)  # complete before it started
    elsewhere: list[Path] = field(default_factory=list)  # trained by another sweep meanwhile
    failed: list[tuple[Path, str]] = field(default_factory=list)
    held: list[PlannedRun] = field(default_factory=list)  # another sweep trains them now

    def degenerate(self) -> list[Path]:
        """Complete runs whose model learned nothing (``results.json`` says degenerate)."""
        found = []
        for run_dir in [*self.completed, *self.skipped, *self.elsewhere]:
            results = runs.read_json(run_dir / runs.RESULTS)
            if results and results.get("degenerate"):
                found.append(run_dir)
        return found


# A run's status as reported: "started", then "completed" or "failed" where this sweep
# trained it, or "running elsewhere (HOST, pid PID)" where another sweep holds it, then
# "completed elsewhere" (or, where that sweep left it unfinished, trained here after all).
Progress = Callable[[PlannedRun, str], None]
POLL_SECONDS = (1.0, 30.0)  # waiting for other sweeps' runs: the first and the longest pause


def run_sweep(config: SweepConfig, progress: Progress | None = None) -> SweepOutcome:
    """Corrupt each dataset once, train every run not yet done that no other sweep holds,
    then wait for those that another holds. A SIGTERM (``kill``, ``timeout``, a batch
    system's preemption) stops it as Ctrl-C does: children stopped, claims released."""
    with terminate_as_interrupt():
        return _run_sweep(config, progress)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises ``KeyboardInterrupt`` in the main thread while inside: the sweep's
    Ctrl-C path then stops its ``--jobs`` children, whose claims would otherwise go stale
    while they still train (and another sweep take the run over)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_sweep(config: SweepConfig, progress: Progress | None) -> SweepOutcome:
    planned = plan(config)
    outcome = SweepOutcome(skipped=[p.run_dir for p in planned if p.status == "done"])
    todo = [p for p in planned if p.status != "done"]
    for run in unique_corruptions(p.config for p in todo):
        corrupted_copy(run)
    report = progress or (lambda run, status: None)
    gpus = gpu_slots(config) if config.backend != "ray" else []  # one nvidia-smi query

    def train(items: list[PlannedRun]) -> None:
        if config.backend == "ray":
            _run_with_ray(config, items, outcome, report)
        elif len(gpus) == 1:
            _run_in_process(config, items, outcome, report, gpus[0])
        else:
            _run_locally(config, items, outcome, report, gpus)

    train(todo)
    pause = POLL_SECONDS[0]
    while outcome.held:
        time.sleep(pause)
        pause = min(2 * pause, POLL_SECONDS[1])
        free = _released(outcome, report)
        if free:
            train(free)
    return outcome


def _released(outcome: SweepOutcome, report: Progress) -> list[PlannedRun]:
    """Of the runs other sweeps held, record those now complete; return those whose claim
    ended without results (that sweep failed or was stopped), to train here."""
    held, outcome.held = outcome.held, []
    free = []
    for item in held:
        if run_status(item.run_dir) == "done":
            _record(item, None, "", outcome, report)
        elif (holder := claims.read(item.run_dir)) is None or claims.is_stale(holder):
            free.append(item)
        else:
            outcome.held.append(item)
    return free


def _attempt(
    item: PlannedRun, train: Callable[[PlannedRun], tuple[int, str]]
) -> tuple[PlannedRun, int | None, str]:
    """``train(item)`` under this process's claim on the run: (item, the return code, an
    error). The code is None where this process did not train it: another holds it (the
    message names the holder) or finished it since the plan."""
    try:
        claim = claims.take(item.run_dir)
    except claims.HeldElsewhere as held:
        return item, None, held.holder.describe()
    with claims.kept(claim):
        status = run_status(item.run_dir)  # as of now: no other sweep changes it any more
        if status == "done":
            return item, None, ""
        claimed = replace(item, status=status)
        return (claimed, *train(claimed))


def _run_in_process(
    config: SweepConfig,
    todo: list[PlannedRun],
    outcome: SweepOutcome,
    report: Progress,
    gpu: str | None,
) -> None:
    """One run after another in this process, where runs go one at a time: no process
    start-up, imports and model loading per run. Each run seeds every generator it uses
    itself (``loop.train``) and gets the threads a process of its own would get, so its
    results are that process's (tested); a run that fails is recorded and the next one
    starts, as with processes."""
    import torch

    from noisebench.studies import plots
    from noisebench.training import loop as training
    from noisebench.training.prepare import prepare

    def train(item: PlannedRun) -> tuple[int, str]:
        try:
            prepared = prepare(item.config, Path(config.runs_dir))
            training.train(prepared, resume=item.status == "resume", figures=plots.run_figures)
        except InputError as error:
            return 2, str(error)
        except training.TrainingFailed as error:
            return 1, f"run failed: {error}"
        except Exception as error:  # as a crashed process would: the sweep goes on
            return 1, f"{type(error).__name__}: {error}"
        return 0, ""

    threads = int(_environment(1, gpu)["OMP_NUM_THREADS"])
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for item in todo:
            report(item, "started")
            _record(*_attempt(item, train), outcome, report)
    finally:
        torch.set_num_threads(previous_threads)


RUN_MEMORY_MB = 1024  # a minilm-l6 run peaks near 0.8 GB of GPU memory; a margin on top
RESERVED_MB = 1024  # left free on each GPU
MAX_RUNS_PER_GPU = 12  # measured: 12 concurrent runs still gained throughput on an H200


def resolve_jobs(config: SweepConfig) -> int:
    """How many runs go at once (see ``gpu_slots``)."""
    return len(gpu_slots(config))


def gpu_slots(config: SweepConfig) -> list[str | None]:
    """One entry per concurrent run: the GPU it runs on (its ``CUDA_VISIBLE_DEVICES``
    id, as the parent was given it) or None without GPUs.

    ``--jobs auto``: on each GPU as many runs as its free memory holds (``RUN_MEMORY_MB``
    each) and the CPU cores feed (one core a run), at most ``MAX_RUNS_PER_GPU``, at least
    one; the GPUs take turns, so a few runs spread over all of them. Without a GPU, 1
    (one process on all cores trains faster than several sharing them). ``--jobs N``:
    N runs dealt over the visible GPUs in turn.
    """
    free = _free_gpu_memory_mb()
    if config.jobs != "auto":
        gpus = list(free) or [None]
        return [gpus[slot % len(gpus)] for slot in range(int(config.jobs))]
    if not free:
        return [None]
    cores = os.cpu_count() or 1
    counts = {
        gpu: max(1, min((mb - RESERVED_MB) // RUN_MEMORY_MB, MAX_RUNS_PER_GPU, cores // len(free)))
        for gpu, mb in free.items()
    }
    return [gpu for turn in range(max(counts.values())) for gpu in counts if counts[gpu] > turn]


def _free_gpu_memory_mb() -> dict[str, int]:
    """Free memory in MiB of each GPU runs may use, keyed by the id a child process gets
    in ``CUDA_VISIBLE_DEVICES``: the parent's own ids where it has that variable (indices
    or UUIDs, in its order), else every GPU nvidia-smi lists. Empty without GPUs."""
    command = ["nvidia-smi", "--query-gpu=index,uuid,memory.free", "--format=csv,noheader"]
    try:
        listed = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {}
    if listed.returncode != 0:
        return {}
    rows = {}
    for line in listed.stdout.splitlines():
        fields = [field.strip() for field in line.split(",")]
        megabytes = fields[-1].split()[:1]  # "81000 MiB"
        if len(fields) == 3 and megabytes and megabytes[0].isdigit():
            rows[(fields[0], fields[1])] = int(megabytes[0])
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return {index: mb for (index, _), mb in rows.items()}
    free = {}
    for gpu in (d.strip() for d in visible.split(",")):
        if not gpu:  # CUDA stops at the first invalid entry; an empty one hides the rest
            break
        match = [
            mb
            for (index, uuid), mb in rows.items()
            if gpu in (index, uuid) or (gpu.startswith("GPU-") and uuid.startswith(gpu))
        ]
        if not match:
            break
        free[gpu] = match[0]
    return free


def _environment(jobs: int, gpu: str | None) -> dict:
    """A run's environment: its GPU and its share of the cores."""
    environment = dict(os.environ)
    if gpu is not None:
        environment["CUDA_VISIBLE_DEVICES"] = gpu
    environment["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return environment


def _run_locally(
    config: SweepConfig,
    todo: list[PlannedRun],
    outcome: SweepOutcome,
    report: Progress,
    gpus: list[str | None],
) -> None:
    jobs = len(gpus)
    free_slots = list(range(jobs))[::-1]  # popped from the end: slot 0 first
    lock = threading.Lock()
    children: set[subprocess.Popen] = set()

    def run_one(item: PlannedRun) -> tuple[int, str]:
        with lock:
            slot = free_slots.pop()
        try:
            command = train_command(item.config, config.runs_dir, item.status == "resume")
            child = subprocess.Popen(
                command,
                env=_environment(jobs, gpus[slot]),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            with lock:
                children.add(child)
            _, errors = child.communicate()
            with lock:
                children.discard(child)
            return child.returncode, _last_line(errors)
        finally:
            with lock:
                free_slots.append(slot)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = set()
        try:
            for item in todo:
                report(item, "started")
                pending.add(pool.submit(_attempt, item, run_one))  # claimed once a slot is free
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    _record(*future.result(), outcome, report)
        except KeyboardInterrupt:
            for future in pending:
                future.cancel()
            with lock:
                for child in children:
                    os.killpg(child.pid, signal.SIGINT)  # train saves nothing half-done
            raise


def _record(
    item: PlannedRun, returncode: int | None, error: str, outcome: SweepOutcome, report: Progress
) -> None:
    """Where a run stands after an attempt (``_attempt``); ``error`` names the holder of a
    run another sweep holds."""
    if returncode is None and run_status(item.run_dir) == "done":
        outcome.elsewhere.append(item.run_dir)
        report(item, "completed elsewhere")
    elif returncode is None:
        outcome.held.append(item)
        report(item, f"running elsewhere ({error})")
    elif returncode == 0:
        outcome.completed.append(item.run_dir)
        report(item, "completed")
    else:
        outcome.failed.append((item.run_dir, error or f"exit code {returncode}"))
        report(item, "failed")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# what a run reads from its environment: the cache, the Hub's and torch's settings
SHIPPED_PREFIXES = ("NOISEBENCH_", "HF_", "TRANSFORMERS_", "TORCHINDUCTOR_")


def shipped_environment(driver: Mapping[str, str]) -> dict:
    """The driver's variables a run needs, and no others: each Ray task runs on a node
    with its own environment, paths and GPUs.

    >>> shipped_environment({"HF_HOME": "/h", "CUDA_VISIBLE_DEVICES": "0", "HOME": "/r"})
    {'HF_HOME': '/h'}
    """
    return {name: value for name, value in driver.items() if name.startswith(SHIPPED_PREFIXES)}


def ray_task_environment(
    shipped: dict, gpu_ids: list, node: Mapping[str, str] | None = None
) -> dict:
    """A Ray task's run: the node's environment, the shipped variables, and the GPUs Ray
    gave this task (``ray.get_gpu_ids()``) as its ``CUDA_VISIBLE_DEVICES``; a CPU task
    holds one core.

    >>> ray_task_environment({"HF_HOME": "/h"}, [1], {"PATH": "/bin", "OMP_NUM_THREADS": "8"})
    {'PATH': '/bin', 'OMP_NUM_THREADS': '8', 'HF_HOME': '/h', 'CUDA_VISIBLE_DEVICES': '1'}
    >>> ray_task_environment({}, [], {"CUDA_VISIBLE_DEVICES": "0"})
    {'CUDA_VISIBLE_DEVICES': '', 'OMP_NUM_THREADS': '1'}
    """
    environment = {**(os.environ if node is None else node), **shipped}
    environment["CUDA_VISIBLE_DEVICES"] = ",".join(str(gpu) for gpu in gpu_ids)
    if not gpu_ids:
        environment.setdefault("OMP_NUM_THREADS", "1")
    return environment


def _run_with_ray(
    config: SweepConfig, todo: list[PlannedRun], outcome: SweepOutcome, report: Progress
) -> None:
    try:
        import ray
    except ImportError:
        raise InputError("--backend ray needs Ray: pip install 'noisebench[ray]'") from None
    ray.init(
        address=os.environ.get("RAY_ADDRESS"),
        ignore_reinit_error=True,
        log_to_driver=False,
        include_dashboard=False,
    )
    gpus = int(ray.cluster_resources().get("GPU", 0))

    @ray.remote
    def run_one(item: PlannedRun, commands: dict, shipped: dict) -> tuple[int | None, str]:
        """On a worker: the run's command for its status, under the worker's claim."""
        environment = ray_task_environment(shipped, ray.get_gpu_ids())

        def train(claimed: PlannedRun) -> tuple[int, str]:
            command = commands[claimed.status]
            completed = subprocess.run(command, env=environment, capture_output=True, text=True)
            return completed.returncode, _last_line(completed.stderr)

        return _attempt(item, train)[1:]

    task = run_one.options(num_gpus=1) if gpus else run_one.options(num_cpus=1)
    environment = shipped_environment(os.environ)
    runs_dir = str(Path(config.runs_dir).resolve())  # as every worker sees the shared disk
    futures = {}
    for item in todo:
        commands = {
            status: train_command(item.config, runs_dir, status == "resume")
            for status in ("run", "resume")
        }
        report(item, "started")
        on_workers = replace(item, run_dir=item.run_dir.resolve())
        futures[task.remote(on_workers, commands, environment)] = item
    try:
        pending = list(futures)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            returncode, error = ray.get(ready[0])
            _record(futures[ready[0]], returncode, error, outcome, report)
    except KeyboardInterrupt:
        for future in futures:
            ray.cancel(future, force=True)
        raise
