# Collect every metrics output, run the verifiers, record provenance, and
# render the report from those tables. One job: the report needs the same
# numpy and scipy imports, which cost more than the rendering itself.


rule aggregate:
    input:
        manifests=all_manifests,
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
