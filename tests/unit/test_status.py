"""`repliflow status` without running Snakemake: a fresh experiment, and Snakemake's
incomplete markers decoded (runs, failures and kills are in tests/workflow/test_status_e2e.py)."""

from __future__ import annotations

from base64 import urlsafe_b64encode

from repliflow.engine.status import status
from repliflow.snakemake.markers import incomplete_outputs


def test_a_fresh_experiment_is_all_missing(experiment):
    result = status(experiment.root / "config.yaml", experiment.root)
    assert result.counts == {
        name: {"done": 0, "failed": 0, "running": 0, "incomplete": 0, "missing": 5}
        for name in ["baseline", "double"]
    }
    assert result.jobs == 15 and result.jobs_done == 0 and not result.active
    assert result.command[:3] == ["snakemake", "--cores", "all"]
    assert "--rerun-incomplete" not in result.command


def test_markers_are_decoded_including_long_split_names(tmp_path):
    folder = tmp_path / ".snakemake" / "incomplete"
    short = "results/exp/blocks/a-0123456789abcdef/000000-000001.json"
    long = "results/" + "x" * 400 + "/000000-000001.json"
    encoded = urlsafe_b64encode(long.encode()).decode()
    parts = [encoded[i : i + 254] for i in range(0, len(encoded), 254)]
    (folder / "/".join("@" + p for p in parts[:-1])).mkdir(parents=True)
    (folder / "/".join("@" + p for p in parts[:-1]) / parts[-1]).write_text("{}")
    (folder / urlsafe_b64encode(short.encode()).decode()).write_text("{}")
    (folder / "migration_underway").write_text("")
    assert incomplete_outputs(tmp_path) == {short, long}
