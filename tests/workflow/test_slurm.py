"""Through a real Slurm with `--profile profiles/slurm`.

Needs a running local cluster: `bash scripts/slurm-local.sh start` (root; it
installs Debian's slurm-wlm and munge). .ci/run starts one before the tests and
stops it after; without one these tests skip and say why.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import COUNTING_STEPS, REPO, Experiment, counting_config

SCRIPT = REPO / "scripts" / "slurm-local.sh"
PROFILE = str(REPO / "profiles" / "slurm")
# The profile polls every 20 s for a real cluster; a test cluster answers at once.
# MinJobAge (600 s here) stays far above 3 x 2 s, so squeue-based status holds.
FAST_STATUS = [
    "--slurm-init-seconds-before-status-checks", "2",
    "--seconds-between-status-checks", "2",
    "--max-status-checks-per-second", "10",
]  # fmt: skip
# Every step call sleeps this long when REPLIFLOW_TEST_SLEEP is set (passed on to jobs).
SLOW_STEPS = COUNTING_STEPS.replace(
    "def _record(ctx):\n",
    "def _record(ctx):\n"
    "    import time\n"
    "    time.sleep(float(os.environ.get('REPLIFLOW_TEST_SLEEP', '0')))\n",
)


def skip_reason() -> str | None:
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm missing: pip install -e '.[cluster]'"
    how = "start one with `bash scripts/slurm-local.sh start` (as root; .ci/run does)"
    if shutil.which("sbatch") is None:
        if os.geteuid() != 0:
            return "no Slurm here, and installing one (apt-get install slurm-wlm munge) needs root"
        if shutil.which("apt-get") is None:
            return "no Slurm here, and no apt-get to install Debian's slurm-wlm and munge"
        return f"no local Slurm: {how}"
    status = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True, text=True, timeout=30)
    if status.returncode != 0:
        return f"the local Slurm of scripts/slurm-local.sh is not running: {how}"
    return None


pytestmark = [pytest.mark.slurm, pytest.mark.skipif(bool(reason := skip_reason()), reason=reason or "")]

CONDITIONS = {"double": {"scale": {"factor": 2.0}}, "triple": {"scale": {"factor": 3.0}}}
# 3 conditions x 6 replicates x 3 steps, in blocks of 2 replicates: 3 blocks x
# (1 shared datasource segment + 3 condition segments) = 12 block jobs, plus
# aggregate (which renders the report) and view
CONFIG = counting_config(replicates=6, treatments=CONDITIONS, batch={"replicates_per_job": 2})
JOBS = 12 + 2
# where the Slurm plugin logs a submission of the summary group (aggregate and view)
SUMMARY_SUBMISSION_LOGS = ".snakemake/slurm_logs/group_summary_aggregate_view"
CALLS = 6 + 3 * 6 + 3 * 6  # datasource shared; scale and metrics per condition


def jobcomp_log() -> Path:
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30)
    return Path(next(line.split("=", 1)[1].strip() for line in config.stdout.splitlines()
                     if line.startswith("JobCompLoc")))  # fmt: skip


def submissions(workdir: Path) -> list[str]:
    """Slurm's record of every finished job that ran in ``workdir``."""
    return [line for line in jobcomp_log().read_text().splitlines() if f" WorkDir={workdir} " in line]


def our_jobs(workdir: Path, state: str = "all") -> list[str]:
    listing = subprocess.run(
        ["squeue", "--noheader", f"--states={state}", "--format=%i|%Z"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return [line.split("|")[0] for line in listing.stdout.splitlines() if line.endswith(f"|{workdir}")]


def through_slurm(experiment: Experiment, *args: str, env: dict | None = None):
    return experiment.snakemake("--profile", PROFILE, *FAST_STATUS, *args, env=env, timeout=600)


@pytest.fixture(scope="module")
def local_metrics(tmp_path_factory) -> str:
    experiment = Experiment(tmp_path_factory.mktemp("local"), CONFIG)
    experiment.snakemake()
    return (experiment.results / "metrics.csv").read_text()


def test_grouped_run_matches_the_local_run_in_few_submissions(tmp_path, local_metrics):
    experiment = Experiment(tmp_path, CONFIG)
    started = time.monotonic()
    through_slurm(experiment)
    elapsed = time.monotonic() - started
    assert (experiment.results / "metrics.csv").read_text() == local_metrics
    for name in ["hypotheses.json", "report.html", "provenance.json"]:
        assert (experiment.results / name).is_file(), name
    assert sorted(collections.Counter(experiment.calls()).values()) == [1] * CALLS
    # one submission runs all 12 block jobs (3 blocks <= 4 per group); aggregate and
    # view run in the submitting snakemake (the workflow's local rules)
    jobs = submissions(tmp_path)
    assert len(jobs) == 1 < JOBS, jobs
    assert not (tmp_path / SUMMARY_SUBMISSION_LOGS).exists()
    assert all("JobState=COMPLETED" in job for job in jobs)
    print(f"{JOBS} jobs in {len(jobs)} Slurm submissions, {elapsed:.0f} s")
    # a second run submits nothing
    experiment.reset_calls()
    again = through_slurm(experiment)
    assert "Nothing to be done" in again.stdout + again.stderr and experiment.calls() == []
    assert len(submissions(tmp_path)) == 1
    # a run ends with its last job: Snakemake's shutdown used to wait out the status
    # thread's sleep, the plugin's interval (60 s here), even when the only job was the
    # local `default` rule (hooks.end_status_waits_at_shutdown)
    started = time.monotonic()
    experiment.snakemake(
        "--profile", PROFILE, "--slurm-init-seconds-before-status-checks", "60", "--forcerun", "default"
    )  # fmt: skip
    assert time.monotonic() - started < 30
    assert len(submissions(tmp_path)) == 1


def test_a_cancelled_job_is_redone_by_the_next_run(tmp_path, local_metrics):
    experiment = Experiment(tmp_path, CONFIG, steps=SLOW_STEPS)
    env = {**os.environ, "REPLIFLOW_TEST_SLEEP": "0.3"}
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"),
        "--profile", PROFILE, *FAST_STATUS, "--retries", "0",
    ]  # fmt: skip
    log = (tmp_path / "first-run.log").open("w")
    first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    cancelled = None
    try:
        deadline = time.monotonic() + 240
        while cancelled is None and time.monotonic() < deadline and first.poll() is None:
            running = our_jobs(tmp_path, "RUNNING")
            stored = len(list((experiment.results / "store").glob("*/*.meta.json")))
            if running and stored >= 4:  # mid-run: some replicate x steps are stored
                cancelled = running[0]
                subprocess.run(["scancel", cancelled], check=True, timeout=30)
            time.sleep(0.2)
        assert cancelled, "no Slurm job was seen running mid-run"
        assert first.wait(timeout=300) != 0  # the run fails: its job was cancelled
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGINT)
            first.wait(timeout=60)
        log.close()
    assert "CANCELLED" in "\n".join(submissions(tmp_path))
    kept = len(list((experiment.results / "store").glob("*/*.meta.json")))
    assert 4 <= kept < CALLS
    assert not (experiment.results / "metrics.csv").exists()
    for _ in range(100):  # the cancelled job's processes are gone before we go on
        if not our_jobs(tmp_path, "RUNNING,COMPLETING"):
            break
        time.sleep(0.2)

    before = experiment.calls()
    experiment.reset_calls()
    # the profile has rerun-incomplete; the summary group, as a profile that wants
    # aggregate and view submitted would set it
    summary_group = ["--groups", "aggregate=summary", "view=summary", "--group-components", "summary=2"]
    through_slurm(experiment, *summary_group, env={"REPLIFLOW_TEST_SLEEP": "0"})
    assert (experiment.results / "metrics.csv").read_text() == local_metrics
    assert (tmp_path / SUMMARY_SUBMISSION_LOGS).is_dir()  # grouped: submitted, not local
    redone = experiment.calls()
    # every replicate x step ran; only those in flight at the cancel ran twice
    # (at most one per block job running side by side: one per submission with the profile's cores, 1)
    assert len(set(before + redone)) == CALLS
    assert len(before) + len(redone) <= CALLS + 2
    assert len(redone) <= CALLS - kept + 2
