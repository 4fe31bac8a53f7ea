"""`repliflow power` on a results folder that may be someone else's: malformed,
hostile or unsafe tables end with one line naming the file and exit 1 (never a
traceback or a hang), and the printed command holds only what the user gave
(never provenance.json's `config_files`)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import commands, power
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repliflow.cli import main
from repliflow.errors import BadRecord
from repliflow.report import document as report
from repliflow.report import tables

BASELINE = [1.0, 1.3, 0.8, 1.1, 0.9]
SMALL = [1.2, 1.4, 0.9, 1.3, 1.1]
EVIL = "evil.yaml; rm -rf ~"

RESULT = {
    "p_value": 0.21,
    "p_value_raw": 0.21,
    "p_value_adjusted": 0.21,
    "significant": False,
    "significant_raw": False,
    "mean_difference": 0.16,
    "mean_difference_ci": [-0.11, 0.43],
    "effect_size": "hedges_g",
    "hedges_g": 0.72,
    "hedges_g_ci": [-0.5, 1.9],
    "statistic": 1.38,
    "alpha": 0.05,
    "ci_level": 0.95,
    "alternative": "two-sided",
    "n_baseline": 5,
    "n_treatment": 5,
    "n_missing_baseline": 0,
    "n_missing_treatment": 0,
    "paired": False,
    "method": "welch_t",
    "correction": "holm",
    "note": "",
}
HYPOTHESES = {
    "hypotheses": [
        {
            "name": "shift",
            "metric": "m",
            "verifier": "welch_t",
            "params": {},
            "correction": "holm",
            "alpha": 0.05,
            # a declared smallest effect of interest: the plan extends the run only for one
            "sesoi": {"value": 0.16},
            "results": {"small": RESULT},
            "ranking": ["small"],
            "missing_replicates": {"baseline": [], "small": []},
        }
    ]
}
PROVENANCE = {
    "schema": "repliflow.provenance/2",
    "experiment": "exp",
    "created": "2026-01-01T00:00:00+00:00",
    "config": {"experiment": "exp", "replicates": 5, "seed": 7},
    "config_hash": "0" * 64,
    "config_files": "config/config.yaml",
    "code": {
        "source": "steps.py",
        "sha256": "0" * 64,
        "steps": {"datasource": {"function": "source", "code_hash": "0" * 20}},
    },
    "seeds": {"base": 7, "replicates": [11, 12, 13, 14, 15]},
    "conditions": {
        "baseline": {"params": {"datasource": {"shift": 0.0}}, "segments": ["s0"]},
        "small": {"params": {"datasource": {"shift": 0.2}}, "segments": ["s1"]},
    },
    "environment": {"python": "3.11", "platform": "linux", "host": "h", "packages": {"numpy": "2.0"}},
    "outputs": [],
}


def metrics_text(rows=None) -> str:
    lines = ["condition,replicate,seed,metric,value"]
    for condition, values in rows or [("baseline", BASELINE), ("small", SMALL)]:
        lines += [f"{condition},{r},{11 + r},m,{v!r}" for r, v in enumerate(values)]
    return "\n".join(lines) + "\n"


def make_results(directory: Path, *, hypotheses=None, provenance=None) -> Path:
    """A valid results folder, written by hand (what a finished run leaves for power and the report)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metrics.csv").write_text(metrics_text())
    (directory / "hypotheses.json").write_text(json.dumps(hypotheses or HYPOTHESES))
    (directory / "provenance.json").write_text(json.dumps(provenance or PROVENANCE))
    return directory


@pytest.fixture
def results(tmp_path) -> Path:
    return make_results(tmp_path / "results" / "exp")


def assert_refused(code: int, err: str, path: Path) -> None:
    assert code == 1
    assert str(path) in err, err  # the file is named
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


# --- malformed tables: (file, what to write there) -----------------------------------------


def hypothesis_with(**fields) -> dict:
    document = copy.deepcopy(HYPOTHESES)
    document["hypotheses"][0].update(fields)
    return document


def hypothesis_without(field: str) -> dict:
    document = copy.deepcopy(HYPOTHESES)
    del document["hypotheses"][0][field]
    return document


def result_with(**fields) -> dict:
    return hypothesis_with(results={"small": {**RESULT, **fields}})


def provenance_with(*path: str, value) -> dict:
    document = copy.deepcopy(PROVENANCE)
    record = document
    for part in path[:-1]:
        record = record[part]
    record[path[-1]] = value
    return document


def provenance_without(field: str) -> dict:
    document = copy.deepcopy(PROVENANCE)
    del document[field]
    return document


def nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


HEADER = "condition,replicate,seed,metric,value\n"
MALFORMED = {
    # metrics.csv
    "metrics: a missing column": ("metrics.csv", "condition,seed,metric,value\nbaseline,0,m,1.0\n"),
    "metrics: a non-integer replicate": ("metrics.csv", HEADER + "baseline,1.5,0,m,1.0\n"),
    "metrics: a negative replicate": ("metrics.csv", HEADER + "baseline,-1,0,m,1.0\n"),
    "metrics: a huge replicate": ("metrics.csv", HEADER + f"baseline,{'9' * 5000},0,m,1.0\n"),
    "metrics: a value that is no number": ("metrics.csv", HEADER + "baseline,0,0,m,abc\n"),
    "metrics: a value that is a list": ("metrics.csv", HEADER + 'baseline,0,0,m,"[1, 2]"\n'),
    "metrics: a short row": ("metrics.csv", HEADER + "baseline,0,0,m\n"),
    "metrics: a repeated replicate": ("metrics.csv", HEADER + "baseline,0,0,m,1.0\nbaseline,0,0,m,2.0\n"),
    "metrics: non-UTF-8 bytes": ("metrics.csv", HEADER.encode() + b"bas\xffline,0,0,m,1.0\n"),
    "metrics: an empty file": ("metrics.csv", ""),
    "metrics: a field past the CSV limit": ("metrics.csv", HEADER + "baseline,0,0," + "m" * 200_000 + ",1\n"),
    "metrics: terminal escapes in a name": ("metrics.csv", HEADER + "\x1b[2Jbase,0,0,m,1.0\n"),
    "metrics: a NUL byte": ("metrics.csv", HEADER + "base\x00line,0,0,m,1.0\n"),
    # hypotheses.json
    "hypotheses: not JSON": ("hypotheses.json", "{"),
    "hypotheses: an empty file": ("hypotheses.json", ""),
    "hypotheses: non-UTF-8 bytes": ("hypotheses.json", b'{"hypotheses": ["\xff\xfe"]}'),
    "hypotheses: deep nesting": ("hypotheses.json", "[" * 100_000),
    "hypotheses: deep nesting in params": ("hypotheses.json", hypothesis_with(params={"x": nested(500)})),
    "hypotheses: a huge int": ("hypotheses.json", '{"hypotheses": ' + "9" * 5000 + "}"),
    "hypotheses: a list at the top": ("hypotheses.json", []),
    "hypotheses: no hypotheses field": ("hypotheses.json", {}),
    "hypotheses: hypotheses not a list": ("hypotheses.json", {"hypotheses": {"shift": {}}}),
    "hypotheses: a hypothesis that is no object": ("hypotheses.json", {"hypotheses": ["shift"]}),
    "hypotheses: no name": ("hypotheses.json", hypothesis_without("name")),
    "hypotheses: no metric": ("hypotheses.json", hypothesis_without("metric")),
    "hypotheses: no verifier": ("hypotheses.json", hypothesis_without("verifier")),
    "hypotheses: no results": ("hypotheses.json", hypothesis_without("results")),
    "hypotheses: no ranking": ("hypotheses.json", hypothesis_without("ranking")),
    "hypotheses: a name that is a number": ("hypotheses.json", hypothesis_with(name=3)),
    "hypotheses: terminal escapes in a name": ("hypotheses.json", hypothesis_with(name="\x1b]0;pwned\x07")),
    "hypotheses: results a list": ("hypotheses.json", hypothesis_with(results=[RESULT])),
    "hypotheses: a result that is a string": ("hypotheses.json", hypothesis_with(results={"small": "x"})),
    "hypotheses: a difference that is a list": ("hypotheses.json", result_with(mean_difference=[1, 2])),
    "hypotheses: a statistic that is a string": ("hypotheses.json", result_with(statistic="1.4")),
    "hypotheses: a count that is a string": ("hypotheses.json", result_with(n_missing_baseline="2")),
    "hypotheses: a p-value that is a string": ("hypotheses.json", result_with(p_value="0.01")),
    "hypotheses: a p-value above 1": ("hypotheses.json", result_with(p_value_raw=3.0)),
    "hypotheses: a p-value that is a huge int": ("hypotheses.json", result_with(p_value=10**400)),
    "hypotheses: a CI level that is a huge int": ("hypotheses.json", result_with(ci_level=10**400)),
    "hypotheses: a CI that is a string": ("hypotheses.json", result_with(mean_difference_ci="[0, 1]")),
    "hypotheses: a CI of three bounds": ("hypotheses.json", result_with(hedges_g_ci=[0, 1, 2])),
    "hypotheses: an effect size that is a string": ("hypotheses.json", result_with(hedges_g="big")),
    "hypotheses: significant as a string": ("hypotheses.json", result_with(significant="false")),
    "hypotheses: alpha as a string": ("hypotheses.json", hypothesis_with(params={"alpha": "0.05"})),
    "hypotheses: alpha as a huge int": ("hypotheses.json", hypothesis_with(params={"alpha": 10**400})),
    "hypotheses: an alternative that is a list": (
        "hypotheses.json",
        hypothesis_with(params={"alternative": ["less"]}),
    ),
    "hypotheses: params a list": ("hypotheses.json", hypothesis_with(params=[1])),
    "hypotheses: an unknown correction": ("hypotheses.json", hypothesis_with(correction="magic")),
    "hypotheses: a ranking naming no treatment": ("hypotheses.json", hypothesis_with(ranking=["ghost"])),
    "hypotheses: a ranking of lists": ("hypotheses.json", hypothesis_with(ranking=[["small"]])),
    "hypotheses: results of no condition": (
        "hypotheses.json",
        hypothesis_with(results={"ghost": RESULT}, ranking=["ghost"]),
    ),
    # provenance.json
    "provenance: not JSON": ("provenance.json", "{"),
    "provenance: an empty file": ("provenance.json", ""),
    "provenance: non-UTF-8 bytes": ("provenance.json", b'{"experiment": "\xff"}'),
    "provenance: deep nesting": ("provenance.json", "{" + '"a":{' * 100_000),
    "provenance: deep nesting in the config": (
        "provenance.json",
        provenance_with("config", "x", value=nested(500)),
    ),
    "provenance: a list at the top": ("provenance.json", [PROVENANCE]),
    "provenance: config a string": ("provenance.json", provenance_with("config", value="x")),
    "provenance: replicates a string": (
        "provenance.json",
        provenance_with("config", "replicates", value="5"),
    ),
    "provenance: replicates a huge int": (
        "provenance.json",
        provenance_with("config", "replicates", value=10**400),
    ),
    "provenance: config_files a list": ("provenance.json", provenance_with("config_files", value=[EVIL])),
    "provenance: no baseline condition": (
        "provenance.json",
        provenance_with("conditions", value={"small": PROVENANCE["conditions"]["small"]}),
    ),
    "provenance: condition params a list": (
        "provenance.json",
        provenance_with("conditions", "small", "params", value=[1]),
    ),
    "provenance: a step that is a string": (
        "provenance.json",
        provenance_with("code", "steps", "x", value="y"),
    ),
    "provenance: packages a list": (
        "provenance.json",
        provenance_with("environment", "packages", value=["numpy"]),
    ),
    "provenance: seeds that are strings": (
        "provenance.json",
        provenance_with("seeds", "replicates", value=["a"]),
    ),
    "provenance: no environment": ("provenance.json", provenance_without("environment")),
}


def write(path: Path, content) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content))


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_table_is_one_line_naming_it(results, case, capsys):
    name, content = MALFORMED[case]
    write(results / name, content)
    code, out, err = power(capsys, str(results))
    assert_refused(code, err, results / name)
    assert out == ""


@pytest.mark.parametrize("case", MALFORMED)
def test_the_report_refuses_the_same_tables_with_a_repliflow_error(results, case, tmp_path):
    from repliflow.errors import RepliflowError

    name, content = MALFORMED[case]
    write(results / name, content)
    with pytest.raises(RepliflowError, match=f"{name}"):
        report.write_report(results, tmp_path / "report.html", tmp_path / "report.md")


def test_a_malformed_table_through_the_command_line_prints_no_traceback(results):
    write(results / "hypotheses.json", result_with(p_value="0.01"))
    run = subprocess.run(
        [sys.executable, "-m", "repliflow.cli", "power", str(results)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_refused(run.returncode, run.stderr, results / "hypotheses.json")
    assert "p_value" in run.stderr and run.stdout == ""


@pytest.mark.parametrize("name", ["metrics.csv", "hypotheses.json", "provenance.json"])
def test_a_fifo_in_place_of_a_table_does_not_hang(results, name):
    (results / name).unlink()
    os.mkfifo(results / name)
    run = subprocess.run(
        [sys.executable, "-m", "repliflow.cli", "power", str(results)],
        capture_output=True,
        text=True,
        timeout=60,  # a reader that opened the FIFO would block here for good
    )
    assert_refused(run.returncode, run.stderr, results / name)
    assert "not a regular file" in run.stderr


@pytest.mark.parametrize("name", ["metrics.csv", "hypotheses.json", "provenance.json"])
def test_a_table_linked_to_a_file_outside_is_not_followed(results, tmp_path, name, capsys):
    outside = make_results(tmp_path / "outside")  # a valid table: only the link is wrong
    (results / name).unlink()
    (results / name).symlink_to(outside / name)
    code, _, err = power(capsys, str(results))
    assert_refused(code, err, results / name)
    assert "symbolic link" in err


def test_a_table_linked_to_a_device_or_that_is_a_folder_is_refused(results, capsys):
    (results / "metrics.csv").unlink()
    (results / "metrics.csv").symlink_to("/dev/zero")
    code, _, err = power(capsys, str(results))
    assert_refused(code, err, results / "metrics.csv")
    (results / "metrics.csv").unlink()
    (results / "metrics.csv").mkdir()
    code, _, err = power(capsys, str(results))
    assert_refused(code, err, results / "metrics.csv")


def test_a_linked_results_folder_is_refused(results, tmp_path, capsys):
    link = tmp_path / "linked"
    link.symlink_to(results)
    code, _, err = power(capsys, str(link))
    assert_refused(code, err, link)


def test_missing_tables_say_to_run_snakemake(results, capsys):
    (results / "hypotheses.json").unlink()
    code, _, err = power(capsys, str(results))
    assert_refused(code, err, results / "hypotheses.json")
    assert "run snakemake" in err
    code, _, err = power(capsys, str(results / "nowhere"))
    assert_refused(code, err, results / "nowhere")
    code, _, err = power(capsys, str(results / "metrics.csv"))  # a file, not a results folder
    assert_refused(code, err, results / "metrics.csv")


def test_no_provenance_is_fine(results, capsys):
    (results / "provenance.json").unlink()
    code, out, _ = power(capsys, str(results))
    assert code == 0 and "shift/small" in out


# --- the printed command -------------------------------------------------------------------------


def test_a_recorded_config_path_never_reaches_the_printed_command(tmp_path, capsys):
    results = make_results(tmp_path / "exp", provenance=provenance_with("config_files", value=EVIL))
    code, out, _ = power(capsys, str(results))
    assert code == 0 and "snakemake --cores all --config replicates=" in out
    assert "evil" not in out and "rm -rf" not in out
    assert "--configfile <your config>" in out  # the note says what to add, not what the record says

    code, out, _ = power(capsys, str(results), "--json")
    assert code == 0 and "evil" not in out and "rm -rf" not in out
    plan = json.loads(out)
    assert plan["extend"] and plan["configfile"] is None and plan["note"]
    for command in commands(plan):
        assert "--configfile" not in command
        assert command[:3] == ["snakemake", "--cores", "all"] and command[-2] == "--config"

    for users_config in ["my.yaml", "my dir/x;y $(z).yaml"]:
        code, out, _ = power(capsys, str(results), "--configfile", users_config, "--json")
        plan = json.loads(out)
        assert code == 0 and "evil" not in out and plan["configfile"] == users_config and not plan["note"]
        for command in commands(plan):
            assert command[3:5] == ["--configfile", users_config]
        code, out, _ = power(capsys, str(results), "--configfile", users_config)
        assert code == 0 and "evil" not in out and "note:" not in out
        assert f"--configfile {shlex.quote(users_config)} --config replicates=" in out


def test_the_report_command_carries_no_recorded_path(tmp_path):
    results = make_results(tmp_path / "exp", provenance=provenance_with("config_files", value=EVIL))
    shown = [b.text for b in report.build(tables.read_results(results)) if b.kind == "pre"]
    assert shown and all("snakemake --cores all --config" in text for text in shown)
    assert not any("evil" in text or "--configfile" in text for text in shown)


def test_the_default_config_needs_no_note(results, capsys):
    code, out, _ = power(capsys, str(results))
    assert code == 0 and "snakemake --cores all --config replicates=" in out and "note:" not in out


# --- any edit of a valid folder: a plan or one line, never an exception ------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["small", "baseline", "two-sided", "hedges_g", "welch_t", "paired_t", "holm"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _places(value, at=()):
    yield at
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _places(child, (*at, key))


def _edited(document, data):
    document = copy.deepcopy(document)
    place = data.draw(st.sampled_from([p for p in _places(document) if p]))
    parent = document
    for key in place[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and data.draw(st.booleans()):
        del parent[place[-1]]
    else:
        parent[place[-1]] = data.draw(JSON_VALUES)
    return document


def _edited_folder(data, folder: str) -> tuple[Path, str]:
    """A valid results folder in ``folder`` with one edit drawn in hypotheses.json or provenance.json."""
    name = data.draw(st.sampled_from(["hypotheses.json", "provenance.json"]))
    results = make_results(Path(folder) / "exp")
    write(results / name, _edited(HYPOTHESES if name == "hypotheses.json" else PROVENANCE, data))
    return results, name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_edit_gives_a_plan_or_one_line(data):
    with tempfile.TemporaryDirectory() as folder:
        results, name = _edited_folder(data, folder)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["power", str(results), "--json"])
        if code == 0:
            json.loads(out.getvalue())
        else:
            assert code == 1 and len(err.getvalue().strip().splitlines()) == 1
            # the edited file, or hypotheses.json when they no longer agree on the conditions
            assert str(results / name) in err.getvalue() or "not a condition" in err.getvalue()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_report_renders_whatever_the_checks_let_through(data):
    with tempfile.TemporaryDirectory() as folder:
        results, _ = _edited_folder(data, folder)
        try:
            loaded = tables.read_results(results)
        except BadRecord:
            return
        # every section builds and every plot draws (a failure would be a note saying it could not)
        failed = [b.text for b in report.build(loaded) if b.kind == "note" and "could not be" in b.text]
        assert not failed


TOKENS = [*'ab,\n\r" -.019eE', "\x00", "\x1b", "nan", "inf", "baseline", "m"]


@settings(max_examples=150, deadline=None)
@given(text=st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_any_metrics_text_gives_values_or_a_bad_record(text):
    try:
        values = tables.parse_metrics(HEADER + text, Path("metrics.csv"))
    except BadRecord as exc:
        assert "metrics.csv" in str(exc) and "\n" not in str(exc)
    else:
        assert all(isinstance(v, float) for vs in values.values() for v in vs)
