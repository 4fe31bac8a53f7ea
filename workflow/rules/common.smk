# Config loading, schema validation and planning; no rules here.
import sys
from pathlib import Path

# A fresh clone runs without `pip install -e .`: import repliflow from src/.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from repliflow.cluster import BlockJobs
from repliflow.config import validate_config
from repliflow.errors import RepliflowError
from repliflow.plan import build_plan
from repliflow.workflow_support import (
    describe_config_files,
    fail,
    prepare_job_environment,
    record_lock_owner,
    release_scheduler_timers,
    release_stale_lock,
)

prepare_job_environment(Path(workflow.basedir) / "src")
if workflow.is_main_process and (notice := release_stale_lock()):
    print(notice, file=sys.stderr)

CONFIG_FILES = describe_config_files(workflow.configfiles)
try:
    CONFIG = validate_config(
        config,
        file=CONFIG_FILES,
        schema=Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml",
    )
    PLAN = build_plan(CONFIG)
except RepliflowError as exc:
    if getattr(exc, "file", "") is None:
        exc.file = CONFIG_FILES
    fail(exc)

RESULTS = PLAN.results_dir
ON_ERROR_HINT = (
    f"repliflow: outputs already made are kept under {RESULTS}/store; fix the cause and "
    "run the same command again (add --rerun-incomplete after a crash) to redo only what is missing."
)


wildcard_constraints:
    segment=r"[A-Za-z0-9_.-]+-[0-9a-f]{16}",
    block=r"\d{6}-\d{6}",


def _block(wildcards):
    segment = PLAN.segment_by_label(wildcards.segment)
    lo, hi = (int(part) for part in wildcards.block.split("-"))
    return PLAN.block_for(segment, lo)


# run_segment's threads, resources (from its steps' declarations, else the
# profile's default-resources) and cluster job group; see repliflow.cluster.
BLOCK_JOBS = BlockJobs(PLAN, workflow, _block)
if workflow.is_main_process and (notice := BLOCK_JOBS.capped_notice()):
    print(notice, file=sys.stderr)


def upstream_manifest(wildcards):
    return PLAN.upstream_manifest(_block(wildcards))


def block_spec(wildcards):
    import json

    return json.dumps(PLAN.block_spec(_block(wildcards)), sort_keys=True, separators=(",", ":"))


def all_manifests(wildcards=None):
    return PLAN.all_manifests()
