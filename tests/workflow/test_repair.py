"""Self-repair (issue 12): a plain run repairs what it finds broken in the
store or the manifests; the audit names what only hashing finds and prints
the command that repairs it; nothing damaged is deleted (quarantine)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import Experiment, counting_config, snakemake_command

from repliflow.engine.status import status
from repliflow.store.audit import audit
from repliflow.store.gc import collect


@pytest.fixture
def done(tmp_path) -> Experiment:
    experiment = Experiment(tmp_path / "work", counting_config(replicates=3))
    experiment.snakemake()
    experiment.reset_calls()
    return experiment


def _config(experiment) -> Path:
    return experiment.root / "config.yaml"


def _entry(experiment, step="scale", replicate=1, condition="double") -> dict:
    provenance = json.loads((experiment.results / "provenance.json").read_text())
    return next(
        o
        for o in provenance["outputs"]
        if o["step"] == step and o["replicate"] == replicate and o["conditions"][0] == condition
    )


def _flip_keeping_mtime(path: Path) -> None:
    """A flipped byte that neither the size nor the mtime shows: only hashing finds it."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[3] = ord("9") if data[3] != ord("9") else ord("8")
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _metrics(experiment) -> bytes:
    return (experiment.results / "metrics.csv").read_bytes()


def _assert_repaired(experiment, metrics_before: bytes) -> None:
    assert _metrics(experiment) == metrics_before
    assert audit(experiment.results, config=_config(experiment)).ok
    assert status(_config(experiment), experiment.root).complete
    again = experiment.snakemake()
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.parametrize(
    "damage", ["delete", "truncate", "flip", "sidecar-delete", "sidecar-truncate", "link"]
)
def test_a_plain_run_repairs_a_damaged_store_file(done, damage, tmp_path):
    before = _metrics(done)
    entry = _entry(done)
    output, sidecar = done.results / entry["path"], done.results / entry["sidecar"]
    if damage == "delete":
        output.unlink()
    elif damage == "truncate":
        output.write_bytes(output.read_bytes()[:5])
    elif damage == "flip":  # same size, but written after its job: the job checks its sha256
        data = bytearray(output.read_bytes())
        data[3] ^= 0x01
        output.write_bytes(bytes(data))
    elif damage == "sidecar-delete":
        sidecar.unlink()
    elif damage == "sidecar-truncate":
        sidecar.write_bytes(sidecar.read_bytes()[:-10])
    else:
        (tmp_path / "elsewhere.json").write_bytes(output.read_bytes())
        output.unlink()
        output.symlink_to(tmp_path / "elsewhere.json")

    board = status(_config(done), done.root)
    assert not board.complete and board.repairs and "snakemake" in board.command
    dry = done.snakemake("-n")
    assert "would re-run those jobs" in dry.stderr and entry["key"] in dry.stderr
    assert not (done.results / "repairs.tsv").exists()  # a dry run changes nothing

    run = done.snakemake()
    assert "re-runs those jobs" in run.stderr
    assert set(done.calls()) <= {"scale,double,1", "metrics,double,1"}  # only the damaged chain
    assert output.is_file() and not output.is_symlink()
    assert entry["key"] in (done.results / "repairs.tsv").read_text()
    _assert_repaired(done, before)


@pytest.mark.parametrize("damage", ["delete", "truncate", "garbage"])
def test_a_plain_run_rebuilds_a_missing_or_broken_manifest(done, damage):
    before = _metrics(done)
    manifest = next(p for p in (done.results / "blocks").glob("metrics-*/000002-000003.json"))
    if damage == "delete":
        manifest.unlink()
    elif damage == "truncate":
        manifest.write_text(manifest.read_text()[:30])
    else:
        manifest.write_text('{"schema": "repliflow.manifest/1", "replicates": 5}')
    run = done.snakemake()
    assert "Traceback" not in run.stderr
    assert json.loads(manifest.read_text())["hi"] == 3
    assert done.calls() == []  # every output was still stored: nothing recomputed
    _assert_repaired(done, before)


def test_the_audit_names_same_size_corruption_and_its_command_repairs_it(done, capsys):
    before = _metrics(done)
    entry = _entry(done, step="datasource", replicate=2, condition="baseline")
    output = done.results / entry["path"]
    _flip_keeping_mtime(output)
    quiet = done.snakemake()
    assert "Nothing to be done" in quiet.stdout + quiet.stderr  # same size: only hashing sees it

    result = audit(done.results, config=_config(done))
    assert [p.kind for p in result.problems] == ["tampered"]
    command = result.repair
    assert command[:3] == ["snakemake", "--cores", "all"] and "--forcerun" in command
    forced = command[command.index("--forcerun") + 1 :]
    assert (
        len(forced) == 1 and "/blocks/datasource-" in forced[0] and forced[0].endswith("000002-000003.json")
    )

    subprocess.run(
        [*snakemake_command(done.root, "--forcerun", *forced)], check=True, capture_output=True, timeout=300
    )
    quarantine = done.results / "quarantine"
    assert [p.name.split(".")[0] for p in quarantine.glob(f"{entry['key']}.json.*")] == [entry["key"]]
    assert "sha256" in (quarantine / "log.tsv").read_text()
    assert "datasource,baseline,2" in done.calls()
    _assert_repaired(done, before)


def test_the_cli_prints_the_repair_command(done, capsys):
    from repliflow.cli import main

    (done.results / _entry(done)["path"]).unlink()
    assert main(["audit", str(done.results), "--config", str(_config(done))]) == 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("repair with: "))
    assert "--forcerun" in shlex.split(line.removeprefix("repair with: "))


def test_a_damaged_input_is_quarantined_and_the_next_run_converges(done):
    """A downstream job that reads a same-size-corrupted input stops for that
    replicate, quarantines the input, and the next plain run recomputes it."""
    before = _metrics(done)
    entry = _entry(done, step="datasource", replicate=0, condition="baseline")
    output = done.results / entry["path"]
    _flip_keeping_mtime(output)
    config = dict(done.config)
    config["treatments"] = {**config["treatments"], "triple": {"scale": {"factor": 3.0}}}
    done.write_config(config)
    first = done.snakemake(check=False)
    assert first.returncode != 0
    text = " ".join((first.stdout + first.stderr).split())
    assert "is damaged" in text and "moved" in text and "run the same command again" in text
    assert not output.exists()
    done.snakemake()
    assert audit(done.results, config=_config(done)).ok
    lines = _metrics(done).decode().splitlines()
    assert all(line in lines for line in before.decode().splitlines())  # the old numbers, unchanged


def test_an_edited_manifest_is_blamed_not_the_intact_file(done):
    before = _metrics(done)
    manifest = next((done.results / "blocks").glob("metrics-*/000001-000002.json"))
    document = json.loads(manifest.read_text())
    document["replicates"][0]["steps"][-1]["sha256"] = "0" * 64
    manifest.write_text(json.dumps(document))
    run = done.snakemake(check=False)
    text = " ".join((run.stdout + run.stderr).split())
    assert run.returncode != 0 and "the manifest was edited, not the file" in text
    # Snakemake removed the tables before the job; the last good ones stay, and the audit reads them
    assert not (done.results / "metrics.csv").exists()
    assert (done.results / "last-good" / "metrics.csv").read_bytes() == before
    result = audit(done.results, config=_config(done))
    assert result.ok and "last good record" in result.notes[0]
    assert not manifest.exists()  # aggregate removed the edited manifest: the next run rebuilds it
    done.snakemake()
    assert audit(done.results, config=_config(done)).ok


def test_gc_keeps_replicates_made_beyond_the_config(done):
    done.snakemake("--config", "replicates=5")
    extra = {
        o["key"]
        for o in json.loads((done.results / "provenance.json").read_text())["outputs"]
        if o["replicate"] >= 3
    }
    assert extra
    result = collect([_config(done)], done.root)
    assert not [g for g in result.garbage if g.key in extra]
    assert not [g for g in result.garbage if g.kind == "manifest"]
    done.reset_calls()
    done.snakemake("--config", "replicates=5")
    assert done.calls() == []  # still a complete cache
