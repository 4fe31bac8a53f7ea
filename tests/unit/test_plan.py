"""The planner, without Snakemake: conditions, seeds, keys, segments, blocks."""

from __future__ import annotations

import math
import re

import pytest
from conftest import COUNTING_STEPS, REPO, counting_config

from repliflow.core import hashing
from repliflow.core.config import validate_config
from repliflow.core.plan import MAX_AUTO_BLOCK, _block_size, build_plan


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "steps.py").write_text(COUNTING_STEPS)
    return tmp_path


def plan_for(workdir, **overrides):
    return build_plan(validate_config(counting_config(**overrides), file="test.yaml"), workdir=str(workdir))


def test_conditions_are_baseline_then_treatments_in_config_order(workdir):
    treatments = {"b": {"scale": {"factor": 2.0}}, "a": {"datasource": {"n": 3}}}
    plan = plan_for(workdir, treatments=treatments)
    assert [c.name for c in plan.conditions] == ["baseline", "b", "a"]
    assert plan.condition("a").steps[0].params == {"n": 3}
    assert plan.condition("b").steps[1].params == {"factor": 2.0}


def test_seeds_depend_on_base_seed_and_index_only(workdir):
    plan = plan_for(workdir)
    assert plan.seeds() == [hashing.replicate_seed(7, r) for r in range(5)]
    assert len(set(plan.seeds())) == 5
    assert plan_for(workdir, seed=8).seeds() != plan.seeds()
    assert plan_for(workdir, replicates=9).seeds()[:5] == plan.seeds()


def test_keys_share_the_prefix_a_treatment_does_not_change(workdir):
    plan = plan_for(workdir)
    for replicate in range(5):
        base, treated = plan.keys("baseline", replicate), plan.keys("double", replicate)
        assert base[0] == treated[0]  # datasource shared
        assert base[1] != treated[1] and base[2] != treated[2]
    assert len({tuple(plan.keys("baseline", r)) for r in range(5)}) == 5


def test_key_is_the_documented_recipe_hash(workdir):
    plan = plan_for(workdir)
    steps = plan.condition("baseline").steps
    seed = hashing.replicate_seed(7, 0)
    expected = hashing.digest(
        {
            "v": 2,
            "function": "source",
            "code": steps[0].code_hash,
            "params": {"n": 5},
            "seed": seed,
            "upstream": None,
        }
    )
    assert plan.keys("baseline", 0)[0] == expected


def test_segments_dedupe_shared_prefixes(workdir):
    plan = plan_for(workdir)
    assert sorted((s.start, s.end, tuple(s.conditions)) for s in plan.segments.values()) == [
        (0, 0, ("baseline", "double")),
        (1, 2, ("baseline",)),
        (1, 2, ("double",)),
    ]


def test_treatment_equal_to_baseline_shares_every_segment(workdir):
    plan = plan_for(workdir, treatments={"same": {"scale": {"factor": 1.0}}})
    assert len(plan.segments) == 1
    assert plan.final_segment("same") is plan.final_segment("baseline")
    assert plan.final_segment("same").owner == "baseline"


def test_blocks_are_aligned_so_more_replicates_keep_full_blocks(workdir):
    small = plan_for(workdir, replicates=10, batch={"replicates_per_job": 4})
    large = plan_for(workdir, replicates=14, batch={"replicates_per_job": 4})
    segment = next(iter(small.segments.values()))
    small_paths = {small.manifest_path(b) for b in small.blocks(segment)}
    large_paths = {large.manifest_path(b) for b in large.blocks(large.segments[segment.id])}
    assert [(b.lo, b.hi) for b in small.blocks(segment)] == [(0, 4), (4, 8), (8, 10)]
    assert small_paths - large_paths == {small.manifest_path(small.blocks(segment)[-1])}


def test_auto_block_size_aims_at_a_few_blocks_per_segment(workdir):
    assert plan_for(workdir, replicates=5).block_size == 1
    assert plan_for(workdir, replicates=50).block_size == 8
    assert plan_for(workdir, replicates=200).block_size == 32
    assert plan_for(workdir, replicates=240).block_size == 32  # more replicates keep the blocks
    # 50,000 replicates: 7 blocks of 8192 per segment, not 49 of 1024 (each job costs a start)
    assert plan_for(workdir, replicates=50_000).block_size == MAX_AUTO_BLOCK == 8192
    # past AUTO_BLOCKS * MAX_AUTO_BLOCK the size stops doubling: more replicates only add blocks
    assert plan_for(workdir, replicates=100_000).block_size == 8192
    assert plan_for(workdir, replicates=1_000_000).block_size == 8192


def runtime_config(seconds: dict[int, float]) -> dict:
    """counting_config's datasource and pipeline with ``runtime`` declared (in
    seconds here, minutes in the config) at the given chain positions."""
    config = counting_config()
    entries = [dict(config["datasource"]), *(dict(e) for e in config["pipeline"])]
    for position, value in seconds.items():
        entries[position]["runtime"] = value / 60
    return {"datasource": entries[0], "pipeline": entries[1:]}


def test_auto_block_size_with_declared_runtimes_balances_job_length(workdir):
    # one 1 s step: 2 replicates a job (2 s of work), 3 x 20 -> 30 jobs, even waves on 2 cores
    assert plan_for(workdir, replicates=20, **runtime_config({1: 1.0})).block_size == 2
    # the heaviest segment counts: the datasource (0.1 s) is shared, scale + metrics are 0.3 s
    assert plan_for(workdir, replicates=10, **runtime_config({0: 0.1, 1: 0.2, 2: 0.1})).block_size == 4
    # longer than AUTO_JOB_SECONDS: one replicate a job
    assert plan_for(workdir, replicates=20, **runtime_config({0: 60.0})).block_size == 1
    # microseconds: as large as MAX_AUTO_BLOCK allows (one block per segment here)
    assert plan_for(workdir, replicates=1000, **runtime_config({1: 1e-5})).block_size == 8192
    # many replicates of 1 s steps: no more than AUTO_MAX_BLOCKS blocks per segment
    many = plan_for(workdir, replicates=1000, **runtime_config({1: 1.0}))
    assert many.block_size == 16 and math.ceil(1000 / many.block_size) <= 64
    # a power of two whatever the replicates, so raising them keeps the blocks
    assert plan_for(workdir, replicates=5000, **runtime_config({1: 1.0})).block_size == 128
    assert plan_for(workdir, replicates=6000, **runtime_config({1: 1.0})).block_size == 128
    # an explicit size is kept as given
    batch = {"replicates_per_job": 3}
    assert plan_for(workdir, replicates=20, batch=batch, **runtime_config({1: 1.0})).block_size == 3


def test_auto_block_size_has_a_floor_for_replicates_in_flight():
    assert _block_size({}, 20, seconds_per_replicate=1.0) == 2
    assert _block_size({}, 20, seconds_per_replicate=1.0, min_block=3) == 4  # rounded up to a power of two
    assert _block_size({}, 5, min_block=5) == 8
    assert _block_size({}, 50, min_block=4) == 8  # the auto size is already larger
    assert _block_size({}, 5, min_block=5000) == MAX_AUTO_BLOCK
    assert _block_size({"replicates_per_job": 3}, 5, min_block=8) == 3  # only auto sizes
    assert _block_size({}, 20, seconds_per_replicate=1.0, min_block=1) == _block_size(
        {}, 20, seconds_per_replicate=1.0
    )


def test_block_spec_is_a_function_of_the_manifest_path(workdir):
    first, second = plan_for(workdir), plan_for(workdir, hypotheses=[])
    for segment in first.segments.values():
        for block in first.blocks(segment):
            other = second.block_for(second.segments[segment.id], block.lo)
            assert first.manifest_path(block) == second.manifest_path(other)
            assert first.block_spec(block) == second.block_spec(other)


def test_all_manifests_is_computed_once_and_handed_out_as_a_copy(workdir):
    plan = plan_for(workdir, replicates=7, batch={"replicates_per_job": 3})
    first = plan.all_manifests()
    assert len(first) == len(plan.segments) * 3 == len(set(first))
    first.clear()
    assert plan.all_manifests() == [
        plan.manifest_path(block) for segment in plan.segments.values() for block in plan.blocks(segment)
    ]


def test_step_used_twice_under_two_names(workdir):
    pipeline = [
        {"function": "scale", "name": "first"},
        {"function": "scale", "name": "second", "params": {"factor": 3.0}},
        {"function": "metrics"},
    ]
    plan = plan_for(workdir, pipeline=pipeline, treatments={"t": {"second": {"factor": 4.0}}})
    assert [s.name for s in plan.condition("t").steps] == ["datasource", "first", "second", "metrics"]
    assert plan.keys("t", 0)[:2] == plan.keys("baseline", 0)[:2]
    assert plan.keys("t", 0)[2] != plan.keys("baseline", 0)[2]


# --- block labels past 999,999 replicates (issue 12, item 8) ------------------------------------


def test_block_labels_stay_six_digits_and_grow_past_a_million(workdir):
    # existing runs keep their manifest names (and so their caches)
    small = plan_for(workdir, replicates=12, batch={"replicates_per_job": 5})
    segment = next(iter(small.segments.values()))
    assert [b.label for b in small.blocks(segment)] == ["000000-000005", "000005-000010", "000010-000012"]

    large = plan_for(workdir, replicates=1_500_000, batch={"replicates_per_job": 500_000})
    segment = next(iter(large.segments.values()))
    labels = [b.label for b in large.blocks(segment)]
    assert labels == ["000000-500000", "500000-1000000", "1000000-1500000"]
    # common.smk's wildcard constraint accepts every label, and its parser finds the block again
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    constraint = re.search(r'^\s*block=r"([^"]+)",$', common, re.M).group(1)
    for block, label in zip(large.blocks(segment), labels, strict=True):
        assert re.fullmatch(constraint, label), (constraint, label)
        assert large.block_for(segment, int(label.split("-", 1)[0])) == block
