"""`repliflow audit` names every output that no longer matches its record."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import Experiment, counting_config

from repliflow.audit import audit
from repliflow.cli import main


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    experiment = Experiment(tmp_path_factory.mktemp("audit"), counting_config())
    experiment.snakemake()
    return experiment.results


@pytest.fixture
def results(finished, tmp_path):
    copy = tmp_path / "exp"
    shutil.copytree(finished, copy)
    return copy


def _an_output(results, step="scale"):
    provenance = json.loads((results / "provenance.json").read_text())
    return next(o for o in provenance["outputs"] if o["step"] == step)


def test_clean_tree_passes(results, capsys):
    assert main(["audit", str(results)]) == 0
    assert "all match their records" in capsys.readouterr().out


def test_flipped_byte_is_named(results, capsys):
    path = results / _an_output(results)["path"]
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))
    assert main(["audit", str(results)]) == 1
    out = capsys.readouterr().out
    assert f"BAD {path}: sha256" in out


def test_deleted_output_is_named(results):
    path = results / _an_output(results)["path"]
    path.unlink()
    problems = audit(results).problems
    assert [(p.path, p.problem) for p in problems] == [(str(path), "missing output")]


def test_hand_edited_sidecar_is_named(results):
    output = _an_output(results)
    sidecar_path = results / output["sidecar"]
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["params"] = {"factor": 5.0}
    sidecar_path.write_text(json.dumps(sidecar))
    problems = audit(results).problems
    assert any(p.path == str(sidecar_path) and "recipe" in p.problem for p in problems)


def test_edited_metrics_table_is_named(results, capsys):
    table = results / "metrics.csv"
    table.write_text(table.read_text().replace("baseline", "baseIine", 1))
    assert main(["audit", "--json", str(results)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["problems"][0]["path"] == str(table)
