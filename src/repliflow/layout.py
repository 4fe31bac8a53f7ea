"""The on-disk layout of a results directory, read safely.

``audit``, ``status``, ``gc`` and the readable view all read files that a
person (or an attacker) may have edited: ``provenance.json``, sidecars,
Snakemake's incomplete markers. Nothing here unpickles, and every path taken
from such a file is checked to be the one its key dictates, inside
``results/<experiment>/``, before anything is opened, linked or deleted.
"""

from __future__ import annotations

import json
import os
import re
from base64 import urlsafe_b64decode
from dataclasses import dataclass
from pathlib import Path

from repliflow import hashing, storage
from repliflow.errors import RepliflowError
from repliflow.plan import NAME_PATTERN, Plan

# The provenance.json version this module reads: aggregate.PROVENANCE_SCHEMA
# (kept apart so that reading records never imports the statistics; a test
# keeps the two equal).
PROVENANCE_SCHEMA = "repliflow.provenance/1"
KEY_PATTERN = re.compile(rf"^[0-9a-f]{{{hashing.KEY_LENGTH}}}$")
OUTPUT_SUFFIXES = frozenset(storage.EXTENSIONS.values())
SIDECAR_SUFFIX = ".meta.json"


class LayoutError(RepliflowError):
    """A file under results/ is missing, malformed or names an unsafe path."""


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


def output_paths(entry: dict) -> tuple[str, str]:
    """The output and sidecar paths (relative to results/<experiment>) of a
    provenance entry, checked to be exactly where its key belongs; raises
    LayoutError for anything else, such as ``../../etc/passwd``."""
    key = entry.get("key")
    if not is_key(key):
        raise LayoutError(f"{key!r} is not a key ({hashing.KEY_LENGTH} lowercase hex digits)")
    folder = f"store/{key[:2]}/"
    path, sidecar = entry.get("path"), entry.get("sidecar")
    if not isinstance(path, str) or not path.startswith(folder):
        raise LayoutError(f"path {path!r} is not in {folder}, where key {key} belongs")
    parsed = parse_store_name(path[len(folder) :])
    if parsed is None or parsed.key != key or parsed.is_sidecar:
        raise LayoutError(f"path {path!r} is not {folder}{key}.<one of {', '.join(sorted(OUTPUT_SUFFIXES))}>")
    if sidecar != f"{folder}{key}{SIDECAR_SUFFIX}":
        raise LayoutError(f"sidecar {sidecar!r} is not {folder}{key}{SIDECAR_SUFFIX}")
    return path, sidecar


def read_json_object(path: Path) -> dict:
    """A JSON object from ``path``; LayoutError naming the file otherwise."""
    try:
        with open(path, "rb") as handle:
            value = json.load(handle)
    except FileNotFoundError:
        raise LayoutError(f"{path} is missing") from None
    except (OSError, ValueError) as exc:
        raise LayoutError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise LayoutError(f"{path} does not hold a JSON object")
    return value


def read_provenance(results: Path) -> dict:
    """``provenance.json`` of ``results``, checked for its schema version and shape."""
    path = results / "provenance.json"
    try:
        provenance = read_json_object(path)
    except LayoutError as exc:
        if not path.exists():
            raise LayoutError(f"{path} is missing: run the workflow first") from None
        raise exc
    schema = provenance.get("schema")
    if schema != PROVENANCE_SCHEMA:
        raise LayoutError(
            f"{path} has schema {schema!r}; this repliflow reads {PROVENANCE_SCHEMA!r} "
            "(documented in workflow/schemas/provenance.schema.yaml)"
        )
    outputs = provenance.get("outputs")
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise LayoutError(f"{path}: 'outputs' is not a list of objects")
    return provenance


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
    from repliflow.workflow_support import snakemake_running_here

    if Path("/proc").is_dir():
        return snakemake_running_here(workdir.resolve())
    locks = workdir / ".snakemake" / "locks"
    return locks.is_dir() and any(locks.iterdir())


def load_plan(config_file: str | Path, workdir: str | Path = ".") -> Plan:
    """Validate and plan the experiment in ``config_file`` (a path relative to
    the current directory, as snakemake's ``--configfile`` is) the way the
    Snakefile would in ``workdir``, without building Snakemake's DAG."""
    import yaml

    from repliflow.config import validate_config
    from repliflow.plan import build_plan

    path = Path(config_file)
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise LayoutError(f"repliflow: the config file {path} does not exist") from None
    except (OSError, yaml.YAMLError) as exc:
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
    """Manifests by (segment id, first replicate)."""
    manifests = {}
    for path in paths:
        with open(path) as handle:
            manifest = json.load(handle)
        manifests[(manifest["segment"], manifest["lo"])] = manifest
    return manifests


def provenance_outputs(plan: Plan, manifests: dict) -> list[dict]:
    """Every output the manifests record, with the conditions that use it:
    provenance.json's ``outputs``, and what the readable view links."""
    outputs = []
    for segment in plan.segments.values():
        for block in plan.blocks(segment):
            manifest = manifests[(segment.id, block.lo)]
            for replicate in manifest["replicates"]:
                for step in replicate["steps"]:
                    outputs.append(
                        {
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
                    )
    return outputs
