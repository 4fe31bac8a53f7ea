# Config loading, schema validation and planning; no rules here.
import gc
import sys
from pathlib import Path

# Snakemake keeps every job of the DAG alive (2.3 million tracked objects at
# 30,000 jobs), and CPython rescans all of them in each full garbage collection
# while the DAG grows: 17 full collections took 6 s of such a dry run's 30 s.
# Young objects are still collected as before; a full collection now waits for
# 1000 collections of the middle generation instead of 10 (and, as before, for
# the old objects to have grown by 25%).
gc.set_threshold(*gc.get_threshold()[:2], 1000)

# A fresh clone runs without `pip install -e .`: import repliflow from its src/
# (absent when this workflow is the copy shipped inside an installed package).
CHECKOUT_SRC = Path(workflow.current_basedir).parents[1] / "src"
if not (CHECKOUT_SRC / "repliflow").is_dir():
    CHECKOUT_SRC = None
else:
    sys.path.insert(0, str(CHECKOUT_SRC))

from repliflow.snakemake.blocks import BlockJobs, rule_function
from repliflow.snakemake.summary import spec_path as summary_spec_path
from repliflow.snakemake.summary import spec_text as summary_spec_text
from repliflow.snakemake.summary import write_spec as write_summary_spec
from repliflow.core.config import check_config_files, code_environment, validate_config
from repliflow.errors import RepliflowError
from repliflow.store.pathgate import check_results_tree, check_store_tree
from repliflow.store.shared import register_plan, unused_store_notice
from repliflow.core.plan import build_plan
from repliflow.engine.looks import run_plan, sequential_manifests
from repliflow.store.reconcile import describe as describe_repairs
from repliflow.store.reconcile import reconcile, repair_record, schedule_repairs
from repliflow.snakemake.hooks import (
    describe_config_files,
    end_status_waits_at_shutdown,
    fail,
    guard_htcondor_status_race,
    prepare_job_environment,
    record_lock_owner,
    release_scheduler_timers,
    release_stale_lock,
)

prepare_job_environment(CHECKOUT_SRC)
if workflow.is_main_process:
    guard_htcondor_status_race()  # an upstream race that can hang a run (see the function)
    end_status_waits_at_shutdown()  # a cluster run ends with its last job (see the function)
if workflow.is_main_process and (notice := release_stale_lock()):
    print(notice, file=sys.stderr)

CONFIG_FILES = describe_config_files(workflow.configfiles)
try:
    check_config_files(workflow.configfiles)  # UTF-8, no key twice, JSON values only
    CONFIG = validate_config(
        config,
        file=CONFIG_FILES,
        schema=Path(workflow.current_basedir).parent / "schemas" / "config.schema.yaml",
    )
    PLAN = build_plan(CONFIG)
    # the jobs' config (aggregate, view, look): the plan's, which names the store
    # however it was chosen, so a job that does not inherit REPLIFLOW_STORE uses it too
    CONFIG = PLAN.config
    # the conda: of the jobs that run the experiment's code (the config's `conda`)
    CODE_ENV = code_environment(CONFIG, default="../../envs/repliflow.yaml")
    # results/<exp>, store/, blocks/ and runs/ must be real folders: a link
    # (planted in a received results folder) would lead reads and writes outside
    check_results_tree(PLAN.results_dir)
    check_store_tree(PLAN.store_dir)
    if workflow.is_main_process and not workflow.output_settings.dryrun:
        register_plan(PLAN)  # a shared store's gc keeps what this results folder uses
except RepliflowError as exc:
    if getattr(exc, "file", "") is None:
        exc.file = CONFIG_FILES
    fail(exc)


# Snakemake sees only the block manifests; check the store against them (no
# hashing) and run again the blocks whose files are missing, truncated or not
# regular files, or whose manifest is missing or broken (repliflow.store.reconcile).
if workflow.is_main_process:
    DRY_RUN = workflow.output_settings.dryrun
    if notice := unused_store_notice(PLAN):
        print(notice, file=sys.stderr)
    # a sequential run that stopped at a look never made the blocks past it
    REPAIRS = reconcile(run_plan(PLAN))
    if REPAIRS:
        print(describe_repairs(REPAIRS, dry_run=DRY_RUN), file=sys.stderr)
        if not DRY_RUN:
            schedule_repairs(PLAN, REPAIRS)
ON_ERROR_HINT = (
    f"repliflow: outputs already made are kept under {PLAN.layout.store}; fix the cause and "
    "run the same command again (add --rerun-incomplete after a crash) to redo only what is missing."
)


wildcard_constraints:
    segment=r"[A-Za-z0-9_.-]+-[0-9a-f]{16}",
    # zero-padded to 6 digits, wider past 999999 (plan.Block.label); not
    # \d{6,}: Snakemake's wildcard parser takes only {n} or {n,m} braces
    block=r"\d{6}\d*-\d{6}\d*",


# Snakemake calls run_segment's functions once per job (params too, in every
# dry run): each is a dict look-up and an f-string, never a serialisation.
def _block(wildcards):
    segment = PLAN.segment_by_label(wildcards.segment)
    return PLAN.block_for(segment, int(wildcards.block.split("-", 1)[0]))


# run_segment's threads, resources (from its steps' declarations, else the
# profile's default-resources) and cluster job group; see repliflow.snakemake.blocks.
BLOCK_JOBS = BlockJobs(PLAN, workflow, _block)
if workflow.is_main_process and (notice := BLOCK_JOBS.capped_notice()):
    print(notice, file=sys.stderr)
if workflow.is_main_process and not workflow.output_settings.dryrun:
    BLOCK_JOBS.write_specs()  # what each block job reads (--spec-file)
# what aggregate and view read (their --spec-file): the config and its files,
# in a file named by its content, so a changed config re-runs both
SUMMARY_SPEC_TEXT = summary_spec_text(CONFIG, CONFIG_FILES)
SUMMARY_SPEC = summary_spec_path(PLAN.experiment, SUMMARY_SPEC_TEXT)
if workflow.is_main_process and not workflow.output_settings.dryrun:
    write_summary_spec(SUMMARY_SPEC, SUMMARY_SPEC_TEXT)


@rule_function
def upstream_manifest(wildcards):
    return PLAN.upstream_manifest(_block(wildcards))


@rule_function
def all_manifests(wildcards=None):
    if PLAN.sequential is not None:  # up to the look where every comparison stopped
        return sequential_manifests(PLAN, lambda k: checkpoints.look.get(k=k).output[0])
    return PLAN.all_manifests()


@rule_function
def look_manifests(wildcards):
    return PLAN.look_manifests(int(wildcards.k))


@rule_function
def repairs(wildcards=None):
    return repair_record(PLAN)
