"""Reconcile the store with the block manifests before Snakemake builds its DAG.

Snakemake's up-to-date check sees only the block manifests (its outputs);
the per-output truth lives in the store. So that a deleted, truncated or
replaced store file, or a deleted or broken manifest, is repaired by the
plain ``snakemake`` command, every run first checks, cheaply and without
hashing, every manifest the plan names and every output and sidecar those
manifests list:

- the manifest exists (once the tables exist: before that Snakemake makes
  it anyway), parses, and lists what its block should;
- each output and sidecar is a regular file of the size recorded in the
  manifest (``bytes``, ``sidecar_bytes``; manifests written before those
  fields existed are checked for presence and type only), and was not
  modified after the manifest was written (the job writes its outputs
  first, so a later change, such as a flipped byte, shows in the mtime that
  the same ``lstat`` returns).

The manifest of each damaged block is removed and the repair is logged in
``results/<exp>/repairs.tsv``, an input of ``aggregate`` and ``view``: being
newer than their outputs, it makes them run again, and Snakemake then makes
every manifest they need that is missing (it looks for missing files only
below jobs that run). The runner recomputes exactly what is missing, and
verifies the sha256 of whatever it skips (``runner``).
Corruption that keeps both the size and the mtime is invisible here:
``repliflow audit`` finds it by hashing and prints the command that repairs
it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from repliflow.errors import RepliflowError
from repliflow.pathgate import read_json
from repliflow.plan import Plan
from repliflow.records import check_manifest

TABLES = ("metrics.csv", "hypotheses.json", "provenance.json")
REPAIRS_LOG = "repairs.tsv"


@dataclass(frozen=True)
class Repair:
    target: str  # the output to make again: a block's manifest, or a table (relative to the workdir)
    reason: str
    failed: tuple[int, ...] = ()  # replicates its manifest records as failed (on_failure: missing)


def reconcile(plan: Plan, workdir: str | Path = ".") -> list[Repair]:
    """The blocks of ``plan`` to run again, each with the first thing found
    wrong, and the outputs a killed Snakemake left marked incomplete."""
    workdir = Path(workdir)
    results = workdir / plan.results_dir
    if not results.is_dir():
        return []
    killed = left_incomplete(plan, workdir)
    tables_made = any(os.path.lexists(results / name) for name in TABLES)
    store = results / "store"
    repairs: list[Repair] = []
    # (manifest, file name, recorded size, key, when the manifest was written)
    wanted: list[tuple[str, str, int | None, str, int]] = []
    for manifest_path in plan.all_manifests():
        path = workdir / manifest_path
        try:
            written = os.lstat(path).st_mtime_ns
            manifest = check_manifest(read_json(path, "manifest"), str(path))
        except FileNotFoundError:
            if tables_made:
                repairs.append(Repair(manifest_path, f"{manifest_path} is missing"))
            continue
        except RepliflowError as exc:
            repairs.append(Repair(manifest_path, str(exc).removeprefix("repliflow: ")))
            continue
        expected = _block_of(plan, manifest_path)
        if expected is not None and (manifest["lo"], manifest["hi"]) != expected:
            repairs.append(Repair(manifest_path, f"{manifest_path} describes another block"))
            continue
        failed = tuple(r["replicate"] for r in manifest["replicates"] if r.get("failed"))
        if failed:
            shown = ", ".join(map(str, failed[:5])) + (" ..." if len(failed) > 5 else "")
            repairs.append(
                Repair(manifest_path, f"replicate(s) {shown} failed (on_failure: missing): retrying", failed)
            )
        for replicate in manifest["replicates"]:
            for step in replicate["steps"]:
                key = step["key"]
                wanted.append((manifest_path, step["file"], _size(step.get("bytes")), key, written))
                wanted.append(
                    (manifest_path, f"{key}.meta.json", _size(step.get("sidecar_bytes")), key, written)
                )
    damaged = _damaged(store, wanted)
    seen = {repair.target for repair in repairs}
    for target in killed:
        if target not in seen:
            seen.add(target)
            repairs.append(Repair(target, f"{target} was being made when its snakemake was killed"))
    for manifest_path, reason in damaged:
        if manifest_path not in seen:
            seen.add(manifest_path)
            repairs.append(Repair(manifest_path, reason))
    return repairs


def left_incomplete(plan: Plan, workdir: Path) -> list[str]:
    """Outputs of ``plan`` that exist but that Snakemake marked incomplete,
    when no snakemake works in ``workdir`` any more: its run was killed. Made
    again, as ``--rerun-incomplete`` would, so a plain re-run finishes."""
    markers = workdir / ".snakemake" / "incomplete"
    try:
        if not any(os.scandir(markers)):
            return []
    except (FileNotFoundError, NotADirectoryError):
        return []
    from repliflow.layout import incomplete_outputs
    from repliflow.workflow_support import snakemake_running_here

    if not Path("/proc").is_dir() or snakemake_running_here(workdir.resolve()):
        return []
    prefix = f"{plan.results_dir}/"
    return sorted(
        path
        for path in incomplete_outputs(workdir)
        if path.startswith(prefix) and os.path.lexists(workdir / path)
    )


def _size(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _block_of(plan: Plan, manifest_path: str) -> tuple[int, int] | None:
    label = manifest_path.rsplit("/", 1)[-1].removesuffix(".json")
    lo, _, hi = label.partition("-")
    return (int(lo), int(hi)) if lo.isdigit() and hi.isdigit() else None


def _damaged(store: Path, wanted: list) -> list[tuple[str, str]]:
    """(manifest, why) for each listed file that is missing, not a regular
    file, or of another size than recorded. The lstat calls release the GIL,
    so they run on a few threads, one store folder each."""
    by_folder: dict[str, list] = {}
    for item in wanted:
        by_folder.setdefault(item[3][:2], []).append(item)

    def check(folder: str) -> list[tuple[str, str]]:
        found = []
        base = f"{store}/{folder}/"
        for manifest_path, name, size, _, written in by_folder[folder]:
            path = base + name
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                found.append((manifest_path, f"{path} is missing"))
                continue
            if not stat.S_ISREG(info.st_mode):
                found.append((manifest_path, f"{path} is not a regular file"))
            elif size is not None and info.st_size != size:
                cut = "truncated" if info.st_size < size else "longer than recorded"
                found.append((manifest_path, f"{path} is {info.st_size} bytes, {size} recorded ({cut})"))
            elif info.st_mtime_ns > written:
                # written after its job finished: the job checks its sha256 and keeps it when intact
                found.append((manifest_path, f"{path} was modified after its job finished"))
        return found

    folders = sorted(by_folder)
    if len(wanted) < 2000:
        return [item for folder in folders for item in check(folder)]
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return [item for part in pool.map(check, folders) for item in part]


def repair_record(plan: Plan) -> list[str]:
    """``repairs.tsv`` as an input of aggregate and view, once it exists."""
    path = f"{plan.results_dir}/{REPAIRS_LOG}"
    return [path] if os.path.lexists(path) else []


def schedule_repairs(plan: Plan, repairs: list[Repair], workdir: str | Path = ".") -> None:
    """Remove the manifests of the damaged blocks and log the repairs, so that
    Snakemake runs those jobs and everything after them again."""
    results = Path(workdir) / plan.results_dir
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    lines = []
    for repair in repairs:
        path = Path(workdir) / repair.target
        with contextlib.suppress(FileNotFoundError):
            if path.is_symlink() or path.is_file():
                path.unlink()
        lines.append(f"{stamp}\t{repair.target}\t{' '.join(repair.reason.split())}\n")
    fd = os.open(results / REPAIRS_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, "".join(lines).encode())
    finally:
        os.close(fd)


def describe(repairs: list[Repair], *, dry_run: bool = False) -> str:
    """What a run will repair, for stderr: the count and the first few reasons."""
    verb = "would re-run" if dry_run else "re-runs"
    lines = [
        f"repliflow: the store does not match {len(repairs)} job manifest(s); this run {verb} "
        "those jobs, recomputing only what is missing or damaged:"
    ]
    lines += [f"  {repair.target}: {repair.reason}" for repair in repairs[:10]]
    if len(repairs) > 10:
        lines.append(f"  ... and {len(repairs) - 10} more")
    return "\n".join(lines)
