"""Degenerate inputs give a clear verdict, never an exception: identical samples
(an A/A treatment), zero variance, fewer than 2 values, NaN or missing values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from repliflow.stats import DIFFERENCE_NAMES, PAIRED
from repliflow.stats.builtin import BUILTINS

ALL = pytest.mark.parametrize("name", DIFFERENCE_NAMES)
SAMPLE = [0.3, 1.2, -0.4, 2.2, 0.9, 1.7, -1.1, 0.5]


def run(name, baseline, treatment, **params):
    return BUILTINS[name](baseline, treatment, **params)


@ALL
def test_identical_samples_are_no_difference(name):
    result = run(name, SAMPLE, list(SAMPLE))
    assert result["significant"] is False
    assert result["p_value"] >= 0.99 if name != "bootstrap" else result["p_value"] > 0.9
    assert result["mean_difference"] == 0
    assert "identical" in result["note"]
    if name in PAIRED:  # every difference is 0: nothing for a t statistic or a signed rank
        assert result["degenerate"] == "identical" and result["p_value"] == 1.0


@ALL
def test_all_values_equal_everywhere_is_no_difference(name):
    result = run(name, [2.5] * 6, [2.5] * 6)
    assert result["p_value"] == 1.0 and result["significant"] is False
    assert "identical" in result["note"]


@pytest.mark.parametrize("name", ["welch_t", "student_t", "bootstrap"])
def test_zero_variance_in_both_conditions_uses_the_exact_permutation_test(name):
    result = run(name, [1.0] * 5, [2.0] * 5)
    assert result["degenerate"] == "zero_variance" and "zero variance" in result["note"]
    assert math.isnan(result["statistic"])  # 1 / 0: the t statistic is undefined
    # exact permutation test: 2 of the C(10, 5) = 252 relabellings are as extreme
    assert result["p_value"] == pytest.approx(2 / 252)
    assert result["significant"] is True
    assert result["mean_difference_ci"] == [1.0, 1.0]
    assert result.get("hedges_g") == math.inf


def test_constant_paired_differences_use_the_sign_flip_permutation_test():
    baseline = [0.1, 0.7, 1.3, 2.0, 2.9, 3.1]
    result = run("paired_t", baseline, [b + 0.3 for b in baseline])  # differences 0.3 up to rounding
    assert result["degenerate"] == "zero_variance"
    assert result["p_value"] == pytest.approx(2 / 2**6)  # both all-plus and all-minus flips
    assert result["mean_difference_ci"] == pytest.approx([0.3, 0.3])


@pytest.mark.parametrize("name", ["mann_whitney", "permutation"])
def test_zero_variance_needs_no_fallback_for_rank_and_permutation_tests(name):
    result = run(name, [1.0] * 5, [2.0] * 5)
    assert "degenerate" not in result
    assert 0 < result["p_value"] < 0.05


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy's own precision warning on the constant sample
def test_zero_variance_in_one_condition_is_an_ordinary_welch_test():
    result = run("welch_t", [1.0] * 6, SAMPLE)
    assert "degenerate" not in result
    assert result["p_value"] == pytest.approx(stats.ttest_ind(SAMPLE, [1.0] * 6, equal_var=False).pvalue)


@ALL
@pytest.mark.parametrize(("baseline", "treatment"), [([1.0], [2.0, 3.0]), ([], []), ([1.0, 2.0], [3.0])])
def test_fewer_than_two_values_is_not_tested(name, baseline, treatment):
    if name in PAIRED and len(baseline) != len(treatment):
        baseline, treatment = baseline[:1], treatment[:1]
    result = run(name, baseline, treatment)
    assert result["degenerate"] == "too_few"
    assert math.isnan(result["p_value"]) and result["significant"] is False
    assert "at least 2" in result["note"]


@ALL
def test_nan_and_missing_values_are_counted_and_left_out(name):
    baseline = [*SAMPLE, float("nan")]
    treatment = [x + 1.5 for x in SAMPLE[:-1]] + [None, 0.8]
    result = run(name, baseline, treatment)
    assert result["n_missing_baseline"] == 1 and result["n_missing_treatment"] == 1
    if name in PAIRED:  # the pairs of replicates 7 and 8 are dropped
        assert result["n_pairs"] == 7
        expected = run(name, SAMPLE[:-1], [x + 1.5 for x in SAMPLE[:-1]])
    else:
        assert (result["n_baseline"], result["n_treatment"]) == (8, 8)
        expected = run(name, SAMPLE, [x + 1.5 for x in SAMPLE[:-1]] + [0.8])
    assert result["p_value"] == pytest.approx(expected["p_value"])


@ALL
def test_infinite_values_count_as_missing(name):
    result = run(name, [*SAMPLE, math.inf], [*SAMPLE, -math.inf])
    assert result["n_missing_baseline"] == 1 and result["n_missing_treatment"] == 1
    assert math.isfinite(result["p_value"])


def test_paired_verifiers_need_one_value_per_replicate():
    with pytest.raises(ValueError, match="one value per replicate"):
        run("paired_t", [1.0, 2.0, 3.0], [1.0, 2.0])


@pytest.mark.parametrize(
    ("params", "message"), [({"alpha": 1.5}, "alpha"), ({"alternative": "up"}, "alternative")]
)
def test_bad_parameters_name_themselves(params, message):
    with pytest.raises(ValueError, match=message):
        run("welch_t", SAMPLE, SAMPLE, **params)


@ALL
def test_one_sided_alternatives_follow_the_direction(name):
    rng = np.random.default_rng(5)
    baseline = rng.normal(0, 1, 15)
    treatment = baseline + rng.normal(1.0, 0.5, 15)
    greater = run(name, baseline, treatment, alternative="greater")
    less = run(name, baseline, treatment, alternative="less")
    assert greater["significant"] and not less["significant"]
    assert greater["p_value"] < 0.05 < less["p_value"]


def test_an_interval_bound_past_nctdtr_s_reach_is_unknown_not_a_failed_job():
    """scipy.special.nctdtr is NaN far in a tail at df 1 (Boost's series gives
    up), where Brent's method cannot go on: 2 pairs at alpha 0.01 and t = 12.1
    raised ValueError and failed the aggregate job. The bound is NaN (unknown);
    the test itself and the other bound stand."""
    result = run("paired_t", [0.0, 0.0], [1.0, 1.18], alpha=0.01)
    assert result["statistic"] == pytest.approx(12.111, abs=1e-3)
    assert 0.05 < result["p_value"] < 0.06 and result["significant"] is False
    lower, upper = result["cohens_dz_ci"]
    assert math.isnan(lower) and math.isfinite(upper) and upper > result["cohens_dz"]
