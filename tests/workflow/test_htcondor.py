"""The htcondor profile against a real single-machine HTCondor pool
(scripts/htcondor-local.sh start; .ci/run starts and stops it).

HTCondor never runs jobs owned by root, so when the tests run as root (CI)
snakemake runs as the pool's unprivileged submit user, with the venv
htcondor-local.sh built for it; the workflow and the experiments are copied
into a folder that user owns, under the pool's directory. Submissions are
counted and their requests read from condor_history, by the experiment's
working directory (Iwd).
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from conftest import COUNTING_STEPS, REPO, SLOW_STEPS, Experiment, counting_config, declared_config

from repliflow.store.audit import AuditResult, audit

POOL = Path(os.environ.get("REPLIFLOW_HTCONDOR_DIR", "/tmp/repliflow-htcondor"))
IS_ROOT = os.geteuid() == 0
# The profile checks job status every 10 s (Snakemake's default), right for a real pool;
# this one answers at once, and the submissions here run one after another.
FAST_STATUS = ["--seconds-between-status-checks", "2"]


def _pool_env() -> dict[str, str]:
    """The environment env.sh (written by htcondor-local.sh) points at the pool."""
    env = dict(os.environ)
    env_file = POOL / "env.sh"
    if not env_file.is_file():
        return {}
    for line in env_file.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.replace("$PATH", env.get("PATH", ""))
    return env


ENV = _pool_env()
USER = ENV.get("REPLIFLOW_HTCONDOR_USER", "")
PYTHON = ENV.get("REPLIFLOW_HTCONDOR_PYTHON") if IS_ROOT else sys.executable


def _why_not() -> str | None:
    if not ENV:
        return f"no local HTCondor pool ({POOL}/env.sh missing): run bash scripts/htcondor-local.sh start"
    try:
        slots = subprocess.run(
            ["condor_status", "-af", "Name"], env=ENV, capture_output=True, text=True, timeout=20
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the HTCondor pool in {POOL} does not answer ({exc}): bash scripts/htcondor-local.sh start"
    if not slots.strip():
        return f"the HTCondor pool in {POOL} has no slot: bash scripts/htcondor-local.sh status"
    if IS_ROOT and not (PYTHON and Path(PYTHON).exists()):
        return "no venv for the submit user: bash scripts/htcondor-local.sh start (as root) builds it"
    return None


pytestmark = [pytest.mark.htcondor, pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "")]


def condor(*args: str) -> str:
    return subprocess.run([*args], env=ENV, capture_output=True, text=True, timeout=60, check=True).stdout


def _as_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", USER, "--", *command] if IS_ROOT else command


def _chown(path: Path) -> None:
    if IS_ROOT:
        subprocess.run(["chown", "-R", f"{USER}:", str(path)], check=True)


@pytest.fixture(scope="module")
def workflow_copy() -> Path:
    """The workflow and the package as the submit user can read them (the
    checkout may sit under root's home)."""
    (POOL / "work").mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="repliflow-", dir=POOL / "work"))
    os.chmod(root, 0o755)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copy(REPO / "Snakefile", root / "Snakefile")
    for name in ["workflow", "src", "envs", "profiles"]:
        shutil.copytree(REPO / name, root / name, ignore=ignore)
    _chown(root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


class CondorExperiment:
    """An experiment folder the submit user owns, run with --profile profiles/htcondor."""

    def __init__(self, workflow: Path, name: str, config: dict, steps: str = COUNTING_STEPS):
        self.workflow = workflow
        self.root = workflow.parent / f"{workflow.name}-{name}"
        self.root.mkdir()
        (self.root / "steps.py").write_text(steps)
        (self.root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        _chown(self.root)
        self.started = time.time()

    @property
    def results(self) -> Path:
        return self.root / "results" / "exp"

    def command(self, *args: str) -> list[str]:
        return _as_user(
            [
                str(PYTHON), "-m", "snakemake",
                "--snakefile", str(self.workflow / "Snakefile"),
                "--directory", str(self.root),
                "--configfile", str(self.root / "config.yaml"),
                "--profile", str(self.workflow / "profiles" / "htcondor"),
                *FAST_STATUS,
                *args,
            ]
        )  # fmt: skip

    def run(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), cwd=self.root, env=ENV, capture_output=True, text=True, timeout=timeout
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            cwd=self.root,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # one process group: runuser and snakemake
        )

    def jobs(self, *attributes: str, queue: bool = False) -> list[list[str]]:
        """This experiment's submissions (finished ones from condor_history, or
        the queue's), one row of ``attributes`` each."""
        tool = ["condor_q", "-allusers"] if queue else ["condor_history"]
        constraint = f'Iwd == "{self.root}"'
        out = condor(*tool, "-constraint", constraint, "-af:t", "ClusterId", *attributes)
        return [line.split("\t") for line in out.splitlines() if line.strip()]

    def wait_for_running_job(self, timeout: float = 120) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for cluster, status in self.jobs("JobStatus", queue=True):
                if status == "2":  # running
                    return cluster
            time.sleep(0.5)
        raise AssertionError("no job of the experiment started running")

    def wait_for_empty_queue(self, timeout: float = 180) -> None:
        deadline = time.time() + timeout
        while self.jobs(queue=True):
            assert time.time() < deadline, "the experiment's jobs are still queued"
            time.sleep(1)

    def audit(self) -> AuditResult:
        return audit(str(self.results), config=str(self.root / "config.yaml"), workdir=str(self.root))

    def calls(self) -> list[tuple[str, str, int]]:
        log = self.root / "calls.log"
        if not log.exists():
            return []
        rows = [line.split(",") for line in log.read_text().splitlines()]
        return [(step, condition, int(replicate)) for step, condition, replicate in rows]


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def _all_calls(replicates: int) -> list[tuple[str, str, int]]:
    """Every replicate x step of the counting experiment (condition double scales)."""
    return [("datasource", "baseline", r) for r in range(replicates)] + [
        (step, condition, r)
        for step in ("scale", "metrics")
        for condition in ("baseline", "double")
        for r in range(replicates)
    ]


@pytest.fixture(scope="module")
def declared(workflow_copy) -> CondorExperiment:
    """One complete run of the experiment whose steps declare memory, threads
    and runtime (6 replicates in blocks of 4: 2 blocks x 3 segments), with
    --cores 2 as the profile says for steps that declare threads (it asks 1)."""
    experiment = CondorExperiment(workflow_copy, "declared", declared_config())
    _ok(experiment.run("--cores", "2"))
    return experiment


def test_the_experiment_runs_on_the_pool_and_audits(declared):
    for name in ["metrics.csv", "hypotheses.json", "provenance.json", "report.html"]:
        assert (declared.results / name).is_file(), name
    result = declared.audit()
    assert result.ok and result.checked == 6 * 3 + 6 * 2, result.problems
    # every replicate x step ran once, in HTCondor jobs owned by the submit user
    calls = declared.calls()
    assert len(calls) == len(set(calls)) == 6 * 5
    owners = {owner for _, owner in declared.jobs("Owner")}
    assert owners == {USER if IS_ROOT else getpass.getuser()}
    assert {code for _, code in declared.jobs("ExitCode")} == {"0"}


def test_tiny_jobs_are_grouped_into_few_submissions(declared):
    """2 blocks (each all 3 segments of its replicates) fit one submission of up
    to 4 (group-components replicates=4); aggregate and view run in the
    submitting snakemake (the workflow's local rules), not in a submission."""
    names = sorted(name for _, name in declared.jobs("JobBatchName"))
    assert len(names) == 1, names
    assert names[0].startswith("replicates_run_segment")


def test_a_run_ends_with_its_last_job_not_a_status_interval_later(declared):
    """Snakemake's status thread sleeps the status interval (60 s here) and its
    shutdown waited that sleep out: a run whose only job is the local `default`
    rule took 60 s. It now ends at once."""
    started = time.monotonic()
    _ok(declared.run("--seconds-between-status-checks", "60", "--forcerun", "default"))
    elapsed = time.monotonic() - started
    assert elapsed < 30, f"the run took {elapsed:.0f} s"
    assert len(declared.jobs()) == 1  # the fixture's submission; this run submitted nothing


def test_declared_resources_reach_the_submit_description(declared):
    (row,) = [r for r in declared.jobs("JobBatchName", "RequestCpus", "RequestMemory", "AllowedJobDuration")
              if r[1].startswith("replicates_")]  # fmt: skip
    _, _, cpus, memory, duration = row
    assert cpus == "2"  # threads: the most any step declares
    assert memory == "3000"  # mem_mb: the most any step declares, in MB
    # Each block job carries its submission's serial time if it held 4 blocks (group-components
    # replicates=4): 4 x (datasource 30 min default + 2 x (1 + 2.5 x n) min) for its n
    # replicates, and Snakemake sums that over the jobs of one layer (the 2 datasource jobs,
    # blocks of 4 and 2 replicates): 4 x 52 + 4 x 42 minutes. An upper bound, never less
    # than the serial time (52 + 42 minutes), so HTCondor never removes a job doing its work.
    assert int(duration) == (4 * 52 + 4 * 42) * 60
    assert int(duration) >= (52 + 42) * 60


def test_a_removed_job_fails_the_run_clearly_and_the_next_run_redoes_only_its_work(workflow_copy):
    config = counting_config(replicates=4, batch={"replicates_per_job": 2})
    experiment = CondorExperiment(workflow_copy, "removed", config, steps=SLOW_STEPS)
    run = experiment.start("--retries", "0", "--group-components", "replicates=1")
    cluster = experiment.wait_for_running_job()
    condor("condor_rm", cluster)
    output, _ = run.communicate(timeout=600)
    assert run.returncode != 0, output[-4000:]
    assert "Error in group replicates" in output or "Error in rule run_segment" in output, output[-4000:]
    assert f"{cluster}" in output or "removed" in output.lower(), output[-4000:]
    before = experiment.calls()
    again = experiment.run()
    _ok(again)
    after = experiment.calls()[len(before) :]
    # the second run computes only the removed job's block (2 replicates, one submission
    # each with replicates=1), and of that only what the job had not stored
    assert len({replicate // 2 for _, _, replicate in after}) == 1, after
    assert set(before) | set(after) == set(_all_calls(4)) and len(after) <= 2 * 5
    result = experiment.audit()
    assert result.ok, result.problems


def test_a_removed_job_is_submitted_again_by_the_profile(workflow_copy):
    """The profile's `retries: 1`: the run goes on, and the new job computes only
    what the removed one had not stored."""
    config = counting_config(replicates=4, batch={"replicates_per_job": 2})
    experiment = CondorExperiment(workflow_copy, "retried", config, steps=SLOW_STEPS)
    run = experiment.start("--group-components", "replicates=1")
    cluster = experiment.wait_for_running_job()
    condor("condor_rm", cluster)
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 0, output[-4000:]
    assert "attempt 2" in output.lower() or "retr" in output.lower(), output[-4000:]
    calls = experiment.calls()
    assert set(calls) == set(_all_calls(4))
    repeated = {call for call in calls if calls.count(call) > 1}
    assert len({replicate // 2 for _, _, replicate in repeated}) <= 1, repeated  # one block at most
    assert experiment.audit().ok
    assert len(experiment.jobs()) == 3  # 2 block submissions and the removed one again


def test_a_held_job_fails_the_run_within_the_held_timeout(workflow_copy):
    config = counting_config(replicates=4, batch={"replicates_per_job": 2})
    experiment = CondorExperiment(workflow_copy, "held", config, steps=SLOW_STEPS)
    run = experiment.start("--retries", "0", "--htcondor-held-timeout", "15")
    cluster = experiment.wait_for_running_job()
    condor("condor_hold", cluster)
    held_at = time.time()
    output, _ = run.communicate(timeout=600)
    waited = time.time() - held_at
    assert run.returncode != 0, output[-4000:]
    assert "held" in output.lower(), output[-4000:]
    assert waited < 15 + 90, f"the run ended {waited:.0f} s after the hold"  # timeout + the plugin's polling
    condor("condor_rm", cluster)


def test_a_sigkilled_snakemake_resumes_with_the_profile(workflow_copy, tmp_path):
    config = counting_config(replicates=4, batch={"replicates_per_job": 2})
    # a scale step of 1.5 s: a job (2 replicates, 2 conditions) outlives its killed snakemake by 6 s
    steps = SLOW_STEPS.replace("time.sleep(0.05)", "time.sleep(1.5)")
    experiment = CondorExperiment(workflow_copy, "killed", config, steps=steps)
    run = experiment.start("--group-components", "replicates=1")
    experiment.wait_for_running_job()
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    assert not (experiment.results / "metrics.csv").exists()
    # the jobs already submitted run on, each its own snakemake in the folder: a resume
    # now keeps the dead run's lock and says why, and what to do
    early = experiment.run()
    assert early.returncode != 0
    assert "other snakemake processes still work here" in early.stderr and "condor_rm" in early.stderr
    experiment.wait_for_empty_queue()
    _ok(experiment.run())
    calls = experiment.calls()
    assert set(calls) == set(_all_calls(4))
    assert len(calls) == len(set(calls)), "a replicate x step ran twice"
    result = experiment.audit()
    assert result.ok, result.problems
    undisturbed = Experiment(tmp_path / "local", config)  # the same experiment, run locally
    undisturbed.snakemake()
    assert (experiment.results / "metrics.csv").read_bytes() == (
        undisturbed.root / "results" / "exp" / "metrics.csv"
    ).read_bytes()
    status = json.loads(
        subprocess.run(
            [sys.executable, "-m", "repliflow.cli", "status", "--json", "config.yaml"],
            cwd=experiment.root, capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    assert status["command"] is None
