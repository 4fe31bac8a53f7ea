"""`repliflow gc` removes exactly the outputs no current config needs."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from conftest import counting_config

from repliflow.cli import main
from repliflow.errors import RepliflowError
from repliflow.store import gc as gc_module
from repliflow.store.audit import audit
from repliflow.store.gc import collect, gc


def _provenance(experiment) -> dict:
    return json.loads((experiment.results / "provenance.json").read_text())


def _store_files(experiment) -> set[str]:
    store = experiment.results / "store"
    return {str(p.relative_to(experiment.root)) for p in store.rglob("*") if p.is_file()}


def _changed_treatment(experiment, factor=3.0):
    config = counting_config()
    config["treatments"]["double"]["scale"]["factor"] = factor
    experiment.write_config(config)


def test_after_changing_a_treatment_parameter_gc_removes_exactly_the_outdated_outputs(experiment, capsys):
    experiment.snakemake()
    before = _provenance(experiment)
    metrics_before = (experiment.results / "metrics.csv").read_bytes()
    _changed_treatment(experiment)
    experiment.snakemake()
    after = _provenance(experiment)

    current = {o["key"] for o in after["outputs"]}
    outdated = {o["key"] for o in before["outputs"]} - current
    # the treatment's scale and metrics outputs; the shared datasource stays
    assert {o["step"] for o in before["outputs"] if o["key"] in outdated} == {"scale", "metrics"}
    assert len(outdated) == 2 * 5
    expected = {
        str((experiment.results / o[field]).relative_to(experiment.root))
        for o in before["outputs"]
        if o["key"] in outdated
        for field in ("path", "sidecar")
    }

    config = str(experiment.root / "config.yaml")
    listed = collect([config], experiment.root)
    assert {g.path for g in listed.garbage if g.kind in ("output", "sidecar")} == expected
    old_segment = [
        s
        for s in before["conditions"]["double"]["segments"]
        if s not in after["conditions"]["double"]["segments"]
    ]
    assert {g.kind for g in listed.garbage} == {"output", "sidecar", "manifest"}
    assert all(any(s in g.path for s in old_segment) for g in listed.garbage if g.kind == "manifest")
    assert listed.bytes == sum(os.path.getsize(experiment.root / g.path) for g in listed.garbage)
    assert _store_files(experiment) >= expected  # listing removes nothing

    store_before = _store_files(experiment)
    assert main(["gc", "--delete", "-d", str(experiment.root), config]) == 0
    out = capsys.readouterr().out
    removed = "removed 10 outputs (with their sidecars), 0 temp files and 5 old job manifests"
    assert f"{removed}, {listed.bytes} bytes" in out
    assert store_before - _store_files(experiment) == expected
    assert audit(experiment.results, config=experiment.root / "config.yaml").ok  # all it needs is there
    assert collect([config], experiment.root).garbage == []

    # going back recomputes the removed outputs (their old job manifests are gone too)
    experiment.reset_calls()
    _changed_treatment(experiment, 2.0)
    experiment.snakemake()
    assert (experiment.results / "metrics.csv").read_bytes() == metrics_before
    assert len(experiment.calls()) == 2 * 5


def test_outputs_another_config_needs_are_kept(experiment, tmp_path):
    experiment.snakemake()
    other = tmp_path / "other.yaml"
    config = counting_config()
    config["treatments"]["double"]["scale"]["factor"] = 3.0
    other.write_text(yaml.safe_dump(config))
    assert collect([experiment.root / "config.yaml", other], experiment.root).garbage == []
    assert len(collect([other], experiment.root).garbage) == 2 * 2 * 5 + 5


def test_temp_files_are_collected_and_strangers_and_links_left_alone(experiment, tmp_path):
    experiment.snakemake()
    folder = next((experiment.results / "store").iterdir())
    temp = folder / f".{'a' * 20}.json.1234.tmp"
    temp.write_bytes(b"partial")
    stranger = folder / "notes.txt"
    stranger.write_text("mine")
    outside = tmp_path / "precious.json"
    outside.write_text("{}")
    link = folder / f"{folder.name}{'0' * 18}.json"
    link.symlink_to(outside)
    other_dir = experiment.results / "store" / "not-a-key-folder"
    other_dir.mkdir()
    (other_dir / f"{'b' * 20}.json").write_text("{}")

    result = gc([experiment.root / "config.yaml"], experiment.root, delete=True)
    assert [(g.kind, g.path) for g in result.garbage] == [("temp", str(temp.relative_to(experiment.root)))]
    assert not temp.exists()
    assert stranger.exists() and link.is_symlink() and outside.exists()
    assert (other_dir / f"{'b' * 20}.json").exists()


def test_delete_is_refused_while_snakemake_runs_here(experiment, monkeypatch):
    experiment.snakemake()
    _changed_treatment(experiment)
    monkeypatch.setattr(gc_module, "snakemake_active", lambda workdir: True)
    files = _store_files(experiment)
    with pytest.raises(RepliflowError, match="snakemake is running"):
        gc([experiment.root / "config.yaml"], experiment.root, delete=True)
    assert _store_files(experiment) == files


def test_listing_says_when_provenance_still_lists_the_outputs(experiment, capsys):
    experiment.snakemake()
    _changed_treatment(experiment)  # not re-run: provenance.json is of the old config
    assert main(["gc", "-d", str(experiment.root), str(experiment.root / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "run gc --delete to remove them" in out
    assert "provenance.json still lists 10 of these outputs" in out
