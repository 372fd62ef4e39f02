"""Run claims (`studies.claims`): one process trains a run; stale claims are taken over."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from noisebench.studies import claims


def write_claim(run_dir, age_seconds: float = 0.0, **holder) -> None:
    """A claim file as another process made it, its heartbeat ``age_seconds`` old."""
    path = claims.claim_file(run_dir)
    path.write_text(json.dumps({"run": run_dir.name, "token": "theirs", **holder}))
    beat = time.time() - age_seconds
    os.utime(path, (beat, beat))


def dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", ""])
    finished.wait()
    return finished.pid


def test_a_claim_holds_until_released(tmp_path):
    run_dir = tmp_path / "runs" / "conll-ce-seed0-abcd1234"
    claim = claims.take(run_dir)
    path = tmp_path / "runs" / ".conll-ce-seed0-abcd1234.claim"
    assert claim.path == path and not run_dir.exists()  # beside the run, which starts afresh
    document = json.loads(path.read_text())
    assert document["run"] == run_dir.name
    assert (document["host"], document["pid"]) == (claims._HOST, os.getpid())
    assert document["started"].endswith("+00:00") and len(document["token"]) == 32
    with pytest.raises(claims.HeldElsewhere) as held:
        claims.take(run_dir)
    assert held.value.holder.describe() == f"{claims._HOST}, pid {os.getpid()}"
    assert claims.read(run_dir).token == claim.token
    claims.release(claim)
    assert not path.exists() and claims.read(run_dir) is None
    again = claims.take(run_dir)
    claims.release(claim)  # an earlier claim's release leaves the new one alone
    assert claims.read(run_dir).token == again.token


def test_kept_beats_the_heartbeat_and_releases_after_a_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "HEARTBEAT_SECONDS", 0.05)
    run_dir = tmp_path / "run"
    claim = claims.take(run_dir)
    os.utime(claim.path, (0, 0))
    with pytest.raises(RuntimeError), claims.kept(claim):
        deadline = time.time() + 5
        while claims.read(run_dir).heartbeat == 0 and time.time() < deadline:
            time.sleep(0.01)
        assert claims.read(run_dir).heartbeat > time.time() - 60
        raise RuntimeError("the run failed")
    assert claims.read(run_dir) is None


def test_a_claim_of_a_process_gone_from_this_host_is_taken_over(tmp_path):
    run_dir = tmp_path / "run"
    here = {"host": claims._HOST, "pid_namespace": claims._pid_namespace()}
    write_claim(run_dir, pid=dead_pid(), **here)
    assert claims.is_stale(claims.read(run_dir))
    mine = claims.take(run_dir)
    assert claims.read(run_dir).token == mine.token != "theirs"
    claims.release(mine)
    write_claim(run_dir, pid=os.getppid(), **here)  # alive: left to it
    with pytest.raises(claims.HeldElsewhere):
        claims.take(run_dir)


def test_another_hosts_claim_is_left_to_it_until_its_heartbeat_stops(tmp_path):
    run_dir = tmp_path / "run"
    gone = dead_pid()  # a pid means nothing on another machine
    write_claim(run_dir, host="gpu-7", pid=gone, age_seconds=claims.STALE_AFTER_SECONDS - 60)
    with pytest.raises(claims.HeldElsewhere) as held:
        claims.take(run_dir)
    assert held.value.holder.describe() == f"gpu-7, pid {gone}"
    write_claim(run_dir, host="gpu-7", pid=gone, age_seconds=claims.STALE_AFTER_SECONDS + 60)
    assert claims.take(run_dir).host == claims._HOST
    (tmp_path / ".empty.claim").write_text("")  # made this instant, not yet written
    with pytest.raises(claims.HeldElsewhere, match="unknown host, pid \\?"):
        claims.take(tmp_path / "empty")


def test_racing_takers_of_one_stale_claim_leave_one_holder(tmp_path):
    for round_ in range(20):
        run_dir = tmp_path / f"run{round_}"
        write_claim(run_dir, host="gpu-7", pid=1, age_seconds=claims.STALE_AFTER_SECONDS + 60)
        start, won, lost = threading.Barrier(6), [], []

        def take(run_dir=run_dir, start=start, won=won, lost=lost):
            start.wait()
            try:
                won.append(claims.take(run_dir).token)
            except claims.HeldElsewhere as held:
                lost.append(held.holder.token)

        threads = [threading.Thread(target=take) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(won) == 1 and claims.read(run_dir).token == won[0], (won, lost)
        # the losers name the winner, or the stale claim where they lost its takeover, or
        # nobody where they read the winner's claim the instant before it was written
        assert set(lost) <= {won[0], "theirs", None}
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".takeover")] == []


def test_a_takeover_marker_left_by_a_dead_taker_expires(tmp_path):
    run_dir = tmp_path / "run"
    write_claim(run_dir, host="gpu-7", pid=1, age_seconds=claims.STALE_AFTER_SECONDS + 60)
    stale = claims.read(run_dir)
    marker = tmp_path / f".run.claim.{claims._identity(stale)}.takeover"
    marker.write_text("")
    with pytest.raises(claims.HeldElsewhere):  # another taker is at it
        claims.take(run_dir)
    old = time.time() - 2 * claims.HEARTBEAT_SECONDS
    os.utime(marker, (old, old))
    with pytest.raises(claims.HeldElsewhere):  # that taker died: its marker goes
        claims.take(run_dir)
    assert not marker.exists() and claims.take(run_dir).host == claims._HOST


def test_a_sigterm_stops_a_sweep_as_ctrl_c_does():
    """Inside a sweep, SIGTERM raises KeyboardInterrupt (the path that stops --jobs
    children and releases their claims); outside, the handler is as it was."""
    import os
    import signal

    import pytest

    from noisebench.studies.backends import terminate_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), terminate_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs before this ends
    assert signal.getsignal(signal.SIGTERM) is before
