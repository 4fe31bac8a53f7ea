"""Aggregate never destroys (issue 12): the tables are written whatever the
report does, a plot that cannot be drawn is a note, names are text, values
near the float maximum or infinite are drawn or noted, and a report that
cannot be rendered at all leaves the last good one in place.

Each case that once failed the aggregate job (and so lost every table) runs
through real Snakemake; the forced failure runs the job's function in process
with the renderer patched to raise. The plot and grid helpers' own cases, which
need no run, are in tests/unit/test_plots.py and tests/unit/test_grid.py."""

from __future__ import annotations

import csv
import json
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import REPO, Experiment, counting_config, run_snakemake

from repliflow.report import document as report
from repliflow.report import plots
from repliflow.report.tables import read_results

SOURCE = """
def source(ctx, *, n=5):
    return [float(x) for x in ctx.rng.normal(size=n)]


def scale(data, ctx, *, factor=1.0):
    return [x * factor for x in data]
"""

DOLLAR = "usd$_per_$ <b>&"  # unbalanced mathtext, and HTML
DOLLAR_STEPS = SOURCE + textwrap.dedent(
    f"""
    def metrics(data, ctx):
        return {{{DOLLAR!r}: sum(data), "spread": max(data) - min(data)}}
    """
)

# `big`: +-1.7e308, of opposite signs in the two conditions, so means are fine but
# every paired difference overflows; `inf`: one infinite value per condition.
HUGE_STEPS = SOURCE + textwrap.dedent(
    """
    def metrics(data, ctx):
        sign = (1 if ctx.replicate % 2 else -1) * (1 if ctx.condition == "baseline" else -1)
        return {"big": sign * 1.7e308, "inf": float("inf") if ctx.replicate == 0 else data[0]}
    """
)

# treatment = baseline + 1 in every replicate (common random numbers plus an
# additive shift): constant paired differences whose mean (0.9999999999999999)
# lies just outside the CI ([1.0, 1.0]) by rounding, once a negative error bar.
SHIFT_STEPS = textwrap.dedent(
    """
    BASE = [-0.7037352358069926, -1.2654214710460525, -0.6232744625373522, 0.0413259793472436]


    def source(ctx, *, shift=0.0):
        return BASE[ctx.replicate] + shift


    def scale(data, ctx, *, factor=1.0):
        return data * factor


    def metrics(data, ctx):
        return {"value": data}
    """
)


def _config(metric: str, verifier: str, **overrides) -> dict:
    config = counting_config(replicates=4, batch={"replicates_per_job": 4}, **overrides)  # few jobs
    config["datasource"]["params"] = {}
    config["hypotheses"] = [{"name": "h", "metric": metric, "verifier": verifier}]
    return config


def _run(root: Path, config: dict, steps: str) -> Experiment:
    exp = Experiment(root, config, steps=steps)
    done = exp.snakemake(check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    exp.stderr = done.stderr
    return exp


def _check_tables(results: Path) -> dict:
    assert list(csv.DictReader((results / "metrics.csv").open()))
    json.loads((results / "provenance.json").read_text())
    return json.loads((results / "hypotheses.json").read_text())


@pytest.fixture(scope="module")
def shifted(tmp_path_factory) -> Experiment:
    config = _config("value", "wilcoxon", treatments={"plus1": {"datasource": {"shift": 1.0}}})
    return _run(tmp_path_factory.mktemp("shifted"), config, SHIFT_STEPS)


def test_a_dollar_in_a_metric_name_is_text_in_plots_and_escaped_in_html(tmp_path):
    exp = _run(tmp_path, _config(DOLLAR, "paired_t"), DOLLAR_STEPS)
    _check_tables(exp.results)
    page = (exp.results / "report.html").read_text()
    escaped = "usd$_per_$ &lt;b&gt;&amp;"
    # distribution plots of both metrics and the paired-difference plot, the name as written
    assert page.count("<svg") == 3 and "could not be drawn" not in page
    assert f"{escaped}: every replicate, by condition" in page
    assert f"{escaped}: paired differences" in page
    assert "<b>&" not in page  # HTML-escaped everywhere, in the text as in the SVG
    assert "## Verdicts at a glance" in (exp.results / "report.md").read_text()


def test_values_near_the_float_maximum_and_infinite_values_are_drawn_or_noted(tmp_path):
    exp = _run(tmp_path, _config("big", "paired_t"), HUGE_STEPS)
    hypotheses = _check_tables(exp.results)
    assert hypotheses["hypotheses"][0]["metric"] == "big"
    page = (exp.results / "report.html").read_text()
    assert page.count("<svg") == 3 and "could not be drawn" not in page and "could not be built" not in page
    assert "big (× 1e308)" in page  # drawn in units the axis names, not overflowing matplotlib
    assert "4 difference(s) overflow the float range and are not drawn" in page
    assert "n=3, 1 infinite" in page  # the infinite value is counted on the axis, and in a note
    assert "<code>inf</code> has infinite values (baseline: 1, double: 1)" in page
    md = (exp.results / "report.md").read_text()
    assert "| baseline | 4 | 0 | 0 | ∞ | -1.7e+308 | 0 | 1.7e+308 |" in md  # the SD overflows: ∞
    assert "`inf` has infinite values" in exp.stderr  # also said where the job ran


def test_constant_paired_differences_under_wilcoxon_draw_their_error_bar(shifted):
    hypotheses = _check_tables(shifted.results)
    result = hypotheses["hypotheses"][0]["results"]["plus1"]
    assert result["mean_difference"] == pytest.approx(1.0)
    page = (shifted.results / "report.html").read_text()
    assert page.count("<svg") == 2 and "value: paired differences" in page and "could not" not in page
    assert (shifted.results / "last-good" / "report.html").read_bytes() == page.encode()


def _job_spec(exp_root: Path) -> str:
    """The spec file the Snakefile writes for the aggregate job, for the
    experiment in ``exp_root`` (the current directory)."""
    from repliflow.core.config import validate_config
    from repliflow.core.plan import build_plan
    from repliflow.snakemake.summary import spec_path, spec_text, write_spec

    config = validate_config(
        yaml.safe_load((exp_root / "config.yaml").read_text()),
        schema=REPO / "workflow" / "schemas" / "config.schema.yaml",
    )
    plan = build_plan(config)
    text = spec_text(plan.config, "config.yaml")
    path = spec_path(plan.experiment, text)
    write_spec(path, text)
    return path


def test_a_report_that_cannot_be_rendered_keeps_the_tables_and_the_last_good_report(
    shifted, tmp_path, monkeypatch, capsys
):
    from repliflow.engine.aggregate import run_job

    root = tmp_path / "copy"
    shutil.copytree(shifted.root, root, symlinks=True)
    results = root / "results" / "exp"
    good = (results / "report.html").read_text()
    assert (results / "last-good" / "report.html").read_text() == good
    monkeypatch.chdir(root)
    spec_file = _job_spec(root)
    for name in ["metrics.csv", "hypotheses.json", "provenance.json", "report.html", "report.md"]:
        (results / name).unlink()  # as Snakemake deletes a job's outputs before it runs

    def broken(results, figures=None):
        raise RuntimeError("the renderer broke")

    monkeypatch.setattr(report, "build", broken)
    run_job(spec_file, str(results / "logs" / "aggregate.log"))  # returns: no SystemExit, the job succeeds

    _check_tables(results)
    page = (results / "report.html").read_text()
    assert "The report could not be rendered: RuntimeError: the renderer broke" in page
    assert '<a href="last-good/report.html">' in page
    assert "could not be rendered: RuntimeError: the renderer broke" in (results / "report.md").read_text()
    assert (results / "last-good" / "report.html").read_text() == good  # kept as it was
    log = (results / "logs" / "aggregate.log").read_text()
    assert "RuntimeError: the renderer broke" in log and "Traceback" in log
    err = capsys.readouterr().err
    assert "repliflow: cannot render the report: RuntimeError: the renderer broke" in err
    assert "last-good/report.html" in err

    # Fixed (the patch undone), the command the failed report names makes it again, and Snakemake
    # left last-good/report.html (not an output of the rule) alone while it redid the job.
    monkeypatch.undo()
    run_snakemake(root, "--forcerun", "aggregate")
    page = (results / "report.html").read_text()
    assert "could not be rendered" not in page and page.count("<svg") == 2
    assert (results / "last-good" / "report.html").read_text() == page


def test_a_plot_or_a_section_that_fails_is_a_note(shifted, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("no\ncanvas")

    monkeypatch.setattr(plots, "paired_differences", broken)
    from repliflow.stats import power  # the report imports it when it draws the section

    monkeypatch.setattr(power, "replicate_plan", broken)
    page, markdown, notes = report.render(read_results(shifted.results))
    assert notes == [
        "plot paired differences of `value` could not be drawn: ValueError: no canvas",
        "section Power and replicates could not be built: ValueError: no canvas",
    ]
    assert (
        page.count("<svg") == 1 and "<h2>Power and replicates</h2>" in page and "<h2>Provenance</h2>" in page
    )
    assert "plot paired differences of <code>value</code> could not be drawn: ValueError: no canvas" in page
    assert "> **Note:** section Power and replicates could not be built" in markdown
