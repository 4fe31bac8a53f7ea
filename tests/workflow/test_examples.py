"""The examples under examples/, run at a small size through real Snakemake,
with the verdicts each one is meant to show (README, section Examples)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import pytest
import yaml
from conftest import REPO, run_snakemake, snakemake_command


def run_example(tmp_path, name: str, replicates: int, edit=None) -> tuple[dict, dict]:
    """Run examples/<name>/config.yaml with --config replicates=N; returns
    ({hypothesis: {treatment: result}}, {(condition, metric): [values]})."""
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    config = yaml.safe_load((REPO / "examples" / name / "config.yaml").read_text())
    if edit:
        edit(config)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run_snakemake(tmp_path, "--config", f"replicates={replicates}")
    results = tmp_path / "results" / config["experiment"]
    hypotheses = json.loads((results / "hypotheses.json").read_text())["hypotheses"]
    values: dict = {}
    for row in csv.DictReader((results / "metrics.csv").open()):
        values.setdefault((row["condition"], row["metric"]), []).append(float(row["value"]))
    assert "<h2>Grid</h2>" in (results / "report.html").read_text() or "grid" not in config
    return {h["name"]: h["results"] for h in hypotheses}, values


def flagged(results: dict) -> set[str]:
    return {treatment for treatment, result in results.items() if result["significant"]}


def test_montecarlo_flags_the_biased_estimator_at_every_sample_size(tmp_path):
    def smaller(config):
        config["pipeline"][0]["params"]["draws"] = 1_000_000

    verdicts, values = run_example(tmp_path, "montecarlo", 4, smaller)
    mle = {f"n-{n}_estimator-mle" for n in (5, 20, 100)}
    unbiased = {f"n-{n}_estimator-unbiased" for n in (5, 20, 100)}
    assert flagged(verdicts["bias"]) == mle
    for cell in mle:  # biased low, by about variance / n = 4 / n
        n = int(cell.split("_")[0][2:])
        assert sum(values[(cell, "bias")]) / 4 == pytest.approx(-4 / n, rel=0.2)
    assert not flagged(verdicts["bias"]) & unbiased
    assert {"n-5_estimator-unbiased", "n-100_estimator-unbiased"} <= flagged(verdicts["variance"])


def test_factorial_flags_real_factors_and_not_the_null_one(tmp_path):
    verdicts, values = run_example(tmp_path, "factorial", 5)
    cells = [f"n-{n}_noise-{s}_distribution-{d}" for n in (10, 40, 160) for s in ("0.5", "1.0", "2.0")
             for d in ("normal", "exponential")]  # fmt: skip
    assert set(verdicts["coverage"]) == {"z_interval", *cells}
    # noise is a null factor for coverage: the same coverage, replicate by replicate, at every level
    for n in (10, 40, 160):
        for d in ("normal", "exponential"):
            levels = [
                values[(f"n-{n}_noise-{s}_distribution-{d}", "coverage")] for s in ("0.5", "1.0", "2.0")
            ]
            assert levels[0] == levels[1] == levels[2]
    noise_only = {"n-10_noise-0.5_distribution-normal", "n-10_noise-2.0_distribution-normal"}
    assert not flagged(verdicts["coverage"]) & noise_only
    skewed_small = {f"n-10_noise-{s}_distribution-exponential" for s in ("0.5", "1.0", "2.0")}
    assert skewed_small | {"z_interval"} <= flagged(verdicts["coverage"])
    baseline_recipe = "n-10_noise-1.0_distribution-normal"
    assert flagged(verdicts["width"]) >= {c for c in cells if not c.startswith("n-10_noise-1.0_")}
    assert baseline_recipe not in flagged(verdicts["width"]) | flagged(verdicts["coverage"])


def test_io_bound_flags_serial_waits_and_never_the_content(tmp_path):
    verdicts, values = run_example(tmp_path, "io_bound", 4)
    # checksum declares threads: 2, so every job whose segment runs it asks Snakemake for 2 cores
    plan = run_snakemake(tmp_path, "--forceall", "--dry-run", "--config", "replicates=4").stdout
    jobs = [job for job in plan.split("rule ")[1:] if job.startswith("run_segment")]
    with_checksum = [job for job in jobs if "segment=metrics-" in job]
    assert len(with_checksum) == 3 and all("threads: 2" in job for job in with_checksum)
    assert not any("threads:" in job for job in jobs if job not in with_checksum)
    assert flagged(verdicts["fetch_time"]) == {"serial_fetch"}
    assert "serial_writes" in flagged(verdicts["write_time"])
    assert flagged(verdicts["same_content"]) == set()
    assert values[("serial_fetch", "content")] == values[("baseline", "content")]
    # fetch ran 10 replicates at a time; replicate 3's first connection dropped and was retried
    store = tmp_path / "results" / "io_bound" / "store"
    sidecars = [json.loads(p.read_text()) for p in store.glob("*/*.meta.json")]
    fetched = [s for s in sidecars if s["step"] == "datasource"]
    assert sorted(s["replicate"] for s in fetched if "retried" in s) == [3, 3]  # baseline, serial_fetch
    assert all(
        s["retried"] == [{"attempt": 1, "error": "ConnectionError: connection reset by peer (simulated)",
                          "waited_s": 0.05}]
        for s in fetched if "retried" in s
    )  # fmt: skip

    # the A/B: one replicate at a time (serial.yaml merged over the config) makes the same content
    serial = tmp_path / "serial"
    serial.mkdir()
    shutil.copytree(REPO / "examples", serial / "examples")
    command = snakemake_command(serial, "--config", "replicates=4")
    at = command.index("--configfile") + 1
    command[at : at + 1] = [
        str(serial / "examples/io_bound/config.yaml"),
        str(serial / "examples/io_bound/serial.yaml"),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    content = {
        (row["condition"], row["replicate"]): row["value"]
        for row in csv.DictReader((serial / "results" / "io_bound" / "metrics.csv").open())
        if row["metric"] == "content"
    }
    assert [float(content[("baseline", str(r))]) for r in range(4)] == values[("baseline", "content")]


def _looks(results) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "looks").glob("look-*.json"))]


def _replicates(results) -> set[int]:
    return {int(row["replicate"]) for row in csv.DictReader((results / "metrics.csv").open())}


def test_sequential_stops_at_look_2_and_never_runs_the_rest(tmp_path):
    def small(config):  # as the run's --config has it, for status below
        config["replicates"] = 20

    verdicts, _ = run_example(tmp_path, "sequential", 20, small)  # 5 looks of 4 replicates
    results = tmp_path / "results" / "sequential"
    assert [(r["look"], r["continue"]) for r in _looks(results)] == [(1, True), (2, False)]
    tuned = verdicts["runtime"]["tuned"]
    assert tuned["sequential"]["look"] == 2 and tuned["sequential"]["decision"] == "efficacy"
    assert tuned["sequential"]["replicates"] == 8 and tuned["n_pairs"] == 8
    assert abs(tuned["sequential"]["z"]) >= tuned["sequential"]["boundary"]
    assert tuned["significant"] and tuned["p_value_raw"] == tuned["sequential"]["p_value_stagewise"]
    assert tuned["sequential"]["expected"]["saved_replicates"] > 0  # sesoi {value: 1.0}
    # replicates 8..19 were never computed: no manifest, no stored output, no row
    assert _replicates(results) == set(range(8))
    manifests = sorted(p.name for p in (results / "blocks").glob("*/*.json"))
    assert manifests == sorted(["000000-000004.json", "000004-000008.json"] * 3)  # datasource, 2 builds
    sidecars = [json.loads(p.read_text()) for p in (results / "store").glob("*/*.meta.json")]
    assert len(sidecars) == 8 * 3 and max(s["replicate"] for s in sidecars) == 7
    report = (results / "report.md").read_text()
    assert "## Sequential design" in report and "stopped at look 2 of 5" in report
    # status: complete, though replicates 8..19 were never made
    from repliflow.engine.status import status

    state = status(tmp_path / "config.yaml", tmp_path)
    assert state.complete and state.sequential["stopped"] and state.sequential["look"] == 2
    assert all(tally["done"] == 8 and tally["missing"] == 0 for tally in state.counts.values())


def test_sequential_null_effect_runs_all_five_looks(tmp_path):
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    command = snakemake_command(tmp_path, "--config", "replicates=20")
    at = command.index("--configfile") + 1
    example = tmp_path / "examples" / "sequential"
    command[at : at + 1] = [str(example / "config.yaml"), str(example / "null.yaml")]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    results = tmp_path / "results" / "sequential_null"
    assert [r["continue"] for r in _looks(results)] == [True, True, True, True, False]
    hypotheses = json.loads((results / "hypotheses.json").read_text())
    assert hypotheses["sequential"]["stopped_at_look"] == 5
    results_by = hypotheses["hypotheses"][0]["results"]
    rebuilt, tuned = results_by["rebuilt"]["sequential"], results_by["tuned"]["sequential"]
    assert rebuilt["decision"] == "last_look" and rebuilt["look"] == 5 and len(rebuilt["z_by_look"]) == 5
    assert not results_by["rebuilt"]["significant"]
    # the tuned build still stopped at look 2 and keeps that look's numbers
    assert tuned["look"] == 2 and tuned["decision"] == "efficacy" and results_by["tuned"]["n_pairs"] == 8
    assert _replicates(results) == set(range(20))


def test_sequential_resumes_at_the_next_look_without_recomputing(tmp_path):
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    config = yaml.safe_load((REPO / "examples" / "sequential" / "config.yaml").read_text())
    config["replicates"] = 20
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    results = tmp_path / "results" / "sequential"
    # stop after look 1: ask for its file only
    run_snakemake(tmp_path, "results/sequential/looks/look-1.json")
    assert [r["look"] for r in _looks(results)] == [1]
    made = {p: p.stat().st_mtime_ns for p in results.glob("store/*/*") if p.is_file()}
    made[results / "looks" / "look-1.json"] = (results / "looks" / "look-1.json").stat().st_mtime_ns
    assert len([p for p in made if p.name.endswith(".meta.json")]) == 4 * 3
    # a dry run plans only look 2's blocks, then look 2
    planned = run_snakemake(tmp_path, "--dry-run").stdout
    blocks = [job.split("output:")[1].split("\n")[0] for job in planned.split("rule ")[1:]
              if job.startswith("run_segment")]  # fmt: skip
    assert len(blocks) == 3 and all("000004-000008" in block for block in blocks)
    resumed = run_snakemake(tmp_path)
    assert [(r["look"], r["continue"]) for r in _looks(results)] == [(1, True), (2, False)]
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in made.items())  # nothing redone
    jobs = resumed.stdout + resumed.stderr
    assert "k=2" in jobs and "k=1" not in jobs  # look 1 is not evaluated again
    assert "computed        8  reused        8" in resumed.stderr  # per condition: 4 replicates x 2 steps
    assert len(list(results.glob("store/*/*.meta.json"))) == 8 * 3
    again = run_snakemake(tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr
