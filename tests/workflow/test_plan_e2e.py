"""The planner through real Snakemake: a dry run of a plan too big to run (the planner's
own tests, without Snakemake, are in tests/unit/test_plan.py)."""

from __future__ import annotations

import re

from conftest import Experiment, counting_config


def test_dry_run_of_a_million_and_a_half_replicates_plans_every_block(tmp_path):
    # through real Snakemake: a 7-digit label must pass the block wildcard's constraint
    exp = Experiment(tmp_path, counting_config(replicates=1_500_000, batch={"replicates_per_job": 500_000}))
    result = exp.snakemake("-n", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "MissingInputException" not in output and "Traceback" not in output
    # 3 segments (datasource, baseline and treatment metrics) x 3 blocks
    assert re.search(r"^run_segment\s+9$", result.stdout, re.M), result.stdout[-2000:]
    assert "1000000-1500000.json" in result.stdout
