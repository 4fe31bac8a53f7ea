# Collect every metrics output, run the verifiers, record provenance.


rule aggregate:
    input:
        manifests=all_manifests,
    output:
        metrics=f"{RESULTS}/metrics.csv",
        hypotheses=f"{RESULTS}/hypotheses.json",
        provenance=f"{RESULTS}/provenance.json",
    log:
        f"{RESULTS}/logs/aggregate.log",
    params:
        config=CONFIG,
        config_files=CONFIG_FILES,
    conda:
        "../../envs/repliflow.yaml"
    script:
        "../scripts/aggregate.py"
