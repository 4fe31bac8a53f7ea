# One job per recipe segment x block of replicates; every replicate x step
# inside it gets its own hashed output and sidecar in the store.


rule run_segment:
    input:
        upstream=upstream_manifest,
    output:
        manifest=f"{RESULTS}/blocks/{{segment}}/{{block}}.json",
    log:
        f"{RESULTS}/logs/blocks/{{segment}}/{{block}}.log",
    params:
        spec=block_spec,
    conda:
        "../../envs/repliflow.yaml"
    shell:
        "python -m repliflow.runner --manifest {output.manifest:q} --log {log:q} --spec {params.spec:q}"
