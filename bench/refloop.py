"""The reference the benchmarks hold repliflow against: a plain Python loop.

    python bench/refloop.py CONFIG.json ROWS.json [--workers N] [--chunksize C] [--verify]

Runs the experiment in CONFIG.json (a repliflow config whose `code` is a .py
path) over the same conditions, replicates and seeds as the workflow, calling
the same step functions with a ctx built by repliflow's own `Context` and seed
functions (light modules, no Snakemake), so its numbers equal the workflow's.
Like the workflow, it computes the datasource once per replicate when all
conditions share it (a treatment that changes the datasource gets its own).

`--workers 0` (the default) loops in this process; `--workers N` maps the
replicates over a `concurrent.futures.ProcessPoolExecutor` of N processes.
`--verify` then runs the hypotheses' Welch t-tests with scipy, as a loop
written by hand would (the workflow runs them in its aggregate job).
Writes `[[condition, replicate, metric, value], ...]` to ROWS.json and prints
`{"loop_s": seconds}`: the loop's own time, after the imports.

Needs repliflow's src/ on PYTHONPATH (the benchmarks set it). No repliflow
code other than `repliflow.core.context` and `repliflow.core.hashing` is used.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from repliflow.core.context import Context
from repliflow.core.hashing import replicate_seed, step_seed

CONFIG: dict = {}
STEPS = None


def load(config_path: str) -> None:
    """Read the config and import its code file as an ordinary module (so a
    process pool's workers can find the functions by name)."""
    global STEPS
    CONFIG.update(json.loads(Path(config_path).read_text()))
    code = Path(CONFIG["code"])
    sys.path.insert(0, str(code.parent))
    STEPS = importlib.import_module(code.stem)


def conditions() -> dict[str, dict]:
    return {"baseline": {}, **(CONFIG.get("treatments") or {})}


def run_replicate(replicate: int) -> list:
    """Every condition of one replicate: [[condition, replicate, metric, value], ...]."""
    seed = replicate_seed(CONFIG.get("seed", 0), replicate)
    experiment = CONFIG["experiment"]
    chain = [("datasource", CONFIG["datasource"])] + [
        (entry.get("name") or entry["function"], entry) for entry in CONFIG["pipeline"]
    ]
    rows = []
    shared: dict[str, object] = {}  # datasource output by its parameters' JSON
    for condition, overrides in conditions().items():
        data = None
        for position, (name, entry) in enumerate(chain):
            params = {**(entry.get("params") or {}), **(overrides.get(name) or {})}
            ctx = Context(
                condition=condition,
                replicate=replicate,
                seed=seed,
                step=name,
                step_seed=step_seed(seed, position),
                params=params,
                experiment=experiment,
            )
            function = getattr(STEPS, entry["function"])
            if position == 0:
                key = json.dumps(params, sort_keys=True)
                if key not in shared:
                    shared[key] = function(ctx, **params)
                data = shared[key]
            else:
                data = function(data, ctx, **params)
        rows.extend([condition, replicate, metric, float(value)] for metric, value in data.items())
    return rows


def arguments(description: str, **extra: dict) -> argparse.Namespace:
    """CONFIG.json ROWS.json [--workers N] and ``extra`` options; loads the config."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config")
    parser.add_argument("rows")
    parser.add_argument("--workers", type=int, default=0, help="0: in this process")
    for name, options in extra.items():
        parser.add_argument(name, **options)
    args = parser.parse_args()
    load(args.config)
    # ctx.rng imports numpy on first use; import it now so the loop's own time
    # is the calls alone (the whole-process time still includes the import).
    import numpy  # noqa: F401

    return args


def write_rows(path: str, rows: list, loop_seconds: float) -> None:
    Path(path).write_text(json.dumps(rows))
    print(json.dumps({"loop_s": loop_seconds}))


def welch_tests(rows: list) -> dict:
    """What a hand-written loop does next: Welch's t-test of every
    hypothesis' metric, each treatment against the baseline (scipy)."""
    from scipy import stats

    values: dict[tuple[str, str], list[float]] = {}
    for condition, _, metric, value in rows:
        values.setdefault((condition, metric), []).append(value)
    results = {}
    for hypothesis in CONFIG.get("hypotheses") or []:
        metric = hypothesis["metric"]
        for treatment in list(conditions())[1:]:
            test = stats.ttest_ind(values[(treatment, metric)], values[("baseline", metric)], equal_var=False)
            results[f"{hypothesis['name']}/{treatment}"] = float(test.pvalue)
    return results


def main() -> int:
    args = arguments(
        __doc__,
        **{
            "--chunksize": {"type": int, "default": 0, "help": "replicates per task (0: about 4 per worker)"},
            "--verify": {"action": "store_true", "help": "then run the hypotheses' Welch t-tests (scipy)"},
        },
    )
    replicates = range(CONFIG["replicates"])
    clock = time.perf_counter()
    if args.workers:
        from concurrent.futures import ProcessPoolExecutor

        chunk = args.chunksize or max(1, len(replicates) // (4 * args.workers))
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            rows = [row for part in pool.map(run_replicate, replicates, chunksize=chunk) for row in part]
    else:
        rows = [row for replicate in replicates for row in run_replicate(replicate)]
    loop_seconds = time.perf_counter() - clock
    if args.verify:
        welch_tests(rows)
    write_rows(args.rows, rows, loop_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
