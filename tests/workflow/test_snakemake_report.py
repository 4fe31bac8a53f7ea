"""`snakemake --report report.zip` holds repliflow's report, tables and figures
(issue 16, item 4): aggregate's outputs are flagged with report()."""

from __future__ import annotations

import zipfile

from conftest import Experiment, counting_config


def test_snakemakes_report_holds_the_report_tables_and_figures(tmp_path):
    experiment = Experiment(tmp_path, counting_config(replicates=4))
    experiment.snakemake()
    figures = sorted(p.name for p in (experiment.results / "figures").glob("*.svg"))
    assert figures == ["01-mean-per-condition.svg", "02-spread-per-condition.svg"]
    assert all((experiment.results / "figures" / name).read_text().startswith("<svg") for name in figures)

    experiment.snakemake("--report", str(tmp_path / "report.zip"))
    names = zipfile.ZipFile(tmp_path / "report.zip").namelist()
    held = {name.rsplit("/", 1)[-1] for name in names}
    assert {"report.html", "metrics.csv", "hypotheses.json", "provenance.json"} <= held
    assert set(figures) <= held
