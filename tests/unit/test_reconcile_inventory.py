"""The reconciliation's inventory (.snakemake/repliflow-inventory): an
unchanged manifest is not parsed again, a changed one is, and damage is found
with or without it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import counting_config, counting_plan, store_value

from repliflow.core.plan import segment_keys
from repliflow.core.records import MANIFEST_SCHEMA
from repliflow.store import reconcile as rc
from repliflow.store.layout import SIDECAR_SUFFIX


def _build(root: Path):
    """A finished run's store and manifests, as the runner leaves them."""
    plan = counting_plan(root, counting_config(replicates=5, batch={"replicates_per_job": 2}))
    keys = segment_keys(plan)
    store = root / plan.store_dir
    for segment in plan.segments.values():
        for block in plan.blocks(segment):
            entries = []
            for replicate in range(block.lo, block.hi):
                steps = []
                for offset, key in enumerate(keys[segment.id][replicate]):
                    _, output = store_value(store, key, {"v": replicate, "o": offset})
                    sidecar = store / key[:2] / f"{key}{SIDECAR_SUFFIX}"
                    steps.append(
                        {
                            "step": segment.steps[segment.start + offset].name,
                            "position": segment.start + offset,
                            "key": key,
                            "file": output.name,
                            "format": "json",
                            "sha256": "0" * 64,
                            "bytes": output.stat().st_size,
                            "sidecar_bytes": sidecar.stat().st_size,
                        }
                    )
                entries.append({"replicate": replicate, "seed": plan.seeds()[replicate], "steps": steps})
            manifest = root / plan.manifest_path(block)
            manifest.parent.mkdir(parents=True, exist_ok=True)
            document = {
                "schema": MANIFEST_SCHEMA,
                "experiment": plan.experiment,
                "segment": segment.id,
                "condition": segment.owner,
                "lo": block.lo,
                "hi": block.hi,
                "replicates": entries,
            }
            manifest.write_text(json.dumps(document))
    (root / ".snakemake").mkdir()
    return plan


@pytest.fixture
def built(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return _build(tmp_path)


def _parses(monkeypatch) -> list[str]:
    parsed: list[str] = []
    real = rc.read_json

    def counting(path, what):
        parsed.append(str(path))
        return real(path, what)

    monkeypatch.setattr(rc, "read_json", counting)
    return parsed


def test_an_unchanged_manifest_is_parsed_once(built, monkeypatch):
    parsed = _parses(monkeypatch)
    assert rc.reconcile(built) == []
    assert len(parsed) == len(built.all_manifests())
    assert (Path(rc.INVENTORY)).is_file()
    parsed.clear()
    assert rc.reconcile(built) == []
    assert parsed == []


def test_aggregate_s_inventory_spares_the_first_rerun_its_parse(built, monkeypatch):
    paths = built.all_manifests()
    stamps = rc.manifest_stamps(paths)
    rc.remember_manifests({p: json.loads(Path(p).read_text()) for p in paths}, stamps)
    parsed = _parses(monkeypatch)
    assert rc.reconcile(built) == []
    assert parsed == []


def test_a_manifest_changed_since_is_parsed_again(built, monkeypatch):
    rc.reconcile(built)
    parsed = _parses(monkeypatch)
    victim = Path(built.all_manifests()[0])
    document = json.loads(victim.read_text())
    document["replicates"][0]["steps"][0]["bytes"] += 1  # now it records another size
    tmp = victim.with_suffix(".tmp")
    tmp.write_text(json.dumps(document))
    os.replace(tmp, victim)  # as the runner writes it: a new inode
    repairs = rc.reconcile(built)
    assert parsed == [str(victim)]
    assert [r.target for r in repairs] == [str(victim)] and "truncated" in repairs[0].reason


def test_damage_is_found_with_the_inventory(built):
    assert rc.reconcile(built) == []
    store = Path(built.store_dir)
    sidecar = next(store.glob(f"*/*{SIDECAR_SUFFIX}"))
    sidecar.write_bytes(sidecar.read_bytes()[:-3])
    assert "truncated" in " ".join(r.reason for r in rc.reconcile(built))
    output = next(p for p in store.glob("*/*.json") if not p.name.endswith(SIDECAR_SUFFIX))
    output.unlink()
    assert "is missing" in " ".join(r.reason for r in rc.reconcile(built))


@pytest.mark.parametrize(
    "garbage", [b"", b"\x00" * 9, b"not marshal at all", b"\x10\x00\x00\x00\x00\x00\x00\x00\xff"]
)
def test_an_unreadable_inventory_is_ignored(built, monkeypatch, garbage):
    Path(rc.INVENTORY).write_bytes(garbage)
    parsed = _parses(monkeypatch)
    assert rc.reconcile(built) == []
    assert len(parsed) == len(built.all_manifests())


def test_the_lstats_split_over_two_processes_find_the_same(built, monkeypatch):
    folders = ["00", "01", "02", "03", "04"]
    split = rc._in_two_processes(folders, lambda folder: [(folder, f"why {folder}")])
    assert split is None or split == {folder: [(folder, f"why {folder}")] for folder in folders}
    monkeypatch.setattr(rc, "PARALLEL_FOLDERS", 1)
    assert rc.reconcile(built) == []
    sidecars = sorted(Path(built.store_dir).glob(f"*/*{SIDECAR_SUFFIX}"))
    for sidecar in (sidecars[0], sidecars[-1]):  # in both halves
        sidecar.write_bytes(sidecar.read_bytes()[:-3])
    split_repairs = rc.reconcile(built)
    monkeypatch.setattr(rc, "PARALLEL_FOLDERS", 10**9)
    assert rc.reconcile(built) == split_repairs
    assert any("truncated" in r.reason for r in split_repairs)
