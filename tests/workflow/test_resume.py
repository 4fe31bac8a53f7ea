"""A run killed with SIGKILL mid-way is finished by --rerun-incomplete."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from conftest import SLOW_STEPS, Experiment, counting_config, snakemake_command


def test_sigkilled_run_resumes_and_matches_an_uninterrupted_run(tmp_path):
    config = counting_config(replicates=40)
    reference = Experiment(tmp_path / "reference", config, SLOW_STEPS)
    reference.snakemake()

    killed = Experiment(tmp_path / "killed", config, SLOW_STEPS)
    command = snakemake_command(killed.root)
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    # kill once the scale steps are under way but far from done
    while killed.sidecars() < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    total = 40 + 2 * 40 * 2  # datasource shared, scale and metrics per condition
    assert 0 < killed.sidecars() < total, "the kill did not land mid-run"
    assert not (killed.results / "metrics.csv").exists()
    calls_before = len(killed.calls())

    # no --unlock needed: the lock of the killed snakemake is recognised as stale
    resumed = killed.snakemake("--rerun-incomplete")
    assert "removed the lock left by snakemake process" in resumed.stderr

    assert (killed.results / "metrics.csv").read_bytes() == (reference.results / "metrics.csv").read_bytes()
    # only the replicate x step in flight in each of the 2 running jobs may be redone
    assert len(killed.calls()) <= len(reference.calls()) + 2
    assert len(killed.calls()) > calls_before
