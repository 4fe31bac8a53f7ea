"""The statistics keys of a hypothesis: ``sesoi`` (the smallest effect size of
interest; the equivalence verifiers' bounds) and ``correction_family`` (which
hypotheses are corrected together). Bad values end with one message naming the
config file, the key and what was expected; families are corrected together in
``hypotheses.json``; the report tells "no difference found" from "shown
equivalent"."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import COUNTING_STEPS, counting_config

from repliflow.core.config import validate_config
from repliflow.core.plan import build_plan
from repliflow.engine.aggregate import MetricTable, run_hypotheses
from repliflow.errors import ConfigError
from repliflow.report import document as report
from repliflow.report.tables import Results, check_hypotheses
from repliflow.stats.corrections import adjust

CFG = "cfg.yaml"


@pytest.fixture
def workdir(tmp_path) -> Path:
    (tmp_path / "steps.py").write_text(COUNTING_STEPS)
    return tmp_path


def plan_of(workdir: Path, hypotheses: list[dict]):
    return build_plan(validate_config(counting_config(hypotheses=hypotheses), file=CFG), workdir=str(workdir))


def error_of(workdir: Path, hypotheses: list[dict]) -> str:
    with pytest.raises(ConfigError) as info:
        plan_of(workdir, hypotheses)
    exc = info.value
    if exc.file is None:  # common.smk fills in the config file for planner errors
        exc.file = CFG
    message = str(exc)
    assert message.startswith("repliflow: bad experiment config (") and f"config file {CFG}" in message
    assert "Traceback" not in message and "Failed validating" not in message and len(message) < 900
    return message


def h(name: str = "h", verifier: str = "welch_t", **fields) -> dict:
    return {"name": name, "metric": "spread", "verifier": verifier, **fields}


# --- sesoi ------------------------------------------------------------------------------------


def test_good_sesoi_shapes_plan(workdir):
    plan = plan_of(
        workdir,
        [
            h("a", "tost_welch", sesoi={"value": 0.5}),
            h("b", "tost_paired", sesoi={"d": 0.3}),
            h("c", sesoi={"d": 0.2}),
        ],
    )
    assert [x.get("sesoi") for x in plan.hypotheses] == [{"value": 0.5}, {"d": 0.3}, {"d": 0.2}]


@pytest.mark.parametrize("verifier", ["tost_welch", "tost_paired"])
def test_an_equivalence_test_without_sesoi_names_the_key(workdir, verifier):
    message = error_of(workdir, [h(verifier=verifier)])
    assert "key 'hypotheses.0.sesoi'" in message and "{value: X}" in message and verifier in message


@pytest.mark.parametrize(
    ("sesoi", "key", "expected"),
    [
        ({"value": 0}, "hypotheses.0.sesoi.value", "metric's units (> 0)"),
        ({"d": -0.2}, "hypotheses.0.sesoi.d", "Cohen's d"),
        ({"value": 1, "d": 1}, "hypotheses.0.sesoi", "{value: X}"),
        ({}, "hypotheses.0.sesoi", "{value: X}"),
        ({"bound": 1}, "hypotheses.0.sesoi", "{value: X}"),
        (0.5, "hypotheses.0.sesoi", "{value: X}"),
        ({"value": "big"}, "hypotheses.0.sesoi.value", "metric's units"),
    ],
)
def test_a_bad_sesoi_names_the_key_and_what_was_expected(workdir, sesoi, key, expected):
    message = error_of(workdir, [h(verifier="tost_welch", sesoi=sesoi)])
    assert f"key '{key}'" in message and expected in message


def test_sesoi_in_params_points_to_the_hypothesis_key(workdir):
    message = error_of(workdir, [h(verifier="tost_welch", params={"sesoi": {"value": 1}})])
    assert "key 'hypotheses.0.params.sesoi'" in message and "hypotheses.0.sesoi" in message


def test_an_equivalence_alpha_must_be_below_one_half(workdir):
    message = error_of(workdir, [h(verifier="tost_paired", sesoi={"d": 0.3}, params={"alpha": 0.5})])
    assert "key 'hypotheses.0.params.alpha'" in message and "below 0.5" in message


def test_an_equivalence_test_takes_no_alternative(workdir):
    message = error_of(
        workdir, [h(verifier="tost_welch", sesoi={"d": 0.3}, params={"alternative": "greater"})]
    )
    assert "key 'hypotheses.0.params'" in message and "it takes alpha" in message


# --- correction_family ------------------------------------------------------------------------


def test_families_must_share_correction_and_alpha(workdir):
    message = error_of(
        workdir, [h("a", correction_family="all"), h("b", correction_family="all", correction="bonferroni")]
    )
    assert "key 'hypotheses.1.correction_family'" in message and "holm and bonferroni" in message
    message = error_of(
        workdir,
        [h("a", correction_family="all"), h("b", correction_family="all", params={"alpha": 0.01})],
    )
    assert "alpha differs (0.05 and 0.01)" in message


def test_a_bad_family_name_is_a_schema_error(workdir):
    message = error_of(workdir, [h("a", correction_family="../x")])
    assert "key 'hypotheses.0.correction_family'" in message


def metric_table(values: dict[str, list[float]]) -> MetricTable:
    conditions = list(values)
    n = len(values["baseline"])
    table = MetricTable(conditions, list(range(n)))
    for c, condition in enumerate(conditions):
        for r in range(n):
            table.put(c * n + r, {"spread": values[condition][r]}, condition=condition, replicate=r, key="k")
    return table


VALUES = {
    "baseline": [1.0, 1.2, 0.9, 1.1, 1.0, 0.95, 1.05, 1.15],
    "double": [1.3, 1.5, 1.2, 1.35, 1.25, 1.4, 1.3, 1.45],
    "same": [1.01, 1.19, 0.91, 1.12, 0.99, 0.96, 1.04, 1.16],
}


def fake_plan(hypotheses: list[dict]) -> SimpleNamespace:
    conditions = [SimpleNamespace(name=name) for name in VALUES]
    return SimpleNamespace(hypotheses=hypotheses, conditions=conditions)


def test_by_default_each_hypothesis_is_its_own_family():
    out = run_hypotheses(fake_plan([h("a"), h("b", "paired_t")]), metric_table(VALUES))["hypotheses"]
    for entry in out:
        assert entry["correction_family"] == entry["name"] and entry["family_size"] == 2
        raw = [entry["results"][t]["p_value_raw"] for t in ("double", "same")]
        assert [entry["results"][t]["p_value"] for t in ("double", "same")] == pytest.approx(adjust(raw))


def test_a_shared_family_adjusts_across_hypotheses():
    hypotheses = [h("a", correction_family="all"), h("b", "paired_t", correction_family="all")]
    out = run_hypotheses(fake_plan(hypotheses), metric_table(VALUES))["hypotheses"]
    family = [(entry, t) for entry in out for t in ("double", "same")]
    raw = [entry["results"][t]["p_value_raw"] for entry, t in family]
    for (entry, t), adjusted in zip(family, adjust(raw, "holm"), strict=True):
        assert entry["results"][t]["p_value_adjusted"] == pytest.approx(adjusted)
        assert entry["results"][t]["significant"] == (adjusted < 0.05)
        assert entry["family_size"] == 4 and entry["correction_family"] == "all"
    assert check_hypotheses({"hypotheses": out}, Path("hypotheses.json"))  # the report reads it back


def test_equivalence_and_difference_verdicts_are_told_apart(tmp_path):
    hypotheses = [h("diff"), h("eq", "tost_paired", sesoi={"value": 0.1})]
    out = run_hypotheses(fake_plan(hypotheses), metric_table(VALUES))["hypotheses"]
    diff, eq = out
    assert diff["results"]["double"]["verdict"] == "difference"
    assert diff["results"]["same"]["verdict"] == "no difference found"
    assert eq["sesoi"] == {"value": 0.1} and eq["results"]["same"]["equivalence_bounds"] == [-0.1, 0.1]
    assert eq["results"]["same"]["verdict"] == "equivalent" and eq["results"]["same"]["equivalent"]
    assert eq["results"]["double"]["verdict"] == "not shown equivalent"
    assert not eq["results"]["double"]["equivalent"]

    values = {(c, "spread"): v for c, v in VALUES.items()}
    checked = check_hypotheses({"hypotheses": out}, tmp_path / "hypotheses.json")
    markdown = report.to_markdown(report.build(Results(tmp_path, values, checked, {})))
    assert "**same**: no difference found in `spread` (absence of evidence" in markdown
    assert "**same**: **shown equivalent** to the baseline on `spread` within ±0.1" in markdown
    assert "**double**: **not shown equivalent** on `spread`" in markdown
    assert "| **equivalent** |" in markdown and "| not shown equivalent |" in markdown
    assert "detectable at 80%" in markdown and "No comparison" not in markdown
    power_section = markdown.split("## Power and replicates")[1]
    assert "±0.1 (sesoi" in power_section  # the TOST's bound is what it plans for
    assert "No smallest effect of interest is declared for diff/double, diff/same" in power_section
    assert not any(math.isnan(x) for x in [eq["results"]["same"]["p_value"]])
