"""What a run computed, reused and repaired, from the block manifests alone."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from conftest import COUNTING_STEPS, counting_config

from repliflow.core.config import validate_config
from repliflow.core.plan import build_plan
from repliflow.engine.runner import _run
from repliflow.engine.summary import Work, describe, run_work


@pytest.fixture
def plan(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "steps.py").write_text(COUNTING_STEPS)
    config = counting_config(replicates=4, batch={"replicates_per_job": 2}, hypotheses=[])
    return build_plan(validate_config(config), workdir=str(tmp_path))


def _run_all(plan) -> list[str]:
    paths = []
    for segment in plan.segments.values():
        for block in plan.blocks(segment):
            path = plan.manifest_path(block)
            assert _run(plan.block_spec(block), Path(path), sys.stderr, sys.stderr) == 0
            paths.append(path)
    return paths


def test_the_manifest_records_what_its_job_computed_and_reused(plan):
    start = time.time()
    paths = _run_all(plan)
    works = [json.loads(Path(p).read_text())["work"] for p in paths]
    assert all(w == {"computed": w["computed"], "reused": 0} and w["computed"] > 0 for w in works)
    # datasource shared: 4 replicates x 3 steps per condition, all computed
    assert run_work(plan, start, set()) == {"baseline": Work(12, 0, 0), "double": Work(12, 0, 0)}

    later = time.time() + 1
    assert run_work(plan, later, set()) == {"baseline": Work(0, 12, 0), "double": Work(0, 12, 0)}


def test_repaired_blocks_count_what_they_computed_as_repaired(plan):
    paths = _run_all(plan)
    start = time.time() + 1
    target = next(p for p in paths if "metrics-" in p)
    os.utime(target, (start + 1, start + 1))  # written by this run
    counts = json.loads(Path(target).read_text())
    counts["work"] = {"computed": 1, "reused": 3}
    Path(target).write_text(json.dumps(counts))
    os.utime(target, (start + 1, start + 1))
    totals = run_work(plan, start, {target})
    assert sorted((w.repaired, w.reused) for w in totals.values()) == [(0, 12), (1, 11)]


@pytest.mark.parametrize(
    "work", [None, "lots", {"computed": -1, "reused": 2}, {"computed": True, "reused": 0}]
)
def test_a_manifest_without_valid_counts_counts_as_computed(plan, work):
    paths = _run_all(plan)
    start = time.time() + 1
    for path in paths:
        manifest = json.loads(Path(path).read_text())
        if work is None:
            del manifest["work"]
        else:
            manifest["work"] = work
        Path(path).write_text(json.dumps(manifest))
        os.utime(path, (start + 1, start + 1))
    assert run_work(plan, start, set()) == {"baseline": Work(12, 0, 0), "double": Work(12, 0, 0)}


def test_describe_lines():
    text = describe({"baseline": Work(1200, 3, 0), "a-long-name": Work(0, 1203, 2)})
    assert text.splitlines()[1] == "  baseline     computed    1,200  reused        3  repaired      0"
    assert describe({"baseline": Work(0, 5, 0)}).endswith(
        "all 5 replicate-steps of 1 condition were reused from the store"
    )


def test_manifests_already_parsed_are_not_read_again(plan):
    start = time.time()
    paths = _run_all(plan)
    parsed = {path: json.loads(Path(path).read_text()) for path in paths}
    for path in paths:
        Path(path).write_text("not json any more")  # only the parsed copies can give the counts
        os.utime(path, (start + 1, start + 1))
    first = parsed[paths[0]]
    size = sum(len(r["steps"]) for r in first["replicates"])
    first["work"] = {"computed": 0, "reused": size}  # counts only the parsed copy holds
    totals = run_work(plan, start, set(), parsed)
    assert sum(w.reused for w in totals.values()) >= size and sum(w.computed for w in totals.values()) < 24
    parsed[paths[0]] = {"work": "lots"}  # a hostile record: its whole block counted as computed
    assert run_work(plan, start, set(), parsed) == {"baseline": Work(12, 0, 0), "double": Work(12, 0, 0)}
