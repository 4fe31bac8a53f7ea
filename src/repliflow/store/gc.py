"""``repliflow gc``: find (and remove) cached outputs no current config needs.

The store only grows: a changed parameter or step makes new keys and leaves
the old outputs behind, which is what makes undoing a change free. ``gc``
plans every config it is given (as the Snakefile would), computes every key
they need, and lists what else is in their experiments' stores:

- outputs and sidecars whose key no config needs;
- temp files a killed write left behind (``.<name>.*.tmp``);
- block manifests of jobs no config has any more (Snakemake would otherwise
  take such a job as done if the config came back, and find its outputs gone).

With ``delete=True`` it removes them (a sidecar before its output, so a
sidecar on disk still means a complete output) and reports the bytes freed.
It never touches a file a given config needs, never follows a symlink, never
leaves ``results/<experiment>/store`` and ``blocks``, and refuses to delete
while snakemake runs in the directory. Pass every config that shares an
experiment name: outputs only another config needs look unused otherwise.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repliflow.core.plan import Plan, load_plan, segment_keys
from repliflow.core.records import check_sidecar
from repliflow.errors import RepliflowError
from repliflow.snakemake.command import DEFAULT_CONFIG
from repliflow.snakemake.markers import snakemake_active
from repliflow.store.layout import ResultsLayout, parse_store_name
from repliflow.store.pathgate import check_results_tree, read_json, unlink_inside
from repliflow.store.provenance import read_provenance

GC_SCHEMA = "repliflow.gc/1"
_KK = re.compile(r"^[0-9a-f]{2}$")
_TEMP = re.compile(r"^\..+\.tmp$")  # storage.atomic_write's temp files
MAX_REPLICATE_HINT = 10_000_000  # the most replicates a config may name


@dataclass(frozen=True)
class Garbage:
    path: str  # relative to the working directory
    kind: str  # "output", "sidecar", "temp" or "manifest"
    bytes: int
    key: str | None = None


@dataclass
class GcResult:
    experiments: list[str]
    garbage: list[Garbage]
    kept: int  # store files a config needs
    deleted: bool = False
    recorded: int = 0  # garbage keys the current provenance.json still lists
    errors: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(g.bytes for g in self.garbage)

    @property
    def outputs(self) -> int:
        return sum(g.kind == "output" for g in self.garbage)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(schema=GC_SCHEMA, bytes=self.bytes, outputs=self.outputs)
        return data


def _entries(folder: Path | str, *, folders: bool) -> Iterator[os.DirEntry[str]]:
    """The sub-folders (or the regular files) of ``folder``; links are neither."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) if folders else entry.is_file(follow_symlinks=False):
            yield entry


def _store_garbage(store: Path, needed: set[str], workdir: Path) -> tuple[list[Garbage], int]:
    garbage, kept = [], 0
    for folder in _entries(store, folders=True):
        if not _KK.match(folder.name):
            continue
        for entry in _entries(folder.path, folders=False):
            relative = os.path.relpath(entry.path, workdir)
            parsed = parse_store_name(entry.name)
            if parsed is None:
                if _TEMP.match(entry.name):
                    garbage.append(Garbage(relative, "temp", entry.stat(follow_symlinks=False).st_size))
                continue  # not ours: leave it alone
            if parsed.key in needed or not parsed.key.startswith(folder.name):
                kept += parsed.key in needed
                continue
            kind = "sidecar" if parsed.is_sidecar else "output"
            garbage.append(Garbage(relative, kind, entry.stat(follow_symlinks=False).st_size, parsed.key))
    return garbage, kept


def _manifest_garbage(blocks: Path, segments: set[str], workdir: Path) -> list[Garbage]:
    """Manifests in folders of segments no config has any more. A manifest of
    a current segment is kept whatever its replicates: it lists outputs of a
    current recipe chain, which gc never deletes."""
    garbage = []
    for folder in _entries(blocks, folders=True):
        if folder.name in segments:
            continue
        for entry in _entries(folder.path, folders=False):
            if entry.name.endswith(".json"):
                relative = os.path.relpath(entry.path, workdir)
                garbage.append(Garbage(relative, "manifest", entry.stat(follow_symlinks=False).st_size))
    return garbage


def _current_beyond(plans: list[Plan], results: Path, garbage: list[Garbage]) -> set[str]:
    """Keys among ``garbage`` that are outputs of a current recipe chain at a
    replicate index beyond what the configs name now (made by a run with
    ``--config replicates=N``): still a valid cache, never garbage. The
    sidecar's replicate index is only a hint: the key must be the one the
    plan gives that replicate."""
    keys_by_replicate: dict[int, set[str]] = {}
    current = set()
    for item in garbage:
        if item.kind != "sidecar":
            continue
        try:
            sidecar = check_sidecar(read_json(results.parent.parent / item.path, "sidecar"), item.path)
        except (RepliflowError, OSError):
            continue
        replicate = sidecar["replicate"]
        if replicate > MAX_REPLICATE_HINT:
            continue
        if replicate not in keys_by_replicate:
            keys_by_replicate[replicate] = {
                key
                for plan in plans
                if replicate >= plan.replicates
                for condition in plan.conditions
                for key in plan.keys(condition.name, replicate)
            }
        if item.key in keys_by_replicate[replicate]:
            current.add(item.key)
    return current


def collect(config_files: list[str | Path] | None, workdir: str | Path = ".") -> GcResult:
    """What ``gc`` would remove for these configs (paths relative to the
    current directory; default: config/config.yaml in ``workdir``); nothing
    is deleted."""
    workdir = Path(workdir)
    config_files = config_files or [workdir / DEFAULT_CONFIG]
    plans: dict[str, list[Plan]] = {}
    for config_file in config_files:
        plan = load_plan(config_file, workdir)
        plans.setdefault(plan.experiment, []).append(plan)
    garbage: list[Garbage] = []
    kept = recorded = 0
    for experiment, experiment_plans in plans.items():
        layout = ResultsLayout.of(experiment, str(workdir))
        results = Path(layout.root)
        check_results_tree(results)  # a linked store or blocks folder would lead gc outside
        keys: set[str] = set()
        for plan in experiment_plans:
            for rows in segment_keys(plan).values():
                for row in rows:
                    keys.update(row)
        found, found_kept = _store_garbage(Path(layout.store), keys, workdir)
        beyond = _current_beyond(experiment_plans, results, found)
        kept += found_kept + sum(g.key in beyond for g in found)
        found = [g for g in found if g.key not in beyond]
        garbage += found
        segments = {segment.label for plan in experiment_plans for segment in plan.segments.values()}
        garbage += _manifest_garbage(Path(layout.blocks), segments, workdir)
        try:
            listed = {
                entry.get("key") for entry in read_provenance(results)["outputs"] if isinstance(entry, dict)
            }
        except RepliflowError:
            listed = set()
        recorded += len({g.key for g in found if g.key in listed})
    return GcResult(sorted(plans), garbage, kept, recorded=recorded)


def gc(config_files: list[str | Path] | None, workdir: str | Path = ".", *, delete: bool = False) -> GcResult:
    """List, and with ``delete`` remove, what no given config needs."""
    workdir = Path(workdir)
    result = collect(config_files, workdir)
    if not delete:
        return result
    if snakemake_active(workdir):
        raise RepliflowError(
            f"repliflow: snakemake is running in {workdir.resolve()}; gc --delete waits until it ends "
            "(its outputs in progress are not yet in any record)"
        )
    order = {"sidecar": 0, "temp": 1, "output": 2, "manifest": 3}
    for item in sorted(result.garbage, key=lambda g: order[g.kind]):
        results = workdir / "results" / Path(item.path).parts[1]  # item.path: results/<exp>/...
        try:
            check_results_tree(results)
            unlink_inside(workdir / item.path, results)
        except FileNotFoundError:
            continue
        except (OSError, RepliflowError) as exc:
            result.errors.append(f"{item.path}: {exc}")
    for experiment in result.experiments:
        layout = ResultsLayout.of(experiment, str(workdir))
        for root in (layout.store, layout.blocks):
            for folder in _entries(Path(root), folders=True):
                try:
                    os.rmdir(folder.path)  # only when empty
                except OSError:
                    continue
    result.deleted = True
    return result


def format_gc(result: GcResult) -> str:
    lines = [f"{item.path}\t{item.kind}\t{item.bytes}" for item in result.garbage]
    names = ", ".join(result.experiments)
    kinds = {kind: sum(g.kind == kind for g in result.garbage) for kind in ("output", "temp", "manifest")}
    what = (
        f"{kinds['output']} outputs (with their sidecars), {kinds['temp']} temp files and "
        f"{kinds['manifest']} old job manifests, {result.bytes} bytes"
    )
    if not result.garbage:
        lines.append(f"nothing to collect in {names}: the configs need all {result.kept} stored files")
    elif result.deleted:
        lines.append(f"removed {what} from {names}; freed {result.bytes} bytes")
    else:
        lines.append(f"not needed by the given config(s) in {names}: {what}; run gc --delete to remove them")
    if result.recorded:
        lines.append(
            f"provenance.json still lists {result.recorded} of these outputs: it is from a run of an "
            "earlier config; run snakemake to bring it (and the runs/ view) up to date"
        )
    lines += [f"could not remove {error}" for error in result.errors]
    return "\n".join(lines)
