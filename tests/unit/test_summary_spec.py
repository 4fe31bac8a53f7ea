"""The summary jobs' spec file (repliflow.snakemake.summary): what aggregate and
view read instead of a Snakemake script object."""

from __future__ import annotations

import os

import pytest

from repliflow.errors import RepliflowError
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


@pytest.mark.parametrize(
    "content",
    [None, "", "{not json", '{"config": {}}', '{"config": [], "config_files": "a.yaml"}', "[1, 2]"],
    ids=["missing", "empty", "truncated", "no config_files", "config not an object", "not an object"],
)
def test_a_missing_or_damaged_spec_says_how_to_make_it_again(tmp_path, content):
    path = tmp_path / "summary-0123.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RepliflowError) as caught:
        summary.read_spec(str(path))
    message = str(caught.value)
    assert str(path) in message and "run the same snakemake command again" in message


def test_the_aggregate_job_fails_with_that_message_and_no_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    from repliflow.engine.aggregate import run_job

    log = tmp_path / "aggregate.log"
    with pytest.raises(SystemExit) as exited:
        run_job(str(tmp_path / "gone.json"), str(log))
    assert exited.value.code == 1
    assert "cannot read the job's spec file" in log.read_text()
    assert "cannot read the job's spec file" in capsys.readouterr().err
