"""Cluster support through Snakemake, without a cluster: the resources and job groups
a dry run shows, the profiles accepted by Snakemake and their plugins, and the
HTCondor submit description (no HTCondor pool needed)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from conftest import HAS_HTCONDOR_PLUGIN, HAS_SLURM_PLUGIN, REPO, Experiment, counting_config, declared_config
from conftest import counting_plan as plan_for

needs_slurm_plugin = pytest.mark.skipif(
    not HAS_SLURM_PLUGIN, reason="snakemake-executor-plugin-slurm missing: pip install -e '.[cluster]'"
)
needs_htcondor_plugin = pytest.mark.skipif(
    not HAS_HTCONDOR_PLUGIN, reason="snakemake-executor-plugin-htcondor missing: pip install -e '.[cluster]'"
)


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
    # aggregate and view are local rules: the profile submits no summary group ...
    assert "Group job summary" not in grouped
    # ... unless it groups them, as a site that keeps its login node idle would
    summary_group = ["--groups", "aggregate=summary", "view=summary", "--group-components", "summary=2"]
    assert dry_run(experiment, "--profile", profile, *summary_group).count("Group job summary") == 1
    experiment.write_config({**experiment.config, "batch": {"replicates_per_job": 2, "group": False}})
    assert "Group job replicates" not in dry_run(experiment, "--profile", profile)
    # locally Snakemake ignores groups
    assert "Group job" not in dry_run(experiment)


def test_the_capped_threads_notice(tmp_path):
    experiment = Experiment(tmp_path, declared_config())
    output = experiment.snakemake("-n", "--cores", "1").stderr
    assert "--cores 1 caps every job's threads" in output and "scale (2)" in output


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


def record_htcondor_submission(experiment: Experiment, target: str, tmp_path) -> tuple[dict, str]:
    """The submit description the htcondor profile's first submission for
    ``target`` carries (the real plugin, a recording schedd), and Snakemake's stderr."""
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER)
    record = tmp_path / "submit.json"
    result = subprocess.run(
        [
            sys.executable, str(recorder),
            "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(experiment.root),
            "--configfile", str(experiment.root / "config.yaml"),
            "--profile", str(REPO / "profiles" / "htcondor"),
            "--cores", "2",  # the profile asks 1; steps that declare threads raise it
            target,
        ],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "REPLIFLOW_SUBMIT_RECORD": str(record)},
    )  # fmt: skip
    assert record.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(record.read_text()), result.stderr


@needs_htcondor_plugin
def test_htcondor_submit_description_carries_the_steps_resources(tmp_path):
    experiment = Experiment(tmp_path / "exp", declared_config())
    plan = plan_for(tmp_path / "plan", experiment.config)
    metrics = next(s for s in plan.segments.values() if s.start > 0)
    target = plan.manifest_path(plan.blocks(metrics)[0])  # scale + metrics, 4 replicates
    # the datasource block is already done, so the only job to submit is the target's
    experiment.snakemake(plan.upstream_manifest(plan.blocks(metrics)[0])[0])
    submit, stderr = record_htcondor_submission(experiment, target, tmp_path)
    assert "declare no runtime" not in stderr  # blocks of 4: no notice
    assert submit["request_cpus"] == "2"  # threads: the most any step declares
    assert submit["request_memory"] == "3000"  # mem_mb: the most any step declares, in MB
    assert submit["request_disk"] == str(1000 * 1024)  # the profile's disk_mb, in KB
    # a group of up to 4 blocks, each all segments of its replicate range in series:
    # 4 x (datasource 30 min default + 2 x (1 + 2.5 x 4) min) = 208 minutes
    assert submit["allowed_job_duration"] == str(208 * 60)
    assert submit["getenv"] in {"1", "True", "true"}
    assert "-m snakemake" in submit["arguments"] and target.split("/")[-2] in submit["arguments"]


@needs_htcondor_plugin
def test_large_blocks_without_a_runtime_are_named_when_submitting(tmp_path):
    experiment = Experiment(tmp_path / "exp", counting_config(replicates=9000))  # auto: 2048 a block
    plan = plan_for(tmp_path / "plan", experiment.config)
    datasource = next(s for s in plan.segments.values() if s.start == 0)
    target = plan.manifest_path(plan.blocks(datasource)[0])
    notice = "repliflow: each cluster job runs blocks of up to 2048 replicates"
    assert notice not in dry_run(experiment, target)  # locally there is no time limit
    submit, stderr = record_htcondor_submission(experiment, target, tmp_path)
    assert stderr.count(notice) == 1 and "source, scale, metrics" in stderr
    # what the notice warns of: up to 4 blocks a submission, each 3 segments at the profile's 30 minutes
    assert submit["allowed_job_duration"] == str(4 * 3 * 30 * 60)
