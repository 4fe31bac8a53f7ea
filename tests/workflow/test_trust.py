"""Received results run no code: each way a hostile results folder could run
code, read or delete files outside it (issue 11), tried and refused.

The attacker edits anything under results/<exp>: provenance.json, sidecars,
manifests, store files, links. The user then audits the folder or extends
the run (more replicates, a new treatment).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from conftest import Experiment, copied, counting_config

from repliflow.cli import main
from repliflow.engine.status import status
from repliflow.errors import RepliflowError, UnsafePathError
from repliflow.store import trust
from repliflow.store.audit import audit
from repliflow.store.gc import gc
from repliflow.store.provenance import read_manifests

# The datasource returns a set, which only pickle keeps: every replicate's first
# output is a .pkl that the next steps must load.
PICKLE_STEPS = """
def source(ctx, *, n=4):
    return {float(x) for x in ctx.rng.normal(size=n)}


def scale(data, ctx, *, factor=1.0):
    return [x * factor for x in sorted(data)]


def metrics(data, ctx):
    return {"mean": sum(data) / len(data), "spread": max(data) - min(data)}
"""


class _Payload:
    """Unpickling this makes a directory: proof that a forged pickle ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json(path: Path):
    return json.loads(path.read_text())


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value))


@pytest.fixture(scope="module")
def pickled_run(tmp_path_factory) -> Experiment:
    experiment = Experiment(
        tmp_path_factory.mktemp("pickled") / "work", counting_config(replicates=3), steps=PICKLE_STEPS
    )
    experiment.snakemake()
    return experiment


@pytest.fixture
def pickled(pickled_run, tmp_path) -> Experiment:
    """A finished run with pickled outputs, each test's own copy."""
    return copied(pickled_run, tmp_path / "work")


def _datasource_outputs(experiment) -> list[dict]:
    return [o for o in _json(experiment.results / "provenance.json")["outputs"] if o["position"] == 0]


def _forge_pickle(experiment, marker: Path) -> Path:
    """Replace replicate 0's datasource pickle with a payload and rewrite its
    sidecar and manifest to match, as a hostile colleague would."""
    entry = next(o for o in _datasource_outputs(experiment) if o["replicate"] == 0)
    payload = pickle.dumps(_Payload(marker))
    path = experiment.results / entry["path"]
    path.write_bytes(payload)
    sidecar_path = experiment.results / entry["sidecar"]
    sidecar = _json(sidecar_path)
    sidecar["output"].update(sha256=_sha(payload), bytes=len(payload))  # the stale hmac stays
    _write_json(sidecar_path, sidecar)
    for manifest_path in (experiment.results / "blocks").glob("datasource-*/*.json"):
        manifest = _json(manifest_path)
        for replicate in manifest["replicates"]:
            for step in replicate["steps"]:
                if step["key"] == entry["key"]:
                    step["sha256"] = _sha(payload)
        _write_json(manifest_path, manifest)
    return path


def _add_treatment(experiment) -> None:
    config = dict(experiment.config)
    config["treatments"] = {**config["treatments"], "triple": {"scale": {"factor": 3.0}}}
    experiment.write_config(config)


def test_a_forged_pickle_whose_records_were_rewritten_is_not_unpickled(pickled, tmp_path):
    marker = tmp_path / "pwned"
    path = _forge_pickle(pickled, marker)
    _add_treatment(pickled)  # the new treatment reads every datasource output
    result = pickled.snakemake(check=False)
    assert result.returncode != 0
    assert not marker.exists()
    text = " ".join((result.stdout + result.stderr).split())
    assert str(path) in text and "did not sign" in text
    assert "repliflow trust" in text and "recompute it" in text


def test_a_forged_pickle_is_not_unpickled_by_more_replicates(pickled, tmp_path):
    marker = tmp_path / "pwned"
    _forge_pickle(pickled, marker)
    provenance = _json(pickled.results / "provenance.json")
    for entry in provenance["outputs"]:  # so that the forged input must be read again
        if entry["replicate"] == 0 and entry["position"] == 1:
            (pickled.results / entry["sidecar"]).unlink()
    pickled.write_config({**pickled.config, "replicates": 4, "batch": {"replicates_per_job": 4}})
    result = pickled.snakemake(check=False)
    assert result.returncode != 0 and not marker.exists()


def test_recomputing_a_refused_pickle_repairs_the_run(pickled, tmp_path):
    marker = tmp_path / "pwned"
    path = _forge_pickle(pickled, marker)
    path.unlink()
    Path(str(path).removesuffix(".pkl") + ".meta.json").unlink()
    _add_treatment(pickled)
    pickled.snakemake("--forcerun", "run_segment")
    assert not marker.exists()
    assert audit(pickled.results, config=pickled.root / "config.yaml").ok


def test_pickles_of_another_machine_need_trust_and_then_load(pickled, tmp_path, monkeypatch, capsys):
    other_key = tmp_path / "other-user" / "trust.key"
    _add_treatment(pickled)
    refused = pickled.snakemake(check=False, env={trust.KEY_ENV: str(other_key)})
    assert refused.returncode != 0 and "did not sign" in refused.stdout + refused.stderr

    monkeypatch.setenv(trust.KEY_ENV, str(other_key))
    assert main(["trust", str(pickled.results)]) == 1  # no terminal: nothing signed without --yes
    assert "--yes" in capsys.readouterr().err
    assert main(["trust", "--yes", str(pickled.results)]) == 0
    assert "signed 3 pickle(s)" in capsys.readouterr().out
    assert main(["trust", "--yes", str(pickled.results)]) == 0
    assert "3 pickle(s) already signed" in capsys.readouterr().out
    pickled.snakemake(env={trust.KEY_ENV: str(other_key)})
    assert "triple" in (pickled.results / "metrics.csv").read_text()


def test_trust_refuses_a_pickle_that_does_not_match_its_sidecar(pickled, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(trust.KEY_ENV, str(tmp_path / "k" / "trust.key"))
    entry = _datasource_outputs(pickled)[0]
    (pickled.results / entry["path"]).write_bytes(b"garbage")
    assert main(["trust", "--yes", str(pickled.results)]) == 1
    err = capsys.readouterr().err
    assert "damaged, not signed" in err and entry["key"] in err


def test_a_manifest_naming_a_file_outside_is_refused_before_reading(pickled, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    outside = tmp_path / "outside.pkl"
    outside.write_bytes(pickle.dumps(_Payload(marker)))
    manifest_path = next((pickled.results / "blocks").glob("metrics-*/*.json"))
    manifest = _json(manifest_path)
    step = manifest["replicates"][0]["steps"][-1]
    step.update(file="../../../../outside.pkl", format="pickle", sha256=_sha(outside.read_bytes()))
    _write_json(manifest_path, manifest)
    with pytest.raises(RepliflowError, match=r"names the file '\.\./\.\./\.\./\.\./outside\.pkl'"):
        read_manifests([manifest_path])
    result = pickled.snakemake(check=False)  # the edited manifest is newer: aggregate runs again
    assert not marker.exists()
    assert "outside.pkl" in result.stdout + result.stderr


def test_a_sidecar_naming_a_file_outside_is_refused_as_an_input(pickled, tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "outside.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    entry = _datasource_outputs(pickled)[1]
    sidecar_path = pickled.results / entry["sidecar"]
    sidecar = _json(sidecar_path)
    sidecar["output"]["file"] = "../../../../outside.pkl"
    _write_json(sidecar_path, sidecar)
    _add_treatment(pickled)
    # the run sees the edited sidecar (its size and mtime), quarantines it and recomputes the output
    result = pickled.snakemake()
    assert not marker.exists() and entry["key"] in result.stderr
    log = (pickled.results / "quarantine" / "log.tsv").read_text()
    assert f"{entry['key']}.meta.json" in log and "names the file '../../../../outside.pkl'" in log
    assert _json(sidecar_path)["output"]["file"] == f"{entry['key']}.pkl"


# --- audit runs nothing and opens nothing outside --------------------------------


@pytest.fixture
def hostile(pickled, tmp_path) -> Experiment:
    """The pickled run, with importable packages planted in results/."""
    marker = tmp_path / "pwned"
    for package in (pickled.root / "results", pickled.results):
        (package / "__init__.py").write_text(f"import os\nos.mkdir({str(marker)!r})\n")
    (pickled.results / "x.py").write_text(f"import os\nos.mkdir({str(marker)!r})\n")
    provenance = _json(pickled.results / "provenance.json")
    provenance["code"]["source"] = "results.exp.x"
    _write_json(pickled.results / "provenance.json", provenance)
    return pickled


def test_audit_never_imports_a_module_named_by_the_record(hostile, tmp_path, monkeypatch):
    monkeypatch.chdir(hostile.root)
    result = audit("results/exp", config="config.yaml")
    assert result.ok, result.problems
    assert not (tmp_path / "pwned").exists()
    assert "results.exp.x" not in sys.modules and "results" not in sys.modules


def test_audit_never_imports_even_when_the_config_names_such_a_module(hostile, tmp_path, monkeypatch):
    hostile.write_config({**hostile.config, "code": "results.exp.x"})
    monkeypatch.chdir(hostile.root)
    result = audit("results/exp", config="config.yaml")
    assert not (tmp_path / "pwned").exists()
    assert {p.kind for p in result.problems} == {"stale"}  # x.py holds no step function: judged as text


def test_audit_opens_nothing_outside_the_folder_and_the_code_file(hostile, tmp_path, monkeypatch, opened):
    provenance = _json(hostile.results / "provenance.json")
    provenance["code"]["source"] = "/etc/passwd"
    provenance["outputs"][0]["path"] = "../../../../etc/passwd"
    _write_json(hostile.results / "provenance.json", provenance)
    entry = provenance["outputs"][1]
    store_file = hostile.results / entry["path"]
    store_file.unlink()
    store_file.symlink_to(tmp_path / "outside.txt")
    (tmp_path / "outside.txt").write_text("secret")
    fifo = hostile.results / provenance["outputs"][2]["path"]
    fifo.unlink()
    os.mkfifo(fifo)
    monkeypatch.chdir(hostile.root)
    with opened() as paths:
        result = audit("results/exp", workers=1, config="config.yaml")
        main(["audit", "--prov", "results/exp", "--config", "config.yaml"])
    kinds = {(p.kind, Path(p.path).name) for p in result.problems}
    assert ("unsafe-path", store_file.name) in kinds and ("unsafe-path", fifo.name) in kinds
    assert ("unsafe-path", "provenance.json") in kinds
    allowed = (str(hostile.results), str(hostile.root / "steps.py"), str(hostile.root / "config.yaml"))
    outside = [p for p in paths if not p.startswith(allowed)]
    assert outside == []
    assert not (tmp_path / "pwned").exists()


# --- symlinks and the one path gate ----------------------------------------------


@pytest.mark.parametrize("folder", ["store", "blocks"])
def test_gc_refuses_a_linked_store_or_blocks_folder_and_deletes_nothing_outside(pickled, tmp_path, folder):
    outside = tmp_path / "outside"
    shutil.copytree(pickled.results / folder, outside)
    shutil.rmtree(pickled.results / folder)
    (pickled.results / folder).symlink_to(outside)
    pickled.write_config({**pickled.config, "treatments": {}})  # the treatment's files become garbage
    before = sorted(p for p in outside.rglob("*"))
    with pytest.raises(UnsafePathError, match=f"{folder} is a symbolic link"):
        gc([pickled.root / "config.yaml"], pickled.root, delete=True)
    assert sorted(p for p in outside.rglob("*")) == before
    assert main(["gc", "--delete", "-d", str(pickled.root), str(pickled.root / "config.yaml")]) == 1


@pytest.mark.parametrize("folder", ["", "store", "blocks", "runs"])
def test_every_command_and_the_workflow_refuse_a_linked_results_folder(pickled, tmp_path, folder, capsys):
    target = pickled.results / folder if folder else pickled.results
    moved = tmp_path / "moved"
    shutil.move(target, moved)
    target.symlink_to(moved)
    config = str(pickled.root / "config.yaml")
    results = str(pickled.root / "results" / "exp")
    for command in (
        ["audit", results, "--config", config],
        ["status", "-d", str(pickled.root), config],
        ["gc", "-d", str(pickled.root), config],
    ):
        assert main(command) == 1, command
        captured = capsys.readouterr()
        assert "symbolic link" in captured.out + captured.err, command
    run = pickled.snakemake(check=False, env={"REPLIFLOW_TEST_FAIL": ""})
    assert run.returncode != 0 and "symbolic link" in run.stderr


# --- malformed records are bad files, not tracebacks ------------------------------


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p: p.update(seeds=5), "seeds"),
        (lambda p: p["outputs"][0].update(sha256=["a"]), "outputs[0].sha256"),
        (lambda p: p["outputs"][0].update(conditions="baseline"), "outputs[0].conditions"),
        (lambda p: p["outputs"][0].update(position=-1), "outputs[0].position"),
        (lambda p: p.update(results={"metrics.csv": 5}), "results.metrics.csv"),
        (lambda p: p.update(outputs={}), "outputs"),
        (lambda p: p.__setitem__("outputs", [[]] * 3), "outputs[0]"),
    ],
)
def test_mistyped_provenance_fields_are_named(pickled, mutate, expected, capsys):
    provenance = _json(pickled.results / "provenance.json")
    mutate(provenance)
    _write_json(pickled.results / "provenance.json", provenance)
    assert main(["audit", str(pickled.results), "--config", str(pickled.root / "config.yaml")]) == 1
    out = capsys.readouterr().out
    assert expected in out and "Traceback" not in out


def test_deeply_nested_and_huge_records_are_bad_files(pickled, capsys):
    sidecar = next((pickled.results / "store").glob("*/*.meta.json"))
    sidecar.write_text("[" * 100_000 + "]" * 100_000)
    (pickled.results / "provenance.json").write_text(
        '{"schema": "repliflow.provenance/2", "x": ' + "9" * 5000 + "}"
    )
    assert main(["audit", str(pickled.results), "--config", str(pickled.root / "config.yaml")]) == 1
    out = capsys.readouterr().out
    assert "provenance.json" in out and "not valid JSON" in out


def test_status_and_the_runner_treat_a_truncated_sidecar_of_their_own_as_not_stored(pickled):
    entry = next(
        o
        for o in _json(pickled.results / "provenance.json")["outputs"]
        if o["position"] == 2 and o["replicate"] == 0 and o["conditions"] == ["baseline"]
    )
    sidecar = pickled.results / entry["sidecar"]
    sidecar.write_text(sidecar.read_text()[:20])
    result = status(pickled.root / "config.yaml", pickled.root)
    assert result.counts["baseline"]["done"] == 3  # the block's manifest is there; no traceback
    manifest = next(
        p for p in (pickled.results / "blocks").glob("*/000000-000001.json") if entry["key"] in p.read_text()
    )
    manifest.unlink()  # its runner meets the truncated sidecar when the block runs again
    pickled.snakemake(str(manifest.relative_to(pickled.root)))
    assert _json(sidecar)["key"] == entry["key"]
    assert audit(pickled.results, config=pickled.root / "config.yaml").ok


def test_a_config_naming_a_code_file_outside_is_not_read_by_audit(pickled, tmp_path):
    config = yaml.safe_load((pickled.root / "config.yaml").read_text())
    config["code"] = "../outside_steps.py"
    (tmp_path / "outside_steps.py").write_text(PICKLE_STEPS)
    (pickled.root / "other.yaml").write_text(yaml.safe_dump(config))
    problems = audit(pickled.results, config=pickled.root / "other.yaml").problems
    assert [p.kind for p in problems] == ["code-missing"] and "outside" in problems[0].problem
