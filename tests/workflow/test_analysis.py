"""repliflow.load: a finished run's results as pandas objects (issue 16), read
from the results folder alone, with stored outputs checked before they load."""

from __future__ import annotations

import csv
import json
import sys

import pandas as pd
import pytest
from conftest import COUNTING_STEPS, Experiment, copied, counting_config

import repliflow
from repliflow.errors import RepliflowError, StoreMismatch
from repliflow.store import storage


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Experiment:
    experiment = Experiment(
        tmp_path_factory.mktemp("analysis"), counting_config(replicates=4), COUNTING_STEPS
    )
    experiment.snakemake()
    return experiment


def test_metrics_is_the_tidy_table_with_exact_seeds(finished):
    run = repliflow.load(finished.results)
    frame = run.metrics
    assert list(frame.columns) == ["condition", "replicate", "seed", "metric", "value"]
    rows = list(csv.DictReader((finished.results / "metrics.csv").open()))
    assert len(frame) == len(rows) == 2 * 4 * 2  # conditions x replicates x metrics
    assert frame["value"].tolist() == [float(r["value"]) for r in rows]
    assert frame["seed"].tolist() == [int(r["seed"]) for r in rows]  # 128-bit ints, exact
    assert all(type(seed) is int for seed in frame["seed"])
    assert frame["replicate"].dtype == "int64" and frame["condition"].tolist()[0] == "baseline"


def test_wide_has_a_column_per_metric_baseline_first(finished):
    wide = repliflow.load(finished.results).wide()
    assert list(wide.columns) == ["mean", "spread"]
    assert list(wide.index.names) == ["condition", "replicate"]
    assert wide.index.tolist()[:4] == [("baseline", r) for r in range(4)]
    assert len(wide) == 8


def test_hypotheses_one_row_per_hypothesis_and_treatment(finished):
    run = repliflow.load(finished.results)
    frame = run.hypotheses
    document = json.loads((finished.results / "hypotheses.json").read_text())["hypotheses"][0]
    assert frame[["hypothesis", "treatment"]].values.tolist() == [["mean_shift", "double"]]
    row = frame.iloc[0]
    result = document["results"]["double"]
    assert row["p_value"] == result["p_value"] and row["p_value_raw"] == result["p_value_raw"]
    assert row["effect_size"] == result["effect_size"] and row["effect"] == result[result["effect_size"]]
    assert [row["effect_ci_low"], row["effect_ci_high"]] == result[f"{result['effect_size']}_ci"]
    assert row["verdict"] in {"difference", "no difference found"}
    assert bool(row["significant"]) is result["significant"]


def test_output_loads_a_stored_value_after_checking_it(finished):
    run = repliflow.load(finished.results)
    plan = repliflow.load_plan(finished.root / "config.yaml", finished.root)
    key = plan.keys("double", 2)[1]
    expected, _ = storage.load(finished.results / "store", key)
    assert run.output("double", 2, "scale") == expected
    # the shared datasource is found from either condition
    assert run.output("double", 2, "datasource") == run.output("baseline", 2, "datasource")
    with pytest.raises(
        RepliflowError, match="records no output of step 'nope'.*steps: datasource, metrics, scale"
    ):
        run.output("baseline", 0, "nope")


def test_a_tampered_output_is_refused_not_loaded(finished, tmp_path):
    copy = copied(finished, tmp_path / "copy")
    plan = repliflow.load_plan(copy.root / "config.yaml", copy.root)
    key = plan.keys("baseline", 1)[1]
    path = copy.results / "store" / key[:2] / f"{key}.json"
    path.write_text(path.read_text().replace("[", "[0.5, ", 1))
    with pytest.raises(StoreMismatch, match="does not match its record"):
        repliflow.load(copy.results).output("baseline", 1, "scale")


def test_notebook_view_names_the_experiment_and_the_verdicts(finished):
    page = repliflow.load(finished.results)._repr_html_()
    assert "<b>exp</b>" in page and "baseline x 4" in page and "mean_shift" in page and "<table" in page


def test_without_pandas_load_says_which_extra_to_install(finished, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(RepliflowError, match=r"pip install 'repliflow\[analysis\]'"):
        repliflow.load(finished.results)
    assert pd  # the real pandas is back after the test
