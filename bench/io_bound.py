"""Replicates that wait: repliflow's ``concurrency`` against the loops users write.

    python bench/io_bound.py [--replicates 100] [--wait 0.2] [--concurrency 50] [--repeats 2] [--serial]

The experiment of issue 17: 3 conditions x ``--replicates`` replicates of one
datasource that waits ``--wait`` seconds (an API call), then a metrics step,
at ``--cores 2``. Two kinds of datasource:

- ``async``: ``async def`` awaiting ``asyncio.sleep``; the reference is an
  ``asyncio.gather`` over every call with ``--concurrency`` in flight
  (a semaphore), the same numbers drawn from the same seeds;
- ``threads``: a plain function that ``time.sleep``s; the reference is a
  ``ThreadPoolExecutor`` of ``--concurrency`` threads.

Each is timed as a whole process (interpreter start, imports, the calls), the
workflow as ``python -m snakemake --cores 2`` in a fresh directory with
``concurrency: --concurrency`` on the datasource and auto blocks; the
workflow's metrics.csv must hold the reference's numbers. ``--serial`` also
times the workflow without concurrency (slow: replicates x wait / 2 cores).
Targets (issue 17): each workflow within 3x of its reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

STEPS = '''\
"""An API-bound datasource, async and threaded, and a metrics step."""

import asyncio
import time


async def call_async(ctx, *, wait=0.2, shift=0.0):
    await asyncio.sleep(wait)
    return shift + float(ctx.rng.normal())


def call_blocking(ctx, *, wait=0.2, shift=0.0):
    time.sleep(wait)
    return shift + float(ctx.rng.normal())


def metrics(data, ctx):
    return {"x": data}
'''

REFERENCE = '''\
"""The loop a user writes: every condition x replicate, {concurrency} in flight."""

import asyncio
import json
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, {src!r})
sys.path.insert(0, {here!r})

from repliflow.core import hashing  # the seeds the workflow uses, for the same numbers
from repliflow.core.context import Context

import steps

CONDITIONS = {conditions!r}
REPLICATES, WAIT, CONCURRENCY, KIND = {replicates}, {wait}, {concurrency}, {kind!r}


def ctx(condition, replicate):
    seed = hashing.replicate_seed(1, replicate)
    return Context(condition=condition, replicate=replicate, seed=seed, step="datasource",
                   step_seed=hashing.step_seed(seed, 0), params={{}})


async def gathered():
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(condition, shift, replicate):
        async with gate:
            return await steps.call_async(ctx(condition, replicate), wait=WAIT, shift=shift)

    return await asyncio.gather(*(one(c, s, r) for c, s in CONDITIONS for r in range(REPLICATES)))


if KIND == "async":
    values = asyncio.run(gathered())
else:
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        values = list(pool.map(lambda job: steps.call_blocking(ctx(job[0], job[2]), wait=WAIT, shift=job[1]),
                               [(c, s, r) for c, s in CONDITIONS for r in range(REPLICATES)]))
json.dump(values, open("reference.json", "w"))
'''

CONDITIONS = [("baseline", 0.0), ("plus1", 1.0), ("plus2", 2.0)]


def config(kind: str, replicates: int, wait: float, concurrency: int | None) -> dict:
    function = "call_async" if kind == "async" else "call_blocking"
    datasource: dict = {"function": function, "params": {"wait": wait, "shift": 0.0}}
    if concurrency:
        datasource["concurrency"] = concurrency
    return common.experiment_config(
        replicates,
        "auto",
        datasource=datasource,
        pipeline=[{"function": "metrics"}],
        treatments={name: {"datasource": {"shift": shift}} for name, shift in CONDITIONS[1:]},
        metric="x",
    )


def run_reference(root: Path, kind: str, args) -> tuple[float, list[float]]:
    script = REFERENCE.format(
        src=str(common.REPO / "src"),
        here=str(root),
        conditions=CONDITIONS,
        replicates=args.replicates,
        wait=args.wait,
        concurrency=args.concurrency,
        kind=kind,
    )
    (root / "reference.py").write_text(script)
    run = common.run_process([str(common.workflow_python()), "reference.py"], cwd=root)
    if run.returncode != 0:
        sys.exit(f"the reference failed:\n{run.output[-4000:]}")
    return run.seconds, json.loads((root / "reference.json").read_text())


def workflow_values(root: Path) -> list[float]:
    rows = common.metrics_rows(root)
    order = {name: i for i, (name, _) in enumerate(CONDITIONS)}
    found = sorted(
        (order[condition], int(replicate), float(value)) for condition, replicate, _, value in rows
    )
    return [value for *_, value in found]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--wait", type=float, default=0.2, help="seconds each call waits")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="runs per figure; the fastest is shown")
    parser.add_argument("--serial", action="store_true", help="also time the workflow without concurrency")
    parser.add_argument("--keep", action="store_true", help="keep the work directories under bench/work/")
    args = parser.parse_args(argv)
    common.setup_workflow_venv()
    common.avoid_slow_slurm_probe()
    started, load_before = common.started_at(), common.load_average()
    times: dict[str, list[float]] = {}
    dirs: list[Path] = []
    kinds = ("async", "threads")
    try:
        for _ in range(args.repeats):
            for kind in kinds:
                variants = [("concurrent", args.concurrency)] + ([("serial", None)] if args.serial else [])
                for name, concurrency in variants:
                    root = common.make_experiment(
                        config(kind, args.replicates, args.wait, concurrency), STEPS, prefix="io-"
                    )
                    dirs.append(root)
                    seconds, expected = run_reference(root, kind, args)
                    times.setdefault(f"{kind}_reference", []).append(seconds)
                    run = common.snakemake(root, args.cores)
                    if workflow_values(root) != expected:
                        sys.exit(
                            f"# {kind} {name}: the workflow's metrics differ from the reference's ({root})"
                        )
                    times.setdefault(f"{kind}_workflow_{name}", []).append(run.seconds)
    finally:
        common.remove_dirs(dirs, args.keep)
    print(
        f"# repliflow io_bound, started {started}: {common.environment()}, --cores {args.cores}, fastest of "
        f"{args.repeats}; load average {load_before} at the start, {common.load_average()} at the end"
    )
    calls = 3 * args.replicates
    print(
        f"# 3 conditions x {args.replicates} replicates of a datasource waiting {args.wait} s "
        f"({calls} calls, {calls * args.wait:.0f} s serially) + a metrics step; "
        f"references in flight: {args.concurrency}; "
        f"workflow: concurrency {args.concurrency} on the datasource, auto blocks"
    )
    lines, verdicts = [], []
    for kind in kinds:
        reference = min(times[f"{kind}_reference"])
        lines.append((f"{kind}_reference", reference, "s", "1.00x_" + f"{kind}_reference"))
        for name in ("concurrent", "serial"):
            key = f"{kind}_workflow_{name}"
            if key in times:
                best = min(times[key])
                lines.append((key, best, "s", common.ratio(best, reference, f"{kind}_reference")))
        best = min(times[f"{kind}_workflow_concurrent"])
        met = "met" if best <= 3 * reference else "MISSED"
        verdicts.append(f"{kind} <= 3x its reference: {best / reference:.2f}x {met}")
    common.print_figures(lines)
    print("# targets: " + "; ".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
