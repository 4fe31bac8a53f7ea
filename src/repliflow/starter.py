"""The starter experiment ``repliflow init`` writes into a project folder.

A Snakefile of a few lines that uses the installed workflow as a Snakemake
module, a commented config, a steps file and a .gitignore: ``snakemake
--cores 2`` (or ``repliflow run --cores 2``) runs it as it is.
"""

from __future__ import annotations

SNAKEFILE = """\
# repliflow's workflow, used as a Snakemake module: its rules run the experiment
# in config/config.yaml (https://snakemake.readthedocs.io, "Modularization").
# Run it with `snakemake --cores all`, or `repliflow run --cores all`.
from repliflow.shipped import snakefile as repliflow_snakefile


configfile: "config/config.yaml"


module repliflow:
    snakefile:
        str(repliflow_snakefile())
    config:
        config


use rule * from repliflow
"""

CONFIG = """\
# A repliflow experiment: a baseline and treatments (parameter overrides), each run
# `replicates` times through the datasource and the pipeline in steps.py, then
# compared by the hypotheses. Every key: docs/configuration.md in the repliflow repository.
experiment: starter            # results go to results/starter/
code: steps.py                 # the file defining the functions named below
replicates: 20                 # per condition; raise it later: only the new replicates run
seed: 0                        # replicate seeds derive from it and the replicate index
# store: ~/repliflow-store     # one store shared by your experiments (default: results/<experiment>/store)

datasource:                    # the first step: function(ctx, **params) -> data
  function: measure
  params: {n: 50, shift: 0.0}

pipeline:                      # then each step: function(data, ctx, **params) -> data
  - function: trim
    params: {limit: 3.0}
  - function: summarize        # the last step returns {metric name: number}

treatments:                    # condition name -> {step name: {param: value}}
  shifted:
    datasource: {shift: 0.5}   # 'datasource' names the datasource
  loose_trim:
    trim: {limit: 10.0}        # shares the baseline's datasource outputs (same recipe)

hypotheses:                    # each compares every treatment with the baseline
  - name: mean_moved
    metric: mean
    verifier: welch_t          # or paired_t, mann_whitney, wilcoxon, bootstrap_mean_diff
  - name: spread_changed
    metric: sd
    verifier: welch_t

# batch:
#   replicates_per_job: auto   # replicates one Snakemake job runs in series
#   concurrency: 1             # replicates in flight at once in a job (for steps that wait)
"""

STEPS = '''\
"""The steps of the starter experiment: plain functions, no decorator.

Draw random numbers from ``ctx.rng`` (a numpy Generator seeded for this
replicate and step): replicate r of every condition gets the same seed, so
conditions are compared on common random numbers, and every number can be
reproduced.
"""


def measure(ctx, *, n=50, shift=0.0):
    """The datasource: n noisy measurements around ``shift``."""
    return [float(x) + shift for x in ctx.rng.standard_t(df=4, size=n)]


def trim(data, ctx, *, limit=3.0):
    """Drop measurements further than ``limit`` from the median."""
    middle = sorted(data)[len(data) // 2]
    return [x for x in data if abs(x - middle) <= limit]


def summarize(data, ctx):
    """The metrics step: a mapping of metric name to number."""
    mean = sum(data) / len(data)
    sd = (sum((x - mean) ** 2 for x in data) / (len(data) - 1)) ** 0.5
    return {"mean": mean, "sd": sd, "kept": len(data)}
'''

GITIGNORE = """\
# repliflow's outputs and Snakemake's bookkeeping: made again by a run
results/
.snakemake/
"""

FILES = {
    "Snakefile": SNAKEFILE,
    "config/config.yaml": CONFIG,
    "steps.py": STEPS,
    ".gitignore": GITIGNORE,
}
