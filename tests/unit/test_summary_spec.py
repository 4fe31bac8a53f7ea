"""The summary jobs' spec file (repliflow.snakemake.summary): what aggregate and
view read instead of a Snakemake script object."""

from __future__ import annotations

import os

import pytest

from repliflow.snakemake import summary

CONFIG = {"experiment": "exp", "grid": {"n": [10, 40], "noise": [0.5, 1.0]}, "replicates": 2}


def test_the_spec_keeps_the_config_and_its_key_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    reordered = {"replicates": 2, "grid": {"noise": [0.5, 1.0], "n": [10, 40]}, "experiment": "exp"}
    text = summary.spec_text(CONFIG, "config/config.yaml")
    path = summary.spec_path("exp", text)
    summary.write_spec(path, text)
    config, files = summary.read_spec(path)
    assert config == CONFIG and files == "config/config.yaml"
    # a grid's axes name its conditions in the config's order: never sorted
    assert list(config["grid"]) == ["n", "noise"] and list(config) == list(CONFIG)
    assert summary.spec_path("exp", summary.spec_text(reordered, "config/config.yaml")) != path


def test_the_path_changes_with_the_config_so_a_changed_config_reruns_the_jobs(tmp_path):
    one = summary.spec_path("exp", summary.spec_text(CONFIG, "a.yaml"))
    assert one.startswith(".snakemake/repliflow-specs/exp/summary-") and one.endswith(".json")
    assert one == summary.spec_path("exp", summary.spec_text(dict(CONFIG), "a.yaml"))
    assert one != summary.spec_path("exp", summary.spec_text({**CONFIG, "replicates": 3}, "a.yaml"))
    assert one != summary.spec_path("exp", summary.spec_text(CONFIG, "b.yaml"))


def test_an_unchanged_spec_is_not_rewritten(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = summary.spec_text(CONFIG, "a.yaml")
    path = summary.spec_path("exp", text)
    summary.write_spec(path, text)
    os.utime(path, (1, 1))
    summary.write_spec(path, text)
    assert os.stat(path).st_mtime == 1
    (tmp_path / path).write_text("broken")
    summary.write_spec(path, text)  # a damaged one is written again
    assert summary.read_spec(path) == (CONFIG, "a.yaml")


def test_a_config_that_is_no_json_is_refused():
    with pytest.raises(ValueError):
        summary.spec_text({**CONFIG, "x": float("nan")}, "a.yaml")


def test_the_entry_point_names_its_jobs(capsys):
    with pytest.raises(SystemExit):
        summary.main(["report", "--spec-file", "x", "--log", "y"])
    assert "invalid choice: 'report'" in capsys.readouterr().err
