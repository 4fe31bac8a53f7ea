"""Group-sequential designs (repliflow.stats.sequential).

Where each expected value comes from:

* **rpact's own unit tests** ("REF-RPACT"): expected values printed in
  ``tests/testthat/test-f_design_group_sequential.R`` of the R package rpact,
  version 4.1.0 (github.com/cran/rpact, commit bd54672f, 2024-09-28), quoted to
  the digits given there. They are rpact's output, not re-run here (no R).
  They cover both spending functions, one- and two-sided tests and unequally
  spaced looks, and rpact's crossing probabilities and average sample numbers.
* **Tabulated O'Brien-Fleming-type bounds** ("TABULATED"): K = 5, two-sided
  alpha = 0.05, equally spaced: 4.877, 3.357, 2.680, 2.290, 2.031, the
  values gsDesign (``test.type = 2, alpha = 0.025, sfu = sfLDOF``) and rpact
  (``sided = 2, typeOfDesign = "asOF"``) print. Quoted from memory of that
  output, not from a file here; they agree with the integration that matches
  REF-RPACT, and with the Monte Carlo check.
* **Monte Carlo** ("MC"): for equally spaced K = 2..5 with both spending
  functions (two-sided, alpha = 0.05), for which no printed reference is
  at hand, 2,000,000 seeded Brownian paths observed at the looks: the count of
  first crossings at each look must lie in the binomial 99.99% interval of the
  alpha the design says it spends there. An independent method (simulation,
  no numerical integration), with Monte Carlo error, not to 3 decimals.
* **Grid convergence**: the boundaries do not move (by 1e-6) when the
  integration grid is four times finer; with REF-RPACT this is what backs the
  3-decimal accuracy on the equally spaced designs.
* **Calibration** ("A/A"): whole A/A trials at the statistics level
  (Welch t-test at each look, p converted to z) keep the type I error at or
  below alpha within Monte Carlo error; a true effect mostly stops early.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from repliflow.stats.sequential import (
    SPENDING,
    crossing_probabilities,
    decide,
    drift_for_effect,
    group_sequential_design,
    operating_characteristics,
    replicate_schedule,
    spent_alpha,
    stagewise_p_value,
    z_from_p,
)

# ---------------------------------------------------------------------------
# spending functions


@pytest.mark.parametrize(
    ("spending", "fractions", "expected"),
    [
        # REF-RPACT x7a: getDesignGroupSequential(kMax = 3, alpha = 0.13, typeOfDesign = "asOF",
        # informationRates = c(0.4, 0.75, 1), ...)$alphaSpent (one-sided)
        ("obrien_fleming", (0.4, 0.75, 1.0), (0.016665509, 0.080406163, 0.13)),
        # REF-RPACT x6a: kMax = 3, alpha = 0.13, typeOfDesign = "asP",
        # informationRates = c(0.35, 0.7, 1): $alphaSpent
        ("pocock", (0.35, 0.7, 1.0), (0.061214062, 0.10266465, 0.13)),
    ],
)
def test_spent_alpha_matches_rpact(spending, fractions, expected):
    got = [spent_alpha(t, 0.13, spending, "greater") for t in fractions]
    assert got == pytest.approx(expected, abs=1e-8)


def test_spent_alpha_two_sided_spends_half_per_side():
    """Two-sided at level alpha = each side one-sided at alpha / 2 (the
    convention of gsDesign, rpact ``sided = 2`` and ldbounds). For the
    O'Brien-Fleming type this is 4 - 4 Phi(z_{1-alpha/4} / sqrt(t)), not
    2 - 2 Phi(z_{1-alpha/2} / sqrt(t))."""
    for t in (0.1, 0.2, 0.5, 0.8, 1.0):
        for spending in SPENDING:
            assert spent_alpha(t, 0.05, spending) == pytest.approx(
                2 * spent_alpha(t, 0.025, spending, "greater")
            )
        assert spent_alpha(t, 0.05) == pytest.approx(
            4 - 4 * stats.norm.cdf(stats.norm.isf(0.0125) / math.sqrt(t))
        )
        assert spent_alpha(t, 0.05, "pocock") == pytest.approx(0.05 * math.log(1 + (math.e - 1) * t))
    assert spent_alpha(0.0, 0.05) == 0.0
    assert spent_alpha(1.0, 0.05) == pytest.approx(0.05)
    assert spent_alpha(1.0, 0.05, "pocock") == pytest.approx(0.05)


# ---------------------------------------------------------------------------
# boundaries against printed references


@pytest.mark.parametrize(
    ("looks", "alpha", "spending", "fractions", "alternative", "expected"),
    [
        # REF-RPACT x7a (non-binding futility: the efficacy bounds are those of asOF alone)
        (3, 0.13, "obrien_fleming", (0.4, 0.75, 1), "greater", (2.1280732, 1.4368565, 1.2468994)),
        (
            4,
            0.13,
            "obrien_fleming",
            (0.4, 0.75, 0.85, 1),
            "greater",
            (2.1280732, 1.4368565, 1.422873, 1.2970881),
        ),
        # REF-RPACT x6a (asP, non-binding futility)
        (3, 0.13, "pocock", (0.35, 0.7, 1), "greater", (1.5446617, 1.4828682, 1.4620058)),
        # REF-RPACT x7e (sided = 2, alpha = 0.09, asOF, non-binding futility)
        (3, 0.09, "obrien_fleming", (0.4, 0.65, 1), "two-sided", (2.9623919, 2.2442359, 1.7391729)),
        # REF-RPACT dl1 (sided = 1, alpha = 0.05, asP, bindingFutility = FALSE)
        (3, 0.05, "pocock", (0.4, 0.65, 1), "greater", (1.9405431, 2.0327662, 1.9734104)),
    ],
)
def test_boundaries_match_rpact(looks, alpha, spending, fractions, alternative, expected):
    design = group_sequential_design(looks, alpha, spending, fractions=fractions, alternative=alternative)
    assert design.bounds == pytest.approx(expected, abs=1e-5)


def test_obrien_fleming_k5_matches_tabulated_bounds():
    """TABULATED: K = 5, two-sided alpha = 0.05, equally spaced."""
    design = group_sequential_design(5, 0.05, "obrien_fleming")
    assert [round(b, 3) for b in design.bounds] == [4.877, 3.357, 2.680, 2.290, 2.031]


def test_crossing_probabilities_match_rpact():
    # REF-RPACT x0: getDesignInverseNormal() is the classical O'Brien & Fleming
    # design, kMax = 3, one-sided alpha = 0.025: criticalValues and alphaSpent.
    upper, lower = crossing_probabilities(
        (3.4710914, 2.4544323, 2.0040356), (1 / 3, 2 / 3, 1), alternative="greater"
    )
    assert np.cumsum(upper) == pytest.approx((0.00025917372, 0.0071600594, 0.025), abs=1e-8)
    assert lower == (0.0, 0.0, 0.0)
    # REF-RPACT x9: Haybittle-Peto, kMax = 4, alpha = 0.025: bounds 3, 3, 3, 1.9827514
    upper, _ = crossing_probabilities((3, 3, 3, 1.9827514), (0.25, 0.5, 0.75, 1), alternative="greater")
    assert sum(upper) == pytest.approx(0.025, abs=1e-8)


def test_operating_characteristics_match_rpact():
    """REF-RPACT x1/y1: kMax = 3, informationRates = c(0.2, 0.4, 1), alpha = 0.03,
    one-sided, its criticalValues 2.5121443, 2.4228747, 2.0280392 (asHSD with
    gamma 0, used here only for its bounds), and getDesignCharacteristics: shift
    9.4594101 (drift = sqrt(shift)), rejectionProbabilities, and average sample
    numbers relative to the fixed design (divided by the inflation factor
    1.0788327 they are the expected information fraction). rpact's default
    futility bound of -6 changes these by about 1e-9."""
    base = group_sequential_design(3, 0.03, "pocock", fractions=(0.2, 0.4, 1), alternative="greater")
    design = dataclasses.replace(base, bounds=(2.5121443, 2.4228747, 2.0280392))
    h1 = operating_characteristics(design, math.sqrt(9.4594101), max_replicates=100)
    assert h1.reject == pytest.approx((0.12783451, 0.21271713, 0.51944835), abs=1e-7)
    assert h1.power == pytest.approx(0.86, abs=1e-7)
    assert h1.expected_fraction == pytest.approx(0.83081135 / 1.0788327, abs=1e-7)
    assert h1.expected_replicates == pytest.approx(100 * 0.83081135 / 1.0788327, abs=1e-5)
    h0 = operating_characteristics(design, 0.0)
    assert h0.expected_fraction == pytest.approx(1.0697705 / 1.0788327, abs=1e-7)
    assert h0.expected_replicates is None and h0.saved_replicates is None


def test_integration_grid_is_converged():
    """Grid convergence: 16 points per SD (the default) against 64."""
    worst = 0.0
    for looks in range(2, 6):
        for spending in SPENDING:
            for alternative in ("two-sided", "greater"):
                coarse = group_sequential_design(looks, 0.05, spending, alternative=alternative)
                fine = group_sequential_design(
                    looks, 0.05, spending, alternative=alternative, points_per_sd=64
                )
                worst = max(worst, max(abs(a - b) for a, b in zip(coarse.bounds, fine.bounds, strict=True)))
    assert worst < 1e-6


# ---------------------------------------------------------------------------
# Monte Carlo check of the equally spaced designs

PATHS = 2_000_000


@pytest.mark.parametrize("looks", [2, 3, 4, 5])
def test_boundaries_spend_alpha_by_monte_carlo(looks):
    """MC: Brownian motion under H0 at t = k / K; the first crossings of each
    design (both spending functions, two-sided alpha 0.05) per look, against
    the spent increments alpha(t_k) - alpha(t_k-1), inside the binomial
    99.99% interval. The same paths for both spending functions."""
    rng = np.random.default_rng(20240615 + looks)
    designs = [group_sequential_design(looks, 0.05, spending) for spending in SPENDING]
    running = [np.ones(PATHS, dtype=bool) for _ in designs]
    counts = [[] for _ in designs]
    w = np.zeros(PATHS)
    step = math.sqrt(1 / looks)
    for k in range(looks):
        w += rng.standard_normal(PATHS) * step
        z = np.abs(w) / math.sqrt((k + 1) / looks)
        for i, design in enumerate(designs):
            crossed = running[i] & (z >= design.bounds[k])
            counts[i].append(int(crossed.sum()))
            running[i] &= ~crossed
    for i, design in enumerate(designs):
        spent = np.diff((0.0, *design.cumulative_alpha))
        for k in range(looks):
            low, high = stats.binom.interval(0.9999, PATHS, spent[k])
            assert low <= counts[i][k] <= high, (design.spending, k + 1, counts[i][k], PATHS * spent[k])
        assert sum(counts[i]) / PATHS <= 0.05 + 4 * math.sqrt(0.05 * 0.95 / PATHS)


def test_operating_characteristics_by_monte_carlo():
    """MC: under drift 4 (d = 0.8 with 50 replicates per condition) the
    stopping probabilities and expected replicates of the K = 5 O'Brien-Fleming
    design match 1,000,000 simulated Brownian paths with drift."""
    paths, looks, drift = 1_000_000, 5, 4.0
    design = group_sequential_design(looks)
    expected = operating_characteristics(design, drift, max_replicates=50)
    rng = np.random.default_rng(7)
    w = np.zeros(paths)
    stop_look = np.full(paths, looks)
    running = np.ones(paths, dtype=bool)
    for k in range(looks - 1):
        w += rng.standard_normal(paths) * math.sqrt(1 / looks) + drift / looks
        crossed = running & (np.abs(w) / math.sqrt((k + 1) / looks) >= design.bounds[k])
        stop_look[crossed] = k + 1
        running &= ~crossed
    observed = np.bincount(stop_look, minlength=looks + 1)[1:] / paths
    se = np.sqrt(np.array(expected.stop) * (1 - np.array(expected.stop)) / paths)
    assert np.all(np.abs(observed - expected.stop) <= 4.5 * se + 1e-6)
    replicates = 10 * stop_look
    assert replicates.mean() == pytest.approx(expected.expected_replicates, abs=4.5 * replicates.std() / 1000)


# ---------------------------------------------------------------------------
# A/A calibration and power with Welch t-tests at the looks

TRIALS = 4000
MAX_REPLICATES = 50
LOOKS = 5


def _simulate(shift: float, spending: str, seed: int, trials: int):
    """Trials of baseline vs treatment, N(10, 2) and N(10 + shift * 2, 2), with
    a Welch t-test on the replicates so far at 10, 20, ..., 50 per condition;
    the z statistics go through ``decide`` look by look, as the workflow will."""
    design = group_sequential_design(LOOKS, 0.05, spending)
    schedule = replicate_schedule(MAX_REPLICATES, LOOKS)
    rng = np.random.default_rng(seed)
    baseline = rng.normal(10.0, 2.0, size=(trials, MAX_REPLICATES))
    treatment = rng.normal(10.0 + 2.0 * shift, 2.0, size=(trials, MAX_REPLICATES))
    zs = np.empty((trials, LOOKS))
    for k, n in enumerate(schedule):
        p = stats.ttest_ind(treatment[:, :n], baseline[:, :n], axis=1, equal_var=False).pvalue
        effect = treatment[:, :n].mean(axis=1) - baseline[:, :n].mean(axis=1)
        zs[:, k] = [z_from_p(float(pi), float(ei)) for pi, ei in zip(p, effect, strict=True)]
    decisions = []
    for row in zs:
        for look in range(1, LOOKS + 1):
            decision = decide(design, row[:look])
            if decision.stopped:
                break
        decisions.append(decision)
    return design, schedule, decisions


@pytest.mark.parametrize("spending", SPENDING)
def test_aa_trials_keep_type_one_error(spending):
    """A/A: at most alpha + 2.6 standard errors rejections over 4000 trials
    (and more than alpha / 2: the boundaries are not vacuous); a rejection is
    exactly a stagewise p <= alpha."""
    _, _, decisions = _simulate(0.0, spending, seed=11 if spending == "pocock" else 12, trials=TRIALS)
    rate = sum(d.rejected for d in decisions) / TRIALS
    se = math.sqrt(0.05 * 0.95 / TRIALS)
    assert 0.025 < rate <= 0.05 + 2.6 * se
    for d in decisions:
        assert d.stopped and d.p_value is not None
        assert d.rejected == (d.p_value <= 0.05 + 1e-9)


def test_true_effect_stops_early_and_saves_replicates():
    """Power: d = 0.8 (drift 4 at 50 replicates), O'Brien-Fleming, K = 5. The
    normal-theory prediction (power 0.977, 32.3 expected replicates, 90% stop
    before the last look) holds for Welch t-tests to within a few points
    (small samples at the early looks cost a little power)."""
    trials = 2000
    design, schedule, decisions = _simulate(0.8, "obrien_fleming", seed=13, trials=trials)
    predicted = operating_characteristics(design, drift_for_effect(0.8, MAX_REPLICATES), MAX_REPLICATES)
    power = sum(d.rejected for d in decisions) / trials
    early = sum(d.rejected and d.look < LOOKS for d in decisions) / trials
    used = np.mean([schedule[d.look - 1] for d in decisions])
    assert predicted.power == pytest.approx(0.977, abs=0.001)
    assert power >= predicted.power - 0.03
    assert early >= 0.8
    assert used == pytest.approx(predicted.expected_replicates, abs=2.5)
    assert predicted.saved_replicates == pytest.approx(MAX_REPLICATES - predicted.expected_replicates)
    assert predicted.saved_replicates > 15


# ---------------------------------------------------------------------------
# decisions, stagewise p-values


def test_one_look_is_the_fixed_sample_test():
    for spending in SPENDING:
        two = group_sequential_design(1, 0.05, spending)
        assert two.bounds[0] == pytest.approx(stats.norm.isf(0.025), abs=1e-9)
        assert two.nominal_p[0] == pytest.approx(0.05)
        one = group_sequential_design(1, 0.05, spending, alternative="greater")
        assert one.bounds[0] == pytest.approx(stats.norm.isf(0.05), abs=1e-9)
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b = rng.normal(0, 1, 12), rng.normal(0.5, 1, 12)
        result = stats.ttest_ind(b, a, equal_var=False)
        decision = decide(two, [z_from_p(result.pvalue, b.mean() - a.mean())])
        assert decision.stopped
        assert decision.p_value == pytest.approx(result.pvalue, rel=1e-6, abs=1e-12)
        assert decision.rejected == (result.pvalue <= 0.05)


def test_decide_stops_at_the_first_crossing():
    design = group_sequential_design(5)  # 4.877, 3.357, 2.680, 2.290, 2.031
    assert decide(design, [1.0]).reason == "continue"
    going = decide(design, [1.0, -3.0])
    assert (going.stopped, going.look, going.p_value) == (False, 2, None)
    stop = decide(design, [1.0, -3.4, 0.0])  # the later value is not looked at
    assert (stop.look, stop.reason, stop.rejected, stop.z) == (2, "efficacy", True, -3.4)
    assert stop.bound == design.bounds[1]
    assert stop.p_value == pytest.approx(stagewise_p_value(design, 2, 3.4))
    assert "stopped at look 2 of 5" in stop.describe(design.looks)
    last = decide(design, [0.5, 1.0, 1.2, 1.4, 1.5])
    assert (last.look, last.reason, last.rejected) == (5, "last_look", False)
    assert last.p_value > 0.05
    final = decide(design, [0.5, 1.0, 1.2, 1.4, 2.1])
    assert (final.reason, final.rejected) == ("efficacy", True)
    # one-sided: only the declared direction stops
    less = group_sequential_design(3, 0.025, alternative="less")
    assert decide(less, [-4.0]).rejected
    assert decide(less, [4.0]).reason == "continue"


def test_stagewise_p_orders_stage_then_z():
    design = group_sequential_design(4, 0.05, "pocock")
    for k, bound in enumerate(design.bounds, start=1):
        # at the boundary the p is the alpha spent so far
        assert stagewise_p_value(design, k, bound) == pytest.approx(design.cumulative_alpha[k - 1], abs=1e-8)
        assert stagewise_p_value(design, k, bound + 0.01) < design.cumulative_alpha[k - 1]
    # any stop at look 2 is more extreme than any stop at look 3
    assert stagewise_p_value(design, 2, design.bounds[1] + 0.01) < stagewise_p_value(design, 3, 10.0)
    assert stagewise_p_value(design, 4, 0.0) == pytest.approx(1.0, abs=1e-6)  # all the mass
    assert stagewise_p_value(design, 2, -3.0) == stagewise_p_value(design, 2, 3.0)


def test_z_from_p():
    assert z_from_p(0.05, 1.3) == pytest.approx(1.959964, abs=1e-6)
    assert z_from_p(0.05, -0.2) == pytest.approx(-1.959964, abs=1e-6)
    assert z_from_p(1.0, 0.1) == 0.0
    assert z_from_p(0.0, 1.0) == math.inf
    assert z_from_p(0.05, -9.0, "greater") == pytest.approx(1.644854, abs=1e-6)
    assert z_from_p(0.05, 9.0, "less") == pytest.approx(-1.644854, abs=1e-6)


def test_operating_characteristics_under_h0_and_schedule():
    design = group_sequential_design(5, 0.05, "pocock")
    h0 = operating_characteristics(design, 0.0, max_replicates=50)
    assert h0.power == pytest.approx(0.05, abs=1e-8)
    assert sum(h0.stop) == pytest.approx(1.0)
    assert h0.expected_replicates < 50
    # two-sided: the sign of the effect does not matter
    assert operating_characteristics(design, -3.0).power == pytest.approx(
        operating_characteristics(design, 3.0).power
    )
    assert replicate_schedule(50, 5) == (10, 20, 30, 40, 50)
    assert replicate_schedule(7, 3) == (2, 5, 7)
    assert drift_for_effect(0.8, 50) == pytest.approx(4.0)
    assert drift_for_effect(0.5, 16, paired=True) == pytest.approx(2.0)


def test_closely_spaced_or_late_first_look():
    # O'Brien-Fleming spends (virtually) nothing at t = 0.001: that look cannot stop
    design = group_sequential_design(3, 0.05, fractions=(0.001, 0.5, 1))
    assert design.bounds[0] == math.inf
    assert sum(crossing_probabilities(design.bounds, design.fractions)[0]) == pytest.approx(0.025, abs=1e-7)


# ---------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: group_sequential_design(0), r"looks must be an integer >= 1, not 0"),
        (lambda: group_sequential_design(2.0), r"looks must be an integer >= 1"),
        (lambda: group_sequential_design(3, 0.0), r"alpha must be a number in \(0, 1\), not 0.0"),
        (lambda: group_sequential_design(3, 1.0), r"alpha must be a number in \(0, 1\)"),
        (lambda: group_sequential_design(3, -0.1), r"alpha must be a number in \(0, 1\)"),
        (
            lambda: group_sequential_design(3, spending="haybittle"),
            r"spending must be one of obrien_fleming, pocock",
        ),
        (lambda: group_sequential_design(3, alternative="both"), r"alternative must be one of two-sided"),
        (lambda: group_sequential_design(3, fractions=(0.5, 0.4, 1)), r"fractions must increase strictly"),
        (lambda: group_sequential_design(3, fractions=(0.3, 0.3, 1)), r"fractions must increase strictly"),
        (lambda: group_sequential_design(2, fractions=(0.5, 0.9)), r"fractions must end at 1"),
        (lambda: group_sequential_design(2, fractions=(0.0, 1)), r"fractions must be finite and > 0"),
        (
            lambda: group_sequential_design(3, fractions=(0.5, 1)),
            r"fractions must have one value per look \(3\)",
        ),
        (lambda: spent_alpha(1.5, 0.05), r"t must be an information fraction in \[0, 1\]"),
        (lambda: spent_alpha(0.5, 2.0), r"alpha must be a number in \(0, 1\)"),
        (lambda: z_from_p(float("nan"), 1.0), r"p must be a p-value in \[0, 1\]"),
        (lambda: z_from_p(1.2, 1.0), r"p must be a p-value in \[0, 1\]"),
        (lambda: decide(group_sequential_design(2), []), r"z must hold at least"),
        (lambda: decide(group_sequential_design(2), [1, 2, 3]), r"z has 3 values but the design has 2 looks"),
        (lambda: decide(group_sequential_design(2), [float("nan")]), r"z\[0\] \(look 1\) is nan"),
        (lambda: stagewise_p_value(group_sequential_design(2), 3, 1.0), r"look must be an integer in 1..2"),
        (lambda: replicate_schedule(3, 5), r"max_replicates must be an integer >= looks \(5\)"),
        (lambda: operating_characteristics(group_sequential_design(2), math.inf), r"drift must be a finite"),
    ],
)
def test_bad_inputs_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
