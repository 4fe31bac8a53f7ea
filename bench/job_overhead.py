"""What does running tiny steps as Snakemake jobs cost, compared with a plain loop?

Runs a tiny experiment (a datasource and two steps, each well under 1 ms; a
baseline and two treatments that differ only in step 2's parameter) through
the real workflow, in fresh temporary directories, and times whole processes:

    python bench/job_overhead.py [--replicates 200] [--job-replicates 20] [--cores 2] [--repeats 3]

Prints a header, then one line per figure: ``name value unit ratio``, where
the ratio names the reference it is relative to. bench/README.md explains
every figure. Nothing is written inside the repository.
"""

from __future__ import annotations

import argparse
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
import textwrap
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # plan the same experiment the workflow plans

# The rule that runs segment jobs; every other rule's jobs (aggregate, report,
# the `all` target, ...) form the "tail" every run has. They are read from a
# dry run rather than listed here, so new rules in the workflow are counted.
SEGMENT_RULE = "run_segment"

STEPS = textwrap.dedent(
    '''
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
)

# The reference: the same functions, conditions, replicates and seeds in one
# plain loop. It builds ctx with repliflow's own Context and seed functions
# (light modules; no Snakemake) so its numbers equal the workflow's, which the
# benchmark checks; it shares the datasource across conditions as the workflow
# does. It reports the loop's own time so start-up can be told apart.
REFERENCE = textwrap.dedent(
    """
    import importlib.util
    import json
    import sys
    import time

    from repliflow.context import Context
    from repliflow.hashing import replicate_seed, step_seed

    config = json.loads(sys.argv[1])
    spec = importlib.util.spec_from_file_location("bench_steps", config["code"])
    steps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(steps)
    pipeline = config["pipeline"]
    conditions = {"baseline": {}, **config["treatments"]}


    def ctx(condition, replicate, seed, position, name, params):
        return Context(
            condition=condition,
            replicate=replicate,
            seed=seed,
            step=name,
            step_seed=step_seed(seed, position),
            params=params,
            experiment=config["experiment"],
        )


    # ctx.rng imports numpy on first use; import it now so the loop's own time
    # is the calls alone (the whole-process time still includes the import).
    import numpy  # noqa: F401

    clock = time.perf_counter()
    rows = []
    source = getattr(steps, config["datasource"]["function"])
    source_params = config["datasource"].get("params", {})
    for replicate in range(config["replicates"]):
        seed = replicate_seed(config["seed"], replicate)
        shared = source(ctx("baseline", replicate, seed, 0, "datasource", source_params), **source_params)
        for condition, overrides in conditions.items():
            data = shared
            for position, entry in enumerate(pipeline, start=1):
                name = entry.get("name", entry["function"])
                params = {**entry.get("params", {}), **overrides.get(name, {})}
                data = getattr(steps, entry["function"])(
                    data, ctx(condition, replicate, seed, position, name, params), **params
                )
            rows.extend([condition, replicate, metric, value] for metric, value in data.items())
    loop = time.perf_counter() - clock
    with open(sys.argv[2], "w") as handle:
        json.dump(rows, handle)
    print(json.dumps({"loop_s": loop}))
    """
)


def experiment_config(replicates: int, per_job) -> dict:
    return {
        "experiment": "bench",
        "code": "steps.py",
        "replicates": replicates,
        "seed": 1,
        "datasource": {"function": "source", "params": {"n": 10}},
        "pipeline": [
            {"function": "scale", "params": {"factor": 1.0}},
            {"function": "summarize"},
        ],
        "treatments": {
            "double": {"scale": {"factor": 2.0}},
            "triple": {"scale": {"factor": 3.0}},
        },
        "hypotheses": [{"name": "std_up", "metric": "std", "verifier": "welch_t"}],
        "batch": {"replicates_per_job": per_job},
    }


def make_experiment(config: dict) -> Path:
    """A fresh directory outside the repository holding steps.py and config.yaml."""
    root = Path(tempfile.mkdtemp(prefix="repliflow-bench-"))
    (root / "steps.py").write_text(STEPS)
    # JSON is valid YAML, and keeps the benchmark free of a yaml dependency.
    (root / "config.yaml").write_text(json.dumps(config, indent=1))
    return root


def count_work(config: dict, workdir: Path) -> tuple[int, int]:
    """(segment jobs, replicate-steps computed) as the planner sees them, so
    the divisors follow the plan rather than a hand count."""
    from repliflow.config import validate_config
    from repliflow.plan import build_plan

    plan = build_plan(validate_config(config), workdir=str(workdir))
    jobs = sum(len(plan.blocks(segment)) for segment in plan.segments.values())
    # A shared segment (the datasource here) runs once for all conditions.
    steps = sum((segment.end - segment.start + 1) * plan.replicates for segment in plan.segments.values())
    return jobs, steps


def snakemake(workdir: Path, cores: int, *extra: str, quiet: bool = True) -> tuple[float, str]:
    """(wall seconds of one whole Snakemake process, its output); stops the
    benchmark on failure."""
    command = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(workdir / "config.yaml"),
        "--cores", str(cores),
        *(["-q"] if quiet else []),
        *extra,
    ]  # fmt: skip
    clock = time.perf_counter()
    # Output is captured, not shown: a terminal's speed must not be measured.
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - clock
    if result.returncode != 0:
        sys.exit(
            f"snakemake failed ({result.returncode}) in {workdir} (--keep keeps it):\n"
            f"{' '.join(command)}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )
    return elapsed, result.stdout + result.stderr


def job_stats(workdir: Path, cores: int) -> dict[str, int]:
    """Jobs per rule that a run of ``workdir`` would execute, from the "Job
    stats" table of a dry run (which ``-q`` would hide)."""
    _, log = snakemake(workdir, cores, "-n", quiet=False)
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


def reference(config: dict, workdir: Path) -> tuple[float, float, list]:
    """(whole-process seconds, loop-only seconds, metric rows) of the plain loop."""
    script = workdir / "reference.py"
    script.write_text(REFERENCE)
    rows_path = workdir / "reference_rows.json"
    config = {**config, "code": str(workdir / "steps.py")}
    paths = [str(REPO / "src"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    command = [sys.executable, str(script), json.dumps(config), str(rows_path)]
    clock = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - clock
    if result.returncode != 0:
        sys.exit(f"the in-process reference failed:\n{result.stderr[-4000:]}")
    rows = json.loads(rows_path.read_text())
    return elapsed, json.loads(result.stdout)["loop_s"], rows


def check_same_numbers(workdir: Path, rows: list) -> None:
    """The workflow and the reference must have computed the same metrics,
    or the comparison would not be of the same work."""
    table = workdir / "results" / "bench" / "metrics.csv"
    with table.open() as handle:
        produced = {
            (row["condition"], int(row["replicate"]), row["metric"]): float(row["value"])
            for row in csv.DictReader(handle)
        }
    expected = {(c, r, m): v for c, r, m, v in rows}
    if produced.keys() != expected.keys():
        sys.exit(f"metrics.csv in {workdir} has other rows than the in-process reference")
    bad = [k for k, v in expected.items() if not math.isclose(v, produced[k], rel_tol=1e-12, abs_tol=1e-15)]
    if bad:
        sys.exit(f"metrics.csv in {workdir} differs from the in-process reference at {bad[:3]}")


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


def value_text(value: float) -> str:
    """Three significant digits, never an exponent."""
    if value == 0:
        return "0"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def measure(args) -> tuple[dict[str, list[float]], dict]:
    """Every timing, `repeats` times each with a fresh directory, interleaved
    so that a slow spell of the machine spreads over all figures."""
    small, large = args.job_replicates, args.replicates
    configs = {
        "jobs1": experiment_config(small, 1),
        "auto": experiment_config(large, "auto"),
        "oneblock": experiment_config(large, large),
        "ref_small": experiment_config(small, 1),
        "ref_large": experiment_config(large, "auto"),
    }
    times: dict[str, list[float]] = {}
    facts: dict = {}
    dirs: list[Path] = []

    def fresh(name: str) -> Path:
        path = make_experiment(configs[name])
        dirs.append(path)
        return path

    def record(name: str, seconds: float | None) -> None:
        if seconds is not None:
            times.setdefault(name, []).append(seconds)

    try:
        for name in ("jobs1", "auto", "oneblock"):
            work = fresh(name)
            segment_jobs, steps = count_work(configs[name], work)
            # Also the untimed warm-up: the first timed figure must not pay
            # for cold disk caches of Snakemake's and the workflow's imports.
            stats = job_stats(work, args.cores)
            if stats.get(SEGMENT_RULE) != segment_jobs:
                print(
                    f"# WARNING: {name}: a dry run plans {stats.get(SEGMENT_RULE)} {SEGMENT_RULE} jobs, "
                    f"build_plan {segment_jobs}",
                    file=sys.stderr,
                )
            facts[name] = {"segment_jobs": segment_jobs, "steps": steps, "total_jobs": sum(stats.values())}
        tail_rules = sorted(rule for rule in stats if rule != SEGMENT_RULE)
        facts["tail_rules"] = tail_rules
        tail_jobs = sum(stats[rule] for rule in tail_rules)
        # --forcerun takes rules whose jobs are re-run with all their
        # dependents; `all` is a local target that re-runs with them anyway.
        forced = [rule for rule in tail_rules if rule != "all"]

        for _ in range(args.repeats):
            # The references first, so that every workflow run below can be
            # checked to have computed exactly the reference's numbers.
            whole, _, small_rows = reference(configs["ref_small"], fresh("ref_small"))
            record("ref_small", whole)
            whole, loop, large_rows = reference(configs["ref_large"], fresh("ref_large"))
            record("ref_large", whole)
            record("ref_large_loop", loop)

            # One job per replicate x segment at a small replicate count, then
            # the same directory with only the tail (aggregate, report) forced:
            # the difference is what the segment jobs cost.
            work = fresh("jobs1")
            seconds, log = snakemake(work, args.cores)
            expect_jobs("jobs1", log, facts["jobs1"]["total_jobs"])
            check_same_numbers(work, small_rows)
            record("jobs1", seconds)
            seconds, log = snakemake(work, args.cores, "--forcerun", *forced)
            expect_jobs("tail_only", log, tail_jobs)
            record("tail_only", seconds)

            # Dry run of a fresh directory: parse, plan and build the whole DAG.
            work = fresh("auto")
            record("dry_run", snakemake(work, args.cores, "-n")[0])
            seconds, log = snakemake(work, args.cores)
            expect_jobs("auto", log, facts["auto"]["total_jobs"])
            check_same_numbers(work, large_rows)
            record("auto", seconds)
            seconds, log = snakemake(work, args.cores)
            expect_jobs("noop_rerun", log, 0)
            record("noop_rerun", seconds)
            record("auto_runner", runner_seconds(work))

            work = fresh("oneblock")
            seconds, log = snakemake(work, args.cores)
            expect_jobs("oneblock", log, facts["oneblock"]["total_jobs"])
            check_same_numbers(work, large_rows)
            record("oneblock", seconds)
    finally:
        if args.keep:
            print(f"# kept: {' '.join(map(str, dirs))}", file=sys.stderr)
        else:
            for path in dirs:
                shutil.rmtree(path, ignore_errors=True)
    return times, facts


def ratio(value: float, reference: float, name: str) -> str:
    """``<value / reference>x_<name>``, with enough digits and no exponent."""
    return f"{value_text(value / reference)}x_{name}"


def report(args, times: dict[str, list[float]], facts: dict, started: float) -> None:
    small, large = args.job_replicates, args.replicates
    # The fastest of the repeats: other processes on the machine can only add
    # time, so the minimum is the best estimate of what the mechanism costs.
    t = {name: min(values) for name, values in times.items()}
    jobs1_jobs, small_steps = facts["jobs1"]["segment_jobs"], facts["jobs1"]["steps"]
    auto_jobs, large_steps = facts["auto"]["segment_jobs"], facts["auto"]["steps"]
    oneblock_jobs = facts["oneblock"]["segment_jobs"]
    tail = facts["tail_rules"]
    ref_small, ref_large = f"inprocess_{small}", f"inprocess_{large}"
    ref_step, ref_loop = f"inprocess_per_step_{large}", f"inprocess_loop_per_step_{large}"

    per_step_ref = t["ref_large"] / large_steps  # whole process, start-up included
    per_step_loop = t["ref_large_loop"] / large_steps  # the calls alone
    # Same replicates and steps on both sides, only the number of jobs
    # differs, and the tail (aggregate, report) is common to both.
    per_job = (t["jobs1"] - t["tail_only"]) / jobs1_jobs
    extra_jobs = auto_jobs - oneblock_jobs  # 0 when "auto" makes one block per segment
    per_job_marginal = (t["auto"] - t["oneblock"]) / extra_jobs if extra_jobs else None
    auto_step = t["auto"] / large_steps
    oneblock_step = t["oneblock"] / large_steps

    lines: list[tuple[str, float, str, str]] = []

    def line(name: str, value: float, unit: str, against: float, reference: str) -> None:
        scale = {"s": 1, "ms": 1e3, "us": 1e6}[unit]
        lines.append((name, value * scale, unit, ratio(value, against, reference)))

    line(ref_small, t["ref_small"], "s", t["ref_small"], ref_small)
    line(ref_large, t["ref_large"], "s", t["ref_large"], ref_large)
    line(ref_step, per_step_ref, "ms", per_step_ref, ref_step)
    line(ref_loop, per_step_loop, "us", per_step_ref, ref_step)
    line(f"jobs1_{small}", t["jobs1"], "s", t["ref_small"], ref_small)
    line(f"tail_only_{small}", t["tail_only"], "s", t["ref_small"], ref_small)
    line("per_job", per_job, "ms", per_step_loop, ref_loop)
    if per_job_marginal is not None:
        line(f"per_job_marginal_{large}", per_job_marginal, "ms", per_step_loop, ref_loop)
    line(f"blocked_auto_{large}", t["auto"], "s", t["ref_large"], ref_large)
    line(f"blocked_auto_per_step_{large}", auto_step, "ms", per_step_ref, ref_step)
    line(f"one_block_{large}", t["oneblock"], "s", t["ref_large"], ref_large)
    line(f"one_block_per_step_{large}", oneblock_step, "ms", per_step_ref, ref_step)
    if "auto_runner" in t:
        line(f"in_runner_per_step_{large}", t["auto_runner"] / large_steps, "us", per_step_loop, ref_loop)
    line(f"noop_rerun_{large}", t["noop_rerun"], "s", t["ref_large"], ref_large)
    line(f"dry_run_{large}", t["dry_run"], "s", t["ref_large"], ref_large)

    from snakemake import __version__ as snakemake_version

    # Other work on the machine slows every figure; the load average at the
    # start and at the end says how much there was.
    load = f"{args.load_before:.2f} -> {os.getloadavg()[0]:.2f}"

    print(
        f"# repliflow job overhead, started {args.started_at}: "
        f"{os.cpu_count()} cores, --cores {args.cores}, snakemake {snakemake_version}, "
        f"python {platform.python_version()}, workflow {workflow_version()}, fastest of {args.repeats}; "
        f"load average {load}"
    )
    print(
        f"# datasource + 2 steps, baseline + 2 treatments; jobs1_{small}: {jobs1_jobs} segment jobs, "
        f"{small_steps} replicate-steps; {large} replicates: {large_steps} replicate-steps, "
        f"auto {auto_jobs} segment jobs, one_block {oneblock_jobs}; every run adds the tail jobs "
        f"({', '.join(tail)})"
    )
    width = max(len(name) for name, *_ in lines)
    for name, value, unit, text in lines:
        print(f"{name:<{width}} {value_text(value):>7} {unit:<2} {text}")
    if args.raw:
        for name, values in times.items():
            print(f"# raw {name}: {' '.join(f'{v:.4f}' for v in values)} s")
    print(f"# benchmark took {time.perf_counter() - started:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicates", type=int, default=200, help="replicates of the blocked runs")
    parser.add_argument(
        "--job-replicates", type=int, default=20, help="replicates of the one-job-per-replicate run"
    )
    parser.add_argument("--cores", type=int, default=2, help="passed to snakemake --cores")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the fastest is shown")
    parser.add_argument("--raw", action="store_true", help="also print every repeat's seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = parser.parse_args(argv)
    if min(args.replicates, args.job_replicates, args.cores, args.repeats) < 1:
        parser.error("--replicates, --job-replicates, --cores and --repeats must be at least 1")
    started = time.perf_counter()
    args.load_before = os.getloadavg()[0]
    args.started_at = datetime.now().astimezone().isoformat(timespec="seconds")
    times, facts = measure(args)
    report(args, times, facts, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
