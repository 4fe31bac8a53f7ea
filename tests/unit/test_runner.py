"""One block job, in-process: sidecars, skipping, async steps, step failures."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import COUNTING_STEPS, counting_config

from repliflow.core import records
from repliflow.core.config import validate_config
from repliflow.core.plan import build_plan
from repliflow.engine.runner import BlockRunner
from repliflow.errors import StepError
from repliflow.store import storage

EXTRA_STEPS = textwrap.dedent(
    """
    import asyncio
    import numpy as np


    async def async_scale(data, ctx, *, factor=1.0):
        await asyncio.sleep(0)
        return [x * factor for x in data]


    def to_array(data, ctx):
        return np.asarray(data)


    def unstorable(data, ctx):
        return (x for x in data)


    def not_metrics(data, ctx):
        return [1, 2]


    def array_metrics(data, ctx):
        return {"mean": float(data.mean()), "n": np.int64(len(data))}
    """
)


def _plan(tmp_path, pipeline, **overrides):
    (tmp_path / "steps.py").write_text(COUNTING_STEPS + EXTRA_STEPS)
    config = validate_config(counting_config(pipeline=pipeline, treatments={}, hypotheses=[], **overrides))
    return build_plan(config, workdir=str(tmp_path))


def _run_all(plan, tmp_path):
    entries = []
    for segment in plan.segments.values():
        for block in plan.blocks(segment):
            found, failures = BlockRunner(plan.block_spec(block), str(tmp_path)).run()
            if failures:
                raise failures[0]
            entries.extend(found)
    for entry in entries:  # a recomputed sidecar's size varies with its timings
        for step in entry["steps"]:
            step.pop("sidecar_bytes", None)
    return entries


def test_sidecar_records_the_recipe_and_its_input(tmp_path):
    plan = _plan(tmp_path, [{"function": "scale", "params": {"factor": 2.0}}, {"function": "metrics"}])
    _run_all(plan, tmp_path)
    keys = plan.keys("baseline", 3)
    sidecar = storage.read_sidecar(tmp_path / plan.store_dir, keys[1])
    upstream = storage.read_sidecar(tmp_path / plan.store_dir, keys[0])
    assert sidecar["schema"] == records.SIDECAR_SCHEMA
    assert (sidecar["step"], sidecar["condition"], sidecar["replicate"]) == ("scale", "baseline", 3)
    assert sidecar["params"] == {"factor": 2.0} and sidecar["seed"] == plan.seeds()[3]
    assert sidecar["upstream"] == {"key": keys[0], "sha256": upstream["output"]["sha256"]}
    for field in ["code_hash", "started", "finished", "python", "packages", "host"]:
        assert sidecar[field]
    output = tmp_path / plan.store_dir / keys[1][:2] / sidecar["output"]["file"]
    assert storage.sha256_hex(output.read_bytes()) == sidecar["output"]["sha256"]


def test_a_rerun_skips_every_stored_replicate_step(tmp_path):
    plan = _plan(tmp_path, [{"function": "scale"}, {"function": "metrics"}])
    first = _run_all(plan, tmp_path)
    calls = (tmp_path / "calls.log").read_text()
    # delete one intermediate output: only that replicate's chain from there is recomputed
    key = plan.keys("baseline", 2)[1]
    Path(storage.sidecar_path(tmp_path / plan.store_dir, key)).unlink()
    assert _run_all(plan, tmp_path) == first
    assert (tmp_path / "calls.log").read_text() == calls + "scale,baseline,2\nmetrics,baseline,2\n"


def test_async_step_is_awaited_and_arrays_are_stored_as_npy(tmp_path):
    pipeline = [
        {"function": "async_scale", "params": {"factor": 3.0}},
        {"function": "to_array"},
        {"function": "array_metrics"},
    ]
    plan = _plan(tmp_path, pipeline)
    _run_all(plan, tmp_path)
    keys = plan.keys("baseline", 0)
    assert storage.read_sidecar(tmp_path / plan.store_dir, keys[2])["output"]["format"] == "npy"
    metrics, _ = storage.load(tmp_path / plan.store_dir, keys[3])
    assert metrics["n"] == 5


@pytest.mark.parametrize(
    ("function", "message"),
    [("unstorable", "cannot be stored"), ("not_metrics", "mapping of metric name to number")],
)
def test_bad_outputs_name_step_condition_and_replicate(tmp_path, function, message):
    tail = [{"function": "metrics"}] if function == "unstorable" else []
    plan = _plan(tmp_path, [{"function": "scale"}, {"function": function}, *tail])
    with pytest.raises(StepError) as error:
        _run_all(plan, tmp_path)
    text = str(error.value)
    assert message in text and f"step '{function}'" in text
    assert "condition 'baseline'" in text and "replicate 0" in text


def test_edited_code_after_planning_is_refused(tmp_path):
    plan = _plan(tmp_path, [{"function": "scale"}, {"function": "metrics"}])
    path = tmp_path / "steps.py"
    path.write_text(path.read_text().replace("return [x * factor", "return [x * factor * 1"))
    segment = next(iter(plan.segments.values()))
    with pytest.raises(Exception, match="changed after Snakemake planned this job"):
        BlockRunner(plan.block_spec(plan.blocks(segment)[0]), str(tmp_path))


def test_manifest_lists_every_replicate_step(tmp_path):
    plan = _plan(tmp_path, [{"function": "scale"}, {"function": "metrics"}], batch={"replicates_per_job": 2})
    entries = _run_all(plan, tmp_path)
    assert sorted({e["replicate"] for e in entries}) == list(range(5))
    assert all(json.dumps(e) for e in entries)


def test_the_runner_reads_a_segments_spec_file_and_its_block(tmp_path):
    from repliflow.engine.runner import _read_spec

    plan = _plan(tmp_path, [{"function": "scale"}, {"function": "metrics"}])
    segment = next(iter(plan.segments.values()))
    block = plan.blocks(segment)[0]
    template = dict(plan.block_spec(block), lo=0, hi=0)
    (tmp_path / "spec.json").write_text(json.dumps(template))
    assert _read_spec(None, str(tmp_path / "spec.json"), f"{block.lo:06d}-{block.hi:06d}") == plan.block_spec(
        block
    )
    assert _read_spec(json.dumps(template), None, None) == template
    with pytest.raises(ValueError):
        _read_spec(None, str(tmp_path / "spec.json"), None)
