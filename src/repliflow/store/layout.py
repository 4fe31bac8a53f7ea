"""The on-disk layout of a results directory, read safely.

``audit``, ``status``, ``gc`` and the readable view all read files that a
person (or an attacker) may have edited: ``provenance.json``, sidecars,
Snakemake's incomplete markers. Nothing here unpickles, and every path taken
from such a file is checked to be the one its key dictates, inside
``results/<experiment>/``, before anything is opened, linked or deleted.
"""

from __future__ import annotations

import os
import re
from base64 import urlsafe_b64decode
from dataclasses import dataclass
from pathlib import Path

from repliflow.core import hashing
from repliflow.core.plan import NAME_PATTERN, Plan
from repliflow.errors import BadRecord, LayoutError, RepliflowError, UnsafePathError  # noqa: F401
from repliflow.store import storage

# The provenance.json version this module reads: aggregate.PROVENANCE_SCHEMA
# (kept apart so that reading records never imports the statistics; a test
# keeps the two equal).
PROVENANCE_SCHEMA = "repliflow.provenance/2"
KEY_PATTERN = re.compile(rf"^[0-9a-f]{{{hashing.KEY_LENGTH}}}$")
OUTPUT_SUFFIXES = frozenset(storage.EXTENSIONS.values())
SIDECAR_SUFFIX = storage.SIDECAR_SUFFIX
# Hard links to the tables of the last aggregate that finished, and a copy of
# the last report that rendered: Snakemake deletes a job's outputs before it runs.
LAST_GOOD = "last-good"


def is_key(text: object) -> bool:
    return isinstance(text, str) and KEY_PATTERN.match(text) is not None


def is_safe_name(name: object) -> bool:
    """A condition or step name that is safe as one path component."""
    return isinstance(name, str) and NAME_PATTERN.match(name) is not None and ".." not in name


@dataclass(frozen=True)
class StoreFile:
    """A store file name taken apart: ``<key>.<suffix>``."""

    key: str
    suffix: str  # an output extension, or "meta.json"

    @property
    def is_sidecar(self) -> bool:
        return self.suffix == "meta.json"


def parse_store_name(name: str) -> StoreFile | None:
    """``<key>.<ext>`` or ``<key>.meta.json``, else None (temp files, strangers)."""
    key, dot, suffix = name.partition(".")
    if not dot or not is_key(key):
        return None
    if suffix == "meta.json" or suffix in OUTPUT_SUFFIXES:
        return StoreFile(key, suffix)
    return None


def output_paths(entry: dict, where: str = "output") -> tuple[str, str]:
    """The output and sidecar paths (relative to results/<experiment>) of a
    provenance entry, its fields type-checked and its path checked to be
    exactly where its key and format put it; raises BadRecord for a malformed
    entry and LayoutError for any other path, such as ``../../etc/passwd``."""
    from repliflow.core.records import check_output_entry

    check_output_entry(entry, where)
    key = entry["key"]
    folder = f"store/{key[:2]}/"
    path, sidecar = entry.get("path"), entry.get("sidecar")
    if not isinstance(path, str) or not path.startswith(folder):
        raise LayoutError(f"path {_shown(path)} is not in {folder}, where key {key} belongs")
    parsed = parse_store_name(path[len(folder) :])
    if parsed is None or parsed.key != key or parsed.is_sidecar:
        raise LayoutError(
            f"path {_shown(path)} is not {folder}{key}.<one of {', '.join(sorted(OUTPUT_SUFFIXES))}>"
        )
    fmt = entry.get("format")
    if fmt is not None and parsed.suffix != storage.EXTENSIONS[fmt]:
        raise LayoutError(f"path {_shown(path)} does not have the extension of its format {fmt!r}")
    if sidecar != f"{folder}{key}{SIDECAR_SUFFIX}":
        raise LayoutError(f"sidecar {_shown(sidecar)} is not {folder}{key}{SIDECAR_SUFFIX}")
    return path, sidecar


def read_provenance(results: Path) -> dict:
    """``provenance.json`` of ``results``, checked for its schema version and the
    types of its top-level fields (each output entry is checked by its reader)."""
    from repliflow.core.records import check_provenance
    from repliflow.store.pathgate import check_results_tree, read_json_object

    path = results / "provenance.json"
    check_results_tree(results)
    try:
        provenance = read_json_object(path, "provenance")
    except FileNotFoundError:
        raise LayoutError(f"{path} is missing: run the workflow first") from None
    schema = provenance.get("schema")
    if schema != PROVENANCE_SCHEMA:
        raise LayoutError(
            f"{path} has schema {_shown(schema)}; this repliflow reads {PROVENANCE_SCHEMA!r} "
            "(documented in workflow/schemas/provenance.schema.yaml)"
        )
    return check_provenance(provenance, str(path))


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def incomplete_outputs(workdir: Path) -> set[str]:
    """The output paths (relative to ``workdir``, as Snakemake names them) that
    Snakemake marked incomplete: a job was started for them and has not
    finished, because it is running or because its Snakemake was killed.

    Snakemake stores one file per output under ``.snakemake/incomplete/``,
    named by the urlsafe base64 of the path, split into ``@``-prefixed
    directories when longer than a file name may be.
    """
    root = workdir / ".snakemake" / "incomplete"
    found: set[str] = set()
    for folder, _, files in os.walk(root):
        parts = [p[1:] for p in Path(folder).relative_to(root).parts if p.startswith("@")]
        for name in files:
            try:
                found.add(urlsafe_b64decode("".join([*parts, name])).decode())
            except ValueError:  # not a marker (e.g. "migration_underway")
                continue
    return found


def snakemake_active(workdir: Path) -> bool:
    """Whether a snakemake process works in ``workdir`` now (on this host).

    Without /proc (not Linux) a held lock is taken as an active run.
    """
    from repliflow.snakemake.hooks import snakemake_running_here

    if Path("/proc").is_dir():
        return snakemake_running_here(workdir.resolve())
    locks = workdir / ".snakemake" / "locks"
    return locks.is_dir() and any(locks.iterdir())


def load_plan(config_file: str | Path, workdir: str | Path = ".") -> Plan:
    """Validate and plan the experiment in ``config_file`` (a path relative to
    the current directory, as snakemake's ``--configfile`` is) the way the
    Snakefile would in ``workdir``, without building Snakemake's DAG."""
    from repliflow.core.config import load_config_file, validate_config
    from repliflow.core.plan import build_plan

    path = Path(config_file)
    try:
        # UTF-8, no key given twice, JSON values only: else a ConfigError naming file, line, key
        config = load_config_file(path)
    except FileNotFoundError:
        raise LayoutError(f"repliflow: the config file {path} does not exist") from None
    except OSError as exc:
        raise LayoutError(f"repliflow: cannot read the config file {path}: {exc}") from None
    if not isinstance(config, dict):
        raise LayoutError(f"repliflow: the config file {path} does not hold a mapping")
    config = validate_config(config, file=str(config_file))
    return build_plan(config, workdir=str(workdir))


def segment_keys(plan: Plan) -> dict[str, list[list[str]]]:
    """Per segment id, per replicate, the keys of the segment's positions.

    Every trie node is hashed once, so shared prefixes cost nothing extra.
    """
    keys: dict[str, list[list[str]]] = {}
    pending = list(plan.segments.values())
    seeds = plan.seeds()
    while pending:
        waiting: list = []
        for segment in pending:
            if segment.parent is not None and segment.parent not in keys:
                waiting.append(segment)
                continue
            parent = keys[segment.parent] if segment.parent is not None else None
            rows = []
            for replicate, seed in enumerate(seeds):
                upstream = parent[replicate][-1] if parent is not None else None
                row = []
                for step in segment.steps[segment.start : segment.end + 1]:
                    upstream = hashing.recipe_key(step.function, step.code_hash, step.params, seed, upstream)
                    row.append(upstream)
                rows.append(row)
            keys[segment.id] = rows
        if len(waiting) == len(pending):
            raise LayoutError("repliflow: the plan's segments do not form a tree")
        pending = waiting
    return keys


def read_manifests(paths) -> dict[tuple[str, int], dict]:
    """Manifests by (segment id, first replicate), each type-checked."""
    from repliflow.core.records import check_manifest
    from repliflow.store.pathgate import read_json

    manifests = {}
    for path in paths:
        manifest = check_manifest(read_json(path, "manifest"), str(path))
        manifests[(manifest["segment"], manifest["lo"])] = manifest
    return manifests


def provenance_outputs(plan: Plan, manifests: dict) -> list[dict]:
    """Every output the manifests record, with the conditions that use it:
    provenance.json's ``outputs``, and what the readable view links."""
    return list(iter_provenance_outputs(plan, manifests))


def iter_provenance_outputs(plan: Plan, manifests: dict):
    """``provenance_outputs``, one entry at a time (aggregate writes them out
    as they come: at 200,000 outputs the list alone is ~90 MB)."""
    for segment in plan.segments.values():
        for block in plan.blocks(segment):
            manifest = manifests[(segment.id, block.lo)]
            for replicate in manifest["replicates"]:
                for step in replicate["steps"]:
                    yield {
                        "key": step["key"],
                        "path": f"{storage.key_dir('store', step['key'])}/{step['file']}",
                        "sidecar": storage.sidecar_path("store", step["key"]),
                        "sha256": step["sha256"],
                        "format": step["format"],
                        "step": step["step"],
                        "position": step["position"],
                        "replicate": replicate["replicate"],
                        "seed": replicate["seed"],
                        "conditions": segment.conditions,
                    }
