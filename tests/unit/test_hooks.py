"""Stale-lock release (only a dead holder's lock on this host is removed) and
the scheduler timers released at the end of a run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest

from repliflow.snakemake import hooks as workflow_support
from repliflow.snakemake import markers


def _setup(tmp_path, monkeypatch, pid, host=None):
    monkeypatch.chdir(tmp_path)
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text("x")
    owner = {"pid": pid, "host": host or socket.gethostname()}
    (tmp_path / workflow_support.LOCK_OWNER).write_text(json.dumps(owner))
    return locks


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_lock_of_a_dead_holder_is_released(tmp_path, monkeypatch):
    locks = _setup(tmp_path, monkeypatch, _dead_pid())
    notice = workflow_support.release_stale_lock()
    assert notice and "removed the lock" in notice
    assert list(locks.iterdir()) == []


@pytest.mark.parametrize("case", ["alive", "other-host"])
def test_live_or_foreign_locks_are_kept(tmp_path, monkeypatch, case):
    import os

    pid, host = (os.getpid(), None) if case == "alive" else (_dead_pid(), "another-host")
    locks = _setup(tmp_path, monkeypatch, pid, host)
    assert workflow_support.release_stale_lock() is None
    assert len(list(locks.iterdir())) == 1


def test_release_scheduler_timers_lets_the_process_exit_at_once():
    # Snakemake's rate limiter leaves a non-daemon Timer like this one; the
    # interpreter would wait for it at exit.
    fired = threading.Event()
    timer = threading.Timer(30, fired.set)
    timer.start()
    workflow_support.release_scheduler_timers()
    timer.join(timeout=5)
    assert not timer.is_alive()
    assert not fired.is_set()


def test_the_final_collection_is_skipped_only_at_exit():
    # atexit runs its handlers last-registered first: the check runs after gc.freeze
    script = (
        "import atexit, gc\n"
        "from repliflow.snakemake.hooks import skip_final_collection\n"
        "atexit.register(lambda: print('frozen at exit', gc.get_freeze_count() > 0))\n"
        "skip_final_collection(); skip_final_collection()\n"
        "print('frozen before', gc.get_freeze_count() > 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert run.stdout.split("\n")[:2] == ["frozen before False", "frozen at exit True"]


def test_a_dead_holders_lock_stays_while_its_cluster_jobs_work_here_and_says_so(tmp_path, monkeypatch):
    """A killed run's cluster jobs run their own snakemake in the folder: the
    lock stays (they may still write), and the notice names them and the way on."""
    locks = _setup(tmp_path, monkeypatch, _dead_pid())
    # stands in for a job's `python -m snakemake ...`: a process named so, working here
    job = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "--snakemake-job"], cwd=tmp_path
    )
    # as a real job would be by then: running, in the folder (on a loaded machine
    # /proc showed it otherwise for a moment, and the check missed it once)
    deadline = time.monotonic() + 10
    while job.pid not in markers.snakemake_pids_here(tmp_path.resolve()) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        notice = workflow_support.release_stale_lock()
        assert notice and f"pid {job.pid}" in notice and "condor_rm" in notice and "scancel" in notice
        assert len(list(locks.iterdir())) == 1
    finally:
        job.kill()
        job.wait()
    assert "removed the lock" in (workflow_support.release_stale_lock() or "")
    assert list(locks.iterdir()) == []


GUARD_PROBE = """
import sys
from types import SimpleNamespace
from repliflow.snakemake.hooks import guard_htcondor_status_race

assert guard_htcondor_status_race() is False  # the plugin not imported: nothing to guard
from snakemake_executor_plugin_htcondor import Executor

events = [SimpleNamespace(cluster=7), SimpleNamespace(cluster=7), SimpleNamespace(cluster=9)]
log = SimpleNamespace(events=lambda stop_after: iter(events))
early = Executor.__new__(Executor)  # the status thread's view before __post_init__ ran, ...
early._get_job_event_log = lambda: log  # ... with the event log a run before left in the folder
try:
    early._drain_unified_log()
except AttributeError as exc:
    print("upstream:", exc)
assert guard_htcondor_status_race() is True
guarded = Executor._drain_unified_log
assert guard_htcondor_status_race() is True and Executor._drain_unified_log is guarded  # once
assert early._drain_unified_log() is None  # reads nothing yet, raises nothing

ready = Executor.__new__(Executor)  # after __post_init__: drains as before
ready._event_logs = {}
ready._get_job_event_log = lambda: log
ready._drain_unified_log()
print("drained:", {k: len(v) for k, v in ready._event_logs.items()})
"""


def test_the_htcondor_status_race_is_guarded():
    """snakemake-executor-plugin-htcondor 0.3.0's status thread can drain its
    event log before __post_init__ made ``_event_logs`` (upstream issue 60):
    the thread dies and the run hangs. The guard makes that early drain read
    nothing and leaves a later one as it was."""
    pytest.importorskip("snakemake_executor_plugin_htcondor")
    probe = subprocess.run([sys.executable, "-c", GUARD_PROBE], capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert "upstream: 'Executor' object has no attribute '_event_logs'" in probe.stdout  # the race's failure
    assert "drained: {7: 2, 9: 1}" in probe.stdout


SHUTDOWN_PROBE = """
import asyncio, threading, time
from repliflow.snakemake.hooks import end_status_waits_at_shutdown

assert end_status_waits_at_shutdown() is False  # the interface not imported: nothing to change
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor

upstream = RemoteExecutor.sleep
assert end_status_waits_at_shutdown() is True
ours = RemoteExecutor.sleep
assert ours is not upstream
assert end_status_waits_at_shutdown() is True and RemoteExecutor.sleep is ours  # once


class Probe(RemoteExecutor):  # the status thread's view: an interval and the wait flag
    def __init__(self, seconds):
        self._next_seconds_between_status_checks = seconds
        self.wait = True

    def run_job(self, job): ...
    async def check_active_jobs(self, active_jobs): ...
    def cancel_jobs(self, active_jobs): ...


def slept(executor, shutdown_after=None):
    started = time.monotonic()
    if shutdown_after is not None:
        threading.Timer(shutdown_after, lambda: setattr(executor, "wait", False)).start()
    asyncio.run(executor.sleep())
    return time.monotonic() - started


print("running: %.2f" % slept(Probe(1.2)))  # the whole interval while the run goes on
print("shutdown: %.2f" % slept(Probe(60), shutdown_after=0.3))  # a 60 s interval cut at shutdown
print("zero: %.2f" % slept(Probe(0)))
flagless = Probe(1.0)
del flagless.wait  # an interface without the flag: the whole interval, never a busy loop
print("flagless: %.2f" % slept(flagless))
"""


def test_a_status_wait_ends_at_shutdown():
    """Snakemake's remote executors join their status thread at shutdown while
    it sleeps the status interval (20 s with the Slurm profile, up to 180 s):
    the sleep repliflow puts in place lasts the whole interval while the run
    goes on and ends within a quarter second once shutdown clears ``wait``."""
    pytest.importorskip("snakemake_interface_executor_plugins")
    probe = subprocess.run(
        [sys.executable, "-c", SHUTDOWN_PROBE], capture_output=True, text=True, timeout=120
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    times = dict(line.split(": ") for line in probe.stdout.splitlines())
    assert 1.2 <= float(times["running"]) < 3, times
    assert 0.3 <= float(times["shutdown"]) < 2, times
    assert float(times["zero"]) < 0.5, times
    assert 1.0 <= float(times["flagless"]) < 3, times
