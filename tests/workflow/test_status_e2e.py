"""`repliflow status`: done / failed / running / incomplete / missing per
condition, from the files and Snakemake's incomplete markers alone."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

from conftest import SLOW_STEPS, Experiment, counting_config, snakemake_command

from repliflow.cli import main
from repliflow.core.plan import load_plan
from repliflow.engine.status import format_status, status


def _finish(command: list[str], cwd) -> subprocess.CompletedProcess:
    """Run the printed snakemake command with this interpreter's snakemake."""
    assert command[0] == "snakemake"
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *command[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_a_finished_run_is_complete(experiment, tmp_path, capsys, monkeypatch):
    experiment.snakemake()
    result = status(experiment.root / "config.yaml", experiment.root)
    assert all(tally["done"] == 5 for tally in result.counts.values())
    assert result.complete and result.jobs_done == result.jobs
    monkeypatch.chdir(experiment.root)
    assert main(["status", "config.yaml"]) == 0
    assert "the run is complete: nothing to do" in capsys.readouterr().out
    assert main(["status", "--json", "config.yaml"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "repliflow.status/1" and data["command"] is None


def test_a_failed_replicate_is_failed_and_the_rest_done(experiment):
    run = experiment.snakemake("--keep-going", check=False, env={"REPLIFLOW_TEST_FAIL": "double:2"})
    assert run.returncode != 0
    result = status(experiment.root / "config.yaml", experiment.root)
    assert result.counts["baseline"]["done"] == 5
    assert result.counts["double"] == {"done": 4, "failed": 1, "running": 0, "incomplete": 0, "missing": 0}
    (failure,) = result.failures
    assert failure.replicate == 2 and failure.conditions == ["double"]
    assert "injected failure" in failure.message and failure.log.startswith("results/exp/logs/blocks/")
    text = format_status(result)
    assert "fix the failing step, then finish with: snakemake --cores all" in text
    # fixed: the printed command finishes the run
    _finish(result.command, os.getcwd())
    assert status(experiment.root / "config.yaml", experiment.root).complete


def test_a_job_that_fails_before_any_replicate_fails_all_of_them(experiment):
    """The code file fails to import in the job (planning reads it with ast only)."""
    steps = experiment.root / "steps.py"
    steps.write_text(steps.read_text() + "\nraise RuntimeError('broken import')\n")
    assert experiment.snakemake("--keep-going", check=False).returncode != 0
    result = status(experiment.root / "config.yaml", experiment.root)
    for tally in result.counts.values():
        assert tally == {"done": 0, "failed": 5, "running": 0, "incomplete": 0, "missing": 0}
    assert result.failures and all(f.replicate is None for f in result.failures)
    assert "importing the code file" in result.failures[0].message


def test_status_after_a_sigkilled_run_shows_in_flight_replicates_as_incomplete(tmp_path, monkeypatch):
    # 0.2 s per scale step: a job of several replicates is in flight for a second or more
    steps = SLOW_STEPS.replace("time.sleep(0.05)", "time.sleep(0.2)")
    killed = Experiment(tmp_path / "killed", counting_config(replicates=40), steps)
    command = snakemake_command(killed.root)
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    running = None  # a status taken while snakemake runs, showing running replicates
    try:
        while time.monotonic() < deadline:
            if killed.sidecars() >= 60:  # the scale steps are under way, far from done
                board = status(killed.root / "config.yaml", killed.root)
                # kill while jobs have replicates left to compute, not between jobs
                if sum(t["running"] for t in board.counts.values()) >= 3:
                    running = board
                    break
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert running is not None and running.active
    assert sum(t["incomplete"] for t in running.counts.values()) == 0

    result = status(killed.root / "config.yaml", killed.root)
    assert not result.active and result.in_flight
    incomplete = sum(t["incomplete"] for t in result.counts.values())
    block = load_plan(killed.root / "config.yaml", killed.root).block_size  # replicates per job
    # 2 jobs were running; a shared datasource block counts for both conditions
    assert 0 < incomplete <= 2 * block * 2
    for tally in result.counts.values():
        assert tally["running"] == tally["failed"] == 0
        assert sum(tally.values()) == 40
    assert result.command[-1] == "--rerun-incomplete"
    text = format_status(result)
    assert f"{len(result.in_flight)} job(s) were interrupted" in text
    assert f"finish with: {shlex.join(result.command)}" in text

    # the printed command, run as printed, finishes the run
    monkeypatch.chdir(tmp_path)
    _finish(status("killed/config.yaml", "killed").command, tmp_path)
    assert status(killed.root / "config.yaml", killed.root).complete
