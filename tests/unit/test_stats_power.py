"""Power, sensitivity and replicate planning (repliflow.stats.power).

Where the reference values come from:

* **R's ``power.t.test`` documentation examples** (package stats, ``?power.t.test``):
  ``power.t.test(n = 20, delta = 1)`` prints power = 0.8689528;
  ``power.t.test(power = .90, delta = 1)`` prints n = 22.02110;
  ``power.t.test(power = .90, delta = 1, alternative = "one.sided")`` prints
  n = 17.84713. R's default ``strict = FALSE`` leaves out the far tail of a
  two-sided test, which repliflow counts; at these values it is about 2e-7.
* **Cohen (1992), "A power primer", Psychological Bulletin 112:155-159, Table 2**:
  the n per group for power .80 in the two-sample t-test of a difference in
  means at d = .2 / .5 / .8 is 393 / 64 / 26 at alpha .05 (two-tailed),
  586 / 95 / 38 at .01 and 310 / 50 / 20 at .10. Cohen's tables used an
  approximation; the exact noncentral t gives the same n or one more (394 for
  d = .2 at .05, whose exact fractional n is 393.4), so the test allows +1.
* **An independent computation** over the whole grid the issue names (d = 0.2,
  0.5, 0.8, 2, 5; n = 5..1000; paired and unpaired; every alternative): the
  noncentral t's tail by numerical integration of its definition,
  P(T > c) = integral of P(Z > c sqrt(v/df) - ncp) over v ~ chi2(df)
  (``scipy.integrate.quad`` over the normal and chi-square densities, not
  scipy's noncentral t), and **Monte Carlo** for the paired test and TOST.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from repliflow.stats import power as pw
from repliflow.stats.power import (
    MAX_REPLICATES,
    minimum_detectable_effect,
    power,
    replicate_row,
    replicates_needed,
    smallest_equivalence_bound,
    tost_power,
    tost_replicates_needed,
)

GRID_D = (0.2, 0.5, 0.8, 2.0, 5.0)
GRID_N = (5, 10, 20, 50, 100, 200, 500, 1000)


def integrated_upper_tail(c: float, df: float, ncp: float) -> float:
    """P(T > c) for T = (Z + ncp) / sqrt(V / df), Z normal, V chi2(df): by quadrature."""
    spread = math.sqrt(2 * df)
    lo, hi = max(0.0, df - 40 * spread), df + 40 * spread

    def integrand(v: float) -> float:
        return float(stats.norm.sf(c * math.sqrt(v / df) - ncp) * stats.chi2.pdf(v, df))

    value, _ = integrate.quad(integrand, lo, hi, points=[df], limit=400, epsabs=1e-12, epsrel=1e-9)
    return value


def integrated_power(d: float, n: int, alpha: float, alternative: str, paired: bool) -> float:
    df = n - 1 if paired else 2 * n - 2
    ncp = d * math.sqrt(n if paired else n / 2)
    if alternative == "two-sided":
        c = stats.t.isf(alpha / 2, df)
        return integrated_upper_tail(c, df, ncp) + integrated_upper_tail(c, df, -ncp)
    c = stats.t.isf(alpha, df)
    return integrated_upper_tail(c, df, ncp if alternative == "greater" else -ncp)


# --- power across the whole range -----------------------------------------------------------


@pytest.mark.parametrize("paired", [False, True])
def test_power_matches_numerical_integration_on_the_whole_grid(paired):
    for d in GRID_D:
        for n in GRID_N:
            for alternative, effect in [("two-sided", d), ("greater", d), ("less", -d)]:
                got = power(effect, n, alternative=alternative, paired=paired)
                want = integrated_power(effect, n, 0.05, alternative, paired)
                assert math.isfinite(got) and 0 <= got <= 1, (d, n, alternative, got)
                assert got == pytest.approx(want, abs=1e-8), (d, n, alternative, paired)


def test_the_issue_case_is_near_one_not_nan():
    """The default example's paired t: d_z = 2.06 at n = 50 (scipy's nct.cdf gave NaN)."""
    with np.errstate(all="ignore"):
        assert math.isnan(stats.nct.cdf(-stats.t.isf(0.025, 49), 49, 14.5))  # why: scipy's far tail
    assert power(2.06, 50, paired=True) == pytest.approx(1.0, abs=1e-12)
    assert power(-2.06, 50, paired=True) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("paired", [False, True])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_a_tiny_effect_has_power_alpha(paired, alternative):
    for n in (*GRID_N, 10_000, 1_000_000):
        for alpha in (0.05, 0.01, 0.001):
            assert power(1e-6, n, alpha=alpha, alternative=alternative, paired=paired) == pytest.approx(
                alpha, rel=0.02
            )


@pytest.mark.parametrize("paired", [False, True])
def test_power_rises_with_the_effect_and_the_replicates(paired):
    for n in GRID_N:
        values = [power(d, n, paired=paired) for d in (0.0, *GRID_D)]
        assert values == sorted(values) and values[0] == pytest.approx(0.05)
    for d in GRID_D:
        values = [power(d, n, paired=paired) for n in GRID_N]
        assert values == sorted(values)
    assert power(5.0, 1000, paired=paired) == 1.0


def test_r_power_t_test_documentation_examples():
    assert power(1.0, 20) == pytest.approx(0.8689528, abs=1e-6)
    assert optimize.brentq(lambda n: power(1.0, n) - 0.9, 3, 100) == pytest.approx(22.02110, abs=1e-4)
    one_sided = optimize.brentq(lambda n: power(1.0, n, alternative="greater") - 0.9, 3, 100)
    assert one_sided == pytest.approx(17.84713, abs=1e-4)
    assert replicates_needed(1.0, target=0.9) == 23


@pytest.mark.parametrize(
    ("alpha", "cohen"),
    [
        (0.05, {0.2: 393, 0.5: 64, 0.8: 26}),
        (0.01, {0.2: 586, 0.5: 95, 0.8: 38}),
        (0.1, {0.2: 310, 0.5: 50, 0.8: 20}),
    ],
)
def test_cohen_1992_table_2_sample_sizes(alpha, cohen):
    for d, n in cohen.items():
        assert replicates_needed(d, alpha=alpha) in (n, n + 1), (alpha, d)


def test_paired_power_matches_monte_carlo():
    """Paired t, d_z = 0.5 and n = 20: 20,000 simulated experiments (vectorised)."""
    rng = np.random.default_rng(5)
    differences = rng.normal(0.5, 1.0, size=(20_000, 20))
    rejected = stats.ttest_1samp(differences, 0.0, axis=1).pvalue < 0.05
    rate, se = rejected.mean(), math.sqrt(rejected.mean() * (1 - rejected.mean()) / len(rejected))
    assert abs(power(0.5, 20, paired=True) - rate) < 4 * se


# --- replicates needed and sensitivity ------------------------------------------------------


def test_replicates_needed_reaches_the_target_and_one_fewer_does_not():
    for paired in (False, True):
        for d in GRID_D:
            n = replicates_needed(d, paired=paired)
            assert n is not None and power(d, n, paired=paired) >= 0.8
            if n > 2:
                assert power(d, n - 1, paired=paired) < 0.8


def test_an_effect_too_small_for_the_largest_run_needs_no_number():
    assert replicates_needed(1e-4) is None  # about 1.6e9 per condition
    assert replicates_needed(0.5, alternative="less") is None  # the wrong way


@pytest.mark.parametrize("paired", [False, True])
def test_the_minimum_detectable_effect_has_the_target_power(paired):
    for n in GRID_N:
        d = minimum_detectable_effect(n, paired=paired)
        assert power(d, n, paired=paired) == pytest.approx(0.8, abs=1e-8)
    assert minimum_detectable_effect(64) == pytest.approx(0.5, abs=0.003)  # Cohen: 64 per group for d = .5
    less = minimum_detectable_effect(30, alternative="less")
    assert less < 0 and power(less, 30, alternative="less") == pytest.approx(0.8, abs=1e-8)
    assert math.isnan(minimum_detectable_effect(1))


# --- equivalence (TOST) planning ------------------------------------------------------------


@pytest.mark.parametrize(("paired", "n", "bound"), [(False, 40, 0.7), (True, 25, 0.6), (False, 100, 0.4)])
def test_tost_power_is_a_close_lower_bound_of_monte_carlo(paired, n, bound):
    """Equal means; the rate of both one-sided t-tests rejecting over 20,000 simulated experiments."""
    rng = np.random.default_rng(11)
    runs = 20_000
    if paired:
        d = rng.normal(0.0, 1.0, size=(runs, n))
        mean, se, df = d.mean(axis=1), d.std(axis=1, ddof=1) / math.sqrt(n), n - 1
    else:
        a, b = rng.normal(size=(runs, n)), rng.normal(size=(runs, n))
        mean = b.mean(axis=1) - a.mean(axis=1)
        se = np.sqrt(a.var(axis=1, ddof=1) / n + b.var(axis=1, ddof=1) / n)
        df = 2 * n - 2  # the plan's df; Welch's is within a hair of it for equal n and variances
    c = stats.t.isf(0.05, df)
    shown = ((mean + bound) / se > c) & ((mean - bound) / se < -c)
    rate = shown.mean()
    se_rate = math.sqrt(rate * (1 - rate) / runs)
    planned = tost_power(bound, n, paired=paired)
    assert planned <= rate + 4 * se_rate and rate - planned < 0.02


def test_tost_replicates_and_bound_are_consistent():
    n = tost_replicates_needed(0.5)
    assert n is not None and tost_power(0.5, n) >= 0.8 > tost_power(0.5, n - 1)
    bound = smallest_equivalence_bound(n)
    assert bound <= 0.5 and tost_power(bound, n) == pytest.approx(0.8, abs=1e-8)
    assert tost_power(0.5, 2) == 0.0 and tost_power(0.0, 100) == 0.0


# --- the plan: never from the observed effect -----------------------------------------------


def hypothesis(**fields):
    return {"name": "h", "metric": "m", "verifier": "welch_t", "params": {}, "correction": "holm", **fields}


NULL_BASELINE = [1.00, 1.31, 0.80, 1.12, 0.91, 1.05, 0.97, 1.20]
NULL_TREATMENT = [1.01, 1.30, 0.81, 1.11, 0.92, 1.06, 0.96, 1.21]  # a difference of about 0.001


def test_a_null_result_gets_no_replicate_recommendation_without_a_declared_effect():
    row = replicate_row(hypothesis(), "t", NULL_BASELINE, NULL_TREATMENT, k=1)
    assert row.effect_source == "none" and row.replicates_needed is None and math.isnan(row.power)
    assert abs(row.observed_difference) < 0.01  # it is shown, never planned from
    d = minimum_detectable_effect(8)
    assert row.detectable_standardized == pytest.approx(d) and row.detectable == pytest.approx(d * row.sd)


def test_a_declared_sesoi_is_planned_in_metric_units_or_as_d():
    by_value = replicate_row(hypothesis(sesoi={"value": 0.1}), "t", NULL_BASELINE, NULL_TREATMENT, k=1)
    assert by_value.effect_source == "sesoi" and by_value.effect == 0.1
    assert by_value.standardized_effect == pytest.approx(0.1 / by_value.sd)
    assert by_value.replicates_needed == replicates_needed(0.1 / by_value.sd)
    by_d = replicate_row(hypothesis(sesoi={"d": 0.5}), "t", NULL_BASELINE, NULL_TREATMENT, k=3)
    assert by_d.standardized_effect == 0.5 and by_d.effect == pytest.approx(0.5 * by_d.sd)
    assert by_d.alpha_per_comparison == pytest.approx(0.05 / 3)
    assert by_d.replicates_needed == replicates_needed(0.5, alpha=0.05 / 3)
    # a one-sided "less" hypothesis plans the sesoi its own way
    less = replicate_row(
        hypothesis(sesoi={"d": 0.5}, params={"alternative": "less"}), "t", NULL_BASELINE, NULL_TREATMENT, k=1
    )
    assert less.standardized_effect == -0.5 and less.replicates_needed == replicates_needed(
        -0.5, alternative="less"
    )
    # --effect wins over the sesoi
    given = replicate_row(hypothesis(sesoi={"d": 0.5}), "t", NULL_BASELINE, NULL_TREATMENT, k=1, effect=0.3)
    assert given.effect_source == "given" and given.effect == 0.3


def test_an_equivalence_hypothesis_is_planned_as_tost():
    row = replicate_row(
        hypothesis(verifier="tost_paired", sesoi={"d": 0.4}), "t", NULL_BASELINE, NULL_TREATMENT, k=1
    )
    assert row.test == "equivalence" and row.planned_as == "TOST, paired t"
    assert row.power == pytest.approx(tost_power(0.4, 8, paired=True))
    assert row.replicates_needed == tost_replicates_needed(0.4, paired=True)
    assert row.detectable_standardized == pytest.approx(smallest_equivalence_bound(8, paired=True))


def test_the_plan_text_never_says_already_when_power_is_alpha(tmp_path):
    from repliflow.report.tables import Results

    values = {("baseline", "m"): NULL_BASELINE, ("t", "m"): NULL_TREATMENT}
    h = {**hypothesis(), "results": {"t": {}}, "ranking": ["t"]}
    results = Results(path=tmp_path, values=values, hypotheses=[h], provenance={}, failed={})
    tiny = pw.replicate_plan(results, effect=0.0001)
    text = pw.format_replicate_plan(tiny, "results/exp")
    assert "already" not in text and f"up to {MAX_REPLICATES:,}" in text
    assert tiny["rows"][0]["power"] < 0.06 and not tiny["extend"]
    none = pw.format_replicate_plan(pw.replicate_plan(results), "results/exp")
    assert "already" not in none and "no smallest effect of interest is declared" in none
    large = pw.format_replicate_plan(pw.replicate_plan(results, effect=5.0), "results/exp")
    assert "already give 80% power for h/t" in large
