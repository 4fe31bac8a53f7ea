"""End to end through real Snakemake: caching, resumption, sharing."""

from __future__ import annotations

import collections


def test_runs_and_second_run_does_nothing(experiment):
    experiment.snakemake()
    for name in ["metrics.csv", "hypotheses.json", "report.html", "provenance.json"]:
        assert (experiment.results / name).is_file(), name
    calls = collections.Counter(line.split(",")[0] for line in experiment.calls())
    # the datasource is shared by both conditions; scale and metrics run per condition
    assert calls == {"datasource": 5, "scale": 10, "metrics": 10}
    experiment.reset_calls()
    second = experiment.snakemake()
    assert "Nothing to be done" in second.stdout + second.stderr
    assert experiment.calls() == []
