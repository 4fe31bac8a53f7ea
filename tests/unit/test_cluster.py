"""Cluster support without a cluster or Snakemake: per-step resources, the block
jobs' resource functions, and the profiles. Dry runs, job groups and the HTCondor
submit description go through Snakemake in tests/workflow/test_cluster_e2e.py."""

from __future__ import annotations

import inspect
import re
from types import SimpleNamespace

import pytest
import yaml
from conftest import HAS_HTCONDOR_PLUGIN, REPO, counting_config, declared_config
from conftest import counting_plan as plan_for

from repliflow.core.config import validate_config
from repliflow.errors import ConfigError
from repliflow.snakemake import resources
from repliflow.snakemake.blocks import BlockJobs, rule_function


def by_segment(plan):
    """{first step name of the segment: [resources of each block]}."""
    return {
        segment.steps[segment.start].name + ("" if segment.start == 0 else f"/{segment.owner}"): [
            resources.block_resources(plan, block) for block in plan.blocks(segment)
        ]
        for segment in plan.segments.values()
    }


def test_block_resources_come_from_the_segments_own_steps(tmp_path):
    plan = plan_for(tmp_path, declared_config())
    got = by_segment(plan)
    # the datasource segment: its own declaration only; runtime left to the profile
    assert got["datasource"] == [{"threads": 1, "mem_mb": 1500, "runtime": None}] * 2
    # scale + metrics: max threads, max memory, runtime = (0.5 + 2) x replicates + 1 minute
    for condition in ["baseline", "double"]:
        assert got[f"scale/{condition}"] == [
            {"threads": 2, "mem_mb": 3000, "runtime": 11},  # 4 replicates: ceil(1 + 2.5 * 4)
            {"threads": 2, "mem_mb": 3000, "runtime": 6},  # 2 replicates: ceil(1 + 2.5 * 2)
        ]


def test_undeclared_resources_are_left_to_the_profile(tmp_path):
    plan = plan_for(tmp_path, counting_config())
    for blocks in by_segment(plan).values():
        assert all(block == {"threads": 1, "mem_mb": None, "runtime": None} for block in blocks)


def test_resources_never_change_a_recipe_key(tmp_path):
    plain = plan_for(tmp_path, counting_config(replicates=6, batch={"replicates_per_job": 4}))
    declared = plan_for(tmp_path, declared_config())
    assert plain.keys("double", 5) == declared.keys("double", 5)
    assert [plain.block_spec(b) for s in plain.segments.values() for b in plain.blocks(s)] == [
        declared.block_spec(b) for s in declared.segments.values() for b in declared.blocks(s)
    ]


def test_component_minutes_sum_every_segment_of_a_replicate_range(tmp_path):
    plan = plan_for(tmp_path, declared_config())
    first = plan.blocks(next(iter(plan.segments.values())))[0]
    # datasource (undeclared: the fallback, 30) + two condition segments of 11 minutes
    assert resources.component_minutes(plan, first, 30) == 30 + 11 + 11


def test_threads_above_cores_are_named(tmp_path):
    plan = plan_for(tmp_path, declared_config())
    assert resources.capped_threads(plan, 1) == ["scale (2)"]
    assert resources.capped_threads(plan, 2) == []
    assert resources.capped_threads(plan, None) == []


def block_jobs(plan) -> BlockJobs:
    """BlockJobs with a stand-in for Snakemake's workflow (local, no profile)."""
    workflow = SimpleNamespace(
        resource_settings=SimpleNamespace(cores=2, default_resources=None),
        executor_plugin=None,
        group_settings=SimpleNamespace(group_components={}),
    )

    def block_of(wildcards):
        lo = int(wildcards.block.split("-")[0])
        return plan.block_for(plan.segment_by_label(wildcards.segment), lo)

    return BlockJobs(plan, workflow, block_of)


def wildcards_of(block):
    return SimpleNamespace(segment=block.segment.label, block=block.label)


def test_threads_are_a_number_unless_block_jobs_differ(tmp_path):
    assert block_jobs(plan_for(tmp_path / "plain", counting_config())).threads == 1
    plan = plan_for(tmp_path / "declared", declared_config())
    threads = block_jobs(plan).threads  # datasource jobs 1, scale + metrics jobs 2
    assert callable(threads) and list(inspect.signature(threads).parameters) == ["wildcards"]
    for segment in plan.segments.values():
        for block in plan.blocks(segment):
            assert threads(wildcards_of(block)) == resources.block_resources(plan, block)["threads"]


def test_resource_functions_match_block_resources(tmp_path):
    plan = plan_for(tmp_path, declared_config())
    functions = block_jobs(plan).resources()
    htcondor = {"request_memory", "request_disk", "allowed_job_duration"} if HAS_HTCONDOR_PLUGIN else set()
    assert set(functions) == {"mem_mb", "runtime"} | htcondor
    for segment in plan.segments.values():
        for block in plan.blocks(segment):
            expected = resources.block_resources(plan, block)
            assert functions["mem_mb"](wildcards_of(block)) == expected["mem_mb"]
            assert functions["runtime"](wildcards_of(block)) == expected["runtime"]
            if HAS_HTCONDOR_PLUGIN:
                assert functions["request_memory"](wildcards_of(block)) is None  # not on HTCondor


def test_large_blocks_without_a_declared_runtime_are_named_on_a_cluster(tmp_path):
    large = plan_for(tmp_path / "large", counting_config(replicates=9000))  # auto: 2048 a block
    assert large.block_size == 2048
    jobs = block_jobs(large)
    for local in [None, SimpleNamespace(name="local"), SimpleNamespace(name="dryrun")]:
        jobs.workflow.executor_plugin = local
        assert jobs.runtime_notice() is None  # no time limit per job here
    jobs.workflow.executor_plugin = SimpleNamespace(name="slurm")
    notice = jobs.runtime_notice()
    assert notice is not None and "blocks of up to 2048 replicates" in notice
    assert "source, scale, metrics" in notice and "Declare runtime" in notice
    # small blocks, or every step declaring its runtime: nothing to say
    small = block_jobs(plan_for(tmp_path / "small", counting_config(replicates=100)))
    small.workflow.executor_plugin = SimpleNamespace(name="slurm")
    assert small.runtime_notice() is None
    config = declared_config()
    for entry in [config["datasource"], *config["pipeline"]]:
        entry["runtime"] = 0.001
    config["replicates"], config["batch"] = 5000, {"replicates_per_job": 2048}
    declared = block_jobs(plan_for(tmp_path / "declared", config))
    declared.workflow.executor_plugin = SimpleNamespace(name="slurm")
    assert declared.runtime_notice() is None
    # a size larger than the experiment: its one block holds only the replicates there are
    config = counting_config(replicates=1000)
    config["datasource"] = {**config["datasource"], "runtime": 1e-6}  # auto: 8192, one block of 1000
    few = block_jobs(plan_for(tmp_path / "few", config))
    few.workflow.executor_plugin = SimpleNamespace(name="slurm")
    assert few.plan.block_size == 8192 and few.runtime_notice() is None
    config["replicates"] = 3000
    more = block_jobs(plan_for(tmp_path / "more", config))
    more.workflow.executor_plugin = SimpleNamespace(name="slurm")
    assert "blocks of up to 3000 replicates" in (more.runtime_notice() or "")


def test_priority_is_a_block_s_replicate_steps_so_a_short_last_block_runs_last(tmp_path):
    config = counting_config()  # a shared datasource segment, then scale + metrics per condition
    config["replicates"], config["batch"] = 5, {"replicates_per_job": 2}
    plan = plan_for(tmp_path / "ragged", config)
    priority = block_jobs(plan).priority
    assert callable(priority) and list(inspect.signature(priority).parameters) == ["wildcards"]
    for segment in plan.segments.values():
        steps = segment.end - segment.start + 1
        found = [priority(wildcards_of(block)) for block in plan.blocks(segment)]
        assert found == [2 * steps, 2 * steps, 1 * steps]


def test_priority_is_a_constant_when_every_block_has_the_same_work(tmp_path):
    """Snakemake then calls nothing per job (an experiment of 200 jobs or 30,000)."""
    config = counting_config()
    config["treatments"] = {}
    config["replicates"], config["batch"] = 6, {"replicates_per_job": 2}
    plan = plan_for(tmp_path / "even", config)
    widths = {segment.end - segment.start + 1 for segment in plan.segments.values()}
    assert len(widths) == 1  # one segment: every block does 2 replicates x 3 steps
    assert block_jobs(plan).priority == 0


def test_rule_function_stores_the_signature_snakemake_reads_per_call():
    class Rule:
        def resource(self, wildcards, **kwargs):
            return ("resource", wildcards, kwargs)

    def params(wildcards, input):
        return (wildcards, input)

    for original in (Rule().resource, params):
        function = rule_function(original)
        assert inspect.signature(function) == inspect.signature(original)
        assert function.__signature__ is inspect.signature(function)  # no inspection per call
    assert rule_function(params) is params
    assert rule_function(Rule().resource)("w", input=1) == ("resource", "w", {"input": 1})


@pytest.mark.parametrize(
    ("entry", "value", "message"),
    [
        ("threads", 0, "threads"),
        ("mem_mb", "lots", "mem_mb"),
        ("runtime", 0, "runtime"),
        ("walltime", 5, "walltime"),
    ],
)
def test_bad_resource_declarations_name_their_key(tmp_path, entry, value, message):
    config = counting_config()
    config["pipeline"][0][entry] = value
    with pytest.raises(ConfigError) as error:
        validate_config(config, file="test.yaml")
    assert "pipeline.0" in str(error.value) and message in str(error.value)


# --- profiles ------------------------------------------------------------------

PROFILES = ["local", "slurm", "htcondor"]


def profile(name: str) -> dict:
    return yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_key_has_a_comment_saying_why(name):
    lines = (REPO / "profiles" / name / "config.yaml").read_text().splitlines()
    for index, line in enumerate(lines):
        above = lines[index - 1] if index else ""
        if re.match(r"^[A-Za-z]", line):  # a key: the line above says why
            assert above.startswith("#"), f"{name}: no comment above {line!r}"
        elif line.startswith("  - "):  # a list item: its own comment, or its key's
            assert above.lstrip().startswith("#") or above.endswith(":") or above.startswith("  - "), line


@pytest.mark.parametrize("name", PROFILES)
def test_profiles_carry_the_failure_and_restart_settings(name):
    config = profile(name)
    assert config["rerun-incomplete"] is True and config["keep-going"] is True
    assert {"retries", "latency-wait"} <= set(config)
    assert "jobs" in config or config.get("cores") == "all"


def test_cluster_profiles_golden_options():
    """The options that make the cluster profiles safe; a change here is deliberate."""
    slurm = profile("slurm")
    assert slurm["executor"] == "slurm"
    assert slurm["slurm-status-command"] == "squeue"  # no accounting needed, never hangs on sacct
    assert slurm["slurm-no-account"] is True and slurm["slurm-requeue"] is True
    assert slurm["group-components"] == ["replicates=4"]
    # aggregate and view are the workflow's local rules: a profile that groups them submits them
    assert "groups" not in slurm
    assert {"mem_mb=1000", "runtime=30"} <= set(slurm["default-resources"])
    assert slurm["retries"] == 1 and slurm["jobs"] == 50
    assert slurm["cores"] == 1  # one CPU per submission: steps that declare threads raise it

    condor = profile("htcondor")
    assert condor["executor"] == "htcondor"
    assert condor["group-components"] == slurm["group-components"]
    assert "groups" not in condor
    # HTCondor's own names for Snakemake's standard resources, for the non-block rules
    assert {
        "mem_mb=1000",
        "request_memory=1000",
        "disk_mb=1000",
        "request_disk=1024000",
        "runtime=30",
        "allowed_job_duration=1800",
        "getenv=True",
    } <= set(condor["default-resources"])

    local = profile("local")
    assert "executor" not in local and local["retries"] == 0
