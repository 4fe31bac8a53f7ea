"""Steps that exit, crash or hang, and runners whose Snakemake died (issue 12):
each failure names the step, condition, replicate and cause, the rest of the
block is still computed, status says "failed", and no runner outlives its
Snakemake."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import COUNTING_STEPS, Experiment, counting_config, snakemake_command

from repliflow.engine.status import status

STEPS = (
    COUNTING_STEPS
    + """

def crashy(data, ctx, *, how="none"):
    import ctypes
    import signal
    import sys
    import time

    if ctx.condition == "baseline" and ctx.replicate == 1:
        if how == "exit":
            sys.exit(3)
        if how == "os_exit":
            os._exit(7)
        if how == "segfault":
            ctypes.string_at(0)
        if how == "hang":
            time.sleep(3600)
        if how == "hang_native":  # an alarm cannot interrupt it: only the parent's kill ends it
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(3600)
    return data
"""
)


def _experiment(root: Path, how: str, timeout: float | None = None) -> Experiment:
    config = counting_config(replicates=3, batch={"replicates_per_job": 3})
    crashy = {"function": "crashy", "params": {"how": how}}
    if timeout is not None:
        crashy["timeout"] = timeout
    config["pipeline"].insert(1, crashy)
    return Experiment(root, config, steps=STEPS)


@pytest.mark.parametrize(
    ("how", "timeout", "cause"),
    [
        ("exit", None, "it called sys.exit(3)"),
        ("os_exit", None, "the process exited with code 7"),
        ("segfault", None, "the process died of signal SIGSEGV (a crash in native code)"),
        ("hang", 1, "it ran longer than its timeout of 1 s (stopped)"),
        ("hang_native", 1, "it ran longer than its timeout of 1 s (killed)"),
    ],
)
def test_a_step_that_ends_its_process_or_hangs_is_one_named_failure(tmp_path, how, timeout, cause):
    experiment = _experiment(tmp_path, how, timeout)
    run = experiment.snakemake(check=False, timeout=120)
    assert run.returncode != 0
    text = " ".join((run.stdout + run.stderr).split())
    assert f"repliflow: step 'crashy' failed for condition 'baseline', replicate 1: {cause}" in text
    # the other replicates of the block were still computed
    assert {"metrics,baseline,0", "metrics,baseline,2"} <= set(experiment.calls())
    board = status(experiment.root / "config.yaml", experiment.root)
    assert board.counts["baseline"]["failed"] == 1
    assert any(f.replicate == 1 and cause in f.message for f in board.failures)


def test_a_timeout_changes_no_recipe_key(tmp_path):
    with_timeout = _experiment(tmp_path / "a", "none", 30)
    without = _experiment(tmp_path / "b", "none")
    with_timeout.snakemake()
    without.snakemake()
    names = {p.name for p in (with_timeout.results / "store").rglob("*.json")}
    assert names == {p.name for p in (without.results / "store").rglob("*.json")}


def _runners(root: Path) -> list[int]:
    """Processes of this experiment's block jobs (their command line names its logs)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if (
            b"repliflow.engine.runner" in cmdline
            and str(root).encode() in cmdline + os.readlink(entry / "cwd").encode()
        ):
            found.append(int(entry.name))
    return found


def test_runners_stop_when_their_snakemake_is_killed(tmp_path):
    experiment = _experiment(tmp_path, "hang")
    process = subprocess.Popen(
        snakemake_command(experiment.root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while not _runners(experiment.root) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _runners(experiment.root), "no runner started"
    while "scale,baseline,1" not in experiment.calls() and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 15
    while _runners(experiment.root) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _runners(experiment.root) == []
    log = next((experiment.results / "logs" / "blocks").rglob("*.log")).parent
    assert any("is gone; stopping it" in p.read_text() for p in log.parent.rglob("*.log"))


@pytest.mark.parametrize("how", ["raise", "os_exit"])
def test_on_failure_missing_counts_failed_replicates_as_missing_and_retries_them(tmp_path, how):
    fixed = 'os.path.exists(os.path.join(os.path.dirname(__file__), "fixed"))'
    steps = STEPS.replace(
        '        if how == "exit":',
        f'        if how == "raise" and not {fixed}:\n'
        '            raise ValueError("not today")\n'
        f'        if how == "os_exit" and {fixed}:\n'
        "            return data\n"
        '        if how == "exit":',
    )
    experiment = _experiment(tmp_path, how)
    (experiment.root / "steps.py").write_text(steps)
    experiment.write_config({**experiment.config, "on_failure": "missing"})
    run = experiment.snakemake()  # the run finishes
    assert "failed for condition 'baseline', replicate 1" in run.stdout + run.stderr
    hypotheses = json.loads((experiment.results / "hypotheses.json").read_text())
    (failed,) = hypotheses["failed_replicates"]["baseline"]
    assert failed["replicate"] == 1 and failed["step"] == "crashy"
    assert 1 in hypotheses["hypotheses"][0]["missing_replicates"]["baseline"]
    rows = [
        r
        for r in (experiment.results / "metrics.csv").read_text().splitlines()
        if r.startswith("baseline,1,")
    ]
    assert rows and all(r.endswith(",") for r in rows)  # empty: missing
    board = status(experiment.root / "config.yaml", experiment.root)
    assert board.counts["baseline"]["failed"] == 1 and not board.complete
    report = (experiment.results / "report.md").read_text()
    assert "on_failure: missing" in report and "crashy" in report

    (experiment.root / "fixed").write_text("")
    experiment.reset_calls()
    retry = experiment.snakemake()
    assert "failed (on_failure: missing): retrying" in retry.stderr
    assert "metrics,baseline,1" in experiment.calls() and "metrics,baseline,0" not in experiment.calls()
    hypotheses = json.loads((experiment.results / "hypotheses.json").read_text())
    assert "failed_replicates" not in hypotheses
    assert status(experiment.root / "config.yaml", experiment.root).complete
