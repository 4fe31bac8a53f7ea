"""repliflow.store.shared: where a shared store is, its registry, and what a
registered results folder names; the layout, plan, trust and view follow it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import COUNTING_STEPS, counting_config, store_value

from repliflow.core.config import validate_config
from repliflow.core.plan import build_plan
from repliflow.errors import ConfigError
from repliflow.store import shared
from repliflow.store.layout import ResultsLayout
from repliflow.store.trust import unsigned_pickles

KEY_A, KEY_B = "a" * 64, "ab" + "c" * 62


@pytest.fixture(autouse=True)
def _no_store_variable(monkeypatch):
    monkeypatch.delenv(shared.ENVIRONMENT_VARIABLE, raising=False)


def _plan(tmp_path: Path, **overrides):
    (tmp_path / "steps.py").write_text(COUNTING_STEPS)
    return build_plan(validate_config(counting_config(**overrides)), workdir=str(tmp_path))


def test_without_a_store_setting_the_results_folder_keeps_its_own(tmp_path):
    plan = _plan(tmp_path)
    assert plan.store is None and plan.store_dir == "results/exp/store" and "store" not in plan.config
    assert "store" not in plan.block_spec(plan.blocks(next(iter(plan.segments.values())))[0])


def test_a_relative_store_is_taken_from_the_working_directory_and_made_absolute(tmp_path):
    plan = _plan(tmp_path, store="../shared")
    expected = str((tmp_path.parent / "shared").resolve())
    assert plan.store == expected and plan.store_dir == expected
    assert plan.config["store"] == expected  # the jobs see the same store, whatever their environment
    assert plan.block_spec(plan.blocks(next(iter(plan.segments.values())))[0])["store"] == expected
    assert plan.layout.quarantine == f"{expected}/quarantine"
    assert plan.layout_at(tmp_path).root == f"{tmp_path}/results/exp"


def test_the_environment_variable_is_used_when_the_config_names_no_store(tmp_path, monkeypatch):
    monkeypatch.setenv(shared.ENVIRONMENT_VARIABLE, str(tmp_path / "env-store"))
    assert _plan(tmp_path).store == str(tmp_path / "env-store")
    assert _plan(tmp_path, store=str(tmp_path / "config-store")).store == str(tmp_path / "config-store")


def test_a_home_relative_store_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _plan(tmp_path, store="~/repliflow-store").store == str(tmp_path / "home" / "repliflow-store")


def test_naming_the_results_folders_own_store_is_the_default(tmp_path):
    assert _plan(tmp_path, store="results/exp/store").store is None


@pytest.mark.parametrize("where", ["results/other/store", "results", "results/exp/shared"])
def test_a_store_inside_results_is_refused_naming_the_key(tmp_path, where):
    with pytest.raises(ConfigError, match="inside a results folder") as caught:
        _plan(tmp_path, store=where)
    assert caught.value.key == "store"


def test_a_store_that_is_another_results_folders_store_is_refused(tmp_path):
    other = tmp_path / "elsewhere" / "results" / "x"
    (other / "blocks").mkdir(parents=True)
    with pytest.raises(ConfigError, match="inside a results folder"):
        _plan(tmp_path, store=str(other / "store"))


def test_a_store_that_is_a_file_is_refused_and_the_variable_is_named(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(shared.ENVIRONMENT_VARIABLE, str(tmp_path / "a-file"))
    with pytest.raises(ConfigError, match="is not a folder") as caught:
        _plan(tmp_path)
    assert "REPLIFLOW_STORE" in str(caught.value)


def test_the_layout_resolves_record_paths_into_the_shared_store():
    layout = ResultsLayout.of("exp", "/w", store="/s")
    assert layout.store == "/s" and layout.in_store("store/ab/abc.json") == "/s/ab/abc.json"
    assert layout.in_store("metrics.csv") == "/w/results/exp/metrics.csv"
    assert ResultsLayout.of("exp").in_store("store/ab/abc.json") == "results/exp/store/ab/abc.json"


def test_a_results_folder_is_registered_once(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    results = tmp_path / "work" / "results" / "exp"
    assert shared.register(str(store), str(results), str(tmp_path / "work"), "exp")
    assert not shared.register(str(store), str(results), str(tmp_path / "work"), "exp")
    found, problems = shared.registrations(str(store))
    assert problems == [] and [(r.results, r.experiment, r.exists) for r in found] == [
        (str(results), "exp", False)
    ]
    results.mkdir(parents=True)
    assert shared.registrations(str(store))[0][0].exists


@pytest.mark.parametrize(
    "text, problem",
    [
        ("{broken", "not valid JSON"),
        ('{"schema": "other"}', "not a repliflow.store-registration/1 record"),
        (
            json.dumps(
                {
                    "schema": shared.REGISTRATION_SCHEMA,
                    "results": "relative/path",
                    "workdir": "/w",
                    "experiment": "x",
                    "host": "h",
                }
            ),
            "not an absolute path",
        ),
    ],
)
def test_an_unreadable_registration_is_a_problem_not_a_guess(tmp_path, text, problem):
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "x.json").write_text(text)
    found, problems = shared.registrations(str(tmp_path))
    assert found == [] and len(problems) == 1 and problem in problems[0]


def test_a_linked_registry_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "registry").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(Exception, match="symbolic link"):
        shared.registrations(str(tmp_path / "store"))


def _results_naming(results: Path, keys_in_manifest: list[str], keys_in_provenance: list[str]) -> None:
    (results / "blocks" / "seg").mkdir(parents=True)
    steps = [{"key": key} for key in keys_in_manifest]
    (results / "blocks" / "seg" / "000000-000001.json").write_text(
        json.dumps({"replicates": [{"replicate": 0, "steps": steps}]})
    )
    (results / "provenance.json").write_text(
        json.dumps({"outputs": [{"key": k} for k in keys_in_provenance]})
    )


def test_referenced_keys_come_from_manifests_and_provenance(tmp_path):
    _results_naming(tmp_path, ["k1", "k2"], ["k3"])
    assert shared.referenced_keys(tmp_path) == {"k1", "k2", "k3"}


def test_referenced_keys_refuse_a_broken_manifest(tmp_path):
    _results_naming(tmp_path, ["k1"], [])
    (tmp_path / "blocks" / "seg" / "000001-000002.json").write_text("{")
    with pytest.raises(Exception, match="not valid JSON"):
        shared.referenced_keys(tmp_path)


def test_trust_in_a_shared_store_offers_only_the_pickles_the_results_folder_names(tmp_path, monkeypatch):
    monkeypatch.setenv("REPLIFLOW_TRUST_KEY_FILE", str(tmp_path / "someone-else.key"))
    store = tmp_path / "store"
    for key in (KEY_A, KEY_B):
        store_value(store, key, {1, 2})  # a set: stored as a pickle, signed by someone else's key
    monkeypatch.setenv("REPLIFLOW_TRUST_KEY_FILE", str(tmp_path / "mine.key"))
    results = tmp_path / "results" / "exp"
    results.mkdir(parents=True)
    _results_naming(results, [KEY_A], [])
    pending, _ = unsigned_pickles(results, store)
    assert [path.name for path, _ in pending] == [f"{KEY_A}.meta.json"]
    assert os.path.exists(store / KEY_B[:2] / f"{KEY_B}.pkl")


def test_a_job_planning_from_the_plans_config_finds_the_store_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(shared.ENVIRONMENT_VARIABLE, str(tmp_path / "env-store"))
    plan = _plan(tmp_path)
    monkeypatch.delenv(shared.ENVIRONMENT_VARIABLE)  # a cluster job's environment without it
    # the rules pass the plan's config to aggregate, view and look (common.smk: CONFIG = PLAN.config)
    assert build_plan(plan.config, workdir=str(tmp_path)).store == str(tmp_path / "env-store")
