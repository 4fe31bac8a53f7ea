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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from repliflow.core.plan import Plan
from repliflow.core.records import KEY, MANIFEST_SCHEMA
from repliflow.errors import RepliflowError
from repliflow.store.layout import TABLES, ResultsLayout
from repliflow.store.pathgate import EXTENSIONS, read_json


@dataclass(frozen=True)
class Repair:
    target: str  # the output to make again: a block's manifest, or a table (relative to the workdir)
    reason: str
    failed: tuple[int, ...] = ()  # replicates its manifest records as failed (on_failure: missing)


# a listed store file: (manifest, file name, recorded size or None, when the manifest was written)
_Wanted = tuple[str, str, int | None, int]


def reconcile(plan: Plan, workdir: str | Path = ".") -> list[Repair]:
    """The blocks of ``plan`` to run again, each with the first thing found
    wrong, and the outputs a killed Snakemake left marked incomplete."""
    workdir = Path(workdir)
    layout = ResultsLayout.of(plan.experiment, str(workdir))
    if not os.path.isdir(layout.root):
        return []
    killed = left_incomplete(plan, workdir)
    tables_made = any(os.path.lexists(layout.table(name)) for name in TABLES)
    store = Path(layout.store)
    repairs: list[Repair] = []
    # per store folder: (manifest, file name, recorded size, when the manifest was written)
    wanted: dict[str, list[_Wanted]] = {}
    for manifest_path in plan.all_manifests():
        path = workdir / manifest_path
        try:
            written = os.lstat(path).st_mtime_ns
            manifest = read_json(path, "manifest")
            files, failed = _listed(manifest, _block_of(manifest_path))
        except FileNotFoundError:
            if tables_made:
                repairs.append(Repair(manifest_path, f"{manifest_path} is missing"))
            continue
        except RepliflowError as exc:
            repairs.append(Repair(manifest_path, str(exc).removeprefix("repliflow: ")))
            continue
        except _Malformed as exc:
            repairs.append(Repair(manifest_path, f"{manifest_path} is not a block manifest: {exc}"))
            continue
        if failed:
            shown = ", ".join(map(str, failed[:5])) + (" ..." if len(failed) > 5 else "")
            repairs.append(
                Repair(manifest_path, f"replicate(s) {shown} failed (on_failure: missing): retrying", failed)
            )
        for folder, name, size in files:
            wanted.setdefault(folder, []).append((manifest_path, name, size, written))
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
    from repliflow.snakemake.markers import incomplete_outputs, snakemake_running_here

    if not Path("/proc").is_dir() or snakemake_running_here(workdir.resolve()):
        return []
    prefix = f"{plan.results_dir}/"
    return sorted(
        path
        for path in incomplete_outputs(workdir)
        if path.startswith(prefix) and os.path.lexists(workdir / path)
    )


class _Malformed(Exception):
    pass


_SUFFIXES = frozenset(f".{ext}" for ext in EXTENSIONS.values())


def _listed(
    manifest: Any, block: tuple[int, int] | None
) -> tuple[list[tuple[str, str, int | None]], tuple[int, ...]]:
    """The store files a manifest lists, as (folder, name, recorded size), and
    the replicates it records as failed. The shape is checked only as far as
    reading it needs (readers check the rest, records.check_manifest): this
    runs on every manifest at the start of every run. ``manifest`` is the
    parsed JSON, unchecked (Any): a wrong shape surfaces as the KeyError,
    TypeError or AttributeError caught below."""
    try:
        if manifest["schema"] != MANIFEST_SCHEMA:
            raise _Malformed(f"schema {manifest['schema']!r}")
        lo, hi, replicates = manifest["lo"], manifest["hi"], manifest["replicates"]
        if block is not None and (lo, hi) != block or len(replicates) != hi - lo:
            raise _Malformed(f"it describes replicates {lo}..{hi - 1}, not its block's")
        files: list[tuple[str, str, int | None]] = []
        failed: list[int] = []
        for replicate in replicates:
            if replicate.get("failed"):
                failed.append(replicate["replicate"])
            for step in replicate["steps"]:
                key, name = step["key"], step["file"]
                if KEY.match(key) is None or not name.startswith(key) or name[len(key) :] not in _SUFFIXES:
                    raise _Malformed(f"it lists the file {name!r} for key {key!r}")
                files.append((key[:2], name, _size(step.get("bytes"))))
                files.append((key[:2], f"{key}.meta.json", _size(step.get("sidecar_bytes"))))
    except (KeyError, TypeError, AttributeError) as exc:
        raise _Malformed(f"{type(exc).__name__}: {exc}") from None
    return files, tuple(failed)


def _size(value: object) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _block_of(manifest_path: str) -> tuple[int, int] | None:
    label = manifest_path.rsplit("/", 1)[-1].removesuffix(".json")
    lo, _, hi = label.partition("-")
    return (int(lo), int(hi)) if lo.isdigit() and hi.isdigit() else None


def _damaged(store: Path, wanted: dict[str, list[_Wanted]]) -> list[tuple[str, str]]:
    """(manifest, why) for each listed file that is missing, not a regular
    file, of another size than recorded, or modified after its manifest was
    written. Names are looked up relative to each store folder (a short
    path walk for the kernel)."""

    def check(folder: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        base = f"{store}/{folder}"
        try:
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return [(manifest, f"{base}/{name} is missing") for manifest, name, _, _ in wanted[folder]]
        lstat, regular = os.lstat, stat.S_ISREG
        try:
            for manifest, name, size, written in wanted[folder]:
                try:
                    info = lstat(name, dir_fd=fd)
                except FileNotFoundError:
                    found.append((manifest, f"{base}/{name} is missing"))
                    continue
                if not regular(info.st_mode):
                    found.append((manifest, f"{base}/{name} is not a regular file"))
                elif size is not None and info.st_size != size:
                    cut = "truncated" if info.st_size < size else "longer than recorded"
                    found.append(
                        (manifest, f"{base}/{name} is {info.st_size} bytes, {size} recorded ({cut})")
                    )
                elif info.st_mtime_ns > written:
                    # written after its job finished: the job checks its sha256 and keeps it when intact
                    found.append((manifest, f"{base}/{name} was modified after its job finished"))
        finally:
            os.close(fd)
        return found

    # One thread: with two, the GIL hand-offs around each lstat made it slower
    # here (1.7 s alone, 2.0 s with two, 3.0 s with four, at 400,000 files).
    return [item for folder in sorted(wanted) for item in check(folder)]


def repair_record(plan: Plan) -> list[str]:
    """``repairs.tsv`` as an input of aggregate and view, once it exists."""
    path = plan.layout.repairs
    return [path] if os.path.lexists(path) else []


def schedule_repairs(plan: Plan, repairs: list[Repair], workdir: str | Path = ".") -> None:
    """Remove the manifests of the damaged blocks and log the repairs, so that
    Snakemake runs those jobs and everything after them again."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    lines = []
    for repair in repairs:
        path = Path(workdir) / repair.target
        with contextlib.suppress(FileNotFoundError):
            if path.is_symlink() or path.is_file():
                path.unlink()
        lines.append(f"{stamp}\t{repair.target}\t{' '.join(repair.reason.split())}\n")
    fd = os.open(
        ResultsLayout.of(plan.experiment, str(workdir)).repairs, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
    )
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
