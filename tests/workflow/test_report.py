"""One small experiment through real Snakemake: hypotheses.json's statistics,
the report (HTML with inline plots, Markdown), `repliflow power` and the exact
command it prints, and the report rendered by headless Chromium. The plots alone,
without a run, are in tests/unit/test_plots.py."""

from __future__ import annotations

import csv
import json
import re
import shlex
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO, Experiment

from repliflow.cli import main
from repliflow.stats.corrections import adjust

STEPS = textwrap.dedent(
    """
    import math
    import os


    def source(ctx, *, n=8, shift=0.0):
        with open(os.path.join(os.path.dirname(__file__), "calls.log"), "a") as handle:
            handle.write(f"{ctx.condition},{ctx.replicate}\\n")
        return [float(x) + shift for x in ctx.rng.normal(size=n)]


    def metrics(data, ctx):
        out = {"mean": sum(data) / len(data), "spread": max(data) - min(data)}
        if ctx.condition == "big" and ctx.replicate == 2:
            out["mean"] = math.nan
        if ctx.condition == "small" and ctx.replicate == 4:
            del out["spread"]
        return out
    """
)

CONFIG = {
    "experiment": "stats",
    "code": "steps.py",
    "replicates": 10,
    "seed": 11,
    "datasource": {"function": "source", "params": {"n": 8}},
    "pipeline": [{"function": "metrics"}],
    "treatments": {
        "small": {"datasource": {"shift": 0.4}},
        "big": {"datasource": {"shift": 1.5}},
        "same": {"datasource": {"shift": 0.0}},
    },
    "hypotheses": [
        # a declared smallest effect of interest: the power section plans replicates for it
        {"name": "mean_shift", "metric": "mean", "verifier": "welch_t", "sesoi": {"d": 0.5}},
        {"name": "mean_paired", "metric": "mean", "verifier": "paired_t", "correction": "bonferroni"},
        {
            "name": "spread_rank",
            "metric": "spread",
            "verifier": "mann_whitney",
            "params": {"alternative": "greater"},
            "correction": "fdr_bh",
        },
    ],
    "batch": {"replicates_per_job": 5},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    exp = Experiment(tmp_path_factory.mktemp("report"), CONFIG, steps=STEPS)
    exp.snakemake()
    shutil.copy(exp.results / "report.html", exp.root / "first-report.html")
    return exp


def hypotheses(exp) -> dict:
    data = json.loads((exp.results / "hypotheses.json").read_text())["hypotheses"]
    return {h["name"]: h for h in data}


def test_p_values_are_adjusted_and_decide_significance_and_rank(run):
    for h in hypotheses(run).values():
        treatments = list(h["results"])
        raw = [h["results"][t]["p_value_raw"] for t in treatments]
        expected = adjust(raw, h["correction"])
        for treatment, p_adj in zip(treatments, expected, strict=True):
            result = h["results"][treatment]
            assert result["p_value_adjusted"] == pytest.approx(p_adj)
            assert result["p_value"] == result["p_value_adjusted"]
            assert result["significant"] is (p_adj < 0.05)
            assert result["correction"] == h["correction"]
        ranked = [h["results"][t]["p_value"] for t in h["ranking"]]
        assert ranked == sorted(ranked)
    assert hypotheses(run)["mean_shift"]["correction"] == "holm"  # the default


def test_verdicts_carry_effect_sizes_and_the_aa_treatment_is_flagged(run):
    h = hypotheses(run)
    big = h["mean_shift"]["results"]["big"]
    assert big["significant"] is True and big["effect_size"] == "hedges_g"
    low, high = big["mean_difference_ci"]
    assert low < big["mean_difference"] < high
    assert h["spread_rank"]["results"]["big"]["effect_size"] == "rank_biserial"
    same = h["mean_shift"]["results"]["same"]
    assert same["significant"] is False and "identical" in same["note"]
    assert h["mean_paired"]["results"]["same"]["degenerate"] == "identical"


def test_nan_and_missing_metrics_are_counted_and_reported(run):
    rows = list(csv.DictReader((run.results / "metrics.csv").open()))
    value = {(r["condition"], r["replicate"], r["metric"]): r["value"] for r in rows}
    assert value[("big", "2", "mean")] == "nan"
    assert value[("small", "4", "spread")] == ""  # the replicate did not return it
    h = hypotheses(run)
    assert h["mean_shift"]["results"]["big"]["n_missing_treatment"] == 1
    assert h["mean_shift"]["results"]["big"]["n_treatment"] == 9
    assert h["mean_paired"]["results"]["big"]["n_pairs"] == 9
    assert h["mean_shift"]["missing_replicates"]["big"] == [2]
    assert h["spread_rank"]["missing_replicates"]["small"] == [4]
    md = (run.results / "report.md").read_text()
    assert re.search(r"\| mean \| big \| 1 \| 2 \|", md) and re.search(r"\| spread \| small \| 1 \| 4 \|", md)


def test_report_html_is_self_contained_with_plots_and_every_section(run):
    page = (run.results / "report.html").read_text()
    for heading in [
        "Verdicts at a glance",
        "Design",
        "Metrics",
        "Verdicts",
        "Failed or missing replicates",
        "Power and replicates",
        "Provenance",
    ]:
        assert f"<h2>{heading}</h2>" in page
    # one distribution plot per metric and one paired-difference plot (mean is tested by paired_t)
    assert page.count("<svg") == 3
    assert "paired differences" in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<script" not in page
    assert "p (holm)" in page and "p (bonferroni)" in page and "p (fdr_bh)" in page
    assert "Hedges&#x27; g" in page or "Hedges' g" in page
    assert "--config replicates=" in page and "detectable at 80%" in page
    assert "No smallest effect of interest is declared for mean_paired/small" in page
    md = (run.results / "report.md").read_text()
    assert "## Verdicts at a glance" in md and "## Power and replicates" in md and "<svg" not in md


def test_power_prints_the_command_that_extends_the_run(run, capsys):
    assert main(["power", str(run.results)]) == 0
    text = capsys.readouterr().out
    assert "mean_shift/small" in text and "snakemake --cores all" in text
    assert main(["power", str(run.results), "--json", "--configfile", str(run.root / "config.yaml")]) == 0
    plan = json.loads(capsys.readouterr().out)
    smallest = plan["extend"][0]
    command = shlex.split(smallest["command"])
    assert command[:3] == ["snakemake", "--cores", "all"]
    assert command[-2:] == ["--config", f"replicates={smallest['replicates']}"]
    assert str(run.root / "config.yaml") in command  # the config the user named, never a recorded one

    # Run it (from the experiment's directory, with the repository's Snakefile): only new replicates run.
    run.reset_calls()
    subprocess.run(
        # the printed `snakemake`, as the interpreter running the tests has it (CI does not activate the venv)
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(run.root),
            *command[1:],
        ],
        check=True,
        capture_output=True,
        cwd=run.root,
        timeout=300,
    )
    replicates = smallest["replicates"]
    ran = {int(line.split(",")[1]) for line in run.calls()}
    assert ran == set(range(10, replicates))
    rows = (run.results / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 * replicates * 2


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed (Debian package `chromium`; .ci/run installs it)",
)
def test_report_renders_in_headless_chromium_with_its_plots(run, tmp_path):
    from matplotlib import image

    page = run.root / "first-report.html"  # the run's report as first made, self-contained
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    dom = subprocess.run(
        [CHROMIUM, *flags, f"--user-data-dir={tmp_path / 'profile-dom'}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") == 3 and "Verdicts at a glance" in dom.stdout
    png = tmp_path / "report.png"
    shot = subprocess.run(
        [
            CHROMIUM,
            *flags,
            f"--user-data-dir={tmp_path / 'profile-shot'}",
            f"--screenshot={png}",
            "--window-size=1200,3000",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    pixels = image.imread(str(png))[..., :3]
    assert pixels.shape[:2] == (3000, 1200)
    # the page drew: dark text on white, and the plots in the treatments' colours (orange and
    # green boxes and points; text and tables have neither: a page without its SVGs has 0 such pixels)
    assert (pixels.mean(axis=2) < 0.3).mean() > 0.005
    for color in ["#d1603d", "#3a8d5c"]:
        rgb = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        matching = (abs(pixels - rgb) < 0.03).all(axis=2).sum()
        assert matching > 50, (color, matching)
