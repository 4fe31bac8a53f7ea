# Collect every metrics output, run the verifiers, record provenance, and
# render the report from those tables. One job: the report needs the same
# numpy and scipy imports, which cost more than the rendering itself.
# Only the tables can fail it: a report that cannot be rendered is replaced by
# one saying why (repliflow.report.document.publish). report.last-good.{html,md}, the
# copy of the last report that rendered, is deliberately no output: Snakemake
# deletes a job's outputs before the job runs.


rule aggregate:
    input:
        manifests=all_manifests,
        repairs=repairs,
    output:
        metrics=PLAN.layout.table("metrics.csv"),
        hypotheses=PLAN.layout.table("hypotheses.json"),
        provenance=PLAN.layout.provenance,
        html=PLAN.layout.table("report.html"),
        md=PLAN.layout.table("report.md"),
    log:
        PLAN.layout.rule_log("aggregate"),
    conda:
        "../../envs/repliflow.yaml"
    params:
        config=CONFIG,
        config_files=CONFIG_FILES,
    script:
        "../scripts/aggregate.py"
