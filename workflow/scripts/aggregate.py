# Snakemake `script:` entry; the logic is repliflow.engine.aggregate (tested Python).
from repliflow.engine.aggregate import run_from_snakemake

run_from_snakemake(snakemake)  # noqa: F821 - injected by Snakemake
