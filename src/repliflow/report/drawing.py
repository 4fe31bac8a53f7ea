"""The report's figures, drawn in a process started before the tables.

Importing matplotlib costs the ``aggregate`` job about 0.5 s, and numpy and
scipy (the verifiers, the power table) as much again, one after the other:
together most of the job, which every run waits for. ``start`` forks a
process at the job's start that imports matplotlib on the other core while
this one computes the tables; ``draw_all`` then sends it the report's
figures (plain functions and data, over a private pipe) and takes back their
SVGs. Where it cannot fork (one core, threads running, no ``fork``), or the
process does not answer, the figures are drawn here, as before: the report
is the same either way.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DrawError:
    """Why a figure could not be drawn: ``Type: message`` on one line."""

    reason: str


def reason(exc: BaseException) -> str:
    """``Type: message`` on one line (matplotlib's parse errors span several), at most 300 characters."""
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}".rstrip(": ")
    return text if len(text) <= 300 else text[:299] + "…"


def _draw(draw: Callable[[], str]) -> str | DrawError:
    try:
        return draw()
    except Exception as exc:  # a plot is never worth the report
        return DrawError(reason(exc))


@dataclass
class FigureProcess:
    """A forked process waiting, with matplotlib imported, for figures to draw."""

    pid: int
    to_child: int  # -1 once closed: a descriptor number is reused by the next open
    from_child: int
    reaped: bool = False

    def draw(self, draws: Sequence[Callable[[], str]]) -> list[str | DrawError] | None:
        """Each figure's SVG (or why not), drawn in the process; None when it did not answer."""
        to_child = os.fdopen(self.to_child, "wb")
        from_child = os.fdopen(self.from_child, "rb")
        self.to_child = self.from_child = -1  # the files own them now (closing a file twice is safe)
        try:
            with to_child:
                to_child.write(pickle.dumps(list(draws)))
            with from_child:
                drawn = pickle.loads(from_child.read())
        except (OSError, EOFError, pickle.PickleError, AttributeError, TypeError):
            return None
        finally:
            to_child.close()
            from_child.close()
            self.close()
        if not isinstance(drawn, list) or len(drawn) != len(draws):
            return None
        return drawn

    def close(self) -> None:
        """End the process (it exits by itself once it has drawn) and reap it; idempotent."""
        for fd in (self.to_child, self.from_child):
            if fd >= 0:
                os.close(fd)
        self.to_child = self.from_child = -1
        if self.reaped:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)  # a no-op once it exited; stops one that never drew
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self.reaped = True


def start() -> FigureProcess | None:
    """Fork the figure process, or None where that would not help or is unsafe
    (one core; threads running, which a fork would copy mid-state; no fork)."""
    if not hasattr(os, "fork") or threading.active_count() > 1 or len(os.sched_getaffinity(0)) < 2:
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    inbox, to_child = os.pipe()
    from_child, outbox = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        for fd in (inbox, to_child, from_child, outbox):
            os.close(fd)
        return None
    if pid == 0:  # the child: import, wait for the figures, draw them, and nothing else
        code = 1
        try:
            os.close(to_child)
            os.close(from_child)
            _serve(inbox, outbox)
            code = 0
        finally:
            os._exit(code)
    os.close(inbox)
    os.close(outbox)
    return FigureProcess(pid, to_child, from_child)


def _serve(inbox: int, outbox: int) -> None:
    import matplotlib.figure  # noqa: F401 - the point of this process: imported before the figures come
    from matplotlib.backends import backend_svg  # noqa: F401

    with os.fdopen(inbox, "rb") as pipe:
        data = pipe.read()
    if not data:  # the job ended without a report
        return
    drawn = [_draw(draw) for draw in pickle.loads(data)]
    with os.fdopen(outbox, "wb") as pipe:
        pipe.write(pickle.dumps(drawn))


def draw_all(
    draws: Sequence[Callable[[], str]], process: FigureProcess | None = None
) -> list[str | DrawError]:
    """Each figure's SVG, or why it could not be drawn: in ``process`` when
    there is one and it answers, else here."""
    if process is not None and draws:
        drawn = process.draw(draws)
        if drawn is not None:
            return drawn
    elif process is not None:
        process.close()
    return [_draw(draw) for draw in draws]
