"""Sequential designs in the planner and between looks (repliflow.engine.looks),
without Snakemake: the config checks, look-aligned blocks, what a look
decides, the walk over the look files and the aggregate's inference."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import COUNTING_STEPS, counting_config

from repliflow.core.config import validate_config
from repliflow.core.plan import build_plan
from repliflow.engine import looks
from repliflow.engine.aggregate import MetricTable, run_hypotheses
from repliflow.errors import ConfigError, RepliflowError
from repliflow.stats.sequential import group_sequential_design


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "steps.py").write_text(COUNTING_STEPS)
    return tmp_path


def plan_for(workdir, **overrides):
    config = counting_config(**{"replicates": 20, "sequential": {"looks": 5}, **overrides})
    return build_plan(validate_config(config, file="test.yaml"), workdir=str(workdir))


def config_error(workdir, **overrides) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        plan_for(workdir, **overrides)
    return caught.value


# --------------------------------------------------------------------------
# the config


def test_the_design_and_its_schedule(workdir):
    plan = plan_for(workdir)
    assert plan.sequential is not None
    assert (plan.sequential.looks, plan.sequential.spending) == (5, "obrien_fleming")
    assert plan.sequential.schedule == (4, 8, 12, 16, 20)
    assert plan.replicates == 20  # the most
    assert plan_for(workdir, sequential={"looks": 2, "spending": "pocock"}).sequential.spending == "pocock"


def test_without_sequential_nothing_changes(workdir):
    config = counting_config(replicates=20)
    plan = build_plan(validate_config(config, file="test.yaml"), workdir=str(workdir))
    assert plan.sequential is None
    with pytest.raises(ValueError, match="no sequential design"):
        plan.look_manifests(1)


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        ({"sequential": {"looks": 1}}, "sequential.looks", "minimum"),
        ({"sequential": {"looks": 5, "futility": True}}, "sequential.futility", "False"),
        ({"sequential": {"looks": 5, "spending": "haybittle"}}, "sequential.spending", "obrien_fleming"),
        ({"replicates": 22}, "replicates", "5 equal looks"),
        ({"batch": {"replicates_per_job": 3}}, "batch.replicates_per_job", "look size (4"),
        ({"hypotheses": []}, "sequential", "at least one hypothesis"),
    ],
)
def test_config_errors_name_the_key(workdir, overrides, key, words):
    error = config_error(workdir, **overrides)
    assert error.key == key
    assert words in str(error)


def test_build_plan_checks_looks_itself(workdir):
    """A config that skipped the schema (Plan from a dict) still gets the check."""
    config = validate_config(counting_config(replicates=20, sequential={"looks": 5}), file="test.yaml")
    config["sequential"]["looks"] = 1
    with pytest.raises(ConfigError, match="at least 2 looks") as caught:
        build_plan(config, workdir=str(workdir))
    assert caught.value.key == "sequential.looks"


def test_equivalence_and_custom_verifiers_are_refused(workdir):
    (workdir / "mine.py").write_text("def verify(a, b):\n    return {'p_value': 0.5, 'significant': False}\n")
    tost = [{"name": "same", "metric": "spread", "verifier": "tost_welch", "sesoi": {"d": 0.5}}]
    error = config_error(workdir, hypotheses=tost)
    assert error.key == "hypotheses.0.verifier" and "equivalence" in str(error)
    custom = [
        {"name": "ok", "metric": "spread", "verifier": "welch_t"},
        {"name": "mine", "metric": "spread", "verifier": "mine.py:verify"},
    ]
    error = config_error(workdir, hypotheses=custom)
    assert error.key == "hypotheses.1.verifier" and "no z statistic" in str(error)


@pytest.mark.parametrize(
    ("replicates", "looks", "batch", "expected"),
    [
        (20, 5, {}, 4),  # auto 4 (20 / 8 rounded up to a power of two) divides the look size 4
        (60, 5, {}, 6),  # auto 8 does not divide 12: the largest divisor of 12 below it
        (50, 5, {}, 5),  # auto 8, look size 10: 5
        (40, 2, {"replicates_per_job": 5}, 5),
        (40, 2, {"replicates_per_job": 20}, 20),
    ],
)
def test_blocks_never_straddle_a_look(workdir, replicates, looks, batch, expected):
    plan = plan_for(workdir, replicates=replicates, sequential={"looks": looks}, batch=batch)
    assert plan.block_size == expected
    edges = set(plan.sequential.schedule)
    for segment in plan.segments.values():
        for block in plan.blocks(segment):
            assert not any(block.lo < edge < block.hi for edge in edges)


def test_look_manifests_are_those_up_to_the_look(workdir):
    plan = plan_for(workdir)
    first, second = plan.look_manifests(1), plan.look_manifests(2)
    assert set(first) < set(second) < set(plan.all_manifests())
    assert len(second) == 2 * len(first) == 2 * len(plan.segments)
    assert all(path.endswith(("000000-000004.json", "000004-000008.json")) for path in second)
    cut = plan.truncated(8)
    assert cut.all_manifests() == second and cut.seeds() == plan.seeds()[:8]
    with pytest.raises(ValueError):
        plan.truncated(6)  # not a whole number of blocks


# --------------------------------------------------------------------------
# what a look decides


def table_for(plan, shifts: dict[str, float], seed: int = 0) -> MetricTable:
    """Metric ``spread`` for every condition: normal noise plus the treatment's shift."""
    conditions = [c.name for c in plan.conditions]
    table = MetricTable(conditions, plan.seeds())
    rng = np.random.default_rng(seed)
    for index, condition in enumerate(conditions):
        for replicate in range(plan.replicates):
            value = float(rng.normal()) + shifts.get(condition, 0.0)
            position = index * plan.replicates + replicate
            table.put(position, {"spread": value}, condition=condition, replicate=replicate, key="k")
    return table


def test_a_large_effect_stops_and_keeps_its_stopping_look(workdir):
    plan = plan_for(workdir, replicates=40)  # looks of 8
    table = table_for(plan, {"double": 3.0})
    first = looks.evaluate(plan, 1, table)
    (comparison,) = first["comparisons"]
    design = group_sequential_design(5, 0.05, "obrien_fleming")
    assert comparison["bounds"] == pytest.approx(list(design.bounds))
    # 8 replicates each, a 3 SD shift: z about 5.6 crosses 4.88 at look 1 already or at look 2
    third = looks.evaluate(plan, 3, table)
    (stopped,) = third["comparisons"]
    assert stopped["reason"] == "efficacy" and stopped["stopped"]
    assert stopped["look"] <= 2 and len(stopped["z"]) == stopped["look"]
    assert abs(stopped["z"][-1]) >= stopped["bound"]
    assert stopped["replicates"] == 8 * stopped["look"]
    assert stopped["p_value_stagewise"] < 0.05
    assert third["continue"] is False
    assert json.loads(json.dumps(third, allow_nan=False)) == third


def test_a_null_comparison_runs_to_the_last_look(workdir):
    plan = plan_for(workdir, replicates=40)
    table = table_for(plan, {}, seed=3)
    for k in range(1, 5):
        record = looks.evaluate(plan, k, table)
        assert record["continue"] is True
        assert record["comparisons"][0]["reason"] == "continue"
        assert len(record["comparisons"][0]["z"]) == k
    last = looks.evaluate(plan, 5, table)
    (comparison,) = last["comparisons"]
    assert last["continue"] is False and comparison["reason"] == "last_look"
    assert comparison["p_value_stagewise"] > 0.05


def test_the_experiment_continues_while_any_comparison_runs(workdir):
    treatments = {"double": {"scale": {"factor": 2.0}}, "same": {"scale": {"factor": 1.5}}}
    plan = plan_for(workdir, replicates=40, treatments=treatments)
    table = table_for(plan, {"double": 4.0}, seed=5)
    record = looks.evaluate(plan, 2, table)
    by = {c["treatment"]: c for c in record["comparisons"]}
    assert by["double"]["stopped"] and not by["same"]["stopped"]
    assert record["continue"] is True


def test_z_follows_the_mean_difference_and_survives_p_zero():
    assert looks.z_of({"p_value": 0.05, "mean_difference": -1.0}, "two-sided") == pytest.approx(-1.959964)
    assert looks.z_of({"p_value": 0.0, "mean_difference": 2.0}, "two-sided") == looks.Z_LIMIT
    assert looks.z_of({"p_value": float("nan"), "mean_difference": 2.0}, "two-sided") is None
    assert looks.z_of({"p_value": 0.025}, "greater") == pytest.approx(1.959964)


# --------------------------------------------------------------------------
# the walk over the look files


def write_looks(tmp_path, plan, table, upto: int) -> None:
    folder = tmp_path / plan.layout.looks
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(1, upto + 1):
        (tmp_path / plan.layout.look(k)).write_text(json.dumps(looks.evaluate(plan, k, table)))


def test_the_walk_stops_at_the_stopping_look(workdir):
    plan = plan_for(workdir, replicates=40)
    table = table_for(plan, {"double": 3.0})
    stop = next(k for k in range(1, 6) if not looks.evaluate(plan, k, table)["continue"])
    asked: list[int] = []

    def look_file(k: int) -> str:
        asked.append(k)
        return str(workdir / plan.layout.look(k))

    write_looks(workdir, plan, table, stop)
    assert looks.sequential_manifests(plan, look_file) == plan.look_manifests(stop)
    assert asked == list(range(1, stop + 1))  # never a look past the stop
    assert looks.recorded_stop(plan, workdir)["look"] == stop
    assert looks.run_plan(plan, workdir).replicates == 8 * stop


def test_looks_that_continue_are_no_stop(workdir):
    plan = plan_for(workdir, replicates=40)
    table = table_for(plan, {}, seed=3)
    write_looks(workdir, plan, table, 2)
    assert [r["look"] for r in looks.recorded_looks(plan, workdir)] == [1, 2]
    assert looks.recorded_stop(plan, workdir) is None
    assert looks.run_plan(plan, workdir) is plan


def test_a_look_file_of_another_design_is_refused(workdir):
    plan = plan_for(workdir, replicates=40)
    table = table_for(plan, {"double": 3.0})
    write_looks(workdir, plan, table, 1)
    other = plan_for(workdir, replicates=20)  # looks of 4: look 1 has other replicates
    with pytest.raises(RepliflowError, match="not look 1 of this design"):
        looks.read_look(other, workdir / plan.layout.look(1), 1)
    assert looks.recorded_looks(other, workdir) == []


# --------------------------------------------------------------------------
# the aggregate's inference


def test_results_carry_the_stage_boundary_and_stagewise_p(workdir):
    hypotheses = [{"name": "shift", "metric": "spread", "verifier": "welch_t", "sesoi": {"d": 0.8}}]
    treatments = {"double": {"scale": {"factor": 2.0}}, "same": {"scale": {"factor": 1.5}}}
    plan = plan_for(workdir, replicates=40, treatments=treatments, hypotheses=hypotheses)
    table = table_for(plan, {"double": 3.0}, seed=5)
    record = looks.evaluate(plan, 5, table)
    out = run_hypotheses(plan, table, look=record)
    results = out["hypotheses"][0]["results"]
    double, same = results["double"]["sequential"], results["same"]["sequential"]
    assert double["decision"] == "efficacy" and double["look"] <= 2
    assert results["double"]["n_baseline"] == double["replicates"]  # its stopping look's numbers
    assert same["decision"] == "last_look" and results["same"]["n_baseline"] == 40
    for result, seq in ((results["double"], double), (results["same"], same)):
        assert result["p_value_raw"] == seq["p_value_stagewise"]  # corrected over the stagewise p
        assert seq["boundary"] == pytest.approx(seq["boundaries"][seq["look"] - 1])
        assert result["significant_raw"] == (seq["decision"] == "efficacy")
        expected = seq["expected"]
        assert expected["source"] == "sesoi" and expected["effect_d"] == 0.8
        # d 0.8 at 40 per condition: drift 3.58, power about 0.93 for the fixed test; the design
        # expects to stop early often, saving replicates
        assert 0.8 < expected["power"] < 1.0
        assert 0 < expected["saved_replicates"] < 40
        assert expected["expected_replicates"] + expected["saved_replicates"] == pytest.approx(40)
        assert sum(expected["stop_probabilities"]) == pytest.approx(1.0)
    json.dumps(out, allow_nan=False)


def test_without_a_sesoi_the_expected_savings_say_what_they_need(workdir):
    plan = plan_for(workdir, replicates=40)
    table = table_for(plan, {"double": 3.0})
    record = looks.evaluate(plan, 5, table)
    out = run_hypotheses(plan, table, look=record)
    expected = out["hypotheses"][0]["results"]["double"]["sequential"]["expected"]
    assert expected["source"] == "none" and "sesoi" in expected["note"]


def test_expected_replicates_match_the_operating_characteristics(workdir):
    from repliflow.stats.sequential import drift_for_effect, operating_characteristics

    hypotheses = [{"name": "shift", "metric": "spread", "verifier": "paired_t", "sesoi": {"d": 0.5}}]
    plan = plan_for(workdir, replicates=40, hypotheses=hypotheses)
    expected = looks.expected_replicates(plan, plan.hypotheses[0], [0.0, 1.0], [1.0, 2.0])
    design = group_sequential_design(5, 0.05, "obrien_fleming")
    oc = operating_characteristics(design, drift_for_effect(0.5, 40, paired=True), 40)
    assert expected["expected_replicates"] == pytest.approx(oc.expected_replicates)
    assert math.isclose(expected["power"], oc.power)


def test_the_summary_jobs_read_the_manifests_the_snakefile_lists(workdir, monkeypatch):
    """aggregate and view (python -m repliflow.snakemake.summary) list their
    manifests from the plan: up to the stopping look, as the checkpoint walk does."""
    from repliflow.snakemake.summary import summary_manifests

    plan = plan_for(workdir, replicates=40)
    table = table_for(plan, {"double": 3.0})
    stop = next(k for k in range(1, 6) if not looks.evaluate(plan, k, table)["continue"])
    write_looks(workdir, plan, table, stop)
    monkeypatch.chdir(workdir)  # jobs run in the working directory; the layout is relative
    assert summary_manifests(plan) == plan.look_manifests(stop) != plan.all_manifests()
    fixed = build_plan(validate_config(counting_config(replicates=20), file="t.yaml"), workdir=str(workdir))
    assert summary_manifests(fixed) == fixed.all_manifests()
