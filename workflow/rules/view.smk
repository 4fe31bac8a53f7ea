# The readable view: runs/<condition>/rep-<r>/<step> links into the hashed
# store, and runs/index.csv; rebuilt whenever provenance.json changes.


rule view:
    input:
        provenance=rules.aggregate.output.provenance,
    output:
        index=f"{RESULTS}/runs/index.csv",
    log:
        f"{RESULTS}/logs/view.log",
    conda:
        "../../envs/repliflow.yaml"
    script:
        "../scripts/view.py"
