"""Read provenance.json and the block manifests, and list the outputs they record."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from repliflow.core.plan import Plan
from repliflow.core.records import PROVENANCE_SCHEMA, Manifest, OutputEntry, check_manifest, check_provenance
from repliflow.errors import LayoutError
from repliflow.store import storage
from repliflow.store.layout import PROVENANCE, shown_value
from repliflow.store.pathgate import check_results_tree, read_json, read_json_object


def read_provenance(results: Path) -> dict[str, Any]:
    """``provenance.json`` of ``results``, checked for its schema version and the
    types of its top-level fields (each output entry is checked by its reader)."""
    path = results / PROVENANCE
    check_results_tree(results)
    try:
        provenance = read_json_object(path, "provenance")
    except FileNotFoundError:
        raise LayoutError(f"{path} is missing: run the workflow first") from None
    schema = provenance.get("schema")
    if schema != PROVENANCE_SCHEMA:
        raise LayoutError(
            f"{path} has schema {shown_value(schema)}; this repliflow reads {PROVENANCE_SCHEMA!r} "
            "(documented in workflow/schemas/provenance.schema.yaml)"
        )
    return check_provenance(provenance, str(path))


def recorded_store(results: Path) -> str | None:
    """The shared store provenance.json (else the last good one) names for
    ``results``' outputs; None for the results folder's own store."""
    from repliflow.store.layout import LAST_GOOD

    for folder in (results, results / LAST_GOOD):
        try:
            return read_provenance(folder).get("store")
        except LayoutError:
            continue
    return None


def read_manifests(paths: Iterable[str | Path]) -> dict[tuple[str, int], Manifest]:
    """Manifests by (segment id, first replicate), each type-checked."""
    manifests: dict[tuple[str, int], Manifest] = {}
    for path in paths:
        manifest = check_manifest(read_json(path, "manifest"), str(path))
        manifests[(manifest["segment"], manifest["lo"])] = manifest
    return manifests


def iter_provenance_outputs(plan: Plan, manifests: dict[tuple[str, int], Manifest]) -> Iterator[OutputEntry]:
    """Every output the manifests record, with the conditions that use it:
    provenance.json's ``outputs``, and what the readable view links. One
    entry at a time (aggregate writes them out as they come: at 200,000
    outputs the list alone is ~90 MB)."""
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
