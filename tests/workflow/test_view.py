"""The readable view: runs/<condition>/rep-<r>/<step>.<ext> links into the store."""

from __future__ import annotations

import csv
import json
import os
import shutil

import pytest
from conftest import Experiment, counting_config

from repliflow.errors import LayoutError
from repliflow.store import view
from repliflow.store.view import build_view


@pytest.fixture
def results(finished, tmp_path):
    copy = tmp_path / "results" / "exp"
    shutil.copytree(finished.results, copy, symlinks=True)
    return copy


def _provenance(results) -> dict:
    return json.loads((results / "provenance.json").read_text())


def test_the_workflow_builds_relative_links_for_every_condition_and_replicate(finished):
    results = finished.results
    provenance = _provenance(results)
    expected = 0
    for output in provenance["outputs"]:
        for condition in output["conditions"]:
            expected += 1
            link = results / "runs" / condition / f"rep-{output['replicate']}" / f"{output['step']}.json"
            assert link.is_symlink() and not os.path.isabs(os.readlink(link))
            assert link.resolve() == (results / output["path"]).resolve()
            sidecar = link.resolve().with_name(f"{output['key']}.meta.json")  # beside the output
            assert json.loads(sidecar.read_text())["key"] == output["key"]
            assert not link.with_name(f"{output['step']}.meta.json").exists()
    rows = list(csv.DictReader((results / "runs" / "index.csv").open()))
    assert len(rows) == expected == 5 * 3 * 2
    assert rows[0].keys() == set(view.INDEX_COLUMNS)
    assert {(r["condition"], r["replicate"], r["step"]) for r in rows} == {
        (c, str(r), s)
        for c in ["baseline", "double"]
        for r in range(5)
        for s in ["datasource", "scale", "metrics"]
    }


def test_the_view_survives_moving_the_results(results):
    """Relative links: the copied tree's links point into the copy's store."""
    link = results / "runs" / "double" / "rep-2" / "metrics.json"
    assert link.resolve().is_relative_to(results.resolve())
    assert json.loads(link.read_text()).keys() == {"mean", "spread"}


def test_a_rebuild_drops_links_of_conditions_gone_from_provenance(results):
    provenance = _provenance(results)
    provenance["outputs"] = [o for o in provenance["outputs"] if o["conditions"] != ["double"]]
    for output in provenance["outputs"]:
        output["conditions"] = ["baseline"]
    (results / "provenance.json").write_text(json.dumps(provenance))
    result = build_view(results)
    assert result.links and result.rows == 15
    assert sorted(p.name for p in (results / "runs").iterdir()) == ["baseline", "index.csv"]
    assert not [p for p in results.iterdir() if p.name.startswith(".runs")]


def test_without_symlinks_only_the_index_is_written(results, monkeypatch):
    shutil.rmtree(results / "runs")

    def refuse(*args, **kwargs):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(view.os, "symlink", refuse)
    result = build_view(results)
    assert not result.links
    assert sorted(p.name for p in (results / "runs").iterdir()) == ["README.txt", "index.csv"]
    rows = list(csv.DictReader((results / "runs" / "index.csv").open()))
    assert len(rows) == 30 and rows[0]["output"].startswith("store/")
    note = (results / "runs" / "README.txt").read_text()
    assert "this file system refused a symlink (Operation not permitted)" in note
    assert "view.max_links" not in note  # raising it would not help here


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("conditions", ["../../../escaped"]),
        ("conditions", ["/tmp/escaped"]),
        ("step", "../../escaped"),
        ("step", "a/b"),
        ("replicate", -1),
        ("replicate", "0/../../x"),
        ("path", "../../../etc/passwd"),
        ("sidecar", "store/../../../etc/passwd"),
    ],
)
def test_names_from_provenance_cannot_escape_runs(results, tmp_path, field, value):
    provenance = _provenance(results)
    provenance["outputs"][3][field] = value
    (results / "provenance.json").write_text(json.dumps(provenance))
    before = sorted(p for p in tmp_path.rglob("*") if "runs" not in p.parts)
    with pytest.raises(LayoutError, match=r"outputs\[3\]"):
        build_view(results)
    assert sorted(p for p in tmp_path.rglob("*") if "runs" not in p.parts) == before
    assert not (tmp_path / "escaped").exists()


def test_replicate_folders_are_zero_padded_to_sort_as_numbers(results):
    outputs = _provenance(results)["outputs"]
    for output in outputs:
        output["replicate"] *= 3  # 0, 3, 6, 9, 12: two digits
    build_view(results, outputs)
    folders = sorted(p.name for p in (results / "runs" / "baseline").iterdir())
    assert folders == ["rep-00", "rep-03", "rep-06", "rep-09", "rep-12"]
    assert sorted(p.name for p in (results / "runs" / "baseline" / "rep-03").iterdir()) == [
        "datasource.json",
        "metrics.json",
        "scale.json",
    ]


def test_above_max_links_only_the_index_is_written_and_says_why(results):
    outputs = _provenance(results)["outputs"]  # 15 outputs, 30 rows (2 conditions share them)
    result = build_view(results, outputs, max_links=29)
    assert not result.links and result.rows == 30
    assert result.why_no_links == "30 outputs, more than view.max_links (29)"
    assert sorted(p.name for p in (results / "runs").iterdir()) == ["README.txt", "index.csv"]
    note = (results / "runs" / "README.txt").read_text()
    assert "30 outputs, more than view.max_links (29)" in note and "Raise view.max_links" in note
    assert len(list(csv.DictReader((results / "runs" / "index.csv").open()))) == 30
    assert not [p for p in results.iterdir() if p.name.startswith(".runs")]


def test_at_max_links_every_link_is_made(results):
    result = build_view(results, _provenance(results)["outputs"], max_links=30)
    assert result.links and result.why_no_links is None
    assert len(list((results / "runs").glob("*/rep-*/*.json"))) == 30
    assert not (results / "runs" / "README.txt").exists()


def test_a_view_with_links_shrinks_to_the_index_when_the_limit_drops(results):
    """The old links go with the swap: none of an earlier view stays behind."""
    assert (results / "runs" / "baseline").is_dir()
    build_view(results, max_links=0)
    assert sorted(p.name for p in (results / "runs").iterdir()) == ["README.txt", "index.csv"]


def test_manifest_entries_still_have_their_names_checked(results):
    """``checked`` skips re-checking paths the manifests' check passed, not the
    step and condition names, which become paths."""
    outputs = _provenance(results)["outputs"]
    outputs[4]["step"] = "../escaped"
    with pytest.raises(LayoutError, match=r"outputs\[4\]: step name '../escaped'"):
        build_view(results, outputs, checked=True)
    outputs[4]["step"], outputs[5]["conditions"] = "scale", ["a/b"]
    with pytest.raises(LayoutError, match=r"outputs\[5\]: condition 'a/b'"):
        build_view(results, outputs, checked=True)
    assert not (results.parent / "escaped").exists()


def test_the_workflow_honours_view_max_links(tmp_path):
    config = counting_config()
    config["view"] = {"max_links": 10}
    experiment = Experiment(tmp_path / "limited", config)
    experiment.snakemake()
    runs = experiment.results / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["README.txt", "index.csv"]
    assert len(list(csv.DictReader((runs / "index.csv").open()))) == 30
    log = (experiment.results / "logs" / "view.log").read_text()
    assert "index.csv only (30 outputs, more than view.max_links (10))" in log


def test_what_a_killed_view_job_left_behind_is_removed(results, tmp_path):
    """A view job killed while building (its staging tree) or while swapping
    (the old tree) leaves them beside runs/; the next build removes them,
    a planted link as the link."""
    (results / ".runs.99999.tmp" / "baseline" / "rep-0").mkdir(parents=True)
    (results / ".runs.99999.tmp" / "baseline" / "rep-0" / "metrics.json").symlink_to("../x")
    (results / ".runs.88888.old" / "double").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the view's")
    (results / ".runs.77777.tmp").symlink_to(outside)
    result = build_view(results)
    assert result.links
    assert not [p for p in results.iterdir() if p.name.startswith(".runs")]
    assert (outside / "keep.txt").read_text() == "not the view's"
    assert len(list((results / "runs").glob("*/rep-*/*.json"))) == 30
