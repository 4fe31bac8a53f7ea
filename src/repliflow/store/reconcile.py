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

What a manifest lists is remembered in ``.snakemake/repliflow-inventory``
(names and sizes, no sha256), keyed by the manifest's inode, size and mtime,
so that an unchanged manifest is not parsed again: at 200,000 outputs the
manifests are 50 MB of JSON, which took longer to parse than checking every
file they list. ``aggregate`` writes it from the manifests it reads anyway,
so the first re-run after a run already finds it; a manifest that changed
(a job rewrites it atomically: a new inode) is parsed again.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import shutil
import stat
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from repliflow.core.plan import Plan
from repliflow.core.records import KEY, MANIFEST_SCHEMA
from repliflow.errors import RepliflowError
from repliflow.store.layout import SIDECAR_SUFFIX, TABLES
from repliflow.store.pathgate import EXTENSIONS, read_json


@dataclass(frozen=True)
class Repair:
    target: str  # the output to make again: a block's manifest, or a table (relative to the workdir)
    reason: str
    failed: tuple[int, ...] = ()  # replicates its manifest records as failed (on_failure: missing)


# a listed step: (key, output suffix, recorded output size, recorded sidecar size; None: not recorded)
_Step = tuple[str, str, int | None, int | None]
# a listed step to check: (manifest, when it was written, key, output suffix, sizes as in _Step)
_Wanted = tuple[str, int, str, str, int | None, int | None]
# what identifies a manifest's content without reading it: (inode, size, mtime in ns)
_Stamp = tuple[int, int, int]

INVENTORY = Path(".snakemake", "repliflow-inventory")
_INVENTORY_HEADER = ("repliflow.inventory/1", MANIFEST_SCHEMA)


def _stamp(info: os.stat_result) -> _Stamp:
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def reconcile(plan: Plan, workdir: str | Path = ".") -> list[Repair]:
    """The blocks of ``plan`` to run again, each with the first thing found
    wrong, and the outputs a killed Snakemake left marked incomplete."""
    workdir = Path(workdir)
    layout = plan.layout_at(workdir)
    if not os.path.isdir(layout.root):
        return []
    killed = left_incomplete(plan, workdir)
    tables_made = any(os.path.lexists(layout.table(name)) for name in TABLES)
    store = Path(layout.store)
    repairs: list[Repair] = []
    # per store folder: the steps listed there
    wanted: dict[str, list[_Wanted]] = {}
    known = _read_inventory(workdir / INVENTORY)
    parsed: dict[str, tuple[_Stamp, list[_Step], tuple[int, ...]]] = {}
    for manifest_path in plan.all_manifests():
        path = workdir / manifest_path
        try:
            info = os.lstat(path)
            written, stamp = info.st_mtime_ns, _stamp(info)
            remembered = known.get(manifest_path)
            if remembered is not None and remembered[0] == stamp and stat.S_ISREG(info.st_mode):
                steps, failed = remembered[1], remembered[2]
            else:
                manifest = read_json(path, "manifest")
                steps, failed = _listed(manifest, _block_of(manifest_path))
                parsed[manifest_path] = (stamp, steps, failed)
        except FileNotFoundError:
            # a manifest an earlier run made (the inventory names it) is a repair; one
            # never made (more replicates, a new treatment) is new work. Without an
            # inventory (a received folder, an older repliflow), made tables say so.
            if manifest_path in known if known else tables_made:
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
        for key, suffix, size, sidecar_size in steps:
            folder = key[:2]
            entries = wanted.get(folder)
            if entries is None:
                entries = wanted[folder] = []
            entries.append((manifest_path, written, key, suffix, size, sidecar_size))
    if parsed:
        # remember what was parsed, with what was remembered and is still named
        kept = {path: known[path] for path in plan.all_manifests() if path in known and path not in parsed}
        _write_inventory(workdir / INVENTORY, {**kept, **parsed}.items())
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


def _listed(manifest: Any, block: tuple[int, int] | None) -> tuple[list[_Step], tuple[int, ...]]:
    """The steps a manifest lists, as (key, output suffix, recorded output
    size, recorded sidecar size), and the replicates it records as failed. The shape is checked only as far as
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
        steps: list[_Step] = []
        failed: list[int] = []
        for replicate in replicates:
            if replicate.get("failed"):
                failed.append(replicate["replicate"])
            for step in replicate["steps"]:
                key, name = step["key"], step["file"]
                if KEY.match(key) is None or not name.startswith(key) or name[len(key) :] not in _SUFFIXES:
                    raise _Malformed(f"it lists the file {name!r} for key {key!r}")
                steps.append(
                    (key, name[len(key) :], _size(step.get("bytes")), _size(step.get("sidecar_bytes")))
                )
    except (KeyError, TypeError, AttributeError) as exc:
        raise _Malformed(f"{type(exc).__name__}: {exc}") from None
    return steps, tuple(failed)


_LENGTH = struct.Struct("<Q")


def _read_inventory(path: Path) -> dict[str, tuple[_Stamp, list[_Step], tuple[int, ...]]]:
    """The inventory of the manifests (``INVENTORY``): per manifest path, its
    stamp, steps and failed replicates; empty when missing or unreadable (the
    manifests are then parsed, as without it). Length-prefixed ``marshal``
    records: data only, never code that runs."""
    try:
        data = memoryview(path.read_bytes())
    except OSError:
        return {}
    known: dict[str, tuple[_Stamp, list[_Step], tuple[int, ...]]] = {}
    try:
        offset, header = _record(data, 0)
        if header != _INVENTORY_HEADER:
            return {}
        while offset < len(data):
            offset, record = _record(data, offset)
            manifest_path, stamp, steps, failed = record
            if not (isinstance(manifest_path, str) and type(stamp) is tuple and type(steps) is list):
                return {}
            known[manifest_path] = (stamp, steps, failed)
    except (EOFError, ValueError, TypeError, struct.error):
        return {}
    return known


def _record(data: memoryview, offset: int) -> tuple[int, Any]:
    (length,) = _LENGTH.unpack_from(data, offset)
    start = offset + _LENGTH.size
    if start + length > len(data):
        raise EOFError("a truncated record")
    return start + length, marshal.loads(data[start : start + length])


_Record = tuple[str, tuple[_Stamp, list[_Step], tuple[int, ...]]]


def _write_inventory(path: Path, records: Iterable[_Record]) -> None:
    """Write the inventory atomically (a temporary file renamed over it), one
    record at a time; a failure to write it costs the next run a parse,
    nothing else."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            blob = marshal.dumps(_INVENTORY_HEADER)
            handle.write(_LENGTH.pack(len(blob)) + blob)
            for manifest_path, (stamp, steps, failed) in records:
                blob = marshal.dumps((manifest_path, stamp, steps, failed))
                handle.write(_LENGTH.pack(len(blob)) + blob)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()


def remember_manifests(
    manifests: Mapping[str, Any], stamps: Mapping[str, _Stamp], workdir: str | Path = "."
) -> None:
    """Write the inventory from manifests already parsed (``aggregate`` reads
    every one): ``manifests`` by path relative to ``workdir``, ``stamps``
    taken before they were read (``manifest_stamps``). A manifest whose
    stamp changed meanwhile, or that does not read as a block manifest, is
    left out: the next run parses it."""
    workdir = Path(workdir)
    now = manifest_stamps(manifests, workdir)

    def records() -> Iterable[_Record]:
        for manifest_path, manifest in manifests.items():
            stamp = now.get(manifest_path)
            if stamp is None or stamps.get(manifest_path) != stamp:
                continue
            try:
                steps, failed = _listed(manifest, _block_of(manifest_path))
            except _Malformed:
                continue
            yield manifest_path, (stamp, steps, failed)

    if (workdir / INVENTORY).parent.is_dir():
        _write_inventory(workdir / INVENTORY, records())


def manifest_stamps(paths: Iterable[str], workdir: str | Path = ".") -> dict[str, _Stamp]:
    """The stamp (inode, size, mtime) of each regular file of ``paths``
    (relative to ``workdir``)."""
    found: dict[str, _Stamp] = {}
    for path in paths:
        with contextlib.suppress(OSError):
            info = os.lstat(Path(workdir) / path)
            if stat.S_ISREG(info.st_mode):
                found[path] = _stamp(info)
    return found


def _size(value: object) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _block_of(manifest_path: str) -> tuple[int, int] | None:
    label = manifest_path.rsplit("/", 1)[-1].removesuffix(".json")
    lo, _, hi = label.partition("-")
    return (int(lo), int(hi)) if lo.isdigit() and hi.isdigit() else None


def _damaged(store: Path, wanted: dict[str, list[_Wanted]]) -> list[tuple[str, str]]:
    """(manifest, why) for each listed output or sidecar that is missing, not
    a regular file, of another size than recorded, or modified after its
    manifest was written. Names are looked up relative to each store folder
    (a short path walk for the kernel)."""

    def check(folder: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        base = f"{store}/{folder}"
        try:
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return [
                (manifest, f"{base}/{key}{suffix} is missing")
                for manifest, _, key, suffix, _, _ in wanted[folder]
            ]
        lstat, regular = os.lstat, stat.S_ISREG

        def problem(name: str, size: int | None, written: int) -> str | None:
            try:
                info = lstat(name, dir_fd=fd)
            except FileNotFoundError:
                return f"{base}/{name} is missing"
            if not regular(info.st_mode):
                return f"{base}/{name} is not a regular file"
            if size is not None and info.st_size != size:
                cut = "truncated" if info.st_size < size else "longer than recorded"
                return f"{base}/{name} is {info.st_size} bytes, {size} recorded ({cut})"
            if info.st_mtime_ns > written:
                # written after its job finished: the job checks its sha256 and keeps it when intact
                return f"{base}/{name} was modified after its job finished"
            return None

        try:
            for manifest, written, key, suffix, size, sidecar_size in wanted[folder]:
                why = problem(key + suffix, size, written) or problem(
                    key + SIDECAR_SUFFIX, sidecar_size, written
                )
                if why is not None:
                    found.append((manifest, why))
        finally:
            os.close(fd)
        return found

    # Not threads: with two, the GIL hand-offs around each lstat made it slower
    # here (1.7 s alone, 2.0 s with two, 3.0 s with four, at 400,000 files).
    folders = sorted(wanted)
    by_folder = _in_two_processes(folders, check) if len(wanted) >= PARALLEL_FOLDERS else None
    if by_folder is None:
        return [item for folder in folders for item in check(folder)]
    return [item for folder in folders for item in by_folder[folder]]


# Store folders from which the lstats are split over two processes (a fork
# costs a few ms; the store has up to 256 folders, one per first two hex digits).
PARALLEL_FOLDERS = 32


def _in_two_processes(
    folders: list[str], check: Callable[[str], list[tuple[str, str]]]
) -> dict[str, list[tuple[str, str]]] | None:
    """``check`` of every folder, half of them in a forked child (lstat is a
    system call: two processes do twice the calls a second on two idle
    cores, where threads serialise on the GIL). None when this process cannot
    fork safely (threads running, no fork, one core), to check in one."""
    if not hasattr(os, "fork") or threading.active_count() > 1 or len(os.sched_getaffinity(0)) < 2:
        return None
    theirs_folders, mine_folders = folders[0::2], folders[1::2]
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    if pid == 0:  # the child: its half, marshalled to the pipe, and nothing else
        code = 1
        try:
            os.close(read_end)
            blob = marshal.dumps([(folder, check(folder)) for folder in theirs_folders])
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(blob)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    found = {folder: check(folder) for folder in mine_folders}
    with os.fdopen(read_end, "rb") as pipe:
        blob = pipe.read()
    _, status = os.waitpid(pid, 0)
    try:
        if status != 0:
            raise ValueError(f"status {status}")
        found.update((folder, [tuple(item) for item in items]) for folder, items in marshal.loads(blob))
    except (ValueError, EOFError, TypeError):
        found.update((folder, check(folder)) for folder in theirs_folders)  # the child failed: here
    return found


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
            elif path.is_dir():  # a directory output (the report's figures/): never through a link
                shutil.rmtree(path)
        lines.append(f"{stamp}\t{repair.target}\t{' '.join(repair.reason.split())}\n")
    fd = os.open(plan.layout_at(workdir).repairs, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
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
