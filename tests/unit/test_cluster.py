"""Cluster support without a cluster: per-step resources, job groups, the
profiles, and the HTCondor submit description (no HTCondor pool needed)."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import yaml
from conftest import COUNTING_STEPS, REPO, Experiment, counting_config

from repliflow.core.config import validate_config
from repliflow.core.plan import build_plan
from repliflow.errors import ConfigError
from repliflow.snakemake import resources
from repliflow.snakemake.blocks import BlockJobs, rule_function

HAS_SLURM_PLUGIN = importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None
HAS_HTCONDOR_PLUGIN = importlib.util.find_spec("snakemake_executor_plugin_htcondor") is not None
needs_slurm_plugin = pytest.mark.skipif(
    not HAS_SLURM_PLUGIN, reason="snakemake-executor-plugin-slurm missing: pip install -e '.[cluster]'"
)
needs_htcondor_plugin = pytest.mark.skipif(
    not HAS_HTCONDOR_PLUGIN, reason="snakemake-executor-plugin-htcondor missing: pip install -e '.[cluster]'"
)


def declared_config(**overrides) -> dict:
    """Three steps: the datasource asks for memory, scale for threads and time,
    metrics for more memory and time."""
    config = counting_config(replicates=6, batch={"replicates_per_job": 4}, **overrides)
    config["datasource"].update(mem_mb=1500)
    config["pipeline"][0].update(threads=2, runtime=0.5)
    config["pipeline"][1].update(mem_mb=3000, runtime=2)
    return config


def plan_for(tmp_path, config):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "steps.py").write_text(COUNTING_STEPS)
    return build_plan(validate_config(config, file="test.yaml"), workdir=str(tmp_path))


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


def dry_run(experiment: Experiment, *args: str) -> str:
    result = experiment.snakemake("-n", *args)
    return result.stdout + result.stderr


def job_lines(output: str) -> dict[str, dict]:
    """{segment/block: {"threads": .., "resources": ..}} from a dry run's job listing."""
    jobs: dict[str, dict] = {}
    current = None
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("wildcards: segment="):
            current = re.sub(r"wildcards: segment=([^,]+), block=(\S+)", r"\1/\2", line)
            jobs[current] = {"threads": 1}
        elif current and line.startswith("threads:"):
            jobs[current]["threads"] = int(line.split(":")[1])
        elif current and line.startswith("resources:"):
            jobs[current]["resources"] = dict(
                item.split("=", 1) for item in line.removeprefix("resources: ").split(", ")
            )
            current = None
    return jobs


def test_the_rule_passes_declared_resources_to_snakemake(tmp_path):
    experiment = Experiment(tmp_path, declared_config())
    jobs = job_lines(dry_run(experiment))
    assert len(jobs) == 6  # datasource + 2 conditions, 2 blocks each
    for name, job in jobs.items():
        if name.startswith("datasource-"):
            assert job["threads"] == 1 and job["resources"]["mem_mb"] == "1500"
            assert "runtime" not in job["resources"]  # locally there is no default runtime
        else:
            runtime = "11" if name.endswith("000000-000004") else "6"
            assert job["threads"] == 2
            assert (job["resources"]["mem_mb"], job["resources"]["runtime"]) == ("3000", runtime)
        # HTCondor's names appear only when submitting to HTCondor
        assert not {"request_memory", "request_disk", "allowed_job_duration"} & set(job["resources"])


def test_without_declarations_locally_no_resources_are_invented(tmp_path):
    experiment = Experiment(tmp_path, counting_config())
    for job in job_lines(dry_run(experiment)).values():
        assert job["threads"] == 1 and set(job["resources"]) == {"tmpdir"}


@needs_slurm_plugin
def test_slurm_profile_defaults_fill_what_no_step_declares(tmp_path):
    experiment = Experiment(tmp_path, declared_config())
    jobs = job_lines(dry_run(experiment, "--profile", str(REPO / "profiles" / "slurm")))
    datasource = next(job for name, job in jobs.items() if name.startswith("datasource-"))
    assert datasource["resources"]["mem_mb"] == "1500"  # declared
    assert datasource["resources"]["runtime"] == "30"  # the profile's default-resources


@needs_slurm_plugin
def test_cluster_dry_run_groups_block_jobs(tmp_path):
    profile = str(REPO / "profiles" / "slurm")
    experiment = Experiment(tmp_path, counting_config(replicates=6, batch={"replicates_per_job": 2}))
    grouped = dry_run(experiment, "--profile", profile)
    assert grouped.count("Group job replicates") == 1  # 3 blocks, up to 4 per submission
    assert grouped.count("Group job summary") == 1
    experiment.write_config({**experiment.config, "batch": {"replicates_per_job": 2, "group": False}})
    assert "Group job replicates" not in dry_run(experiment, "--profile", profile)
    # locally Snakemake ignores groups
    assert "Group job" not in dry_run(experiment)


def test_the_capped_threads_notice(tmp_path):
    experiment = Experiment(tmp_path, declared_config())
    output = experiment.snakemake("-n", "--cores", "1").stderr
    assert "--cores 1 caps every job's threads" in output and "scale (2)" in output


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
    assert slurm["group-components"] == ["replicates=4", "summary=2"]
    assert slurm["groups"] == ["aggregate=summary", "view=summary"]
    assert {"mem_mb=1000", "runtime=30"} <= set(slurm["default-resources"])
    assert slurm["retries"] == 1 and slurm["jobs"] == 50 and slurm["cores"] == 2

    condor = profile("htcondor")
    assert condor["executor"] == "htcondor"
    assert condor["group-components"] == slurm["group-components"]
    assert condor["groups"] == slurm["groups"]
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


@needs_slurm_plugin
@needs_htcondor_plugin
@pytest.mark.parametrize("name", ["slurm", "htcondor"])
def test_cluster_profile_is_accepted_by_snakemake_and_its_plugin(tmp_path, name):
    experiment = Experiment(tmp_path, counting_config())
    output = dry_run(experiment, "--profile", str(REPO / "profiles" / name))
    assert f"Using profile {REPO / 'profiles' / name}" in output
    assert "run_segment" in output and "This was a dry-run" in output


# --- HTCondor: the real plugin builds the submit description; only the schedd is replaced

RECORDER = textwrap.dedent(
    """
    import json, os, sys
    import htcondor2

    class RecordingSchedd:
        # stands in for the schedd: record the submit description and stop
        def submit(self, description, *args, **kwargs):
            with open(os.environ["REPLIFLOW_SUBMIT_RECORD"], "w") as handle:
                json.dump({key: str(value) for key, value in dict(description).items()}, handle)
            os._exit(0)

    htcondor2.Schedd = RecordingSchedd
    from snakemake.cli import main
    sys.argv[0] = "snakemake"
    main()
    """
)


@needs_htcondor_plugin
def test_htcondor_submit_description_carries_the_steps_resources(tmp_path):
    experiment = Experiment(tmp_path / "exp", declared_config())
    plan = plan_for(tmp_path / "plan", experiment.config)
    metrics = next(s for s in plan.segments.values() if s.start > 0)
    target = plan.manifest_path(plan.blocks(metrics)[0])  # scale + metrics, 4 replicates
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER)
    record = tmp_path / "submit.json"
    # the datasource block is already done, so the only job to submit is the target's
    experiment.snakemake(plan.upstream_manifest(plan.blocks(metrics)[0])[0])
    result = subprocess.run(
        [
            sys.executable, str(recorder),
            "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(experiment.root),
            "--configfile", str(experiment.root / "config.yaml"),
            "--profile", str(REPO / "profiles" / "htcondor"),
            target,
        ],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "REPLIFLOW_SUBMIT_RECORD": str(record)},
    )  # fmt: skip
    assert record.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    submit = json.loads(record.read_text())
    assert submit["request_cpus"] == "2"  # threads: the most any step declares
    assert submit["request_memory"] == "3000"  # mem_mb: the most any step declares, in MB
    assert submit["request_disk"] == str(1000 * 1024)  # the profile's disk_mb, in KB
    # a group of up to 4 blocks, each all segments of its replicate range in series:
    # 4 x (datasource 30 min default + 2 x (1 + 2.5 x 4) min) = 208 minutes
    assert submit["allowed_job_duration"] == str(208 * 60)
    assert submit["getenv"] in {"1", "True", "true"}
    assert "-m snakemake" in submit["arguments"] and target.split("/")[-2] in submit["arguments"]
