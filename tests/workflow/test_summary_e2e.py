"""The end of every run says per condition what it computed, reused from the
store, and repaired (issue 16, item 8)."""

from __future__ import annotations

import json
import re

from conftest import Experiment, counting_config

from repliflow.store.audit import audit


def _table(text: str) -> dict[str, tuple[int, int, int]]:
    rows = re.findall(
        r"^\s+(\S+)\s+computed\s+([\d,]+)\s+reused\s+([\d,]+)\s+repaired\s+([\d,]+)$", text, re.M
    )
    return {name: tuple(int(n.replace(",", "")) for n in numbers) for name, *numbers in rows}


def test_a_run_says_what_it_computed_reused_and_repaired(tmp_path):
    experiment = Experiment(tmp_path, counting_config(replicates=3))
    first = experiment.snakemake()
    # datasource (shared), scale, metrics: 3 replicate-steps per replicate and condition
    assert _table(first.stderr) == {"baseline": (9, 0, 0), "double": (9, 0, 0)}
    # ... and so do provenance.json and the report's provenance section
    made = {"computed": 9, "reused": 0, "repaired": 0}
    provenance = json.loads((experiment.results / "provenance.json").read_text())
    assert provenance["work"] == {"baseline": made, "double": made}
    page = (experiment.results / "report.html").read_text()
    assert "<th>computed</th><th>reused</th><th>repaired</th>" in page.replace("\n", "")
    assert audit(experiment.results, config=experiment.root / "config.yaml").ok

    again = experiment.snakemake()  # Snakemake's own line says it; it calls no onsuccess then
    assert "Nothing to be done" in again.stderr and "replicate-steps" not in again.stderr

    experiment.config["replicates"] = 5
    experiment.write_config(experiment.config)
    more = experiment.snakemake()
    assert _table(more.stderr) == {"baseline": (6, 9, 0), "double": (6, 9, 0)}
    assert "does not match" not in more.stderr  # more replicates are new work, not a repair
    provenance = json.loads((experiment.results / "provenance.json").read_text())
    assert provenance["work"]["double"] == {"computed": 6, "reused": 9, "repaired": 0}

    provenance = json.loads((experiment.results / "provenance.json").read_text())
    entry = next(o for o in provenance["outputs"] if o["step"] == "scale" and o["conditions"] == ["double"])
    (experiment.results / entry["path"]).unlink()
    repaired = experiment.snakemake()
    table = _table(repaired.stderr)
    assert table["baseline"] == (0, 15, 0)
    computed, reused, fixed = table["double"]
    assert computed == 0 and fixed >= 1 and reused + fixed == 15


def test_a_dry_run_prints_no_summary(tmp_path):
    experiment = Experiment(tmp_path, counting_config(replicates=2))
    dry = experiment.snakemake("-n")
    assert "replicate-steps" not in dry.stderr


def test_a_failed_run_ends_with_what_failed_and_a_short_command(tmp_path):
    experiment = Experiment(tmp_path, counting_config(replicates=3))
    run = experiment.snakemake(check=False, env={"REPLIFLOW_TEST_FAIL": "double:1"})
    assert run.returncode != 0
    # the job's command names a spec file, not ~900 characters of JSON (Snakemake prints it twice)
    assert "--spec-file .snakemake/repliflow-specs/exp/" in run.stderr and "--spec '" not in run.stderr
    # after Snakemake's account of the failed job: what failed, in repliflow's words
    tail = run.stderr.split("Exiting because a job execution failed. Look above for error messages\n")[1]
    assert tail.startswith(
        "repliflow: 1 replicate(s) or job(s) failed in this run:\n"
        "  repliflow: step 'scale' failed for condition 'double', replicate 1: RuntimeError: injected failure"
    )
    assert "fix the cause and run the same command again" in run.stdout
