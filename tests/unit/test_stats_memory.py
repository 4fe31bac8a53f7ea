"""The verifiers use O(n) memory, and their results did not change on the way.

The zero-variance fallback is the exact permutation test in closed form
(``verifiers._extreme_p``), checked against the scipy enumeration it replaced
(kept below as ``old_zero_variance_p``); the resampling tests run in blocks,
checked to give bit-for-bit the results of scipy's one-block calls.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from scipy import stats

from repliflow.stats import builtin as verifiers
from repliflow.stats.builtin import BUILTINS

ALTERNATIVES = ("two-sided", "greater", "less")


# --- the code the closed form replaced, as it was -----------------------------------------


def old_zero_variance_p(baseline, treatment, *, paired: bool, alternative: str) -> float:
    """The fallback before: scipy's permutation test at 9999 resamples, seed 0, in one block."""
    res = stats.permutation_test(
        (np.asarray(treatment, float), np.asarray(baseline, float)),
        lambda t, b, axis=-1: np.mean(t, axis=axis) - np.mean(b, axis=axis),
        permutation_type="samples" if paired else "independent",
        vectorized=True,
        n_resamples=9999,
        alternative=alternative,
        rng=np.random.default_rng(0),
    )
    return float(res.pvalue)


def old_exact(n_baseline: int, n_treatment: int, paired: bool) -> bool:
    total = 2**n_baseline if paired else math.comb(n_baseline + n_treatment, n_baseline)
    return total <= 9999


def paired_cases():
    """(baseline, treatment, whether the closed form applies) with constant differences."""
    rng = np.random.default_rng(3)
    for n in range(2, 13):
        base = rng.normal(0, 3, n)
        yield base, base + 0.3, True  # a constant shift, up to rounding
        yield base, base - 1.7, True
        yield [2.0] * n, [2.5] * n, True  # exactly constant
        yield list(base), list(base), True  # every difference 0
        yield (
            [1e6 + i for i in range(n)],
            [1e6 + i + 0.25 for i in range(n)],
            True,
        )  # large values, small shift
        noise = [1e-15 if i % 2 else -1e-15 for i in range(n)]
        yield base, base + noise, False  # differences that are rounding noise around 0


def unpaired_cases():
    """(baseline, treatment, whether the closed form applies) with constant conditions."""
    for n1 in range(2, 13):
        for n2 in (n1, max(2, n1 - 3)):  # NaNs dropped leave unequal sizes
            yield [1.0] * n1, [2.0] * n2, True
            yield [5.0] * n1, [-1.5] * n2, True
            yield [2.5] * n1, [2.5] * n2, True  # one value everywhere
            yield [1e6] * n1, [1e6 + 1e-3] * n2, True
            yield [0.1 + 0.2] * n1, [0.3] * n2, False  # 1 ulp apart: no difference but rounding
            yield [0.7, 0.7 + 1e-15] * n1, [0.7 + 5e-16] * n2, False  # overlapping up to rounding


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("paired", [True, False])
def test_the_closed_form_is_the_old_exact_test(paired, alternative):
    """n <= 12: where the old fallback enumerated every relabelling, the same p
    (to the bit); where it drew 9999 of them (unpaired, C(n1 + n2, n1) > 9999),
    the exact p lies within the old estimate's resampling error."""
    verifier = BUILTINS["paired_t" if paired else "welch_t"]
    compared = estimated = 0
    for baseline, treatment, closed in paired_cases() if paired else unpaired_cases():
        if not closed:
            continue
        s = verifiers.prepare(baseline, treatment, paired=paired)
        assert s.constant
        new = verifiers._extreme_p(s, alternative)
        assert new is not None, (baseline, treatment)
        result = verifier(baseline, treatment, alternative=alternative)
        assert result["degenerate"] in ("zero_variance", "identical") and result["p_value"] == new
        old = old_zero_variance_p(s.baseline, s.treatment, paired=paired, alternative=alternative)
        if old_exact(len(s.baseline), len(s.treatment), paired):
            assert new == old, (baseline, treatment, new, old)
            compared += 1
        else:  # old: (hits + 1) / 10000 per tail, hits ~ Binomial(9999, 1 / C), C >= 11440
            tails = 2 if alternative == "two-sided" else 1
            if old < 1:
                assert new < old <= new + tails * 10 / 10000, (baseline, treatment, new, old)
            else:
                assert new == 1
            estimated += 1
    assert compared >= (55 if paired else 40)
    assert estimated >= (0 if paired else 30)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("paired", [True, False])
def test_conditions_equal_up_to_rounding_are_no_difference(paired, alternative):
    """Differences within rounding (both signs, overlapping samples, a few ulps
    apart) have no lattice: p = 1. The old fallback ran scipy's permutation test
    on that rounding noise; its p then hung on the order numpy summed the means
    in (on 0.1 + 0.2 against 0.3, three values each: 1.0 at 9999 resamples in one
    block, and either way not significant)."""
    verifier = BUILTINS["paired_t" if paired else "welch_t"]
    seen = 0
    for baseline, treatment, closed in paired_cases() if paired else unpaired_cases():
        if closed:
            continue
        s = verifiers.prepare(baseline, treatment, paired=paired)
        assert s.constant and verifiers._extreme_p(s, alternative) is None
        result = verifier(baseline, treatment, alternative=alternative)
        assert result["p_value"] == 1.0 and result["significant"] is False
        assert result["degenerate"] == "identical" and "equal up to rounding" in result["note"]
        seen += 1
    assert seen >= 11


@pytest.mark.parametrize("name", ["welch_t", "student_t", "paired_t", "bootstrap"])
def test_verifiers_report_the_closed_form(name):
    paired = name == "paired_t"
    baseline = [0.1, 0.7, 1.3, 2.0, 2.9, 3.1] if paired else [1.0] * 6
    treatment = [b + 0.3 for b in baseline] if paired else [2.0] * 6
    result = BUILTINS[name](baseline, treatment)
    old = old_zero_variance_p(baseline, treatment, paired=paired, alternative="two-sided")
    assert result["degenerate"] == "zero_variance"
    assert result["p_value"] == old == (2 / 2**6 if paired else 2 / math.comb(12, 6))
    assert "exact permutation test" in result["note"]


def test_large_constant_samples_get_the_exact_p_value():
    """Where the old fallback estimated p from 9999 relabellings (at best
    2 / 10000 two-sided), the closed form gives the exact one."""
    result = BUILTINS["welch_t"]([1.0] * 10, [2.0] * 10)
    assert result["p_value"] == 2 / math.comb(20, 10)
    assert "exact permutation test" in result["note"]
    result = BUILTINS["paired_t"](list(range(40)), [x + 0.5 for x in range(40)], alternative="greater")
    assert result["p_value"] == 2.0**-40
    assert result["significant"] is True
    huge = BUILTINS["paired_t"]([0.0] * 2000, [1.0] * 2000)
    assert huge["p_value"] == 0.0 and huge["significant"] is True  # 2 / 2^2000 underflows


# --- blocks change the memory, not the results ---------------------------------------------


@pytest.mark.parametrize(("n1", "n2", "n_resamples"), [(5, 5, 9999), (4, 6, 100), (30, 25, 999)])
@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_permutation_in_blocks_is_the_one_block_test(n1, n2, n_resamples, alternative, monkeypatch):
    rng = np.random.default_rng(n1 + n2)
    baseline, treatment = rng.normal(0, 1, n1), rng.normal(0.4, 1, n2)
    old = stats.permutation_test(
        (treatment, baseline),
        verifiers._mean_diff,
        vectorized=True,
        n_resamples=n_resamples,
        alternative=alternative,
        rng=np.random.default_rng(3),
    )
    monkeypatch.setattr(verifiers, "BLOCK_VALUES", 7)  # many blocks, one permutation each
    new = BUILTINS["permutation"](
        baseline, treatment, n_resamples=n_resamples, seed=3, alternative=alternative
    )
    assert new["p_value"] == float(old.pvalue)
    assert new["statistic"] == float(old.statistic)


@pytest.mark.parametrize(
    ("n1", "n2", "n_resamples", "block"), [(8, 8, 999, 50), (25, 40, 2000, 1000), (3, 5, 9999, 1 << 17)]
)
@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_bootstrap_in_blocks_is_scipys_bootstrap(n1, n2, n_resamples, block, alternative, monkeypatch):
    """The distribution, the BCa interval and the p-value, bit for bit."""
    rng = np.random.default_rng(n1 * n2)
    baseline, treatment = rng.normal(0, 1, n1), rng.exponential(1.5, n2)
    old = stats.bootstrap(
        (treatment, baseline),
        verifiers._mean_diff,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=0.9,
        alternative=alternative,
        method="BCa",
        rng=np.random.default_rng(11),
    )
    theta = float(verifiers._mean_diff(treatment, baseline))
    jackknife = verifiers._jackknife_mean_diff(treatment, baseline)
    old_p = verifiers.bca_p_value(old.bootstrap_distribution, theta, jackknife, alternative)
    monkeypatch.setattr(verifiers, "BLOCK_VALUES", block)
    s = verifiers.prepare(baseline, treatment, paired=False)
    assert np.array_equal(
        verifiers._bootstrap_distribution(s, n_resamples, np.random.default_rng(11)),
        old.bootstrap_distribution,
    )
    new = BUILTINS["bootstrap"](
        baseline, treatment, alpha=0.1, alternative=alternative, n_resamples=n_resamples, seed=11
    )
    assert new["p_value"] == old_p
    low, high = old.confidence_interval
    assert new["mean_difference_ci"] == [float(low), float(high)]


# --- memory ----------------------------------------------------------------------------------

N = 10_000
RNG = np.random.default_rng(12)
NOISE = RNG.normal(0, 1, N).tolist()
SHIFTED = [x + 0.3 for x in NOISE]
OTHER = RNG.normal(0.1, 1, N).tolist()
LIMIT_MB = 8  # the inputs alone are 2 x 10,000 floats; before: 640 MB for a paired fallback

CASES = {
    "paired_t, constant differences": ("paired_t", NOISE, SHIFTED, {}),
    "paired_t, differences 0 up to rounding": (
        "paired_t",
        NOISE,
        [x + (1e-16 if i % 2 else -1e-16) for i, x in enumerate(NOISE)],
        {},
    ),
    "paired_t, identical": ("paired_t", NOISE, list(NOISE), {}),
    "paired_t": ("paired_t", NOISE, OTHER, {}),
    "welch_t, constant conditions": ("welch_t", [1.0] * N, [2.0] * N, {}),
    "student_t, one value everywhere": ("student_t", [1.0] * N, [1.0] * N, {}),
    "welch_t, too few": ("welch_t", [1.0] + [math.nan] * (N - 1), OTHER, {}),
    "welch_t": ("welch_t", NOISE, OTHER, {}),
    "bootstrap, constant conditions": ("bootstrap", [1.0] * N, [2.0] * N, {}),
    "bootstrap": ("bootstrap", NOISE, OTHER, {"n_resamples": 499}),
    "permutation": ("permutation", NOISE, OTHER, {"n_resamples": 499}),
    "permutation, constant conditions": ("permutation", [1.0] * N, [2.0] * N, {"n_resamples": 499}),
    "mann_whitney": ("mann_whitney", NOISE, OTHER, {}),
    "wilcoxon": ("wilcoxon", NOISE, OTHER, {}),
    "wilcoxon, identical": ("wilcoxon", NOISE, list(NOISE), {}),
}


@pytest.mark.parametrize("case", CASES)
def test_a_verifier_at_10000_replicates_needs_a_few_megabytes(case):
    name, baseline, treatment, params = CASES[case]
    tracemalloc.start()
    try:
        BUILTINS[name](baseline, treatment, **params)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < LIMIT_MB * 2**20, f"{case}: {peak / 2**20:.1f} MB"


# --- the aggregate job's tables and plots --------------------------------------------------


def test_the_metric_table_keeps_nan_missing_and_shared_outputs_apart():
    from repliflow.engine.aggregate import MetricRow, MetricTable

    table = MetricTable(["baseline", "t"], [11, 22])
    table.put(0, {"b": 1.5, "a": math.nan}, condition="baseline", replicate=0, key="k0")
    table.put(1, {"a": 2, "b": None}, condition="baseline", replicate=1, key="k1")  # b: not returned
    table.copy(0, 2)  # treatment t, replicate 0 has the same output as baseline replicate 0
    table.put(3, {"c": True}, condition="t", replicate=1, key="k3")  # a metric first seen here
    assert table.metrics == ["a", "b", "c"] and len(table) == 12
    rows = list(table)
    assert rows[:3] == [
        MetricRow("baseline", 0, 11, "a", rows[0].value),
        MetricRow("baseline", 0, 11, "b", 1.5),
        MetricRow("baseline", 0, 11, "c", None),
    ]
    assert math.isnan(rows[0].value)
    assert [r.value for r in rows[3:6]] == [2.0, None, None]
    assert [r.value for r in rows[6:9]][1:] == [1.5, None] and math.isnan(rows[6].value)
    assert [r.value for r in rows[9:]] == [None, None, 1.0]
    assert table.column("t", "c") == [pytest.approx(math.nan, nan_ok=True), 1.0]
    assert table.column("nobody", "a") == [] and table.column("t", "zzz") == []
    assert table.returned("a") and table.returned("b") and not table.returned("zzz")


def test_the_metric_table_names_a_bad_value_or_output():
    from repliflow.engine.aggregate import MetricTable
    from repliflow.errors import RepliflowError

    table = MetricTable(["baseline"], [1])
    with pytest.raises(RepliflowError, match="metric 'x' of condition 'baseline', replicate 0 is str"):
        table.put(0, {"x": "high"}, condition="baseline", replicate=0, key="k")
    with pytest.raises(RepliflowError, match="is list, not a mapping"):
        table.put(0, [1.0], condition="baseline", replicate=0, key="k")


def test_strips_of_many_points_draw_a_sample():
    from repliflow.report import plots

    rng = np.random.default_rng(4)
    values = {c: rng.normal(i, 1, 20_000).tolist() for i, c in enumerate(["baseline", "t1", "t2"])}
    values["t1"][:7] = [50.0 + i for i in range(7)]  # far beyond the whiskers: always drawn
    svg = plots.distribution("m", list(values), values, salt="s")
    assert svg.count("n=20000, 1000 drawn") == 3
    assert len(svg) < 600_000  # every point: about 6 MB
    drawn = plots.sample(np.array(values["t1"]), seed=1)
    assert len(drawn) == plots.MAX_POINTS and set(range(50, 57)) <= set(drawn.tolist())
    assert np.array_equal(drawn, plots.sample(np.array(values["t1"]), seed=1))
    few = np.arange(10.0)
    assert plots.sample(few, seed=0) is few
