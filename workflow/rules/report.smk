# The self-contained HTML report.


rule report:
    input:
        metrics=rules.aggregate.output.metrics,
        hypotheses=rules.aggregate.output.hypotheses,
        provenance=rules.aggregate.output.provenance,
    output:
        html=f"{RESULTS}/report.html",
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../../envs/repliflow.yaml"
    script:
        "../scripts/report.py"
