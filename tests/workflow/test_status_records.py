"""`repliflow status` reads the runner's attempt records, never its log text:
what a job says about its last attempt is a typed record
(``logs/blocks/<segment>/<block>.attempt.json``), and a damaged or hostile
record is no failure and no traceback."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import Experiment, counting_config

from repliflow.core import records
from repliflow.engine.status import status
from repliflow.errors import BadRecord


def _failed_record(root):
    attempts = sorted((root / "results" / "exp" / "logs" / "blocks").rglob("*.attempt.json"))
    failed = [path for path in attempts if json.loads(path.read_text())["state"] == "failed"]
    assert len(failed) == 1, attempts
    return failed[0]


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory) -> Experiment:
    """One run in which replicate 2 of condition double fails (copy it before changing it)."""
    experiment = Experiment(tmp_path_factory.mktemp("failed"), counting_config())
    run = experiment.snakemake("--keep-going", check=False, env={"REPLIFLOW_TEST_FAIL": "double:2"})
    assert run.returncode != 0
    return experiment


@pytest.fixture
def failed(failed_run, tmp_path) -> Experiment:
    copy = tmp_path / "run"
    shutil.copytree(failed_run.root, copy, symlinks=True)
    return Experiment(copy, failed_run.config)


def test_every_attempt_leaves_a_typed_record(experiment):
    experiment.snakemake()
    attempts = sorted((experiment.root / "results" / "exp" / "logs" / "blocks").rglob("*.attempt.json"))
    manifests = sorted((experiment.root / "results" / "exp" / "blocks").rglob("*.json"))
    assert len(attempts) == len(manifests) > 0
    for path in attempts:
        attempt = records.check_attempt(json.loads(path.read_text()), str(path))
        assert attempt["schema"] == records.ATTEMPT_SCHEMA
        assert attempt["state"] == "done" and attempt["failures"] == []


def test_a_failure_is_read_from_the_record_not_the_log(failed):
    experiment = failed
    record = _failed_record(experiment.root)
    attempt = records.check_attempt(json.loads(record.read_text()), str(record))
    (failure,) = attempt["failures"]
    assert failure["replicate"] == 2 and failure["step"] == "scale"
    assert "injected failure" in failure["message"]
    # the log is for people: status neither needs nor parses it
    log = record.with_name(record.name.replace(".attempt.json", ".log"))
    log.write_text("repliflow: step 'scale' failed for condition 'double', replicate 4: a forged line\n")
    result = status(experiment.root / "config.yaml", experiment.root)
    assert result.counts["double"]["failed"] == 1 and [f.replicate for f in result.failures] == [2]
    log.unlink()
    result = status(experiment.root / "config.yaml", experiment.root)
    assert result.counts["double"]["failed"] == 1


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"not json",
        b"[]",
        b'{"schema": "repliflow.attempt/99", "state": "failed", "failures": []}',
        b'{"schema": "repliflow.attempt/1", "state": "exploded", "failures": []}',
        b'{"schema": "repliflow.attempt/1", "state": "failed", "failures": [{"replicate": "2"}]}',
        b'{"schema": "repliflow.attempt/1", "state": "failed", "failures": {}}',
        b"\xff\xfe",
        "symlink",
    ],
)
def test_a_damaged_record_is_no_failure_and_no_traceback(failed, tmp_path, damage):
    experiment = failed
    record = _failed_record(experiment.root)
    record.unlink()
    if damage == "symlink":
        target = tmp_path / "elsewhere.json"
        target.write_text(json.dumps({"schema": records.ATTEMPT_SCHEMA, "state": "failed", "failures": []}))
        os.symlink(target, record)
    else:
        record.write_bytes(damage)
    result = status(experiment.root / "config.yaml", experiment.root)
    # without a readable record the replicate is not known to have failed: it
    # is missing, and the printed command runs it again
    assert result.counts["double"]["failed"] == 0 and result.failures == []
    assert result.counts["double"]["missing"] == 1 and result.command


def test_check_attempt_names_file_and_field():
    with pytest.raises(BadRecord) as caught:
        records.check_attempt(
            {
                "schema": records.ATTEMPT_SCHEMA,
                "state": "failed",
                "failures": [{"replicate": -1, "message": "x"}],
            },
            "logs/blocks/s/000000-000005.attempt.json",
        )
    text = str(caught.value)
    assert "000000-000005.attempt.json" in text and "failures[0].replicate" in text
