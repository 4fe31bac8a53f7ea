"""The same experiment through Crystallize (crystallize-ml), for the benchmarks.

    bench/.venv-crystallize/bin/python bench/crystallize_ref.py CONFIG.json ROWS.json [--workers N]

Run with the benchmark's own venv (`python bench/perf.py setup` makes it), never
the project's. CONFIG.json is a repliflow config whose `code` is a .py path;
its functions are called unchanged, each wrapped in a Crystallize step:

- the datasource is a `@data_source`, every pipeline entry a `@pipeline_step`;
  the last step returns `(data, metrics)`, which is how a Crystallize step
  records metrics;
- a treatment is a Crystallize `Treatment` adding the parameter overrides to
  the context, which the wrapper merges into the step's parameters;
- `ctx` is a repliflow `Context` with repliflow's seeds, so every number
  equals the workflow's (the benchmark checks it). Building it is the same
  cost the plain-loop reference pays.

`Experiment.run()` runs baseline and treatments per replicate with
`SerialExecution` (`--workers 0`) or `ParallelExecution(executor_type="process",
max_workers=N)`. Crystallize has no shared prefixes: the datasource runs once
per condition. Its default plugins stay (seeding, artifacts written under the
working directory, logging), except that logging is set to WARNING so the
per-run INFO lines are not what is measured. No hypotheses: the reference
loops compute the metrics only.

Writes `[[condition, replicate, metric, value], ...]` to ROWS.json and prints
`{"loop_s": seconds}` (the `Experiment.run()` call alone).
"""

from __future__ import annotations

import sys
import time

import refloop  # bench/refloop.py, beside this script: loading the config and steps, the rows
from crystallize import (
    Experiment,
    LoggingPlugin,
    ParallelExecution,
    SerialExecution,
    Treatment,
    data_source,
    pipeline,
    pipeline_step,
)

from repliflow.core.context import Context
from repliflow.core.hashing import replicate_seed, step_seed

CONFIG = refloop.CONFIG


def repliflow_ctx(ctx, position: int, name: str, params: dict) -> Context:
    replicate = ctx.get("replicate")
    seed = replicate_seed(CONFIG.get("seed", 0), replicate)
    return Context(
        condition=ctx.get("condition"),
        replicate=replicate,
        seed=seed,
        step=name,
        step_seed=step_seed(seed, position),
        params=params,
        experiment=CONFIG["experiment"],
    )


def with_overrides(ctx, name: str, params: dict) -> dict:
    overrides = ctx.get("overrides", None) or {}
    return {**params, **(overrides.get(name) or {})}


@data_source
def datasource(ctx, function="", params=None):
    params = with_overrides(ctx, "datasource", params or {})
    return getattr(refloop.STEPS, function)(repliflow_ctx(ctx, 0, "datasource", params), **params)


@pipeline_step()
def step(data, ctx, function="", position=1, name="", params=None, last=False):
    params = with_overrides(ctx, name, params or {})
    out = getattr(refloop.STEPS, function)(data, repliflow_ctx(ctx, position, name, params), **params)
    return (out, out) if last else out


def experiment(workers: int) -> Experiment:
    entries = CONFIG["pipeline"]
    steps = [
        step(
            function=entry["function"],
            position=position,
            name=entry.get("name") or entry["function"],
            params=dict(entry.get("params") or {}),
            last=position == len(entries),
        )
        for position, entry in enumerate(entries, start=1)
    ]
    source = CONFIG["datasource"]
    execution = (
        ParallelExecution(max_workers=workers, executor_type="process") if workers else SerialExecution()
    )
    return Experiment(
        datasource=datasource(function=source["function"], params=dict(source.get("params") or {})),
        pipeline=pipeline(*steps),
        plugins=[execution, LoggingPlugin(log_level="WARNING")],
        name=CONFIG["experiment"],
        treatments=[
            Treatment(name, {"overrides": overrides})
            for name, overrides in (CONFIG.get("treatments") or {}).items()
        ],
        replicates=CONFIG["replicates"],
    )


def main() -> int:
    args = refloop.arguments(__doc__)
    exp = experiment(args.workers)
    clock = time.perf_counter()
    result = exp.run()
    loop = time.perf_counter() - clock
    if result.errors:
        name, error = next(iter(result.errors.items()))
        sys.exit(f"crystallize: {len(result.errors)} replicate(s) failed, first {name}: {error!r}")
    rows = []
    conditions = {"baseline": result.metrics.baseline, **result.metrics.treatments}
    for condition, metrics in conditions.items():
        for metric, values in metrics.metrics.items():
            rows.extend([condition, replicate, metric, float(v)] for replicate, v in enumerate(values))
    refloop.write_rows(args.rows, rows, loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
