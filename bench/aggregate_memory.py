"""Peak memory of the aggregate job at 3 conditions x 50,000 replicates (issue 12, item 7).

    python bench/aggregate_memory.py [--replicates 50000] [--verifiers welch_t,paired_t,...]
                                     [--cap-mb 6144] [--keep]

Builds, in a fresh directory under bench/work/, what a finished run leaves for
the ``aggregate`` job to read, without running a step: the plan of a real
config and code file (a datasource and one metrics step; a baseline and two
treatments that differ in the metrics step, so the datasource is shared),
every block manifest in the runner's format (``repliflow.engine.runner.write_manifest``,
the keys from the planner) and every final output the manifests name, encoded
by ``repliflow.store.storage.encode`` at its store path. The datasource outputs and
the sidecars are not written: aggregate never opens them (it reads the final
outputs through the manifests' sha256).

Then it runs, in a fresh Python process (as the Snakemake job is one),
``repliflow.engine.aggregate.aggregate(...)`` followed by ``repliflow.report.document.publish(...)``,
exactly what ``run_job`` (the aggregate job) does, and reads that process's peak RSS
with ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``. The child also prints
its own peak after the tables (so the report's share shows) and each phase's
seconds. The child's address space is capped (``--cap-mb``, RLIMIT_AS) so a
regression ends in a MemoryError instead of swapping a shared machine.

The metrics: ``score`` is normal noise (the treatments shift it by 0.02 and 0),
``offset`` is shared by replicate r across conditions plus a constant per
treatment, so a paired test on it takes the zero-variance path (the issue's
6.4 GB at 10,000 pairs). Every 10,000th replicate of the second treatment has
a NaN score (the report's missing-replicates table). One hypothesis per
verifier in ``--verifiers``: paired ones on ``offset``, the others on ``score``.

Prints a header, then ``name value unit ratio`` lines; the ratio is against
the 500 MB target.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (also puts src/ on sys.path)

TARGET_MB = 500
PAIRED = ("paired_t", "wilcoxon")
DEFAULT_VERIFIERS = "welch_t,paired_t,mann_whitney,wilcoxon"

STEPS = '''\
"""Never run by the benchmark: the plan needs the functions' signatures and code hashes."""


def source(ctx):
    return float(ctx.rng.normal())


def metrics(data, ctx, *, shift=0.0, offset=0.0):
    return {"score": shift + float(ctx.rng.normal()), "offset": data + offset}
'''


def config(replicates: int, verifiers: list[str]) -> dict:
    base = common.experiment_config(
        replicates,
        "auto",
        datasource={"function": "source"},
        pipeline=[{"function": "metrics"}],
        treatments={
            "shifted": {"metrics": {"shift": 0.02, "offset": 0.5}},
            "same": {"metrics": {"offset": 0.25}},
        },
        metric="score",
    )
    base["hypotheses"] = [
        {"name": f"h_{name}", "metric": "offset" if name in PAIRED else "score", "verifier": name}
        for name in verifiers
    ]
    return base


def build(root: Path, replicates: int, verifiers: list[str]) -> tuple[int, int]:
    """steps.py, config.yaml, every manifest and every final output; (manifests, outputs)."""
    import numpy as np

    from repliflow.core import hashing
    from repliflow.core.plan import load_plan, segment_keys
    from repliflow.engine.runner import write_manifest
    from repliflow.store import storage

    (root / "steps.py").write_text(STEPS)
    (root / "config.yaml").write_text(json.dumps(config(replicates, verifiers), indent=1))
    plan = load_plan(root / "config.yaml", root)
    keys = segment_keys(plan)
    store = root / plan.store_dir
    shared = np.random.default_rng(7).normal(size=replicates)  # the datasource value of replicate r
    manifests = outputs = 0
    for segment in plan.segments.values():
        condition = plan.condition(segment.owner)
        params, last = condition.steps[-1].params, len(condition.steps) - 1
        noise = np.random.default_rng(len(condition.name)).normal(size=replicates)
        for block in plan.blocks(segment):
            entries = []
            for replicate in range(block.lo, block.hi):
                steps = []
                for offset, key in enumerate(keys[segment.id][replicate]):
                    position = segment.start + offset
                    if position == last:  # the metrics: written, aggregate reads them
                        score = params.get("shift", 0.0) + float(noise[replicate])
                        if segment.owner == "same" and replicate % 10_000 == 9_999:
                            score = float("nan")
                        value = {
                            "score": score,
                            "offset": float(shared[replicate]) + params.get("offset", 0.0),
                        }
                        encoded = storage.encode(value)
                        path = Path(storage.output_path(store, key, encoded.format))
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(encoded.data)
                        outputs += 1
                    else:  # the datasource: only its manifest entry, aggregate never opens it
                        encoded = storage.encode(float(shared[replicate]))
                    steps.append(
                        {
                            "step": segment.steps[position].name,
                            "position": position,
                            "key": key,
                            "file": Path(storage.output_path(store, key, encoded.format)).name,
                            "format": encoded.format,
                            "sha256": encoded.sha256,
                        }
                    )
                seed = hashing.replicate_seed(plan.seed, replicate)
                entries.append({"replicate": replicate, "seed": seed, "steps": steps})
            spec = {
                "experiment": plan.experiment,
                "segment": segment.id,
                "condition": segment.owner,
                "lo": block.lo,
                "hi": block.hi,
            }
            write_manifest(root / plan.manifest_path(block), spec, entries)
            manifests += 1
    return manifests, outputs


def child(root: Path) -> int:
    """The aggregate job: tables, then the report, in this process; one JSON line of facts."""
    os.chdir(root)
    clock = time.perf_counter()
    from repliflow.core.plan import load_plan
    from repliflow.engine.aggregate import aggregate
    from repliflow.report import document as report

    plan = load_plan("config.yaml", ".")
    paths = [plan.manifest_path(b) for segment in plan.segments.values() for b in plan.blocks(segment)]
    out_dir = Path(plan.results_dir)
    start = time.perf_counter()
    aggregate(plan, paths, out_dir, "config.yaml")
    tables = time.perf_counter()
    tables_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(out_dir / "aggregate.log", "w") as log:
        rendered = report.publish(out_dir, out_dir / "report.html", out_dir / "report.md", log)
    done = time.perf_counter()
    facts = {
        "imports_plan_s": start - clock,
        "tables_s": tables - start,
        "report_s": done - tables,
        "tables_peak_mb": tables_peak,
        "rendered": rendered,
        "notes": (out_dir / "aggregate.log").read_text().splitlines()[:5],
        "html_mb": (out_dir / "report.html").stat().st_size / 2**20,
        "metrics_csv_mb": (out_dir / "metrics.csv").stat().st_size / 2**20,
        "provenance_mb": (out_dir / "provenance.json").stat().st_size / 2**20,
    }
    print(json.dumps(facts))
    return 0


def run_child(root: Path, cap_mb: int) -> tuple[subprocess.CompletedProcess, float, float]:
    """(the finished child, its wall seconds, its peak RSS in MB from RUSAGE_CHILDREN)."""

    def cap() -> None:
        limit = cap_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(common.REPO / "src")}
    clock = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(root)],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=cap,
    )
    seconds = time.perf_counter() - clock
    return done, seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--replicates", type=int, default=50_000, help="replicates per condition (3 conditions)"
    )
    parser.add_argument(
        "--verifiers",
        default=DEFAULT_VERIFIERS,
        help=f"comma-separated built-ins, one hypothesis each (default {DEFAULT_VERIFIERS}); "
        "permutation and bootstrap also work (about 15 s and 30 s per treatment at 50,000)",
    )
    parser.add_argument("--cap-mb", type=int, default=6144, help="address-space cap of the measured process")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child)

    started, load_before, clock = common.started_at(), common.load_average(), time.perf_counter()
    verifiers = [v for v in args.verifiers.split(",") if v]
    root = common.new_dir("aggregate-memory-")
    try:
        built = time.perf_counter()
        manifests, outputs = build(root, args.replicates, verifiers)
        built = time.perf_counter() - built
        done, seconds, peak = run_child(root, args.cap_mb)
    finally:
        common.remove_dirs([root], args.keep)

    print(
        f"# repliflow aggregate memory, started {started}: {os.cpu_count()} cores, python "
        f"{sys.version.split()[0]}, workflow {common.workflow_version()}; load average (1/5/15 min) "
        f"{load_before} at the start, {common.load_average()} at the end"
    )
    print(
        f"# 3 conditions x {args.replicates} replicates, {manifests} manifests, {outputs} final outputs "
        f"(built in {built:.0f} s); hypotheses: {', '.join(verifiers)}; one process: aggregate() then "
        f"report.publish(); address space capped at {args.cap_mb} MB"
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        print(f"# the aggregate process failed (exit {done.returncode}): {' / '.join(tail)}")
        common.print_figures(
            [("peak_rss_aggregate_and_report", peak, "MB", common.ratio(peak, TARGET_MB, "target_500MB"))]
        )
        print(f"# target: peak RSS <= {TARGET_MB} MB: MISSED (the process failed)")
        print(f"# benchmark took {time.perf_counter() - clock:.0f} s")
        return 1
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    lines = [
        ("peak_rss_aggregate_and_report", peak, "MB", common.ratio(peak, TARGET_MB, "target_500MB")),
        (
            "peak_rss_tables_only",
            facts["tables_peak_mb"],
            "MB",
            common.ratio(facts["tables_peak_mb"], TARGET_MB, "target_500MB"),
        ),
        ("seconds_whole_process", seconds, "s", "-"),
        ("seconds_tables", facts["tables_s"], "s", "-"),
        ("seconds_report", facts["report_s"], "s", "-"),
    ]
    common.print_figures(lines)
    verdict = "met" if peak <= TARGET_MB else "MISSED"
    print(f"# target: peak RSS <= {TARGET_MB} MB: {verdict}")
    print(
        f"# report rendered: {facts['rendered']}; report.html {facts['html_mb']:.1f} MB, metrics.csv "
        f"{facts['metrics_csv_mb']:.1f} MB, provenance.json {facts['provenance_mb']:.1f} MB"
    )
    for note in facts["notes"]:
        print(f"# log: {note}")
    print(f"# benchmark took {time.perf_counter() - clock:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
