# The report: self-contained HTML (inline plots) and the same in Markdown.


rule report:
    input:
        metrics=rules.aggregate.output.metrics,
        hypotheses=rules.aggregate.output.hypotheses,
        provenance=rules.aggregate.output.provenance,
    output:
        html=f"{RESULTS}/report.html",
        md=f"{RESULTS}/report.md",
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../../envs/repliflow.yaml"
    script:
        "../scripts/report.py"
