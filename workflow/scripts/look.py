# Snakemake `script:` entry; the logic is repliflow.engine.looks (tested Python).
from repliflow.engine.looks import run_from_snakemake

run_from_snakemake(snakemake)  # noqa: F821 - injected by Snakemake
