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

In a shared store (repliflow.store.shared) it also keeps every output that
a registered results folder's block manifests or provenance.json name, and
outputs written in the last hour (a run on another host may be making them);
it deletes nothing while a registered folder is gone (``forget_missing``
forgets those) or cannot be read, or while snakemake runs in one on this host.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repliflow.core.plan import Plan, load_plan, segment_keys
from repliflow.core.records import check_sidecar
from repliflow.errors import RepliflowError
from repliflow.snakemake.command import DEFAULT_CONFIG
from repliflow.snakemake.markers import snakemake_active
from repliflow.store.layout import parse_store_name
from repliflow.store.pathgate import check_results_tree, check_store_tree, read_json, unlink_inside
from repliflow.store.provenance import read_provenance
from repliflow.store.shared import referenced_keys, registrations

GC_SCHEMA = "repliflow.gc/1"
_KK = re.compile(r"^[0-9a-f]{2}$")
_TEMP = re.compile(r"^\..+\.tmp$")  # storage.atomic_write's temp files
MAX_REPLICATE_HINT = 10_000_000  # the most replicates a config may name
# In a shared store, an output no record names may be one a run elsewhere (on
# another host, where gc cannot see its process) is writing now: its block
# manifest comes only at the end of its job. Such files are left for a later gc.
SHARED_MIN_AGE = 3600.0


@dataclass(frozen=True)
class Garbage:
    path: str  # relative to the working directory (absolute in a shared store outside it)
    kind: str  # "output", "sidecar", "temp" or "manifest"
    bytes: int
    key: str | None = None
    root: str = ""  # the folder it is deleted from, never outside: its store or results folder
    mtime: float = 0.0


@dataclass
class GcResult:
    experiments: list[str]
    garbage: list[Garbage]
    kept: int  # store files a config (or a registered results folder) needs
    deleted: bool = False
    recorded: int = 0  # garbage keys the current provenance.json still lists
    errors: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)  # shared stores looked at
    registered: list[str] = field(default_factory=list)  # other results folders using them
    missing: list[str] = field(default_factory=list)  # registered results folders that are gone
    forgotten: list[str] = field(default_factory=list)  # their registrations, with forget_missing
    problems: list[str] = field(default_factory=list)  # registrations or records gc could not read
    young: int = 0  # unneeded outputs of a shared store kept as too recent to be sure of

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


def _shown(path: str, workdir: Path) -> str:
    """``path`` relative to ``workdir`` when inside it, else absolute."""
    absolute = os.path.abspath(path)
    inside = os.path.relpath(absolute, workdir.absolute())
    return absolute if inside.startswith("..") else inside


def _store_garbage(store: Path, needed: set[str], workdir: Path) -> tuple[list[Garbage], int]:
    garbage, kept = [], 0
    root = _shown(str(store), workdir)
    for folder in _entries(store, folders=True):
        if not _KK.match(folder.name):
            continue
        for entry in _entries(folder.path, folders=False):
            relative = _shown(entry.path, workdir)
            parsed = parse_store_name(entry.name)
            info = entry.stat(follow_symlinks=False)
            if parsed is None:
                if _TEMP.match(entry.name):
                    garbage.append(Garbage(relative, "temp", info.st_size, root=root, mtime=info.st_mtime))
                continue  # not ours: leave it alone
            if parsed.key in needed or not parsed.key.startswith(folder.name):
                kept += parsed.key in needed
                continue
            kind = "sidecar" if parsed.is_sidecar else "output"
            garbage.append(Garbage(relative, kind, info.st_size, parsed.key, root, info.st_mtime))
    return garbage, kept


def _manifest_garbage(blocks: Path, segments: set[str], workdir: Path, results: str) -> list[Garbage]:
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
                size = entry.stat(follow_symlinks=False).st_size
                garbage.append(Garbage(relative, "manifest", size, root=_shown(results, workdir)))
    return garbage


def _current_beyond(plans: list[Plan], garbage: list[Garbage], workdir: Path) -> set[str]:
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
            sidecar = check_sidecar(read_json(workdir / item.path, "sidecar"), item.path)
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


def collect(
    config_files: list[str | Path] | None, workdir: str | Path = ".", *, forget_missing: bool = False
) -> GcResult:
    """What ``gc`` would remove for these configs (paths relative to the
    current directory; default: config/config.yaml in ``workdir``); nothing
    is deleted. In a shared store, an output is kept while any registered
    results folder names it; with ``forget_missing`` a registered folder
    that no longer exists names nothing."""
    workdir = Path(workdir)
    config_files = config_files or [workdir / DEFAULT_CONFIG]
    plans: dict[str, list[Plan]] = {}
    for config_file in config_files:
        plan = load_plan(config_file, workdir)
        plans.setdefault(plan.experiment, []).append(plan)
    result = GcResult(sorted(plans), [], 0)
    stores: dict[str, list[Plan]] = {}  # store -> the plans that use it
    needed: dict[str, set[str]] = {}
    for experiment, experiment_plans in plans.items():
        if len({plan.store for plan in experiment_plans}) > 1:
            raise RepliflowError(
                f"repliflow: the configs of experiment {experiment!r} name different stores; "
                "gc takes one store per experiment"
            )
        layout = experiment_plans[0].layout_at(workdir)
        results = Path(layout.root)
        check_results_tree(results)  # a linked store or blocks folder would lead gc outside
        check_store_tree(layout.store)
        stores.setdefault(layout.store, []).extend(experiment_plans)
        keys = needed.setdefault(layout.store, set())
        for plan in experiment_plans:
            for rows in segment_keys(plan).values():
                for row in rows:
                    keys.update(row)
        segments = {segment.label for plan in experiment_plans for segment in plan.segments.values()}
        result.garbage += _manifest_garbage(Path(layout.blocks), segments, workdir, layout.root)
    for store, store_plans in stores.items():
        keys = needed[store]
        shared = store_plans[0].store is not None
        if shared:
            result.shared.append(store)
            own = {os.path.realpath(plan.layout_at(workdir).root) for plan in store_plans}
            keys |= _registered_keys(store, own, result, forget_missing=forget_missing)
        found, found_kept = _store_garbage(Path(store), keys, workdir)
        beyond = _current_beyond(store_plans, found, workdir)
        result.kept += found_kept + sum(g.key in beyond for g in found)
        found = [g for g in found if g.key not in beyond]
        if shared:  # a run elsewhere may be writing outputs no manifest lists yet
            cutoff = time.time() - SHARED_MIN_AGE
            young = {g.key or g.path for g in found if g.mtime > cutoff}
            result.young += sum(g.kind == "output" and g.key in young for g in found)
            found = [g for g in found if (g.key or g.path) not in young]
        result.garbage += found
        listed: set[object] = set()
        for plan in store_plans:
            try:
                outputs = read_provenance(Path(plan.layout_at(workdir).root))["outputs"]
            except RepliflowError:
                continue
            listed |= {entry.get("key") for entry in outputs if isinstance(entry, dict)}
        result.recorded += len({g.key for g in found if g.key in listed})
    return result


def _registered_keys(store: str, own: set[str], result: GcResult, *, forget_missing: bool) -> set[str]:
    """The keys the results folders registered in a shared ``store`` name,
    except the ``own`` ones (their configs say what they need)."""
    keys: set[str] = set()
    found, problems = registrations(store)
    result.problems += problems
    for registration in found:
        if os.path.realpath(registration.results) in own:
            continue
        if not registration.exists:
            if forget_missing:
                result.forgotten.append(registration.file)
            else:
                result.missing.append(
                    f"{registration.results} (experiment {registration.experiment}, "
                    f"registered from {registration.host})"
                )
            continue
        result.registered.append(registration.results)
        try:
            keys |= referenced_keys(registration.results)
        except (OSError, RepliflowError) as exc:
            result.problems.append(f"{registration.results}: {exc}")
    return keys


def gc(
    config_files: list[str | Path] | None,
    workdir: str | Path = ".",
    *,
    delete: bool = False,
    forget_missing: bool = False,
) -> GcResult:
    """List, and with ``delete`` remove, what no given config needs (nor,
    in a shared store, any registered results folder)."""
    workdir = Path(workdir)
    result = collect(config_files, workdir, forget_missing=forget_missing)
    if not delete:
        return result
    if snakemake_active(workdir):
        raise RepliflowError(
            f"repliflow: snakemake is running in {workdir.resolve()}; gc --delete waits until it ends "
            "(its outputs in progress are not yet in any record)"
        )
    if result.missing or result.problems:
        raise RepliflowError(
            "repliflow: gc --delete removes nothing while it cannot tell what every results folder "
            "using the shared store needs:\n  "
            + "\n  ".join([*(f"registered but gone: {m}" for m in result.missing), *result.problems])
            + (
                "\nrun gc --delete --forget-missing to forget the results folders that are gone"
                if result.missing
                else ""
            )
        )
    for store in result.shared:
        for registration in registrations(store)[0]:
            if registration.host == socket.gethostname() and snakemake_active(Path(registration.workdir)):
                raise RepliflowError(
                    f"repliflow: snakemake is running in {registration.workdir}, which uses the shared store "
                    f"{store}; gc --delete waits until it ends"
                )
    order = {"sidecar": 0, "temp": 1, "output": 2, "manifest": 3}
    for item in sorted(result.garbage, key=lambda g: order[g.kind]):
        try:
            if item.kind == "manifest":
                check_results_tree(workdir / item.root)
            else:
                check_store_tree(workdir / item.root)
            unlink_inside(workdir / item.path, workdir / item.root)
        except FileNotFoundError:
            continue
        except (OSError, RepliflowError) as exc:
            result.errors.append(f"{item.path}: {exc}")
    for file in result.forgotten:
        try:
            unlink_inside(file, os.path.dirname(file))
        except FileNotFoundError:
            continue
        except (OSError, RepliflowError) as exc:
            result.errors.append(f"{file}: {exc}")
    # the <kk> folders of stores and the segment folders of blocks/, when emptied
    tidy = {
        item.root if item.kind != "manifest" else os.path.dirname(os.path.dirname(item.path))
        for item in result.garbage
    }
    for root in tidy:
        for folder in _entries(workdir / root, folders=True):
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
    for store in result.shared:
        lines.append(
            f"shared store {store}: also kept what {len(result.registered)} other registered results "
            "folder(s) name" + (f": {', '.join(result.registered)}" if result.registered else "")
        )
    if result.young:
        lines.append(
            f"kept {result.young} unneeded output(s) of the shared store made in the last "
            f"{SHARED_MIN_AGE / 3600:g} h: a run elsewhere may be writing them (a later gc collects them)"
        )
    lines += [f"registered but gone: {missing}" for missing in result.missing]
    if result.missing:
        lines.append(
            "their outputs are kept; gc --forget-missing forgets these registrations (with --delete: "
            "and collects what only they used)"
        )
    lines += [
        f"forgot the registration {file}" if result.deleted else f"would forget {file}"
        for file in result.forgotten
    ]
    lines += [f"cannot tell what it needs: {problem}" for problem in result.problems]
    lines += [f"could not remove {error}" for error in result.errors]
    return "\n".join(lines)
