"""The equivalence verifiers, ``tost_welch`` and ``tost_paired`` (Schuirmann 1987).

Reference values: computed here by hand from the two one-sided t-tests, with
the formulas written out (Welch's standard error and Welch-Satterthwaite df,
or the paired differences' mean and SD) and ``scipy.stats.t`` for the tail
probabilities; the verifiers themselves run ``scipy.stats.ttest_ind`` /
``ttest_rel`` on shifted samples, so the two paths share only the t
distribution. No published TOSTER / ``equivalence`` output is quoted: none is
known here with certainty to the digits a test needs.

Calibration (statistics level, no Snakemake): with the true difference exactly
at an equivalence bound, the share of 2000 seeded experiments declared
equivalent stays at or below alpha within Monte Carlo error (alpha + 3 SE).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from repliflow.stats.builtin import tost_paired, tost_welch

RNG = np.random.default_rng(20260)
A = RNG.normal(10.0, 1.0, 30)
B = RNG.normal(10.2, 1.6, 24)


def by_hand_welch(a, b, bound):
    n1, n2 = len(a), len(b)
    v1, v2 = np.var(a, ddof=1) / n1, np.var(b, ddof=1) / n2
    se = math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    diff = np.mean(b) - np.mean(a)
    t_lower, t_upper = (diff + bound) / se, (diff - bound) / se
    return t_lower, t_upper, stats.t.sf(t_lower, df), stats.t.cdf(t_upper, df), df, diff, se


def by_hand_paired(a, b, bound):
    d = np.asarray(b) - np.asarray(a)
    n = len(d)
    se = np.std(d, ddof=1) / math.sqrt(n)
    t_lower, t_upper = (d.mean() + bound) / se, (d.mean() - bound) / se
    return t_lower, t_upper, stats.t.sf(t_lower, n - 1), stats.t.cdf(t_upper, n - 1), n - 1, d.mean(), se


@pytest.mark.parametrize("bound", [0.3, 0.8, 1.5])
def test_tost_welch_equals_the_two_one_sided_tests_by_hand(bound):
    t_lower, t_upper, p_lower, p_upper, df, diff, se = by_hand_welch(A, B, bound)
    r = tost_welch(A.tolist(), B.tolist(), sesoi={"value": bound})
    assert r["statistic_lower"] == pytest.approx(t_lower, rel=1e-10)
    assert r["statistic_upper"] == pytest.approx(t_upper, rel=1e-10)
    assert r["p_value_lower"] == pytest.approx(p_lower, rel=1e-9)
    assert r["p_value_upper"] == pytest.approx(p_upper, rel=1e-9)
    assert r["df"] == pytest.approx(df, rel=1e-10)
    assert r["p_value"] == pytest.approx(max(p_lower, p_upper), rel=1e-9)
    assert r["equivalence_bounds"] == [-bound, bound] and r["sesoi"] == {"value": bound}
    # the 90% interval of the difference, and the decision it implies
    c = stats.t.isf(0.05, df)
    assert r["ci_level"] == pytest.approx(0.9)
    assert r["mean_difference_ci"] == pytest.approx([diff - c * se, diff + c * se], rel=1e-9)
    inside = -bound < diff - c * se and diff + c * se < bound
    assert r["equivalent"] is r["significant"] is bool(inside) is bool(max(p_lower, p_upper) < 0.05)


@pytest.mark.parametrize("bound", [0.3, 0.8, 1.5])
def test_tost_paired_equals_the_two_one_sided_tests_by_hand(bound):
    a, b = A[:24], B
    t_lower, t_upper, p_lower, p_upper, df, _, _ = by_hand_paired(a, b, bound)
    r = tost_paired(a.tolist(), b.tolist(), sesoi={"value": bound}, alpha=0.1)
    assert r["statistic_lower"] == pytest.approx(t_lower, rel=1e-9)
    assert r["statistic_upper"] == pytest.approx(t_upper, rel=1e-9)
    assert r["p_value"] == pytest.approx(max(p_lower, p_upper), rel=1e-9)
    assert r["df"] == df and r["paired"] and r["ci_level"] == pytest.approx(0.8)
    assert r["significant"] is bool(max(p_lower, p_upper) < 0.1)


def test_a_standardised_sesoi_is_d_times_the_observed_sd():
    n1, n2 = len(A), len(B)
    pooled = math.sqrt(((n1 - 1) * np.var(A, ddof=1) + (n2 - 1) * np.var(B, ddof=1)) / (n1 + n2 - 2))
    r = tost_welch(A.tolist(), B.tolist(), sesoi={"d": 0.5})
    assert r["equivalence_bounds"] == pytest.approx([-0.5 * pooled, 0.5 * pooled])
    assert r["sesoi"] == {"d": 0.5}
    a = A[:24]
    paired = tost_paired(a.tolist(), B.tolist(), sesoi={"d": 0.5})
    assert paired["equivalence_bounds"][1] == pytest.approx(0.5 * np.std(B - a, ddof=1))


def test_equivalent_exactly_when_the_interval_lies_inside_the_bounds():
    rng = np.random.default_rng(3)
    for _ in range(200):
        a, b = rng.normal(0, 1, 20), rng.normal(rng.uniform(-0.5, 0.5), 1, 20)
        for verifier in (tost_welch, tost_paired):
            r = verifier(a.tolist(), b.tolist(), sesoi={"value": 0.6})
            low, high = r["mean_difference_ci"]
            assert r["equivalent"] == (low > -0.6 and high < 0.6)


@pytest.mark.parametrize("paired", [False, True])
@pytest.mark.parametrize("side", [-1, 1])
def test_at_the_bound_equivalence_is_declared_at_most_alpha_of_the_time(paired, side):
    # bounds wide against the standard error (about 0.22 paired, 0.48 unpaired), so the far
    # bound is many SEs away and the rate at the near one is close to alpha, not far below
    runs, alpha = 2000, 0.05
    bound = 0.5 if paired else 1.5
    rng = np.random.default_rng(100 + 10 * paired + side)
    declared = 0
    for _ in range(runs):
        if paired:
            a = rng.normal(0, 1, 20)
            b = a + rng.normal(side * bound, 1, 20)
            declared += tost_paired(a.tolist(), b.tolist(), sesoi={"value": bound}, alpha=alpha)["equivalent"]
        else:  # unequal variances and sizes: Welch's df matter
            a, b = rng.normal(0, 1, 15), rng.normal(side * bound, 2, 25)
            declared += tost_welch(a.tolist(), b.tolist(), sesoi={"value": bound}, alpha=alpha)["equivalent"]
    limit = alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)
    assert declared / runs <= limit, f"{declared}/{runs} declared equivalent at the bound"
    assert declared / runs > 0.02  # and the test is not trivially conservative there


def test_equal_means_with_many_replicates_are_shown_equivalent():
    rng = np.random.default_rng(9)
    a, b = rng.normal(0, 1, 400), rng.normal(0, 1, 400)
    assert tost_welch(a.tolist(), b.tolist(), sesoi={"d": 0.3})["equivalent"]


# --- degenerate inputs and bad bounds --------------------------------------------------------


def test_too_few_values_are_not_tested_and_not_equivalent():
    r = tost_welch([1.0], [1.0, 2.0], sesoi={"value": 1.0})
    assert math.isnan(r["p_value"]) and not r["equivalent"] and r["degenerate"] == "too_few"


def test_zero_variance_is_decided_by_the_exact_difference():
    same = tost_welch([2.0] * 5, [2.0] * 5, sesoi={"value": 0.1})
    assert same["equivalent"] and same["p_value"] == 0.0 and same["degenerate"] == "identical"
    inside = tost_paired([1.0, 2.0, 3.0], [1.05, 2.05, 3.05], sesoi={"value": 0.1})
    assert inside["equivalent"] and inside["degenerate"] == "zero_variance"
    outside = tost_paired([1.0, 2.0, 3.0], [1.2, 2.2, 3.2], sesoi={"value": 0.1})
    assert not outside["equivalent"] and outside["p_value"] == 1.0 and "not inside" in outside["note"]
    standardised = tost_welch([2.0] * 5, [2.0] * 5, sesoi={"d": 0.5})  # d x an SD of 0: no bounds
    assert not standardised["equivalent"] and standardised["equivalence_bounds"] == [0.0, 0.0]


@pytest.mark.parametrize(
    "sesoi", [None, {}, {"value": 0}, {"value": -1}, {"d": math.nan}, {"value": 1, "d": 1}, {"bound": 1}, 0.5]
)
def test_a_missing_or_bad_sesoi_is_an_error(sesoi):
    with pytest.raises(ValueError, match="sesoi"):
        tost_welch([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], sesoi=sesoi)


def test_alpha_must_leave_a_1_minus_2_alpha_interval():
    with pytest.raises(ValueError, match="0.5"):
        tost_paired([1.0, 2.0, 3.0], [1.0, 2.0, 3.1], sesoi={"value": 1}, alpha=0.5)
