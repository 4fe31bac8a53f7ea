# One job per recipe segment x block of replicates; every replicate x step
# inside it gets its own hashed output and sidecar in the store.
#
# Its threads and resources come from what the segment's steps declare
# (threads, mem_mb, runtime; see repliflow.snakemake.resources), else from the profile's
# default-resources. On a cluster every block job joins the job group
# "replicates" (config batch.group), so one submission runs all segments of a
# block, and a profile's `group-components: replicates=N` packs N blocks into
# one submission. Snakemake ignores groups when it runs jobs locally.


rule run_segment:
    input:
        upstream=upstream_manifest,
    output:
        manifest=PLAN.layout.manifest("{segment}", "{block}"),
    log:
        run=PLAN.layout.block_log("{segment}", "{block}"),
        # how the last attempt went, for `repliflow status` (a log: kept when the job fails)
        attempt=PLAN.layout.block_attempt("{segment}", "{block}"),
    # the largest blocks first, so a short last block fills the last wave
    priority: BLOCK_JOBS.priority
    group:
        BLOCK_JOBS.group
    conda:
        CODE_ENV
    threads: BLOCK_JOBS.threads
    resources:
        **BLOCK_JOBS.resources(),
    params:
        # the segment's spec, written by common.smk: a short command line, and a
        # speed-only setting (timeout, concurrency) changes no job's params
        spec_file=BLOCK_JOBS.spec_file_of,
    shell:
        "python -m repliflow.engine.runner --manifest {output.manifest:q} --log {log.run:q} "
        "--attempt {log.attempt:q} --spec-file {params.spec_file:q} --block {wildcards.block}"
