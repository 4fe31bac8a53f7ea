# The readable view: runs/<condition>/rep-<r>/<step> links into the hashed
# store, and runs/index.csv. It reads the block manifests, as aggregate does,
# so the two jobs run side by side.


rule view:
    input:
        manifests=all_manifests,
        repairs=repairs,
    output:
        index=f"{RESULTS}/runs/index.csv",
    log:
        f"{RESULTS}/logs/view.log",
    params:
        config=CONFIG,
    conda:
        "../../envs/repliflow.yaml"
    script:
        "../scripts/view.py"
