"""What does running tiny steps as Snakemake jobs cost, compared with a plain loop?

Runs a tiny experiment (a datasource and two steps, each well under 1 ms; a
baseline and two treatments that differ only in step 2's parameter) through
the real workflow, in fresh directories under bench/work/, and times whole
processes:

    python bench/job_overhead.py [--replicates 200] [--job-replicates 20] [--cores 2] [--repeats 3]

Prints a header, then one line per figure: ``name value unit ratio``, where
the ratio names the reference it is relative to. bench/README.md explains
every figure. Nothing is written in the repository outside bench/work/
(gitignored), which it empties again unless --keep.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import (  # noqa: E402
    SEGMENT_RULE,
    avoid_slow_slurm_probe,
    check_workflow_numbers,
    count_work,
    expect_jobs,
    job_stats,
    make_experiment,
    ratio,
    reference,
    remove_dirs,
    runner_seconds,
    snakemake,
    tiny_config,
    value_text,
)


def measure(args) -> tuple[dict[str, list[float]], dict]:
    """Every timing, `repeats` times each with a fresh directory, interleaved
    so that a slow spell of the machine spreads over all figures."""
    small, large = args.job_replicates, args.replicates
    configs = {
        "jobs1": tiny_config(small, 1),
        "auto": tiny_config(large, "auto"),
        "oneblock": tiny_config(large, large),
        "ref_small": tiny_config(small, 1),
        "ref_large": tiny_config(large, "auto"),
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
            # the same directory with only the tail (aggregate, view) forced:
            # the difference is what the segment jobs cost.
            work = fresh("jobs1")
            run = snakemake(work, args.cores)
            expect_jobs("jobs1", run.output, facts["jobs1"]["total_jobs"])
            check_workflow_numbers(work, small_rows)
            record("jobs1", run.seconds)
            run = snakemake(work, args.cores, "--forcerun", *forced)
            expect_jobs("tail_only", run.output, tail_jobs)
            record("tail_only", run.seconds)

            # Dry run of a fresh directory: parse, plan and build the whole DAG.
            work = fresh("auto")
            record("dry_run", snakemake(work, args.cores, "-n").seconds)
            run = snakemake(work, args.cores)
            expect_jobs("auto", run.output, facts["auto"]["total_jobs"])
            check_workflow_numbers(work, large_rows)
            record("auto", run.seconds)
            run = snakemake(work, args.cores)
            expect_jobs("noop_rerun", run.output, 0)
            record("noop_rerun", run.seconds)
            record("auto_runner", runner_seconds(work))

            work = fresh("oneblock")
            run = snakemake(work, args.cores)
            expect_jobs("oneblock", run.output, facts["oneblock"]["total_jobs"])
            check_workflow_numbers(work, large_rows)
            record("oneblock", run.seconds)
    finally:
        remove_dirs(dirs, args.keep)
    return times, facts


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
    # differs, and the tail (aggregate, view) is common to both.
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

    # Other work on the machine slows every figure; the load average at the
    # start and at the end says how much there was.
    load = f"{args.load_before:.2f} -> {os.getloadavg()[0]:.2f}"

    print(
        f"# repliflow job overhead, started {args.started_at}: {common.environment()}, "
        f"--cores {args.cores}, fastest of {args.repeats}; load average {load}"
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
    parser.add_argument("--keep", action="store_true", help="keep the work directories under bench/work/")
    parser.add_argument(
        "--workflow-python",
        type=Path,
        help="the Python that runs snakemake (default: bench/.venv-workflow, the README's install)",
    )
    args = parser.parse_args(argv)
    if min(args.replicates, args.job_replicates, args.cores, args.repeats) < 1:
        parser.error("--replicates, --job-replicates, --cores and --repeats must be at least 1")
    started = time.perf_counter()
    args.load_before = os.getloadavg()[0]
    args.started_at = datetime.now().astimezone().isoformat(timespec="seconds")
    if args.workflow_python:
        common.WORKFLOW_PYTHON = args.workflow_python
    common.setup_workflow_venv()
    if note := avoid_slow_slurm_probe():
        print(f"# {note}")
    times, facts = measure(args)
    report(args, times, facts, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
