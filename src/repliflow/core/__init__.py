"""Recipes, plans and records: hashing, step code, config, grids, the plan, the typed
records and the step context. Pure Python, no Snakemake; user code is read as syntax
trees only."""
