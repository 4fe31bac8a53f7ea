# Snakemake `script:` entry; the logic is repliflow.report (tested Python).
from repliflow.report import run_from_snakemake

run_from_snakemake(snakemake)  # noqa: F821 - injected by Snakemake
