"""Treatment grids: expansion, names, validation, and the report's grid section."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml
from conftest import COUNTING_STEPS, REPO, GRID_3x3x2, NAMES_3x3x2
from test_plan import plan_for

from repliflow.core import grid
from repliflow.errors import ConfigError
from repliflow.report.grid import grid_elements

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
NAME = SCHEMA["$defs"]["name"]


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "steps.py").write_text(COUNTING_STEPS)
    return tmp_path


def names(grid_config) -> list[str]:
    return [cell.name for cell in grid.cells(grid_config)]


def test_3x3x2_grid_gives_18_named_treatments_after_the_explicit_ones(workdir):
    plan = plan_for(workdir, grid=GRID_3x3x2)
    assert [c.name for c in plan.conditions] == ["baseline", "double", *NAMES_3x3x2]
    cell = plan.condition("n-5_factor-2.0_offset-10.0")
    assert cell.steps[0].params == {"n": 5, "offset": 10.0}
    assert cell.steps[1].params == {"factor": 2.0}
    for name in NAMES_3x3x2:
        assert re.match(NAME["pattern"], name) and ".." not in name and len(name) <= NAME["maxLength"]


def test_names_depend_only_on_the_config_across_processes(workdir):
    """Two fresh interpreters with different hash seeds (two machines, as far as
    names are concerned) name the cells identically, and as the test expects."""
    script = (
        "import json, sys, yaml\n"
        "from repliflow.core.grid import cells\n"
        "print(json.dumps([c.name for c in cells(yaml.safe_load(sys.stdin.read())['grid'])]))\n"
    )
    text = yaml.safe_dump({"grid": GRID_3x3x2}, sort_keys=False)  # axis order is part of the config
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            cwd=workdir,
        ).stdout
        for seed in ("1", "2")
    ]
    assert json.loads(outputs[0]) == json.loads(outputs[1]) == NAMES_3x3x2


def test_values_keep_their_type_in_names_and_recipes(workdir):
    """No alpha~1 vs alpha~1.0 drift: int 1 and float 1.0 are different recipes
    with different names, both taken from the canonical value."""
    assert names({"scale.factor": [1, 1.0, 1e-05, 1e16, -2.5, True, None]}) == [
        "factor-1",
        "factor-1.0",
        "factor-1e-05",
        "factor-1e16",
        "factor--2.5",
        "factor-true",
        "factor-null",
    ]
    plan = plan_for(workdir, grid={"scale.factor": [1, 1.0]})
    one, one_float = plan.condition("factor-1"), plan.condition("factor-1.0")
    assert one.steps[1].params["factor"] == 1 and isinstance(one.steps[1].params["factor"], int)
    assert isinstance(one_float.steps[1].params["factor"], float)
    assert one.prefix_ids[-1] != one_float.prefix_ids[-1]


def test_unsafe_long_or_clashing_values_are_hashed():
    found = grid.axes(
        {"scale.factor": ["plain", "has space", "a/b", "x" * 30, [1, 2], {"k": 1}, "1", 1, "..", "-"]}
    )[0]
    tokens = list(found.tokens)
    assert tokens[0] == "plain"
    hashed = tokens[1:]
    assert all(re.fullmatch(r"h[0-9a-f]{8}", t) for t in hashed), tokens  # "1" and 1 clash: both hashed
    assert len(set(tokens)) == len(tokens)
    again = grid.axes({"scale.factor": ["plain", "has space"]})[0].tokens
    assert again[1] == tokens[1]  # a value's hash does not depend on its neighbours


def test_shared_parameter_names_are_labelled_with_their_step():
    assert names({"scale.factor": [2], "shift.factor": [3], "datasource.n": [4]}) == [
        "scale.factor-2_shift.factor-3_n-4"
    ]


def test_names_too_long_for_a_path_fall_back_to_a_hash_of_the_cell():
    long = {f"datasource.parameter_{i:02d}": ["value_number_one"] for i in range(6)}
    found = names(long)
    assert len(found) == 1 and re.fullmatch(r"grid-[0-9a-f]{16}", found[0])
    assert names(long) == found


def test_grid_and_explicit_treatments_combine_and_collisions_are_errors(workdir):
    plan = plan_for(workdir, grid={"scale.factor": [3.0]}, treatments={"triple": {"scale": {"factor": 3.0}}})
    assert [c.name for c in plan.conditions] == ["baseline", "triple", "factor-3.0"]
    with pytest.raises(ConfigError) as error:
        plan_for(workdir, grid={"scale.factor": [3.0]}, treatments={"factor-3.0": {"scale": {"factor": 4.0}}})
    assert error.value.key == "treatments.factor-3.0" and "explicit treatment" in str(error.value)


@pytest.mark.parametrize(
    ("bad", "key", "message"),
    [
        ({"scal.factor": [1]}, "grid.scal.factor", "unknown step 'scal'"),
        ({"scale.fctor": [1]}, "grid.scale.fctor", "does not accept it"),
        ({"scale.factor": [1, 1]}, "grid.scale.factor", "listed twice"),
        ({"scale.factor": []}, "grid.scale.factor", "non-empty"),
        ({"scale.factor": 2}, "grid.scale.factor", "array"),
        ({"scale": [1]}, "grid", "does not match"),
    ],
)
def test_bad_grids_name_their_key(workdir, bad, key, message):
    with pytest.raises(ConfigError) as error:
        plan_for(workdir, grid=bad)
    assert error.value.key == key and message in str(error.value)


def test_huge_grids_are_refused(workdir):
    with pytest.raises(ConfigError, match="more than"):
        plan_for(workdir, grid={"datasource.n": list(range(1, 201)), "scale.factor": list(range(60))})


def test_grid_schema_has_a_description_on_every_property():
    section = SCHEMA["properties"]["grid"]
    assert section["description"]
    assert section["propertyNames"]["description"] and section["additionalProperties"]["description"]


def _results(grid_config, conditions_values, hypotheses=()):
    return SimpleNamespace(
        provenance={"config": {"grid": grid_config}}, values=conditions_values, hypotheses=list(hypotheses)
    )


def test_report_shows_a_table_per_cell_and_a_heatmap_for_two_axes():
    grid_config = {"datasource.n": [3, 5], "scale.factor": [1.0, 2.0]}
    values = {("baseline", "m"): [1.0, 1.0]}
    for index, name in enumerate(names(grid_config)):
        values[(name, "m")] = [float(index), float(index) + 2]
    hypothesis = {"name": "h", "metric": "m", "results": {"n-5_factor-2.0": {"significant": True}}}
    blocks = grid_elements(_results(grid_config, values, [hypothesis]))
    table = next(b for b in blocks if b["kind"] == "table")
    assert table["headers"] == ["n", "factor", "m (mean)"]
    assert table["rows"][0] == ["3", "1.0", "1"]
    assert table["rows"][3] == ["5", "2.0", "4†"]
    assert table["rows"][-1] == ["baseline", "", "1"]
    figures = [b for b in blocks if b["kind"] == "figure"]
    assert (
        len(figures) == 1 and figures[0]["svg"].startswith("<svg") and "n-5_factor-2.0" in figures[0]["svg"]
    )


def test_report_facets_a_third_axis_and_skips_without_a_grid():
    grid_config = {"datasource.n": [3, 5], "scale.factor": [1.0, 2.0], "datasource.offset": [0.0, 1.0]}
    values = {(name, "m"): [1.0] for name in names(grid_config)}
    figures = [b for b in grid_elements(_results(grid_config, values)) if b["kind"] == "figure"]
    assert [("offset = 0.0" in f["text"], "offset = 1.0" in f["text"]) for f in figures] == [
        (True, False),
        (False, True),
    ]
    one_axis = grid_elements(_results({"scale.factor": [1.0, 2.0]}, {("factor-1.0", "m"): [1.0]}))
    assert [b["kind"] for b in one_axis] == ["h2", "p", "table"]
    assert grid_elements(_results(None, {})) == []


def test_grid_heatmaps_take_values_near_the_float_maximum_and_infinite_ones():
    from repliflow.core import grid
    from repliflow.report.grid import grid_elements

    grid_config = {"datasource.n": [3, 5], "scale.factor": [1.0, 2.0]}
    cells = [cell.name for cell in grid.cells(grid_config)]
    values = {("baseline", "m"): [1.0, 1.0]}
    values.update(
        {(name, "m"): [v, v] for name, v in zip(cells, [1.7e308, -1.7e308, 0.0, math.inf], strict=True)}
    )
    results = SimpleNamespace(provenance={"config": {"grid": grid_config}}, values=values, hypotheses=[])
    blocks = grid_elements(results)
    table = next(b for b in blocks if b["kind"] == "table")
    assert [row[-1] for row in table["rows"]] == ["1.7e+308", "-1.7e+308", "0", "–", "1"]
    (figure,) = [b for b in blocks if b["kind"] == "figure"]
    assert 'fill="#08306b"' in figure["svg"] and 'fill="#f7fbff"' in figure["svg"]  # the scale's two ends
