"""The glue that knows Snakemake: the Snakefile's hooks, the run_segment rule's
functions and resources, Snakemake's own markers, and the commands repliflow prints."""
