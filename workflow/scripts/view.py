# Snakemake `script:` entry; the logic is repliflow.store.view (tested Python).
from repliflow.store.view import run_from_snakemake

run_from_snakemake(snakemake)  # noqa: F821 - injected by Snakemake
