"""How long do `repliflow audit`, `status` and `gc` take on a large tree?

Builds, in a fresh temporary directory, the results of a synthetic experiment
(a datasource and two steps; a baseline and one treatment that differs in
step 2) exactly as the workflow would lay them out, without running any step:

- audit: 6,000 replicates = 30,000 outputs (each with its sidecar: 60,000
  files) and their provenance.json; then ``repliflow audit`` checks every
  sha256, recipe, chain link and code hash;
- status: 10,000 replicates at one replicate per job = 30,000 jobs, 90% of
  them finished (manifests), a few failed (logs) and a few in flight
  (Snakemake incomplete markers); then ``repliflow status``;
- gc: lists the 30,000-output store against its config.

    python bench/audit_30k.py [--replicates 6000] [--jobs-replicates 10000] [--repeats 3] [--keep]

Prints a header, then one line per figure: ``name value unit ratio``, where
the ratio names the reference it is relative to (budget_10s: the 10 s the
issue allows for auditing 30k outputs). Each figure is the fastest of the
repeats, with the files in the page cache (as right after a run). Nothing is
written inside the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from base64 import urlsafe_b64encode
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from repliflow.core import hashing  # noqa: E402
from repliflow.core.plan import load_plan, segment_keys  # noqa: E402
from repliflow.engine.aggregate import build_provenance  # noqa: E402
from repliflow.store import storage  # noqa: E402

BUDGET = 10.0  # seconds the issue allows for auditing 30k outputs

STEPS = textwrap.dedent(
    """
    def source(ctx, *, n=10):
        return [float(x) for x in ctx.rng.normal(size=n)]


    def scale(data, ctx, *, factor=1.0):
        return [x * factor for x in data]


    def metrics(data, ctx):
        return {"mean": sum(data) / len(data)}
    """
)


def write_experiment(root: Path, replicates: int, per_job: int | str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "steps.py").write_text(STEPS)
    config = {
        "experiment": "bench",
        "code": "steps.py",
        "replicates": replicates,
        "seed": 1,
        "datasource": {"function": "source", "params": {"n": 10}},
        "pipeline": [{"function": "scale", "params": {"factor": 1.0}}, {"function": "metrics"}],
        "treatments": {"double": {"scale": {"factor": 2.0}}},
        "batch": {"replicates_per_job": per_job},
    }
    path = root / "config.yaml"
    path.write_text(json.dumps(config))
    return path


def synthesize_outputs(root: Path, config: Path) -> int:
    """Every output and sidecar of the plan, and provenance.json, as the runner and aggregate write them."""
    plan = load_plan(config, root)
    store = root / plan.store_dir
    keys = segment_keys(plan)
    shas: dict[str, str] = {}
    manifests: dict[tuple[str, int], dict] = {}
    created = 0
    for segment in plan.segments.values():  # parents come first in the trie order
        steps = segment.steps
        for block in plan.blocks(segment):
            entries = []
            for replicate in range(block.lo, block.hi):
                seed = hashing.replicate_seed(plan.seed, replicate)
                row = keys[segment.id][replicate]
                upstream = None
                if segment.parent is not None:
                    up = keys[segment.parent][replicate][-1]
                    upstream = {"key": up, "sha256": shas[up]}
                done = []
                for offset, key in enumerate(row):
                    position = segment.start + offset
                    step = steps[position]
                    value = (
                        {"mean": replicate / 7} if position == 2 else [replicate * 0.5 + i for i in range(10)]
                    )
                    data = json.dumps(value).encode()
                    sha = storage.sha256_hex(data)
                    shas[key] = sha
                    folder = store / key[:2]
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / f"{key}.json").write_bytes(data)
                    sidecar = {
                        "schema": storage.SIDECAR_SCHEMA,
                        "key": key,
                        "experiment": plan.experiment,
                        "step": step.name,
                        "function": step.function,
                        "position": position,
                        "condition": segment.owner,
                        "replicate": replicate,
                        "seed": seed,
                        "step_seed": hashing.step_seed(seed, position),
                        "params": step.params,
                        "code_hash": step.code_hash,
                        "upstream": upstream,
                        "output": {
                            "file": f"{key}.json",
                            "format": "json",
                            "sha256": sha,
                            "bytes": len(data),
                        },
                        "started": "2026-01-01T00:00:00+00:00",
                        "finished": "2026-01-01T00:00:00+00:00",
                        "duration_s": 0.0001,
                        "python": platform.python_version(),
                        "packages": {"repliflow": "0.1.0"},
                        "host": "bench",
                    }
                    (folder / f"{key}.meta.json").write_bytes(
                        json.dumps(sidecar, separators=(",", ":")).encode()
                    )
                    created += 1
                    upstream = {"key": key, "sha256": sha}
                    done.append(
                        {
                            "step": step.name,
                            "position": position,
                            "key": key,
                            "file": f"{key}.json",
                            "format": "json",
                            "sha256": sha,
                        }
                    )
                entries.append({"replicate": replicate, "seed": seed, "steps": done})
            manifests[(segment.id, block.lo)] = {"segment": segment.id, "lo": block.lo, "replicates": entries}
    provenance = build_provenance(plan, manifests, str(config))
    (root / plan.results_dir / "provenance.json").write_text(json.dumps(provenance))
    return created


def synthesize_jobs(root: Path, config: Path) -> tuple[int, int, int]:
    """Manifests for 90% of the jobs, failure logs for 0.1%, incomplete markers for 0.1%."""
    plan = load_plan(config, root)
    results = root / plan.results_dir
    incomplete = root / ".snakemake" / "incomplete"
    incomplete.mkdir(parents=True, exist_ok=True)
    jobs = failed = in_flight = 0
    for segment in plan.segments.values():
        (results / "blocks" / segment.label).mkdir(parents=True, exist_ok=True)
        (results / "logs" / "blocks" / segment.label).mkdir(parents=True, exist_ok=True)
        for index, block in enumerate(plan.blocks(segment)):
            jobs += 1
            manifest = plan.manifest_path(block)
            if index % 10:
                (root / manifest).write_text("{}")
            elif index % 1000 == 0:
                failed += 1
                log = results / "logs" / "blocks" / segment.label / f"{block.label}.log"
                log.write_text(
                    f"2026-01-01T00:00:00 start segment {segment.id} (steps x), "
                    f"replicates {block.lo}..{block.lo}\n"
                    f"repliflow: step 'scale' failed for condition 'baseline', replicate {block.lo}: boom\n"
                )
            elif index % 1000 == 500:
                in_flight += 1
                (incomplete / urlsafe_b64encode(manifest.encode()).decode()).write_text("{}")
                log = results / "logs" / "blocks" / segment.label / f"{block.label}.log"
                log.write_text(f"2026-01-01T00:00:00 start segment {segment.id} (steps x)\n")
    return jobs, failed, in_flight


def best(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        clock = time.perf_counter()
        run()
        times.append(time.perf_counter() - clock)
    return min(times)


def cli(root: Path, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "repliflow.cli", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    if result.returncode not in (0, 1) or "Traceback" in result.stderr:
        raise SystemExit(f"repliflow {' '.join(args)} failed:\n{result.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--replicates", type=int, default=6000, help="replicates of the audit tree (5 outputs each)"
    )
    parser.add_argument(
        "--jobs-replicates", type=int, default=10000, help="replicates of the status tree (3 jobs each)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="take the fastest of this many runs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary trees")
    args = parser.parse_args(argv)

    from repliflow.engine.status import status
    from repliflow.store.audit import audit
    from repliflow.store.gc import collect

    started = time.perf_counter()
    load = os.getloadavg()[0]
    base = Path(tempfile.mkdtemp(prefix="repliflow-audit-bench-"))
    try:
        outputs_root, jobs_root = base / "outputs", base / "jobs"
        outputs_config = write_experiment(outputs_root, args.replicates, "auto")
        clock = time.perf_counter()
        outputs = synthesize_outputs(outputs_root, outputs_config)
        build = time.perf_counter() - clock
        results = outputs_root / "results" / "bench"
        check = audit(results)
        if not check.ok:
            raise SystemExit(f"the synthetic tree does not pass audit: {check.problems[:3]}")

        jobs_config = write_experiment(jobs_root, args.jobs_replicates, 1)
        jobs, failed, in_flight = synthesize_jobs(jobs_root, jobs_config)
        board = status(jobs_config, jobs_root)
        if board.jobs != jobs or not board.in_flight or not board.failures:
            raise SystemExit("the synthetic jobs tree does not read back as written")

        figures = [
            (f"audit_{outputs}", best(args.repeats, lambda: audit(results)), "s"),
            (f"audit_{outputs}_one_process", best(args.repeats, lambda: audit(results, workers=1)), "s"),
            (
                f"audit_cli_{outputs}",
                best(args.repeats, lambda: cli(outputs_root, "audit", "results/bench")),
                "s",
            ),
            (f"status_{jobs}_jobs", best(args.repeats, lambda: status(jobs_config, jobs_root)), "s"),
            (
                f"status_cli_{jobs}_jobs",
                best(args.repeats, lambda: cli(jobs_root, "status", "config.yaml")),
                "s",
            ),
            (f"gc_list_{outputs}", best(args.repeats, lambda: collect([outputs_config], outputs_root)), "s"),
        ]
    finally:
        if args.keep:
            print(f"# kept: {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)

    print(
        f"# repliflow audit/status/gc at scale, {datetime.now().astimezone().isoformat(timespec='seconds')}: "
        f"{os.cpu_count()} cores, python {platform.python_version()}, fastest of {args.repeats}, warm page "
        f"cache; load average {load:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    print(
        f"# audit tree: {args.replicates} replicates x 2 conditions, {outputs} outputs + sidecars (built in "
        f"{build:.1f} s); status tree: {args.jobs_replicates} replicates, {jobs} jobs ({failed} failed, "
        f"{in_flight} in flight, the rest 90% done)"
    )
    width = max(len(name) for name, *_ in figures)
    for name, value, unit in figures:
        print(f"{name:<{width}} {value:>7.3f} {unit:<2} {value / BUDGET:.3f}x_budget_10s")
    print(f"# benchmark took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
