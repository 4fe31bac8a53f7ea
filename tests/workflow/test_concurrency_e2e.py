"""Replicates in flight inside a block job, through Snakemake (issue 17): the
tables of a serial run, a SIGKILL that costs only the calls in flight, and a
crash with several replicates in flight still blamed on the right one."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from conftest import COUNTING_STEPS, Experiment, counting_config, snakemake_command

STEPS = (
    COUNTING_STEPS
    + """

import asyncio
import time


async def fetch(ctx, *, n=5, offset=0.0, wait=0.05):
    _record(ctx)
    await asyncio.sleep(wait)
    return [float(x) + offset for x in ctx.rng.normal(size=n)]


def fetch_blocking(ctx, *, n=5, offset=0.0, wait=0.05):
    _record(ctx)
    time.sleep(wait)
    return [float(x) + offset for x in ctx.rng.normal(size=n)]


def hang_one(ctx, *, n=5):
    time.sleep(3600 if ctx.replicate == 1 else 0.2)
    return [float(x) for x in ctx.rng.normal(size=n)]


def global_random(ctx, *, n=5):
    import random

    time.sleep(0.05)
    return [random.gauss(0, 1) for _ in range(n)]


def crash_one(ctx, *, n=5):
    if ctx.replicate == 2:
        time.sleep(0.3)  # the others are in flight by now
        os._exit(9)
    time.sleep(1.0)
    return [float(x) for x in ctx.rng.normal(size=n)]
"""
)


def _config(function: str, concurrency: int | None, replicates: int = 12, **params) -> dict:
    source = {"function": function, "params": {"n": 5, **params}}
    if concurrency is not None:
        source["concurrency"] = concurrency
    return counting_config(replicates=replicates, datasource=source)


@pytest.mark.parametrize("function", ["fetch", "fetch_blocking"])
def test_concurrent_blocks_make_the_tables_of_a_serial_run(tmp_path, function):
    serial = Experiment(tmp_path / "serial", _config(function, None), STEPS)
    serial.snakemake()
    concurrent = Experiment(tmp_path / "concurrent", _config(function, 8), STEPS)
    concurrent.snakemake()
    for table in ("metrics.csv", "hypotheses.json"):
        assert (concurrent.results / table).read_bytes() == (serial.results / table).read_bytes()
    # auto blocks hold two waves of the 8 replicates a job keeps in flight (here: all 12)
    bounds = [p.stem.split("-") for p in (concurrent.results / "blocks").rglob("*.json")]
    assert {int(hi) - int(lo) for lo, hi in bounds} == {12}


def test_a_sigkill_mid_block_costs_only_the_calls_in_flight(tmp_path):
    config = _config("fetch", 4, replicates=40, wait=0.2)
    config["batch"] = {"replicates_per_job": 64}
    experiment = Experiment(tmp_path, config, STEPS)
    process = subprocess.Popen(
        snakemake_command(experiment.root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while experiment.sidecars() < 12 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    stored = experiment.sidecars()
    assert 0 < stored < 40, "the kill did not land mid-block"
    before = [c for c in experiment.calls() if c.startswith("datasource,")]
    experiment.reset_calls()

    experiment.snakemake("--rerun-incomplete")
    again = [c for c in experiment.calls() if c.startswith("datasource,")]
    # the datasource segment: every stored replicate kept, the rest (those in flight
    # at the kill, at most 4, and those not yet started) computed once
    assert len(again) == 40 - stored
    assert len(before) - stored <= 4
    assert (experiment.results / "metrics.csv").exists()


def _failed_run(tmp_path, config) -> tuple[Experiment, str]:
    """The experiment after a run that must fail, and its output on one line."""
    experiment = Experiment(tmp_path, config, STEPS)
    run = experiment.snakemake(check=False, timeout=120)
    assert run.returncode != 0
    return experiment, " ".join((run.stdout + run.stderr).split())


def test_a_crash_with_several_replicates_in_flight_is_blamed_on_its_replicate(tmp_path):
    experiment, text = _failed_run(tmp_path, _config("crash_one", 4, replicates=4))
    assert (
        "repliflow: step 'datasource' failed for condition 'baseline', replicate 2: "
        "the process exited with code 9" in text
    )
    log = next((experiment.results / "logs" / "blocks").rglob("*.log")).read_text()
    assert "going on one replicate at a time" in log
    # the other replicates of the block were computed
    assert experiment.sidecars() == 3


def test_a_plain_step_past_its_timeout_is_killed_and_blamed_under_concurrency(tmp_path):
    config = _config("hang_one", 4, replicates=4)
    config["datasource"]["timeout"] = 1
    experiment, text = _failed_run(tmp_path, config)
    assert (
        "repliflow: step 'datasource' failed for condition 'baseline', replicate 1: "
        "it ran longer than its timeout of 1 s (killed)" in text
    )
    assert experiment.sidecars() == 3  # the replicates in flight beside it were done again


def test_the_global_rng_under_concurrency_fails_the_run_with_what_to_do(tmp_path):
    experiment, text = _failed_run(tmp_path, _config("global_random", 4, replicates=8))
    assert "step 'datasource' drew from Python's random module while 4 replicates ran concurrently" in text
    assert "Draw from ctx.rng" in text
    assert not (experiment.results / "metrics.csv").exists()
