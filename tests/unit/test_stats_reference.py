"""Verifiers, effect sizes and corrections against published reference values.

Every expected number below is quoted from the source named next to it (R's
documentation and output, R packages' documented examples and test suites, the
original papers), never computed by the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from repliflow.stats import effect
from repliflow.stats.builtin import (
    bca_p_value,
    bootstrap,
    mann_whitney,
    paired_t,
    student_t,
    welch_t,
    wilcoxon,
)
from repliflow.stats.corrections import adjust

# Student's sleep data, R `datasets::sleep`: extra hours of sleep of 10 patients under two drugs.
SLEEP_DRUG1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_DRUG2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_welch_t_on_the_sleep_data_matches_r():
    # R: t.test(extra ~ group, data = sleep) -> t = -1.8608, df = 17.776, p-value = 0.07939,
    # 95 percent confidence interval: -3.3654832 0.2054832. R's difference is group 1 minus group 2,
    # so drug 2 is our baseline and drug 1 our treatment.
    result = welch_t(SLEEP_DRUG2, SLEEP_DRUG1)
    assert result["statistic"] == pytest.approx(-1.8608, abs=5e-5)
    assert result["df"] == pytest.approx(17.776, abs=5e-4)
    assert result["p_value"] == pytest.approx(0.07939, abs=5e-6)
    assert result["mean_difference_ci"] == pytest.approx([-3.3654832, 0.2054832], abs=5e-8)
    assert result["significant"] is False and result["method"] == "welch_t"
    assert (result["n_baseline"], result["n_treatment"]) == (10, 10)


def test_paired_t_on_the_sleep_data_matches_r():
    # R: t.test(Pair(extra[group == 1], extra[group == 2]) ~ 1, data = sleep) -> t = -4.0621, df = 9,
    # p-value = 0.002833, 95 percent confidence interval: -2.4598858 -0.7001142.
    result = paired_t(SLEEP_DRUG2, SLEEP_DRUG1)
    assert result["statistic"] == pytest.approx(-4.0621, abs=5e-5)
    assert result["df"] == 9
    assert result["p_value"] == pytest.approx(0.002833, abs=5e-7)
    assert result["mean_difference_ci"] == pytest.approx([-2.4598858, -0.7001142], abs=5e-8)
    assert result["significant"] is True and result["n_pairs"] == 10


def test_mann_whitney_matches_the_r_documentation_example():
    # R ?wilcox.test, "Two-sample test. Hollander & Wolfe (1973), 69f.": permeability constants of the
    # human chorioamnion at term (x) and at 12 to 26 weeks (y);
    # wilcox.test(x, y, alternative = "g") -> W = 35, p-value = 0.1272.
    x = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
    y = [1.15, 0.88, 0.90, 0.74, 1.21]
    result = mann_whitney(y, x, alternative="greater")
    assert result["statistic"] == 35
    assert result["p_value"] == pytest.approx(0.1272, abs=5e-5)


def test_wilcoxon_matches_the_r_documentation_example():
    # R ?wilcox.test, "One-sample test. Hollander & Wolfe (1973), 29f.": Hamilton depression scale
    # factor of 9 patients at the first (x) and second (y) visit;
    # wilcox.test(x, y, paired = TRUE, alternative = "greater") -> V = 40, p-value = 0.01953.
    x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
    y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]
    result = wilcoxon(y, x, alternative="greater")
    assert result["statistic"] == 40
    assert result["p_value"] == pytest.approx(0.01953, abs=5e-6)
    # R package effectsize, tests/testthat/test-rankES.R on the same data:
    # rank_biserial(x, y, paired = TRUE) -> 0.777, CI 0.2953631 to 0.9441559.
    two_sided = wilcoxon(y, x)
    assert two_sided["rank_biserial"] == pytest.approx(0.777, abs=1e-3)
    assert two_sided["rank_biserial_ci"] == pytest.approx([0.2953631, 0.9441559], abs=1e-7)


def test_rank_biserial_matches_effectsize():
    # R package effectsize, tests/testthat/test-rankES.R: rank_biserial(A, B) -> 0.6071429
    # (A dominates B, so A is our treatment).
    a = [48, 48, 77, 86, 85, 85, 16]
    b = [14, 34, 34, 77]
    assert mann_whitney(b, a)["rank_biserial"] == pytest.approx(0.6071429, abs=1e-7)


# mtcars$wt (R `datasets::mtcars`) by transmission: am = 1 (manual) and am = 0 (automatic).
WT_MANUAL = [2.620, 2.875, 2.320, 2.200, 1.615, 1.835, 1.935, 2.140, 1.513, 3.170, 2.770, 3.570, 2.780]
WT_AUTOMATIC = [
    3.215,
    3.440,
    3.460,
    3.570,
    3.190,
    3.150,
    3.440,
    3.440,
    4.070,
    3.730,
    3.780,
    5.250,
    5.424,
    5.345,
    2.465,
    3.520,
    3.435,
    3.840,
    3.845,
]


def test_cohens_d_and_hedges_g_with_cis_match_effectsize():
    # R package effectsize, tests/testthat/test-standardized_differences.R:
    # cohens_d(wt ~ am, data = mtcars) -> 1.892, CI 1.030 to 2.732;
    # hedges_g(wt ~ am, data = mtcars) -> 1.844, CI 1.004 to 2.664 (group 0 minus group 1),
    # each checked there with a relative tolerance of 0.001, as here.
    result = student_t(WT_MANUAL, WT_AUTOMATIC)
    assert result["cohens_d"] == pytest.approx(1.892, rel=1e-3)
    assert result["cohens_d_ci"] == pytest.approx([1.030, 2.732], rel=1e-3)
    assert result["hedges_g"] == pytest.approx(1.844, rel=1e-3)
    assert result["hedges_g_ci"] == pytest.approx([1.004, 2.664], rel=1e-3)
    assert result["effect_size"] == "hedges_g"


def test_hedges_exact_correction_matches_reproducer():
    # R package reproducer, ?calculateHg: calculateHg(10, 15, 20, 20, 2, 2) -> Hg 2.5, HgAdjusted 2.450276
    # (d = 2.5 on 20 + 20 - 2 = 38 degrees of freedom).
    assert 2.5 * effect.hedges_j(38) == pytest.approx(2.450276, abs=5e-7)


# Benjamini & Hochberg (1995), JRSS B 57(1), section 4.2: the 15 ordered p-values of a
# myocardial-infarction study. At level 0.05 Bonferroni (and Holm) reject 3 hypotheses,
# the false-discovery-rate procedure rejects 4.
BH_1995 = [
    0.0001,
    0.0004,
    0.0019,
    0.0095,
    0.0201,
    0.0278,
    0.0298,
    0.0344,
    0.0459,
    0.3240,
    0.4262,
    0.5719,
    0.6528,
    0.7590,
    1.000,
]


def test_corrections_reject_what_benjamini_and_hochberg_report():
    assert sum(p < 0.05 for p in adjust(BH_1995, "bonferroni")) == 3
    assert sum(p < 0.05 for p in adjust(BH_1995, "holm")) == 3
    assert sum(p <= 0.05 for p in adjust(BH_1995, "fdr_bh")) == 4
    assert sum(p < 0.05 for p in adjust(BH_1995, "none")) == 9


def test_adjusted_values_follow_the_published_definitions():
    # Holm (1979): the i-th smallest p times (m - i + 1), made monotone; here by hand:
    # 15 x 0.0001, 14 x 0.0004, 13 x 0.0019, 12 x 0.0095.
    holm = adjust(BH_1995, "holm")
    assert holm[:4] == pytest.approx([0.0015, 0.0056, 0.0247, 0.114])
    # BH: min over k >= i of m / k x p(k): p(4) -> 15 / 4 x 0.0095 = 0.035625.
    assert adjust(BH_1995, "fdr_bh")[3] == pytest.approx(0.035625)
    # Wikipedia's Holm-Bonferroni example: p = 0.01, 0.04, 0.03, 0.005 at alpha 0.05 rejects
    # H1 and H4; adjusted (by hand) 0.03, 0.06, 0.06, 0.02.
    assert adjust([0.01, 0.04, 0.03, 0.005], "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # Input order is kept, NaN (a test that could not be made) stays NaN and is not counted.
    out = adjust([0.01, float("nan"), 0.02], "bonferroni")
    assert out[0] == pytest.approx(0.02) and np.isnan(out[1]) and out[2] == pytest.approx(0.04)


def _diff(t, b, axis=-1):
    return np.mean(t, axis=axis) - np.mean(b, axis=axis)


@pytest.mark.parametrize(
    ("alternative", "shift"), [("two-sided", 0.5), ("two-sided", -0.7), ("greater", 0.4), ("less", -0.3)]
)
def test_bootstrap_p_value_is_where_scipys_bca_interval_reaches_zero(alternative, shift):
    """Cross-check with scipy: rebuilt from the same bootstrap distribution, scipy's
    own BCa interval at confidence level 1 - p ends at 0."""
    rng = np.random.default_rng(3)
    baseline, treatment = rng.normal(0, 1, 25), rng.normal(shift, 1.5, 30)
    p = bootstrap(baseline, treatment, alternative=alternative, n_resamples=9999, seed=1)["p_value"]
    assert 0.005 < p < 0.5
    first = stats.bootstrap((treatment, baseline), _diff, n_resamples=9999, rng=np.random.default_rng(1))
    again = stats.bootstrap(
        (treatment, baseline),
        _diff,
        n_resamples=0,
        bootstrap_result=first,
        confidence_level=1 - p,
        alternative=alternative,
    )
    ci = again.confidence_interval
    bound = ci.high if alternative == "less" or (alternative == "two-sided" and shift < 0) else ci.low
    assert abs(bound) < 0.005 * np.std(first.bootstrap_distribution), bound


def test_bca_p_value_inverts_the_bca_construction():
    # A symmetric bootstrap distribution centred on the estimate, no acceleration: BCa is the
    # percentile method, so the one-sided p is the share of the distribution below 0.
    boot = np.linspace(-1, 3, 4001)  # estimate 1, 25% below 0
    jackknife = [np.array([1.0, 1.0]), np.array([1.0, 1.0])]
    assert bca_p_value(boot, 1.0, jackknife, "greater") == pytest.approx(0.25, abs=1e-3)
    assert bca_p_value(boot, 1.0, jackknife, "less") == pytest.approx(0.75, abs=1e-3)
    assert bca_p_value(boot, 1.0, jackknife, "two-sided") == pytest.approx(0.5, abs=1e-3)
