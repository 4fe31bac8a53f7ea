"""repliflow: replicated experiments as Snakemake workflows."""

__version__ = "0.1.0"
