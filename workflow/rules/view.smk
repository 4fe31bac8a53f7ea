# The readable view: runs/<condition>/rep-<r>/<step> links into the hashed
# store, and runs/index.csv. It reads the block manifests, as aggregate does,
# so the two jobs run side by side.


rule view:
    input:
        manifests=all_manifests,
        repairs=repairs,
    output:
        index=f"{PLAN.layout.runs}/index.csv",
    log:
        PLAN.layout.rule_log("view"),
    # run by the submitting snakemake on a cluster, unless grouped (see aggregate.smk)
    localrule: True
    conda:
        "../../envs/repliflow.yaml"
    params:
        spec_file=SUMMARY_SPEC,  # as aggregate's
    shell:
        "python -m repliflow.snakemake.summary view --spec-file {params.spec_file:q} --log {log:q}"
