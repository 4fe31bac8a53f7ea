"""repliflow.report.drawing: the report's figures drawn in a process forked at
the aggregate job's start are the figures drawn in-process, and every way the
process can fail falls back to drawing here."""

from __future__ import annotations

import functools
import os
import threading

import pytest

from repliflow.report import drawing, plots

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or len(os.sched_getaffinity(0)) < 2, reason="needs fork and two cores"
)


def _figures() -> list:
    values = {"baseline": [1.0, 2.0, 3.5, 2.2], "treated": [2.0, 3.1, 4.4, 3.3]}
    return [
        functools.partial(plots.distribution, "mean", ["baseline", "treated"], values, salt="dist-0"),
        functools.partial(plots.distribution, "spread", ["baseline", "treated"], values, salt="dist-1"),
    ]


def _fails() -> str:
    raise ValueError("no\nway")


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_the_figure_process_draws_what_this_process_draws():
    process = drawing.start()
    assert process is not None
    in_process = drawing.draw_all(_figures())
    assert drawing.draw_all(_figures(), process) == in_process
    assert all(isinstance(svg, str) and svg.startswith("<svg") for svg in in_process)
    assert _reaped(process.pid)


def test_a_figure_that_raises_is_the_same_note_either_way():
    process = drawing.start()
    assert process is not None
    expected = [drawing.DrawError("ValueError: no way")]
    assert drawing.draw_all([_fails], process) == expected == drawing.draw_all([_fails])


def test_a_figure_that_cannot_be_sent_is_drawn_here():
    process = drawing.start()
    assert process is not None
    local = lambda: "<svg>drawn here</svg>"  # noqa: E731 - a lambda does not pickle
    assert drawing.draw_all([local], process) == ["<svg>drawn here</svg>"]
    assert _reaped(process.pid)


def test_a_process_that_died_leaves_the_figures_to_this_one():
    process = drawing.start()
    assert process is not None
    os.kill(process.pid, 9)
    assert drawing.draw_all(_figures(), process) == drawing.draw_all(_figures())
    assert _reaped(process.pid)


def test_an_unused_process_is_ended_and_reaped_and_closing_twice_is_harmless():
    process = drawing.start()
    assert process is not None
    process.close()
    process.close()
    assert _reaped(process.pid)
    assert drawing.draw_all([], drawing.start()) == []


def test_no_fork_while_threads_run():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert drawing.start() is None
    finally:
        stop.set()
        thread.join()
