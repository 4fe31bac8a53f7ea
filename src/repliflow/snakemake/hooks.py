"""Small helpers the Snakefile uses, kept here so they are tested Python."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from repliflow.snakemake.markers import process_alive, snakemake_pids_here


def prepare_job_environment(src: Path | None) -> None:
    """Make the jobs' ``python`` the interpreter that runs Snakemake (the one
    with our dependencies) and, in a checkout (``src``), let it import
    repliflow from there even without ``pip install -e .``. Cluster jobs
    re-parse the workflow, so they get the same environment."""
    paths = [str(src) if src else "", os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


def _replace_upstream(module: str, owner: str, name: str, replacement: Callable[[Any], Any]) -> bool:
    """Put ``replacement(original)`` in place of ``module.owner.name``, once
    (it is marked), when Snakemake has imported ``module`` (never imported
    here). Returns whether the replacement is in place."""
    cls = getattr(sys.modules.get(module), owner, None)
    original = getattr(cls, name, None)
    if cls is None or original is None:
        return False
    if not getattr(original, "repliflow_guard", False):
        ours = replacement(original)
        ours.repliflow_guard = True
        setattr(cls, name, ours)
    return True


def guard_htcondor_status_race() -> bool:
    """Close a race in snakemake-executor-plugin-htcondor 0.3.0 that hangs a run.

    Snakemake's remote executors start their status thread before their
    ``__post_init__`` (snakemake-interface-executor-plugins 9.4), and the
    HTCondor plugin checks status at once (no initial wait) by draining its
    event log into ``_event_logs``, which ``__post_init__`` creates. When the
    thread wins (a loaded submit host), it dies of AttributeError and the run
    waits forever (upstream: htcondor/snakemake-executor-plugin-htcondor
    issue 60; it hung a CI run here for 10 minutes). Until it is fixed there,
    a drain before ``__post_init__`` has run reads nothing: no job has been
    submitted yet, and the next check reads the log from its start.

    Acts only when Snakemake has imported the plugin (it imports every
    installed one at start), once; returns whether the guard is in place."""

    def guarded(drain: Callable[[object], None]) -> Callable[[object], None]:
        def guarded_drain(self: object) -> None:
            if "_event_logs" not in vars(self):  # __post_init__ has not run yet
                return
            drain(self)

        return guarded_drain

    return _replace_upstream("snakemake_executor_plugin_htcondor", "Executor", "_drain_unified_log", guarded)


def end_status_waits_at_shutdown() -> bool:
    """Let a cluster run end when its last job does, not one status interval later.

    Snakemake's remote executors (snakemake-interface-executor-plugins 9.4)
    check job status in a thread that sleeps ``next_seconds_between_status_checks``
    between checks, and ``shutdown`` joins that thread: every run on Slurm or
    HTCondor waited out the sleep under way after its last job had been seen
    finishing. That is 20 s with the Slurm profile (the plugin's interval grows
    to 180 s while no job ends, so up to 3 minutes on a long run) and 10 s with
    HTCondor's. The sleep is cut into quarter seconds, and ends as soon as
    ``shutdown`` has cleared the executor's ``wait`` flag; while the run goes
    on it sleeps exactly as long as before, so status is queried no more often.

    Acts only when Snakemake has imported the interface (every executor plugin
    does), once; a plugin that overrides ``sleep`` keeps its own. Returns
    whether the sleep is in place."""

    def until_due_or_shutdown(upstream: object) -> Callable[[Any], Awaitable[None]]:
        async def sleep(self: Any) -> None:
            import asyncio
            import time

            deadline = time.monotonic() + self.next_seconds_between_status_checks
            # without a wait flag (an interface that renamed it) sleep the whole interval,
            # never less: a sleep that returned at once would query status in a loop
            while getattr(self, "wait", True):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                await asyncio.sleep(min(left, 0.25))

        return sleep

    remote = "snakemake_interface_executor_plugins.executors.remote"
    return _replace_upstream(remote, "RemoteExecutor", "sleep", until_due_or_shutdown)


def describe_config_files(files: Iterable[str | os.PathLike[str]]) -> str:
    names = [str(f) for f in files]
    return ", ".join(dict.fromkeys(names)) or "(none: --config only)"


def fail(exc: Exception) -> None:
    """End the Snakemake parse with one paragraph and no traceback."""
    message = "\n".join(textwrap.wrap(str(exc), width=100, break_on_hyphens=False, break_long_words=False))
    print(message, file=sys.stderr, flush=True)
    sys.exit(1)


LOCK_OWNER = Path(".snakemake", "repliflow-lock-owner.json")


def record_lock_owner() -> None:
    """Called from ``onstart`` (the lock is held by now): who holds it."""
    import json
    import socket

    LOCK_OWNER.parent.mkdir(exist_ok=True)
    LOCK_OWNER.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))


def release_stale_lock() -> str | None:
    """Remove the lock a killed Snakemake left behind, so that
    ``snakemake --rerun-incomplete`` alone finishes a killed run (docs/troubleshooting.md).

    Only when the recorded lock holder ran on this host, is dead, and no live
    snakemake process works in this directory; otherwise Snakemake's own lock
    error stands. Returns a notice when a lock was removed, or when a dead
    holder's lock stays because snakemake processes still work here (on a
    cluster: the killed run's jobs, which Snakemake's lock error does not name).
    """
    import json
    import socket

    locks = Path(".snakemake", "locks")
    if not Path("/proc").is_dir() or not locks.is_dir() or not any(locks.iterdir()):
        return None
    try:
        owner = json.loads(LOCK_OWNER.read_text())
    except (OSError, ValueError):
        return None
    if owner.get("host") != socket.gethostname() or process_alive(owner.get("pid")):
        return None
    if others := snakemake_pids_here(Path.cwd().resolve()):
        return (
            f"repliflow: snakemake process {owner.get('pid')}, which locked this folder, is gone, but "
            f"other snakemake processes still work here (pid {', '.join(map(str, others))}): on a "
            "cluster, the jobs the killed run submitted. Wait until they end (condor_q, squeue) or "
            "remove them (condor_rm, scancel), then run again; what they stored is kept."
        )
    for lock in locks.iterdir():
        lock.unlink(missing_ok=True)
    LOCK_OWNER.unlink(missing_ok=True)
    return (
        f"repliflow: removed the lock left by snakemake process {owner['pid']}, which is gone "
        "(killed or crashed); its incomplete jobs are redone with --rerun-incomplete"
    )


def release_scheduler_timers() -> None:
    """Called from ``onsuccess``/``onerror``: let the process exit as soon as
    the run is over.

    - Snakemake's job rate limiter (``--max-jobs-per-timespan``, default
      100/1s) starts a non-daemon ``threading.Timer`` every scheduling round
      to wake the scheduler one timespan later. Once the run has ended
      nothing waits for that wake-up, but Python waits for the timer thread
      before it exits: up to a second added to every run that executed a
      job. They are cancelled.
    - ``skip_final_collection``: 0.3-0.4 s of a small run's 2-4 s here.
    """
    import threading

    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()
    skip_final_collection()


def skip_final_collection() -> None:
    """Let this process exit without Python's last garbage collections.

    At exit, those collections walk every object the process still holds
    (Snakemake's DAG and imports; scipy's and matplotlib's in the aggregate
    job): about 0.3 s in either here, for memory the process is about to
    hand back anyway. An ``atexit`` handler freezes them first
    (``gc.freeze``), so the collections skip them. It runs only when the
    interpreter exits: a Python that goes on (an in-process Snakemake run, a
    test) keeps its collector as it was until then."""
    import atexit
    import gc

    atexit.unregister(gc.freeze)  # registered once, however often this is called
    atexit.register(gc.freeze)
