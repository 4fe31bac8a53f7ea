# Sequential designs (config `sequential`): one checkpoint per look. Look k
# reads the block manifests of the replicates up to it (all conditions), tests
# every hypothesis x treatment against its group-sequential boundary and
# writes results/<exp>/looks/look-<k>.json. all_manifests (common.smk) walks
# the looks through this checkpoint, so the replicates past the look where
# every comparison has stopped are never requested. Logic:
# repliflow.engine.looks.


checkpoint look:
    input:
        manifests=look_manifests,
    output:
        PLAN.layout.look("{k}"),
    log:
        PLAN.layout.rule_log("look-{k}"),
    wildcard_constraints:
        k=r"[1-9][0-9]*",
    # on a cluster, run by the submitting snakemake (as aggregate): the next blocks
    # wait for each look, so a submission per look would add a queue wait and a job start
    localrule: True
    conda:
        "../../envs/repliflow.yaml"
    params:
        config=CONFIG,
    script:
        "../scripts/look.py"
