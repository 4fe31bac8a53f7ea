"""Through real Snakemake: a 3 x 3 x 2 grid, treatments that change the
datasource and several steps at once, and one function used as two steps."""

from __future__ import annotations

import collections
import csv
import json
import textwrap

import pytest
from conftest import COUNTING_STEPS, Experiment, GRID_3x3x2, NAMES_3x3x2, counting_config

SHAPES_STEPS = COUNTING_STEPS + textwrap.dedent(
    """

    def shift(data, ctx, *, by=0.0):
        _record(ctx)
        return [x + by for x in data]
    """
)


def _values(results, metric):
    out = {}
    for row in csv.DictReader((results / "metrics.csv").open()):
        if row["metric"] == metric:
            out[(row["condition"], int(row["replicate"]))] = float(row["value"])
    return out


def test_3x3x2_grid_runs_with_18_treatments_plus_baseline(tmp_path):
    config = counting_config(
        replicates=2,
        treatments={},
        grid=GRID_3x3x2,
        batch={"replicates_per_job": 2},
        hypotheses=[{"name": "spread", "metric": "spread", "verifier": "welch_t"}],
    )
    experiment = Experiment(tmp_path, config)
    experiment.snakemake()
    hypotheses = json.loads((experiment.results / "hypotheses.json").read_text())["hypotheses"]
    assert list(hypotheses[0]["results"]) == NAMES_3x3x2
    rows = (experiment.results / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 19 * 2 * 2
    calls = collections.Counter(line.split(",")[0] for line in experiment.calls())
    # 6 (n, offset) datasources + the baseline's; each of the 19 conditions scales its own
    assert calls == {"datasource": 7 * 2, "scale": 19 * 2, "metrics": 19 * 2}
    spread = _values(experiment.results, "spread")
    for replicate in range(2):  # cells that differ only in factor share their datasource outputs
        one = spread[("n-8_factor-1.0_offset-10.0", replicate)]
        assert spread[("n-8_factor-2.0_offset-10.0", replicate)] == pytest.approx(2 * one)
    provenance = json.loads((experiment.results / "provenance.json").read_text())
    assert provenance["config"]["grid"] == GRID_3x3x2
    assert provenance["conditions"]["n-3_factor-0.5_offset-10.0"]["params"] == {
        "datasource": {"n": 3, "offset": 10.0},
        "scale": {"factor": 0.5},
        "metrics": {},
    }
    html = (experiment.results / "report.html").read_text()
    assert "<h2>Grid</h2>" in html and "n-8_factor-2.0_offset-10.0" in html


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    config = {
        "experiment": "shapes",
        "code": "steps.py",
        "replicates": 3,
        "seed": 3,
        "datasource": {"function": "source", "params": {"n": 4}},
        "pipeline": [
            {"function": "scale", "name": "first", "params": {"factor": 2.0}},
            {"function": "scale", "name": "second", "params": {"factor": 3.0}},
            {"function": "shift", "params": {"by": 0.0}},
            {"function": "metrics"},
        ],
        "treatments": {
            "all_at_once": {
                "datasource": {"offset": 100.0},
                "first": {"factor": -1.0},
                "shift": {"by": 7.0},
            },
            "second_only": {"second": {"factor": 5.0}},
        },
        "hypotheses": [{"name": "mean", "metric": "mean", "verifier": "welch_t"}],
        "batch": {"replicates_per_job": 3},
    }
    experiment = Experiment(tmp_path_factory.mktemp("shapes"), config, steps=SHAPES_STEPS)
    experiment.snakemake()
    return experiment


def test_a_treatment_may_change_the_datasource_and_several_steps_at_once(shapes):
    mean = _values(shapes.results, "mean")
    provenance = json.loads((shapes.results / "provenance.json").read_text())
    assert provenance["conditions"]["all_at_once"]["params"] == {
        "datasource": {"n": 4, "offset": 100.0},
        "first": {"factor": -1.0},
        "second": {"factor": 3.0},
        "shift": {"by": 7.0},
        "metrics": {},
    }
    for replicate in range(3):  # the same seed: the same normal draws before the offset
        x = mean[("baseline", replicate)] / 6.0
        assert mean[("all_at_once", replicate)] == pytest.approx((x + 100.0) * -1.0 * 3.0 + 7.0)
    ran = collections.Counter(tuple(line.split(",")[:2]) for line in shapes.calls())
    for step in ["datasource", "first", "second", "shift", "metrics"]:  # nothing shared with the baseline
        assert ran[(step, "all_at_once")] == 3


def test_one_function_used_as_two_named_steps(shapes):
    provenance = json.loads((shapes.results / "provenance.json").read_text())
    steps = provenance["code"]["steps"]
    assert steps["first"]["function"] == steps["second"]["function"] == "scale"
    assert steps["first"]["code_hash"] == steps["second"]["code_hash"]
    mean = _values(shapes.results, "mean")
    for replicate in range(3):
        x = mean[("baseline", replicate)] / 6.0
        assert mean[("second_only", replicate)] == pytest.approx(x * 2.0 * 5.0)
    ran = collections.Counter(tuple(line.split(",")[:2]) for line in shapes.calls())
    # second_only changes the second use only: the datasource and the first use are shared
    assert ran[("datasource", "second_only")] == ran[("first", "second_only")] == 0
    assert ran[("second", "second_only")] == ran[("shift", "second_only")] == 3
    outputs = provenance["outputs"]
    keys = {(o["step"], o["replicate"]): o["key"] for o in outputs if "baseline" in o["conditions"]}
    assert keys[("first", 0)] != keys[("second", 0)]  # one function, two steps, two keys
    sidecar = next(o for o in outputs if o["step"] == "second" and "second_only" in o["conditions"])
    meta = json.loads((shapes.results / sidecar["sidecar"]).read_text())
    assert (meta["function"], meta["params"]) == ("scale", {"factor": 5.0})
