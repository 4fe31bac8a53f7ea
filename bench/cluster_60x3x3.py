"""The grouped 60 x 3 x 3 experiment (60 replicates, baseline + 2 treatments, 3 steps
of microseconds) on the local HTCondor pool and the local Slurm, next to a local run.

    bash scripts/htcondor-local.sh start; bash scripts/slurm-local.sh start   # root
    python bench/cluster_60x3x3.py

Each executor runs the experiment from scratch twice: with its profile as shipped, and
with Snakemake polling job status every 2 s (the profiles poll every 10-20 s, which a
real cluster wants and a one-machine one does not need). It prints the wall time, the
number of submissions, the summed run time of the submissions as the scheduler
recorded it, and the ratio to the local run. An executor whose daemons are not up is
skipped with the reason. Steps take microseconds, so every second is overhead:
scheduling, job start-up (`python -m snakemake` inside each submission) and polling.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from common import TINY_STEPS, tiny_config  # noqa: E402

POOL = Path(os.environ.get("REPLIFLOW_HTCONDOR_DIR", "/tmp/repliflow-htcondor"))
SLURM_DIR = Path(os.environ.get("REPLIFLOW_SLURM_DIR", "/tmp/repliflow-slurm"))
FAST_STATUS = ["--seconds-between-status-checks", "2"]
SLURM_FAST = ["--slurm-init-seconds-before-status-checks", "2", *FAST_STATUS]
IS_ROOT = os.geteuid() == 0


def pool_env() -> dict[str, str] | None:
    env_file = POOL / "env.sh"
    if not env_file.is_file():
        return None
    env = dict(os.environ)
    for line in env_file.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.replace("$PATH", env.get("PATH", ""))
    return env


def answers(command: list[str], env: dict[str, str] | None = None) -> bool:
    try:
        out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and bool(out.stdout.strip())


def experiment_dir(base: Path, name: str, owner: str | None) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
    os.chmod(root, 0o755)
    (root / "steps.py").write_text(TINY_STEPS)
    (root / "config.yaml").write_text(yaml.safe_dump(tiny_config(60, "auto"), sort_keys=False))
    if owner:
        subprocess.run(["chown", "-R", f"{owner}:", str(root)], check=True)
    return root


def run(command: list[str], root: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed in {root}:\n{result.stderr[-3000:]}")
    if not (root / "results" / "bench" / "metrics.csv").exists():
        raise SystemExit(f"no metrics.csv in {root}: the run did not do the work")
    return elapsed


def snakemake(python: str, snakefile: Path, root: Path, *args: str) -> list[str]:
    return [python, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(root),
            "--configfile", str(root / "config.yaml"), *args]  # fmt: skip


def htcondor(variants: dict[str, list[str]]) -> list[tuple[str, float, int, float]]:
    env = pool_env()
    if env is None or not answers(["condor_status", "-af", "Name"], env):
        print(f"htcondor: skipped (no pool answers in {POOL}: bash scripts/htcondor-local.sh start)")
        return []
    user = env.get("REPLIFLOW_HTCONDOR_USER") if IS_ROOT else None
    python = env.get("REPLIFLOW_HTCONDOR_PYTHON", sys.executable) if IS_ROOT else sys.executable
    (POOL / "work").mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="bench-", dir=POOL / "work"))
    os.chmod(base, 0o755)
    workflow = base / "workflow-copy"  # readable by the submit user, unlike a checkout under /root
    workflow.mkdir()
    shutil.copy(REPO / "Snakefile", workflow / "Snakefile")
    for name in ["workflow", "src", "envs", "profiles"]:
        shutil.copytree(REPO / name, workflow / name, ignore=shutil.ignore_patterns("__pycache__"))
    if user:
        subprocess.run(["chown", "-R", f"{user}:", str(base)], check=True)
    rows = []
    for variant, extra in variants.items():
        root = experiment_dir(base, variant, user)
        command = snakemake(
            python, workflow / "Snakefile", root, "--profile", str(workflow / "profiles" / "htcondor"), *extra
        )
        elapsed = run(["runuser", "-u", user, "--", *command] if user else command, root, env)
        history = subprocess.run(
            ["condor_history", "-constraint", f'Iwd == "{root}"', "-af", "RemoteWallClockTime"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        rows.append((f"htcondor {variant}", elapsed, len(history), sum(float(x) for x in history)))
    shutil.rmtree(base, ignore_errors=True)
    return rows


def slurm(variants: dict[str, list[str]], base: Path) -> list[tuple[str, float, int, float]]:
    if not answers(["sinfo", "--noheader", "--format=%T"]):
        print("slurm: skipped (no local Slurm answers: bash scripts/slurm-local.sh start)")
        return []
    rows = []
    for variant, extra in variants.items():
        root = experiment_dir(base, f"slurm-{variant}", None)
        command = snakemake(
            sys.executable, REPO / "Snakefile", root, "--profile", str(REPO / "profiles" / "slurm"), *extra
        )
        elapsed = run(command, root)
        runs = []
        for line in (SLURM_DIR / "jobcomp.log").read_text().splitlines():
            fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
            if fields.get("WorkDir") == str(root):
                start = datetime.fromisoformat(fields["StartTime"])
                end = datetime.fromisoformat(fields["EndTime"])
                runs.append((end - start).total_seconds())
        rows.append((f"slurm {variant}", elapsed, len(runs), sum(runs)))
    return rows


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        choices=["slurm", "htcondor"],
        help="run the local run and this executor only (perf.py all --slurm)",
    )
    only = parser.parse_args().only
    work = REPO / "bench" / "work"
    work.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="cluster-", dir=work))
    local_root = experiment_dir(base, "local", None)
    local = run(snakemake(sys.executable, REPO / "Snakefile", local_root, "--cores", "2"), local_root)
    rows = [("local --cores 2", local, 0, 0.0)]
    if only in (None, "slurm"):
        rows += slurm({"profile": [], "fast-status": SLURM_FAST}, base)
    if only in (None, "htcondor"):
        rows += htcondor({"profile": [], "fast-status": FAST_STATUS})
    print(f"\n60 replicates x 3 conditions x 3 steps, grouped ({os.cpu_count()} cores, one machine)")
    print(f"{'run':<24} {'wall s':>8} {'submissions':>12} {'job run s':>10} {'x local':>8}")
    for name, elapsed, submissions, job_seconds in rows:
        print(f"{name:<24} {elapsed:8.1f} {submissions:12d} {job_seconds:10.1f} {elapsed / local:8.1f}")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
