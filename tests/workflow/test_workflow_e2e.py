"""End to end through real Snakemake: caching, resumption, sharing."""

from __future__ import annotations

import collections
import csv
import json
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, Experiment, counting_config, run_snakemake
from scipy import stats


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


def _counts(calls):
    return collections.Counter(tuple(line.split(",")) for line in calls)


def test_more_replicates_only_run_the_new_ones(experiment):
    experiment.write_config({**experiment.config, "batch": {"replicates_per_job": 4}})
    experiment.snakemake()
    experiment.reset_calls()
    experiment.write_config({**experiment.config, "replicates": 8})
    experiment.snakemake()
    ran = {(step, int(replicate)) for step, _, replicate in (line.split(",") for line in experiment.calls())}
    assert {replicate for _, replicate in ran} == {5, 6, 7}
    assert len(experiment.calls()) == 3 * (1 + 2 + 2)  # datasource shared; scale, metrics per condition
    metrics = (experiment.results / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 1 + 2 * 8 * 2  # header + conditions x replicates x metrics


def test_a_larger_auto_block_computes_only_the_new_replicates(experiment):
    # auto without runtimes: 8 replicates make blocks of 1, 16 make blocks of 2,
    # so every block job gets a new name and runs again, and finds its old
    # replicates' outputs in the store (a raised cap renames blocks the same way)
    experiment.write_config({**experiment.config, "replicates": 8})
    experiment.snakemake()
    blocks = experiment.results / "blocks"
    before = {p.name for p in blocks.rglob("*.json")}
    assert "000000-000001.json" in before
    experiment.reset_calls()
    experiment.write_config({**experiment.config, "replicates": 16})
    experiment.snakemake()
    after = {p.name for p in blocks.rglob("*.json")}
    assert {"000000-000002.json", "000014-000016.json"} <= after
    ran = {int(replicate) for _, _, replicate in (line.split(",") for line in experiment.calls())}
    assert ran == set(range(8, 16))
    assert len(experiment.calls()) == 8 * (1 + 2 + 2)  # datasource shared; scale, metrics per condition
    metrics = (experiment.results / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 1 + 2 * 16 * 2  # header + conditions x replicates x metrics


def test_changing_a_treatment_parameter_reruns_only_its_steps(experiment):
    experiment.snakemake()
    experiment.reset_calls()
    config = experiment.config
    experiment.write_config({**config, "treatments": {"double": {"scale": {"factor": 3.0}}}})
    experiment.snakemake()
    counts = _counts(experiment.calls())
    assert set(counts) == {(step, "double", str(r)) for step in ["scale", "metrics"] for r in range(5)}
    assert all(n == 1 for n in counts.values())


def test_a_changed_hypothesis_reruns_only_the_summary_jobs(experiment):
    """aggregate and view read the config from a spec file named by its hash
    (repliflow.snakemake.summary): a config change reaches them as a changed
    param, and nothing else runs again."""
    experiment.snakemake()
    before = (experiment.results / "hypotheses.json").read_text()
    experiment.reset_calls()
    hypothesis = {**experiment.config["hypotheses"][0], "params": {"alpha": 0.01}}
    experiment.write_config({**experiment.config, "hypotheses": [hypothesis]})
    result = experiment.snakemake("--printshellcmds")
    assert experiment.calls() == []  # no step ran again
    ran = result.stdout + result.stderr
    assert "repliflow.snakemake.summary aggregate" in ran and "repliflow.snakemake.summary view" in ran
    assert "repliflow.engine.runner" not in ran
    after = (experiment.results / "hypotheses.json").read_text()
    assert '"alpha": 0.01' in after and '"alpha": 0.01' not in before
    again = experiment.snakemake()
    assert "Nothing to be done" in again.stdout + again.stderr


def test_treatment_equal_to_baseline_shares_its_files(experiment):
    experiment.snakemake()
    experiment.reset_calls()
    config = experiment.config
    treatments = {**config["treatments"], "same": {"scale": {"factor": 1.0}}}
    experiment.write_config({**config, "treatments": treatments})
    experiment.snakemake()
    assert experiment.calls() == []
    provenance = json.loads((experiment.results / "provenance.json").read_text())
    shared = [o for o in provenance["outputs"] if o["step"] == "metrics" and "same" in o["conditions"]]
    assert len(shared) == 5 and all("baseline" in o["conditions"] for o in shared)
    rows = list(csv.DictReader((experiment.results / "metrics.csv").open()))
    by = {(r["condition"], r["replicate"], r["metric"]): r["value"] for r in rows}
    assert all(by[("same", str(r), "mean")] == by[("baseline", str(r), "mean")] for r in range(5))


def test_fresh_run_reproduces_metrics_byte_for_byte(tmp_path):
    first = Experiment(tmp_path / "a", counting_config())
    second = Experiment(tmp_path / "b", counting_config())
    first.snakemake()
    second.snakemake()
    assert (first.results / "metrics.csv").read_bytes() == (second.results / "metrics.csv").read_bytes()
    assert (first.results / "hypotheses.json").read_bytes() == (
        second.results / "hypotheses.json"
    ).read_bytes()


def test_p_values_equal_scipy_on_metrics_csv(experiment):
    config = experiment.config
    experiment.write_config(
        {
            **config,
            "hypotheses": [
                {"name": "w", "metric": "spread", "verifier": "welch_t"},
                {"name": "s", "metric": "spread", "verifier": "student_t"},
                {"name": "m", "metric": "mean", "verifier": "mann_whitney"},
            ],
        }
    )
    experiment.snakemake()
    rows = list(csv.DictReader((experiment.results / "metrics.csv").open()))

    def values(condition, metric):
        ordered = sorted(
            (int(r["replicate"]), float(r["value"]))
            for r in rows
            if r["condition"] == condition and r["metric"] == metric
        )
        return [v for _, v in ordered]

    results = {
        h["name"]: h["results"]["double"]
        for h in json.loads((experiment.results / "hypotheses.json").read_text())["hypotheses"]
    }
    spread_b, spread_t = values("baseline", "spread"), values("double", "spread")
    mean_b, mean_t = values("baseline", "mean"), values("double", "mean")
    assert results["w"]["p_value"] == pytest.approx(
        stats.ttest_ind(spread_t, spread_b, equal_var=False).pvalue
    )
    assert results["s"]["p_value"] == pytest.approx(stats.ttest_ind(spread_t, spread_b).pvalue)
    assert results["m"]["p_value"] == pytest.approx(stats.mannwhitneyu(mean_t, mean_b).pvalue)


def test_default_experiment_completes(tmp_path):
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copy(REPO / "config" / "config.yaml", tmp_path / "config.yaml")
    run_snakemake(tmp_path)
    results = tmp_path / "results" / "titanic_age"
    hypotheses = json.loads((results / "hypotheses.json").read_text())["hypotheses"]
    assert hypotheses[0]["metric"] == "std_norm_age"
    assert hypotheses[0]["ranking"] == ["scale_ages"]
    assert hypotheses[0]["results"]["scale_ages"]["significant"] is True
    assert len((results / "metrics.csv").read_text().splitlines()) == 1 + 2 * 50 * 2
    html = (results / "report.html").read_text()
    assert "std_change" in html and "scale_ages" in html
    audit = subprocess.run(
        [
            sys.executable,
            "-m",
            "repliflow.cli",
            "audit",
            str(results),
            "--config",
            str(tmp_path / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO / "src",
    )
    assert audit.returncode == 0, audit.stdout


def test_a_segment_s_short_last_block_runs_after_its_full_blocks(tmp_path):
    """The rule's priority (a block's replicate-steps): on one core, a short
    last block (5 replicates in blocks of 2) waits for every full block of its
    segment, so it fills the last wave instead of leaving a full block alone."""
    config = counting_config()
    config["replicates"], config["batch"] = 5, {"replicates_per_job": 2}
    experiment = Experiment(tmp_path / "ragged", config)
    experiment.snakemake("--cores", "1")
    started: dict[str, dict[str, str]] = collections.defaultdict(dict)
    for log in (experiment.results / "logs" / "blocks").glob("*/*.log"):
        started[log.parent.name][log.stem] = log.read_text().split(" ", 1)[0]  # ISO times sort as text
    assert len(started) == 3
    for segment, blocks in started.items():
        assert sorted(blocks) == ["000000-000002", "000002-000004", "000004-000005"], segment
        assert blocks["000004-000005"] > max(blocks["000000-000002"], blocks["000002-000004"]), segment
