"""Run a block job in a child process and watch it.

A step may do what no ``try`` catches: ``os._exit``, a crash in native code
(a segfault in a C extension), an endless loop in C that no signal
interrupts. And the job may lose its Snakemake (SIGKILL, a closed terminal),
after which nothing would ever stop it. So the runner forks: the child runs
the block, and before each step writes which replicate and step it is in,
and since when, to a few bytes of shared memory (no system call per step);
the parent waits on the child and on the nearest ``snakemake`` ancestor
(pidfds, no polling), and

- when the child dies inside a step, reports it as that step's failure
  (step, condition, replicate, how it died) and starts a new child that
  skips that replicate, so the rest of the block is still computed;
- when a step outlives its ``timeout`` by GRACE seconds (the child's own
  alarm stops a step that still runs Python bytecode at ``timeout``), kills
  the child and reports the step as timed out, then goes on the same way;
- when Snakemake is gone, stops the child and exits.

Failures are printed in the same form as the runner's own step errors, so
``repliflow status`` counts them as failed.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import signal
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

GRACE = 5.0  # seconds past a step's timeout before the child is killed
POLL = 0.5  # seconds between looks at the child's current step, when a step has a timeout
_LAYOUT = struct.Struct("qqd")  # replicate, position (-1: not in a step), started (monotonic)
Current = tuple[int, int, float]  # the step the child is in: replicate, position, started


class Watch:
    """Shared memory the child writes and the parent reads: one slot per
    replicate the child may have in flight (more than one under a step's
    ``concurrency``)."""

    def __init__(self, slots: int = 1) -> None:
        self.slots = slots
        self._memory = mmap.mmap(-1, _LAYOUT.size * slots)
        for slot in range(slots):
            self.leave(slot)

    def enter(self, replicate: int, position: int, slot: int = 0) -> None:
        _LAYOUT.pack_into(self._memory, slot * _LAYOUT.size, replicate, position, time.monotonic())

    def leave(self, slot: int = 0) -> None:
        _LAYOUT.pack_into(self._memory, slot * _LAYOUT.size, -1, -1, 0.0)

    def in_flight(self) -> list[Current]:
        """The steps the child is in, one per busy slot."""
        found = []
        for slot in range(self.slots):
            replicate, position, started = _LAYOUT.unpack_from(self._memory, slot * _LAYOUT.size)
            if position >= 0:
                found.append((replicate, position, started))
        return found

    def current(self) -> Current | None:
        """The step the child is in, when it has exactly one in flight."""
        found = self.in_flight()
        return found[0] if len(found) == 1 else None


@dataclass
class Death:
    replicate: int
    position: int
    cause: str


@dataclass
class Suspects:
    """The child died with several replicates in flight: any of them may be
    the cause, so none is blamed and the block goes on one at a time."""

    in_flight: list[Current]
    cause: str


def snakemake_ancestor(pid: int | None = None) -> int | None:
    """The pid of the nearest ancestor whose command line runs snakemake, on
    Linux; None elsewhere or when there is none (run by hand)."""
    pid = os.getppid() if pid is None else pid
    for _ in range(32):
        if pid <= 1:
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat_text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        if any(part.endswith((b"snakemake", b"snakemake/__main__.py")) for part in cmdline[:3]):
            return pid
        pid = int(stat_text.rsplit(")", 1)[1].split()[1])  # the field after the name is the state, then ppid
    return None


def _pidfd(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
        hint = (
            " (a crash in native code)" if number in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT) else ""
        )
        return f"the process died of signal {name}{hint}"
    return f"the process exited with code {os.WEXITSTATUS(status)} (os._exit or a C library's exit)"


def supervise(
    work: Callable[[Watch, dict[int, Death], bool], int],
    *,
    timeouts: list[float | None],
    report: Callable[[Death], None],
    log: TextIO,
    slots: int = 1,
) -> int:
    """Run ``work(watch, skip, serial)`` in child processes until one ends by
    itself; ``report`` each death inside a step, and give the next child the
    deaths so far (``skip``: replicate -> Death). A death with several
    replicates in flight blames none of them: the next child runs the rest of
    the block one replicate at a time (``serial``), where a death names its
    step. The exit code is the last child's; 1 when Snakemake went away."""
    if not hasattr(os, "pidfd_open"):  # not Linux: run unwatched
        return work(Watch(slots), {}, False)
    ancestor = _pidfd(snakemake_ancestor())
    skip: dict[int, Death] = {}
    serial = False
    while True:
        watch = Watch(1 if serial else slots)
        sys.stdout.flush()
        log.flush()
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                code = work(watch, dict(skip), serial)
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    log.flush()
                os._exit(code)
        outcome = _wait(pid, watch, timeouts, ancestor, log)
        if isinstance(outcome, int):
            return outcome
        if outcome is None:  # Snakemake is gone
            return 1
        if isinstance(outcome, Suspects):
            replicates = ", ".join(str(r) for r, _, _ in sorted(outcome.in_flight))
            print(
                f"repliflow: {outcome.cause} with replicates {replicates} in flight; going on one "
                "replicate at a time, to tell which one it was",
                file=log,
                flush=True,
            )
            serial = True
            continue
        report(outcome)
        skip[outcome.replicate] = outcome


def _overdue(watch: Watch, timeouts: Sequence[float | None]) -> tuple[Current, float] | None:
    """The in-flight step whose timeout (plus GRACE) ends first, and when (monotonic)."""
    deadlines = [
        (current, current[2] + limit + GRACE)
        for current in watch.in_flight()
        if (limit := timeouts[current[1]]) is not None
    ]
    return min(deadlines, key=lambda d: d[1]) if deadlines else None


def _wait(
    pid: int, watch: Watch, timeouts: Sequence[float | None], ancestor: int | None, log: TextIO
) -> int | Death | Suspects | None:
    """The child's exit code when it ended by itself; a Death when it died in
    a step or was stopped for a timeout (Suspects when it died with several
    steps in flight); None when Snakemake went away."""
    child = os.pidfd_open(pid)
    try:
        while True:
            first = _overdue(watch, timeouts)
            wait: float | None  # seconds; None: until the child or Snakemake ends
            if first is not None:
                wait = max(0.0, first[1] - time.monotonic())
            else:  # look again soon: the child may enter a step with a timeout meanwhile
                wait = POLL if any(t is not None for t in timeouts) else None
            watched = [child] if ancestor is None else [child, ancestor]
            ready, _, _ = select.select(watched, [], [], wait)
            if child in ready:
                _, status = os.waitpid(pid, 0)
                return _ended(status, watch.in_flight())
            if ancestor is not None and ancestor in ready:
                print(
                    "repliflow: snakemake, which started this job, is gone; stopping it",
                    file=log,
                    flush=True,
                )
                _stop(pid)
                return None
            first = _overdue(watch, timeouts)
            if first is not None and time.monotonic() >= first[1]:
                _stop(pid, grace=0)
                (replicate, position, _), limit = first[0], timeouts[first[0][1]]
                return Death(replicate, position, f"it ran longer than its timeout of {limit:g} s (killed)")
    finally:
        os.close(child)


def _ended(status: int, in_flight: list[Current]) -> int | Death | Suspects:
    if not in_flight and os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if not in_flight:  # killed between steps (e.g. by the OOM killer)
        return 1
    if len(in_flight) > 1:
        return Suspects(in_flight, _how(status))
    replicate, position, _ = in_flight[0]
    return Death(replicate, position, _how(status))


def _stop(pid: int, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; reaps the child."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM if grace else signal.SIGKILL)
    end = time.monotonic() + grace
    while time.monotonic() < end:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
