"""What the benchmarks share: work directories, timed whole processes, the
workflow and the reference runs, and the checks that a figure measured the
work it claims.

Work directories live under bench/work/ (gitignored), never under /tmp:
creating files there is 10-20x slower on this machine, which would make every
figure a file-system figure.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
WORK = BENCH / "work"
sys.path.insert(0, str(REPO / "src"))  # plan the same experiment the workflow plans

# The rule that runs segment jobs; every other rule's jobs (aggregate, view,
# the `all` target, ...) form the "tail" every run has. They are read from a
# dry run rather than listed here, so new rules in the workflow are counted.
SEGMENT_RULE = "run_segment"

# Three steps of a few microseconds each, so the workflow's own cost shows.
TINY_STEPS = '''\
"""Three steps of a few microseconds each, so the workflow's own cost shows."""


def source(ctx, *, n=10):
    return [float(x) for x in ctx.rng.normal(size=n)]


def scale(data, ctx, *, factor=1.0):
    return [x * factor for x in data]


def summarize(data, ctx):
    mean = sum(data) / len(data)
    var = sum((x - mean) ** 2 for x in data) / (len(data) - 1)
    return {"mean": mean, "std": var**0.5}
'''


def experiment_config(
    replicates: int, per_job, *, datasource: dict, pipeline: list, treatments: dict, metric: str
) -> dict:
    """A benchmark experiment: a baseline and the ``treatments``, a welch_t
    hypothesis on ``metric`` (so aggregate does its usual work), and the
    block size ``per_job`` (``batch.replicates_per_job``)."""
    return {
        "experiment": "bench",
        "code": "steps.py",
        "replicates": replicates,
        "seed": 1,
        "datasource": datasource,
        "pipeline": pipeline,
        "treatments": treatments,
        "hypotheses": [{"name": f"{metric}_up", "metric": metric, "verifier": "welch_t"}],
        "batch": {"replicates_per_job": per_job},
    }


def tiny_config(replicates: int, per_job, *, samples: int = 10) -> dict:
    """A datasource and two steps; a baseline and two treatments that differ
    only in step 2, so the datasource is shared (4 segments)."""
    return experiment_config(
        replicates,
        per_job,
        datasource={"function": "source", "params": {"n": samples}},
        pipeline=[{"function": "scale", "params": {"factor": 1.0}}, {"function": "summarize"}],
        treatments={"double": {"scale": {"factor": 2.0}}, "triple": {"scale": {"factor": 3.0}}},
        metric="std",
    )


def new_dir(prefix: str) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=WORK))


def make_experiment(config: dict, steps: str = TINY_STEPS, prefix: str = "exp-") -> Path:
    """A fresh directory under bench/work/ holding steps.py and config.yaml."""
    root = new_dir(prefix)
    (root / "steps.py").write_text(steps)
    # JSON is valid YAML, and keeps the benchmark free of a yaml dependency.
    (root / "config.yaml").write_text(json.dumps(config, indent=1))
    return root


def remove_dirs(dirs: list[Path], keep: bool) -> None:
    if keep:
        print(f"# kept: {' '.join(map(str, dirs))}", file=sys.stderr)
        return
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Run:
    seconds: float  # wall time of the whole process
    returncode: int
    output: str  # stdout then stderr
    max_rss_mb: float  # peak RSS of the process or any of its descendants


def run_process(command: list[str], *, cwd: Path | None = None, env: dict | None = None) -> Run:
    """Run a whole process with its output in files (a terminal's or a pipe's
    speed must not be measured) and wait for it with wait4, which also gives
    the peak RSS of it and every descendant it waited for."""
    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=WORK) as out, tempfile.TemporaryFile(dir=WORK) as err:
        clock = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - clock
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace") + err.read().decode(errors="replace")
    return Run(seconds, process.returncode, text, usage.ru_maxrss / 1024)


# The environment of every Snakemake process the benchmarks start; see
# avoid_slow_slurm_probe().
SNAKEMAKE_ENV: dict | None = None
SLURM_NOTE: str | None = None


def avoid_slow_slurm_probe() -> str:
    """Keep a stray Slurm client configuration out of the figures.

    Snakemake imports every installed executor plugin when it starts, and
    snakemake-executor-plugin-slurm runs ``scontrol show config`` then (with a
    10 s timeout). Where a slurm.conf names a controller that is not running
    (the local Slurm of another session's cluster tests, stopped), that costs
    every Snakemake process about 10 s. When the probe is slow here, the
    benchmarks' Snakemake processes get a ``scontrol`` that fails at once, as
    on a machine without Slurm. Returns a note for the header ("" when the
    probe is fast)."""
    global SNAKEMAKE_ENV, SLURM_NOTE
    if SLURM_NOTE is not None:
        return SLURM_NOTE
    SLURM_NOTE = ""
    if not shutil.which("scontrol"):
        return SLURM_NOTE
    clock = time.perf_counter()
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(["scontrol", "show", "config"], capture_output=True, timeout=10)
    seconds = time.perf_counter() - clock
    if seconds < 0.5:
        return SLURM_NOTE
    shim = WORK / "noslurm"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "scontrol").write_text("#!/bin/sh\nexit 1\n")
    (shim / "scontrol").chmod(0o755)
    SNAKEMAKE_ENV = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"}
    SLURM_NOTE = (
        f"NOTE: `scontrol show config` took {seconds:.1f} s here (a Slurm client configured, no controller "
        "answering), which snakemake-executor-plugin-slurm runs in every Snakemake process at start-up; "
        f"the benchmark's Snakemake processes run with {shim}/scontrol (exits 1 at once) first on PATH"
    )
    return SLURM_NOTE


WORKFLOW_VENV = BENCH / ".venv-workflow"
# None: the default install in WORKFLOW_VENV; set by --workflow-python.
WORKFLOW_PYTHON: Path | None = None


def workflow_python() -> Path:
    return WORKFLOW_PYTHON or WORKFLOW_VENV / "bin" / "python"


def setup_workflow_venv() -> None:
    """Make bench/.venv-workflow: this repository installed the way the
    README's run command installs it (``pip install -e .``, no extras), with
    this venv's numpy (so ctx.rng draws the same numbers as the references).

    The workflow is timed there, not in the developer's venv: the ``cluster``
    extra's executor plugins are imported by every Snakemake process at
    start-up (the slurm plugin imports pandas), which a local user does not
    install and should not pay for. Remade when pyproject.toml changes."""
    if WORKFLOW_PYTHON is not None:
        return
    import hashlib

    import numpy

    stamp = WORKFLOW_VENV / "pyproject.sha256"
    project = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()
    wanted = f"{project} numpy {numpy.__version__}"
    python = WORKFLOW_VENV / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return
    print(f"# making {WORKFLOW_VENV} (pip install -e {REPO}, numpy {numpy.__version__})", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(WORKFLOW_VENV)], check=True)
    install = [str(python), "-m", "pip", "install", "-q", "-e", str(REPO), f"numpy=={numpy.__version__}"]
    subprocess.run(install, check=True)
    stamp.write_text(wanted)


BYTECODE_NOTE = ""


def compile_bytecode(*checkouts: Path) -> None:
    """Compile every checkout's src/ and workflow scripts to bytecode before
    timing: a user's installation has it from its first run on, as CPython
    writes it on first import. Where PYTHONDONTWRITEBYTECODE is set (this
    machine sets it for every process), nothing would ever write it, and every
    process of every run would compile repliflow's sources anew (0.04 s per
    block job, measured), a cost no user pays twice. ``compileall`` writes it
    whatever that variable says."""
    global BYTECODE_NOTE
    for checkout in checkouts:
        folders = [str(checkout / "src"), str(checkout / "workflow" / "scripts")]
        subprocess.run([str(workflow_python()), "-m", "compileall", "-q", *folders], check=True)
    BYTECODE_NOTE = "repliflow's bytecode compiled before timing (python -m compileall src workflow/scripts)"
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        BYTECODE_NOTE += "; PYTHONDONTWRITEBYTECODE is set here, so no run would write it"


def executor_plugins() -> list[str]:
    """The Snakemake executor plugins the workflow's Python has (each one is
    imported at every Snakemake start)."""
    probe = subprocess.run(
        [
            str(workflow_python()),
            "-c",
            "import importlib.metadata as m; print(' '.join(sorted(d.metadata['Name'] for d in "
            "m.distributions() if d.metadata['Name'].startswith('snakemake-executor-plugin'))))",
        ],
        capture_output=True,
        text=True,
    )
    return probe.stdout.split()


def snakemake(
    workdir: Path, cores: int, *extra: str, quiet: bool = True, checkout: Path | None = None
) -> Run:
    """One whole Snakemake process on ``workdir`` in the workflow's Python
    (``workflow_python()``); stops the benchmark on failure. ``checkout``:
    another copy of the repository whose Snakefile (and, through the
    workflow's CHECKOUT_SRC, whose src/) to run, e.g. ``git archive HEAD``'s."""
    command = [
        str(workflow_python()), "-m", "snakemake",
        "--snakefile", str((checkout or REPO) / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(workdir / "config.yaml"),
        "--cores", str(cores),
        *(["-q"] if quiet else []),
        *extra,
    ]  # fmt: skip
    run = run_process(command, env=SNAKEMAKE_ENV)
    if run.returncode != 0:
        sys.exit(
            f"snakemake failed ({run.returncode}) in {workdir} (--keep keeps it):\n"
            f"{' '.join(command)}\n{run.output[-6000:]}"
        )
    return run


def job_stats(workdir: Path, cores: int) -> dict[str, int]:
    """Jobs per rule that a run of ``workdir`` would execute, from the "Job
    stats" table of a dry run (which ``-q`` would hide)."""
    log = snakemake(workdir, cores, "-n", quiet=False).output
    table = log.split("Job stats:", 1)[-1].split("\n\n", 1)[0]
    stats = {m[1]: int(m[2]) for m in re.finditer(r"^(\S+)\s+(\d+)$", table, flags=re.MULTILINE)}
    stats.pop("total", None)
    if not stats:
        sys.exit(f"cannot read the Job stats table of a dry run in {workdir}:\n{log[-3000:]}")
    return stats


def executed_jobs(log: str) -> int | None:
    """Jobs Snakemake reports starting ("Execute N jobs..."), to check that a
    run did the work the plan predicts; None when its log says neither that
    nor "Nothing to be done" (another Snakemake log format)."""
    found = re.findall(r"^Execute (\d+) jobs?\.\.\.$", log, flags=re.MULTILINE)
    if found:
        return sum(int(n) for n in found)
    return 0 if "Nothing to be done" in log else None


def expect_jobs(what: str, log: str, expected: int) -> None:
    # A mismatch means the figure measures other work than it claims (say, a
    # re-run that is not a no-op), so say so loudly but keep measuring.
    executed = executed_jobs(log)
    if executed is not None and executed != expected:
        print(f"# WARNING: {what} executed {executed} jobs, the plan predicts {expected}", file=sys.stderr)


def count_work(config: dict, workdir: Path) -> tuple[int, int]:
    """(segment jobs, replicate-steps computed) as the planner sees them, so
    the divisors follow the plan rather than a hand count."""
    from repliflow.core.config import validate_config
    from repliflow.core.plan import build_plan

    plan = build_plan(validate_config(config), workdir=str(workdir))
    jobs = sum(len(plan.blocks(segment)) for segment in plan.segments.values())
    # A shared segment (the datasource here) runs once for all conditions.
    steps = sum((segment.end - segment.start + 1) * plan.replicates for segment in plan.segments.values())
    return jobs, steps


def block_size(config: dict, workdir: Path) -> int:
    """Replicates per block job as the planner sizes them (``auto`` resolved)."""
    from repliflow.core.config import validate_config
    from repliflow.core.plan import build_plan

    return build_plan(validate_config(config), workdir=str(workdir)).block_size


def reference(
    config: dict, workdir: Path, *, workers: int = 0, crystallize: bool = False, verify: bool = False
) -> tuple[float, float, list]:
    """(whole-process seconds, loop-only seconds, metric rows) of a reference
    run of ``config``: bench/refloop.py (a plain loop, or a process pool with
    ``workers``) or, with ``crystallize``, bench/crystallize_ref.py in the
    Crystallize venv."""
    config_path = workdir / f"reference-{time.monotonic_ns()}.json"
    rows_path = config_path.with_suffix(".rows.json")
    config_path.write_text(json.dumps({**config, "code": str(workdir / "steps.py")}))
    if crystallize:
        python, script = str(crystallize_python()), BENCH / "crystallize_ref.py"
    else:
        python, script = sys.executable, BENCH / "refloop.py"
    paths = [str(REPO / "src"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    command = [python, str(script), str(config_path), str(rows_path), "--workers", str(workers)]
    if verify:
        command.append("--verify")
    # Crystallize writes its artifacts under the working directory.
    run = run_process(command, cwd=workdir, env=env)
    if run.returncode != 0:
        sys.exit(f"the reference {' '.join(command)} failed:\n{run.output[-4000:]}")
    rows = json.loads(rows_path.read_text())
    loop = json.loads(run.output.strip().splitlines()[0])["loop_s"]
    return run.seconds, loop, rows


CRYSTALLIZE_VENV = BENCH / ".venv-crystallize"
CRYSTALLIZE_PACKAGES = ["crystallize-ml==0.27.0"]


def crystallize_python() -> Path:
    return CRYSTALLIZE_VENV / "bin" / "python"


def setup_crystallize() -> None:
    """Make bench/.venv-crystallize with crystallize-ml and this venv's numpy
    (the same version, so ctx.rng draws the same numbers). Not a project
    dependency: only the benchmarks use it."""
    if crystallize_python().exists():
        probe = subprocess.run(
            [str(crystallize_python()), "-c", "import crystallize, numpy"], capture_output=True
        )
        if probe.returncode == 0:
            return
    import numpy

    print(f"# making {CRYSTALLIZE_VENV} (crystallize-ml, numpy {numpy.__version__})", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(CRYSTALLIZE_VENV)], check=True)
    subprocess.run(
        [
            str(crystallize_python()),
            "-m",
            "pip",
            "install",
            "-q",
            *CRYSTALLIZE_PACKAGES,
            f"numpy=={numpy.__version__}",
        ],
        check=True,
    )


def check_same_numbers(what: str, produced_rows: list, expected_rows: list) -> None:
    """Two runs must have computed the same metrics, or the comparison would
    not be of the same work. Rows are [condition, replicate, metric, value]."""
    produced = {(c, int(r), m): float(v) for c, r, m, v in produced_rows}
    expected = {(c, int(r), m): float(v) for c, r, m, v in expected_rows}
    if produced.keys() != expected.keys():
        sys.exit(f"{what} has other rows than the in-process reference")
    bad = [k for k, v in expected.items() if not math.isclose(v, produced[k], rel_tol=1e-12, abs_tol=1e-15)]
    if bad:
        sys.exit(f"{what} differs from the in-process reference at {bad[:3]}")


def metrics_rows(workdir: Path, experiment: str = "bench") -> list:
    """results/<experiment>/metrics.csv as [condition, replicate, metric, value] rows."""
    with (workdir / "results" / experiment / "metrics.csv").open() as handle:
        return [
            [row["condition"], row["replicate"], row["metric"], row["value"]]
            for row in csv.DictReader(handle)
        ]


def check_workflow_numbers(workdir: Path, rows: list) -> None:
    check_same_numbers(f"metrics.csv in {workdir}", metrics_rows(workdir), rows)


def runner_seconds(workdir: Path) -> float | None:
    """Sum of the blocks' in-runner time from their logs ("... in 0.123s"), i.e.
    the steps plus their hashing, stores and sidecars, without job start-up.
    None when the log format is not the expected one."""
    total, found = 0.0, 0
    for log in (workdir / "results" / "bench" / "logs" / "blocks").glob("*/*.log"):
        for line in log.read_text().splitlines():
            if " done segment " in line and line.endswith("s"):
                try:
                    total += float(line.rsplit(" in ", 1)[1][:-1])
                    found += 1
                except ValueError:
                    return None
    return total if found else None


def workflow_version() -> str:
    """The commit the workflow is at, "+dirty" with uncommitted changes: the
    figures belong to that code."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (commit or "unknown") + ("+dirty" if dirty else "")


def started_at() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine slows
    every figure, and this says how much there was."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def file_creation_us(count: int = 1000) -> float:
    """Microseconds to create one small file (``os.open(O_CREAT | O_EXCL)``,
    write, close) in a fresh folder under WORK. Every replicate-step creates
    two (its output and its sidecar), and on this machine the cost moves
    between about 50 us and over 1 ms from minute to minute (kernel time in
    inode allocation, with nothing else running), so it is printed beside
    the figures: a run at a slow minute is a file-system figure."""
    folder = new_dir("creation-probe-")
    try:
        clock = time.perf_counter()
        for index in range(count):
            fd = os.open(folder / f"f{index:06d}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b'{"mean": 0.123}')
            os.close(fd)
        return (time.perf_counter() - clock) / count * 1e6
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def environment() -> str:
    """Cores, versions, the workflow's Python and commit, for a header line."""
    from snakemake import __version__ as snakemake_version

    plugins = ", ".join(executor_plugins()) or "none"
    return (
        f"{os.cpu_count()} cores, snakemake {snakemake_version}, python {platform.python_version()}, "
        f"workflow {workflow_version()} run by {workflow_python()} (executor plugins: {plugins})"
    )


def value_text(value: float) -> str:
    """Three significant digits, never an exponent."""
    if value == 0:
        return "0"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def ratio(value: float, reference: float, name: str) -> str:
    """``<value / reference>x_<name>``, with enough digits and no exponent."""
    return f"{value_text(value / reference)}x_{name}"


def print_figures(lines: list[tuple[str, float, str, str]]) -> None:
    """One line per figure: ``name value unit ratio``, aligned."""
    width = max(len(name) for name, *_ in lines)
    for name, value, unit, text in lines:
        print(f"{name:<{width}} {value_text(value):>7} {unit:<2} {text}", flush=True)
