"""`repliflow audit` names every output that no longer matches its record,
from the files alone; a clean tree passes; `--prov` exports W3C PROV-JSON."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from conftest import REPO

from repliflow.cli import main
from repliflow.store import audit as audit_module
from repliflow.store.audit import audit


@pytest.fixture
def results(finished, tmp_path):
    """A copy of the finished run: <tmp>/steps.py, <tmp>/config/config.yaml
    (where audit looks for the current config) and <tmp>/results/exp."""
    shutil.copy(finished.root / "steps.py", tmp_path / "steps.py")
    (tmp_path / "config").mkdir()
    shutil.copy(finished.root / "config.yaml", tmp_path / "config" / "config.yaml")
    copy = tmp_path / "results" / "exp"
    shutil.copytree(finished.results, copy, symlinks=True)
    return copy


def _provenance(results) -> dict:
    return json.loads((results / "provenance.json").read_text())


def _outputs(results, step="scale", condition=None) -> list[dict]:
    return [
        o
        for o in _provenance(results)["outputs"]
        if o["step"] == step and (condition is None or o["conditions"] == [condition])
    ]


def _kinds(problems) -> list[tuple[str, str]]:
    return sorted((p.kind, p.path) for p in problems)


def test_clean_tree_passes(results, capsys):
    assert main(["audit", str(results)]) == 0
    out = capsys.readouterr().out
    assert "audited 25 outputs" in out and "all match their records" in out


def test_flipped_byte_is_named(results, capsys):
    path = results / _outputs(results)[0]["path"]
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))
    assert main(["audit", str(results)]) == 1
    out = capsys.readouterr().out
    assert f"BAD {path}: sha256" in out and "tampered or corrupted" in out
    assert _kinds(audit(results).problems) == [("tampered", str(path))]


def test_truncated_file_is_named(results):
    path = results / _outputs(results)[0]["path"]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    (problem,) = audit(results).problems
    assert (problem.kind, problem.path) == ("tampered", str(path))
    assert f"{len(data) // 2} bytes, {len(data)} recorded (truncated)" in problem.problem


def test_deleted_output_is_named(results):
    path = results / _outputs(results)[0]["path"]
    path.unlink()
    problems = audit(results).problems
    assert [(p.path, p.problem, p.kind) for p in problems] == [(str(path), "missing output", "missing")]


def test_swapped_output_is_named_with_where_its_content_came_from(results):
    first, second = _outputs(results, "metrics", "double")[:2]
    shutil.copy(results / second["path"], results / first["path"])  # a valid file of another replicate
    (problem,) = audit(results).problems
    assert (problem.kind, problem.path, problem.key) == (
        "swapped",
        str(results / first["path"]),
        first["key"],
    )
    assert str(results / second["path"]) in problem.problem
    assert f"replicate {second['replicate']}" in problem.problem


def test_swapped_output_and_sidecar_are_named(results):
    first, second = _outputs(results, "metrics", "double")[:2]
    shutil.copy(results / second["path"], results / first["path"])
    shutil.copy(results / second["sidecar"], results / first["sidecar"])
    problems = audit(results).problems
    assert ("swapped", str(results / first["path"])) in _kinds(problems)
    edited = [p.problem for p in problems if p.kind == "sidecar-edited"]
    assert any("hashes to" in text for text in edited)


def test_edited_step_function_makes_its_outputs_and_their_descendants_stale(results, capsys):
    steps = results.parent.parent / "steps.py"
    steps.write_text(
        steps.read_text().replace(
            "return [x * factor for x in data]", "return [x * factor * 1 for x in data]"
        )
    )
    problems = audit(results).problems
    assert {p.kind for p in problems} == {"stale"}
    scale = {str(results / o["path"]) for o in _outputs(results, "scale")}
    metrics = {str(results / o["path"]) for o in _outputs(results, "metrics")}
    assert {p.path for p in problems} == scale | metrics  # the datasource is untouched
    direct = [p for p in problems if p.path in scale]
    assert all("the code of scale() changed since it was made" in p.problem for p in direct)
    assert all("made from a stale input" in p.problem for p in problems if p.path in metrics)
    assert main(["audit", str(results)]) == 1
    assert f"STALE {sorted(scale)[0]}: stale: the code of scale()" in capsys.readouterr().out


def test_a_comment_in_the_code_is_not_stale_but_noted(results):
    steps = results.parent.parent / "steps.py"
    steps.write_text(steps.read_text() + "\nLIMIT = 3  # a module constant the code hash does not see\n")
    result = audit(results)
    assert result.ok
    assert result.notes and "no step function did" in result.notes[0]


def test_removed_step_function_is_stale(results):
    steps = results.parent.parent / "steps.py"
    steps.write_text(steps.read_text().replace("def metrics(", "def summarise("))
    problems = audit(results).problems
    assert {p.kind for p in problems} == {"stale"}
    assert all("metrics() is no longer in" in p.problem for p in problems)


def test_missing_code_fails_unless_no_code(results, capsys):
    (results.parent.parent / "steps.py").unlink()
    problems = audit(results).problems
    assert [p.kind for p in problems] == ["code-missing"] and "--no-code" in problems[0].problem
    assert main(["audit", "--no-code", str(results)]) == 0
    capsys.readouterr()


def test_workdir_option_finds_the_code_elsewhere(results, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.move(results, moved)
    assert audit(moved).problems[0].kind == "code-missing"
    assert audit(moved, workdir=results.parent.parent).ok


@pytest.mark.parametrize(
    ("field", "value"),
    [("params", {"factor": 5.0}), ("seed", 12345), ("code_hash", "0" * 20), ("replicate", 3)],
)
def test_hand_edited_sidecar_is_named(results, field, value):
    output = _outputs(results)[0]
    sidecar_path = results / output["sidecar"]
    sidecar = json.loads(sidecar_path.read_text())
    sidecar[field] = value
    sidecar_path.write_text(json.dumps(sidecar))
    problems = audit(results).problems
    assert problems and {p.kind for p in problems} <= {"sidecar-edited", "stale"}
    assert any(p.kind == "sidecar-edited" and p.path == str(sidecar_path) for p in problems)


def test_hand_edited_sidecar_sha256_is_named(results):
    output = _outputs(results)[0]
    sidecar_path = results / output["sidecar"]
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["output"]["sha256"] = "0" * 64
    sidecar_path.write_text(json.dumps(sidecar))
    (problem,) = audit(results).problems
    assert (problem.kind, problem.path) == ("sidecar-edited", str(sidecar_path))
    assert "provenance.json" in problem.problem


@pytest.mark.parametrize(("content", "kind"), [(None, "sidecar-missing"), ("{not json", "sidecar-invalid")])
def test_missing_or_broken_sidecar_is_named(results, content, kind):
    sidecar_path = results / _outputs(results)[0]["sidecar"]
    if content is None:
        sidecar_path.unlink()
    else:
        sidecar_path.write_text(content)
    assert _kinds(audit(results).problems) == [(kind, str(sidecar_path))]


def test_replaced_input_breaks_the_chain_of_its_consumers(results):
    """The datasource output is replaced by other content with consistent
    records: it checks out on its own, but the steps made from the old bytes
    no longer connect to it."""
    provenance = _provenance(results)
    source = next(o for o in provenance["outputs"] if o["step"] == "datasource" and o["replicate"] == 0)
    new = b"[1.0, 2.0]"
    (results / source["path"]).write_bytes(new)
    sha = __import__("hashlib").sha256(new).hexdigest()
    sidecar_path = results / source["sidecar"]
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["output"].update(sha256=sha, bytes=len(new))
    sidecar_path.write_text(json.dumps(sidecar))
    source["sha256"] = sha
    (results / "provenance.json").write_text(json.dumps(provenance))
    consumers = [o for o in provenance["outputs"] if o["step"] == "scale" and o["replicate"] == 0]
    assert len(consumers) == 2  # baseline and double
    expected = sorted(("broken-chain", str(results / o["sidecar"])) for o in consumers)
    assert _kinds(audit(results).problems) == expected


def test_edited_metrics_table_is_named(results, capsys):
    table = results / "metrics.csv"
    table.write_text(table.read_text().replace("baseline", "baseIine", 1))
    assert main(["audit", "--json", str(results)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["schema"] == "repliflow.audit/1"
    assert [(p["kind"], p["path"]) for p in report["problems"]] == [("table", str(table))]


@pytest.mark.parametrize(
    "path",
    ["../../../../etc/passwd", "store/../../steps.py", "/etc/passwd", "store/ab/other.json"],
)
def test_paths_outside_the_store_are_refused_not_read(results, path, monkeypatch):
    provenance = _provenance(results)
    provenance["outputs"][0]["path"] = path
    (results / "provenance.json").write_text(json.dumps(provenance))
    opened = []
    real = audit_module.hash_file
    monkeypatch.setattr(audit_module, "hash_file", lambda p, root: opened.append(str(p)) or real(p, root))
    problems = audit(results).problems
    assert problems[0].kind == "unsafe-path" and problems[0].path == str(results / "provenance.json")
    # the consumers of the refused entry can no longer be connected to it
    assert {p.kind for p in problems[1:]} <= {"broken-chain"}
    assert not any("passwd" in p or "steps.py" in p or "other" in p for p in opened)


@pytest.mark.parametrize("content", [None, "[]", '{"schema": "repliflow.provenance/99", "outputs": []}'])
def test_missing_malformed_or_future_provenance_is_named(results, content):
    path = results / "provenance.json"
    if content is None:
        path.unlink()
        shutil.rmtree(results / "last-good")  # else the audit reads the last good record (test_repair)
    else:
        path.write_text(content)
    (problem,) = audit(results).problems
    assert (problem.kind, problem.path) == ("provenance", str(path))


def test_parallel_workers_find_the_same_problems(results, monkeypatch):
    for output in _outputs(results)[:3]:
        (results / output["path"]).write_bytes(b"corrupt")
    serial = audit(results, workers=1).problems
    monkeypatch.setattr(audit_module, "PARALLEL_FROM", 1)
    monkeypatch.setattr(audit_module, "CHUNK", 4)
    assert audit(results, workers=2).problems == serial and len(serial) == 3


def test_provenance_and_sidecars_follow_their_schemas(results):
    from jsonschema import Draft202012Validator

    schemas = REPO / "workflow" / "schemas"
    provenance_schema = yaml.safe_load((schemas / "provenance.schema.yaml").read_text())
    sidecar_schema = yaml.safe_load((schemas / "sidecar.schema.yaml").read_text())
    Draft202012Validator.check_schema(provenance_schema)
    Draft202012Validator.check_schema(sidecar_schema)
    provenance = _provenance(results)
    Draft202012Validator(provenance_schema).validate(provenance)
    for output in provenance["outputs"]:
        Draft202012Validator(sidecar_schema).validate(json.loads((results / output["sidecar"]).read_text()))
    from repliflow.core import records

    # one place holds the schema ids (records); the documented schemas name the same
    assert provenance_schema["properties"]["schema"]["const"] == records.PROVENANCE_SCHEMA
    assert provenance_schema["$id"] == records.PROVENANCE_SCHEMA
    assert sidecar_schema["$id"] == records.SIDECAR_SCHEMA


def test_prov_export_is_w3c_prov_json(results, capsys):
    assert main(["audit", "--prov", str(results)]) == 0
    assert "provenance.prov.json" in capsys.readouterr().err
    document = json.loads((results / "provenance.prov.json").read_text())
    provenance = _provenance(results)
    entities = document["entity"]
    for output in provenance["outputs"]:
        entity = entities[f"exp:{output['path']}"]
        assert entity["repliflow:sha256"] == output["sha256"] and entity["repliflow:key"] == output["key"]
        assert f"exp:run/{output['key']}" in document["activity"]
    generated = {(r["prov:entity"], r["prov:activity"]) for r in document["wasGeneratedBy"].values()}
    assert len(generated) == len(provenance["outputs"]) + 2  # and the two tables
    # every scale and metrics output is derived from its input
    assert len(document["wasDerivedFrom"]) == sum(o["position"] > 0 for o in provenance["outputs"])
    plans = {r.get("prov:plan") for r in document["wasAssociatedWith"].values()} - {None}
    assert len(plans) == 3  # one code entity per step function

    prov_model = pytest.importorskip("prov.model")
    parsed = prov_model.ProvDocument.deserialize(str(results / "provenance.prov.json"), format="json")
    assert len(list(parsed.get_records(prov_model.ProvEntity))) == len(entities)
    assert "wasDerivedFrom" in parsed.serialize(format="provn")


def test_audit_of_the_workflow_run_in_place(finished, monkeypatch):
    """The results as the workflow left them, audited from their working directory."""
    monkeypatch.chdir(finished.root)
    assert audit("results/exp", config="config.yaml").ok
