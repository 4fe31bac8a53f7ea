# Snakemake `script:` entry; the logic is repliflow.view (tested Python).
from repliflow.view import run_from_snakemake

run_from_snakemake(snakemake)  # noqa: F821 - injected by Snakemake
