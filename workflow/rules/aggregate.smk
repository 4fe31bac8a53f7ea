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
        metrics=f"{RESULTS}/metrics.csv",
        hypotheses=f"{RESULTS}/hypotheses.json",
        provenance=f"{RESULTS}/provenance.json",
        html=f"{RESULTS}/report.html",
        md=f"{RESULTS}/report.md",
    log:
        f"{RESULTS}/logs/aggregate.log",
    params:
        config=CONFIG,
        config_files=CONFIG_FILES,
    conda:
        "../../envs/repliflow.yaml"
    script:
        "../scripts/aggregate.py"
