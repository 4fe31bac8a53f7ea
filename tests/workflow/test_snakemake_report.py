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


def test_a_figures_folder_left_incomplete_by_a_killed_run_is_made_again(tmp_path):
    """Snakemake marks a directory output incomplete like a file; a plain run
    must remove the folder, or Snakemake refuses to start (chaos found it)."""
    import base64

    experiment = Experiment(tmp_path, counting_config(replicates=2))
    experiment.snakemake()
    marker = base64.urlsafe_b64encode(b"results/exp/figures").decode()
    (experiment.root / ".snakemake" / "incomplete").mkdir(parents=True, exist_ok=True)
    (experiment.root / ".snakemake" / "incomplete" / marker).write_text("")
    (experiment.results / "figures" / "stale.svg").write_text("<svg/>")
    run = experiment.snakemake()
    assert "results/exp/figures was being made when its snakemake was killed" in run.stderr
    assert not (experiment.results / "figures" / "stale.svg").exists()
    assert sorted(p.name for p in (experiment.results / "figures").glob("*.svg")) == [
        "01-mean-per-condition.svg",
        "02-spread-per-condition.svg",
    ]
