"""How long does the store reconciliation every run starts with take at
200,000 outputs?

Builds, in a fresh directory under bench/work/ (--work-dir), the store and block manifests of the
issue's large experiment (50,000 replicates; a shared datasource plus one
step in each of 3 conditions: 200,000 replicate-steps, 400,000 files with
the sidecars), laid out exactly as the runner writes them, without running
any step. Then times ``repliflow.store.reconcile.reconcile`` (what the Snakefile
calls before Snakemake builds its DAG) on the intact tree, with the files in
the page cache (as right after a run), and checks that it finds one
truncated output.

    python bench/reconcile_200k.py [--replicates 50000] [--block 5000] [--repeats 3] [--keep] [--compare HEAD]

Prints ``name value unit ratio`` lines; the ratio is against the 0.5 s budget
of issue 12. With --compare REVISION, the committed reconcile is timed beside
the working tree's, interleaved.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from repliflow.core.plan import build_plan, segment_keys  # noqa: E402

BUDGET_S = 0.5
STEPS = textwrap.dedent(
    """
    def source(ctx):
        return 1.0


    def metrics(data, ctx, *, shift=0.0):
        return {"m": data + shift}
    """
)


def config(replicates: int, block: int) -> dict:
    return {
        "experiment": "big",
        "code": "steps.py",
        "replicates": replicates,
        "seed": 1,
        "datasource": {"function": "source"},
        "pipeline": [{"function": "metrics", "params": {"shift": 0.0}}],
        "treatments": {"a": {"metrics": {"shift": 1.0}}, "b": {"metrics": {"shift": 2.0}}},
        "batch": {"replicates_per_job": block},
    }


def build(root: Path, replicates: int, block: int):
    (root / "steps.py").write_text(STEPS)
    from repliflow.core.config import validate_config

    plan = build_plan(validate_config(config(replicates, block)), workdir=str(root))
    keys = segment_keys(plan)
    seeds = plan.seeds()
    store = root / plan.store_dir
    for kk in range(256):
        (store / f"{kk:02x}").mkdir(parents=True, exist_ok=True)
    output, sidecar = b'{"m": 1.0}', b"{}" * 300
    files = 0
    for segment in plan.segments.values():
        for block_ in plan.blocks(segment):
            entries = []
            for replicate in range(block_.lo, block_.hi):
                steps = []
                for offset, key in enumerate(keys[segment.id][replicate]):
                    (store / key[:2] / f"{key}.json").write_bytes(output)
                    (store / key[:2] / f"{key}.meta.json").write_bytes(sidecar)
                    files += 2
                    steps.append(
                        {
                            "step": segment.steps[segment.start + offset].name,
                            "position": segment.start + offset,
                            "key": key,
                            "file": f"{key}.json",
                            "format": "json",
                            "sha256": "0" * 64,
                            "bytes": len(output),
                            "sidecar_bytes": len(sidecar),
                        }
                    )
                entries.append({"replicate": replicate, "seed": seeds[replicate], "steps": steps})
            manifest = root / plan.manifest_path(block_)
            manifest.parent.mkdir(parents=True, exist_ok=True)
            document = {
                "schema": "repliflow.manifest/1",
                "experiment": plan.experiment,
                "segment": segment.id,
                "condition": segment.owner,
                "lo": block_.lo,
                "hi": block_.hi,
                "replicates": entries,
            }
            manifest.write_text(json.dumps(document, separators=(",", ":")))
    return plan, files


def committed_reconcile(revision: str):
    """``reconcile`` as committed at ``revision`` (git show), loaded as its own
    module, to time the working tree's against it in one run."""
    import importlib.util
    import subprocess

    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{revision}:src/repliflow/store/reconcile.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="reconcile-head-")) / "reconcile_head.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("reconcile_head", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["reconcile_head"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.reconcile


def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--replicates", type=int, default=50_000)
    parser.add_argument("--block", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temporary tree")
    parser.add_argument(
        "--compare",
        metavar="REVISION",
        help="also time reconcile as committed at REVISION (e.g. HEAD), interleaved",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=REPO / "bench" / "work",
        help="where the tree goes (default bench/work/)",
    )
    args = parser.parse_args()
    from repliflow.store import reconcile as current

    variants = {}
    if args.compare:
        variants[f"reconcile_{args.compare}"] = committed_reconcile(args.compare)

    def without_inventory(plan, root):
        (root / current.INVENTORY).unlink(missing_ok=True)
        return current.reconcile(plan, root)

    def one_process(plan, root):
        saved, current.PARALLEL_FOLDERS = current.PARALLEL_FOLDERS, 10**9
        try:
            return current.reconcile(plan, root)
        finally:
            current.PARALLEL_FOLDERS = saved

    variants["reconcile_no_inventory"] = without_inventory  # parses every manifest, then writes it
    variants["reconcile_inventory_one_process"] = one_process
    variants["reconcile"] = current.reconcile  # what a run does: the inventory, lstats in two processes

    args.work_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="reconcile-", dir=args.work_dir))
    try:
        clock = time.perf_counter()
        plan, files = build(root, args.replicates, args.block)
        (root / ".snakemake").mkdir()
        print(f"# built {files} store files in {time.perf_counter() - clock:.1f} s under {root}")
        outputs = files // 2
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, function in variants.items():
                clock = time.perf_counter()
                found = function(plan, root)
                times[name].append(time.perf_counter() - clock)
                assert found == [], found[:3]
        for name, values in times.items():
            best = min(values)
            raw = " ".join(f"{v:.3f}" for v in values)
            print(
                f"{name}_{outputs}_outputs {best:.3f} s {best / BUDGET_S:.2f}x_budget_{BUDGET_S}s"
                f"  # raw {raw}"
            )
        victim = next((root / plan.store_dir).glob("*/*.json"))
        victim.write_bytes(b"{")
        found = current.reconcile(plan, root)
        assert len(found) == 1 and "truncated" in found[0].reason, found
        print(f"# a truncated output is found: {found[0].reason}")
    finally:
        if args.keep:
            print(f"# kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
