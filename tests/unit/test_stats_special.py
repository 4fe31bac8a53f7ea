"""The default path (the t-tests and their TOST, effect sizes, power, Holm and
Bonferroni, sequential boundaries) without scipy.stats: every computation that
replaced a scipy.stats one gives its numbers, and running that path leaves
scipy.stats unimported (importing it cost every aggregate job about 0.5 s).

Agreement is to REL (1e-12) relative, NaN for NaN and the same infinity; on
scipy 1.17 every comparison here is in fact exact, since the replacements run
the same scipy.special functions on the same operations."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from scipy import stats

from repliflow.stats import builtin, effect, power, sequential

REL = 1e-12
ALTERNATIVES = ("two-sided", "greater", "less")


def same(mine: float, theirs: float) -> bool:
    a, b = float(mine), float(theirs)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or math.isclose(a, b, rel_tol=REL, abs_tol=0.0)


def mismatches(pairs: Iterator[tuple[object, float, float]]) -> list[tuple[object, float, float]]:
    return [(where, mine, theirs) for where, mine, theirs in pairs if not same(mine, theirs)]


# --- the t-tests -------------------------------------------------------------------------


def samples() -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(treatment, baseline) pairs: sizes from 2, scales from subnormal-adjacent
    to near overflow, and the edge cases the verifiers meet (constant,
    identical, equal up to rounding, a sum that overflows)."""
    rng = np.random.default_rng(20240617)
    for n1, n2 in [(2, 2), (2, 5), (3, 3), (7, 4), (30, 30), (200, 150)]:
        for scale in (1e-300, 1e-8, 1.0, 1e8, 1e300):
            for shift in (0.0, 1e6 * scale):
                yield rng.normal(shift + scale, scale, n1), rng.normal(shift, 3 * scale, n2)
    ones = np.ones(4)
    yield ones, ones  # identical: 0/0
    yield 2 * ones, ones  # constant, different: d/0
    yield ones, np.array([1.0, 1.0, 1.0 + 1e-15, 1.0])  # equal up to rounding
    yield np.array([1.0, 2.0, 3.0]), np.array([5.0, 5.0, 5.0])  # one sample constant
    yield np.array([1.5e308, 1.7e308, 1.6e308]), np.array([-1.0, 1.0, 0.0])  # the sum overflows
    yield np.array([1e-320, 3e-320, 2e-320]), np.array([0.0, 1e-320, 0.0])  # subnormal
    yield np.array([0.1, 0.2, 0.3]) + 0.25, np.array([0.1, 0.2, 0.35])  # a TOST's shift


def scipy_welch(t: np.ndarray, b: np.ndarray, alternative: str) -> object:
    return stats.ttest_ind(t, b, equal_var=False, alternative=alternative)


def scipy_student(t: np.ndarray, b: np.ndarray, alternative: str) -> object:
    return stats.ttest_ind(t, b, alternative=alternative)


def scipy_paired(t: np.ndarray, b: np.ndarray, alternative: str) -> object:
    return stats.ttest_rel(t, b, alternative=alternative)


T_TESTS = {
    "welch": (builtin.welch_test, scipy_welch),
    "student": (builtin.student_test, scipy_student),
    "paired": (builtin.paired_test, scipy_paired),
}


def t_test_pairs(name: str, alternative: str) -> Iterator[tuple[object, float, float]]:
    ours, theirs = T_TESTS[name]
    for index, (treatment, baseline) in enumerate(samples()):
        if name == "paired":
            n = min(len(treatment), len(baseline))
            treatment, baseline = treatment[:n], baseline[:n]
        mine, ref = ours(treatment, baseline, alternative), theirs(treatment, baseline, alternative)
        yield (index, "statistic"), mine.statistic, ref.statistic
        yield (index, "pvalue"), mine.pvalue, ref.pvalue
        yield (index, "df"), mine.df, ref.df
        for level in (0.5, 0.9, 0.95, 0.999):
            ci, ref_ci = mine.confidence_interval(level), ref.confidence_interval(level)
            yield (index, level, "low"), ci.low, ref_ci.low
            yield (index, level, "high"), ci.high, ref_ci.high


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("name", sorted(T_TESTS))
def test_t_tests_are_scipy_stats(name: str, alternative: str) -> None:
    with warnings.catch_warnings():  # scipy warns on the degenerate samples
        warnings.simplefilter("ignore", RuntimeWarning)
        assert mismatches(t_test_pairs(name, alternative)) == []


def test_the_verifiers_match_their_scipy_stats_tests() -> None:
    """The values the verifiers report, for a sample of each kind."""
    a, b = [1.2, 0.7, 1.9, 1.4, 0.8], [1.9, 2.4, 1.1, 2.8, 2.2]
    pairs = [
        (builtin.welch_t, scipy_welch(np.array(b), np.array(a), "two-sided")),
        (builtin.student_t, scipy_student(np.array(b), np.array(a), "two-sided")),
        (builtin.paired_t, scipy_paired(np.array(b), np.array(a), "two-sided")),
    ]
    for verifier, ref in pairs:
        out = verifier(a, b)
        ci = ref.confidence_interval(0.95)
        assert out["statistic"] == ref.statistic and out["p_value"] == ref.pvalue and out["df"] == ref.df
        assert out["mean_difference_ci"] == [ci.low, ci.high]


def test_tost_is_two_scipy_stats_one_sided_tests() -> None:
    a, b = np.array([10.1, 9.8, 10.3, 10.0, 9.9, 10.2]), np.array([10.0, 10.4, 9.9, 10.1, 10.3, 9.8])
    for verifier, scipy_test in ((builtin.tost_welch, scipy_welch), (builtin.tost_paired, scipy_paired)):
        out = verifier(list(a), list(b), alpha=0.05, sesoi={"value": 0.4})
        lower, upper = scipy_test(b + 0.4, a, "greater"), scipy_test(b - 0.4, a, "less")
        ci = scipy_test(b, a, "two-sided").confidence_interval(0.9)
        assert (out["p_value_lower"], out["p_value_upper"]) == (lower.pvalue, upper.pvalue)
        assert (out["statistic_lower"], out["statistic_upper"]) == (lower.statistic, upper.statistic)
        assert out["mean_difference_ci"] == [ci.low, ci.high]


# --- the distributions -------------------------------------------------------------------

QUANTILES = [0.0, 1e-300, 1e-12, 1e-4, 0.001, 0.0125, 0.025, 0.05, 0.2, 0.5, 0.8, 0.975, 1 - 1e-12, 1.0]
DFS = [0.5, 1.0, 1.5, 2.0, 3.0, 4.7, 10.0, 29.0, 98.0, 1000.0, 1e6]


def test_norm_functions_are_scipy_stats() -> None:
    xs = [-math.inf, -40.0, -8.5, -1.0, -0.0, 0.0, 1e-300, 0.3, 1.96, 8.5, 40.0, math.inf, math.nan]
    pairs = [(x, effect.norm_sf(x), stats.norm.sf(x)) for x in xs]
    pairs += [(q, effect.norm_isf(q), stats.norm.isf(q)) for q in [*QUANTILES, -0.1, 1.1, math.nan]]
    pairs += [(q, float(sequential.special.ndtri(q)), stats.norm.ppf(q)) for q in QUANTILES]
    assert mismatches(iter(pairs)) == []
    assert math.copysign(1.0, effect.norm_isf(0.5)) == math.copysign(1.0, stats.norm.isf(0.5))


def test_t_isf_is_scipy_stats() -> None:
    edges = [*QUANTILES, -0.1, 1.1, math.nan]
    pairs = [((q, df), power.t_isf(q, df), stats.t.isf(q, df)) for q in edges for df in [*DFS, 0.0, -1.0]]
    assert mismatches(iter(pairs)) == []
    assert math.copysign(1.0, power.t_isf(0.5, 7.0)) == math.copysign(1.0, stats.t.isf(0.5, 7.0))


def nct_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """df 1..2000, ncp -40..40, t -50..50 (the brief's planning range and beyond)."""
    df = np.concatenate([np.arange(1.0, 31.0), np.geomspace(31.0, 2000.0, 25), [1.5, 2.7, 9.3, 57.2]])
    ncp = np.linspace(-40.0, 40.0, 81)
    t = np.linspace(-50.0, 50.0, 101)
    grids: tuple[np.ndarray, np.ndarray, np.ndarray] = tuple(np.meshgrid(t, df, ncp, indexing="ij"))
    return grids


def test_nct_survival_function_is_scipy_stats() -> None:
    """The Boost function scipy.stats.nct.sf calls, clipped as it clips: the
    same number everywhere on the grid. (The public special.nctdtr, mirrored,
    agrees where it gives a number but gives NaN at a seventh of these points,
    where the answer is 0 or 1: see the next test.)"""
    t, df, ncp = nct_grid()
    ours = np.clip(power._nct_sf(t, df, ncp), 0.0, 1.0)
    theirs = stats.nct.sf(t, df, ncp)
    assert np.array_equal(ours, theirs, equal_nan=True)
    # and the scalar function planning calls, on every 97th point
    picks = [
        (float(a), float(b), float(c)) for a, b, c in zip(*(g.ravel()[::97] for g in nct_grid()), strict=True)
    ]
    pairs = [(p, power._nct_upper(*p), stats.nct.sf(*p)) for p in picks]
    assert mismatches(iter(pairs)) == []


def test_why_not_special_nctdtr() -> None:
    """The lower tail planning needs as nct.cdf(-t, df, ncp) is NaN here (the
    two-sided power of a large effect); nct.sf has the number."""
    from scipy import special

    crit = power.t_isf(0.025, 49.0)
    assert math.isnan(special.nctdtr(49.0, 14.5, -crit))
    assert power._nct_upper(crit, 49.0, -14.5) == stats.nct.sf(crit, 49.0, -14.5)


def test_nct_edges_are_scipy_stats() -> None:
    edges = [(1.0, 5.0, math.nan), (1.0, 5.0, math.inf), (1.0, 5.0, -math.inf), (math.nan, 5.0, 1.0)]
    edges += [(1e-300, 1.0, 0.0), (-0.0, 3.0, 0.0), (2.0, 1e6, 2.0), (2.0, 0.5, 1.0)]
    edges += [(math.inf, 5.0, 1.0), (-math.inf, 5.0, 1.0), (1.0, 0.0, 1.0), (1.0, -2.0, 1.0)]
    assert mismatches((e, power._nct_upper(*e), stats.nct.sf(*e)) for e in edges) == []


# --- what is built on them: the old code's numbers, with scipy.stats put back -------------


def with_scipy_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put scipy.stats back under the replaced names, as the code was before."""
    monkeypatch.setattr(power, "_nct_upper", lambda t, df, ncp: float(stats.nct.sf(t, df, ncp)))
    monkeypatch.setattr(power, "t_isf", lambda q, df: float(stats.t.isf(q, df)))
    monkeypatch.setattr(power, "norm_sf", lambda x: float(stats.norm.sf(x)))
    monkeypatch.setattr(effect, "norm_isf", lambda q: float(stats.norm.isf(q)))
    monkeypatch.setattr(sequential, "norm_sf", lambda x: float(stats.norm.sf(x)))
    monkeypatch.setattr(sequential, "norm_isf", lambda q: float(stats.norm.isf(q)))


def power_figures() -> Iterator[tuple[object, float]]:
    for alternative in ALTERNATIVES:
        for paired in (False, True):
            for n in (2, 3, 5, 12, 50, 400):
                for d in (-3.0, -0.4, 0.0, 0.2, 0.8, 2.5, 12.0, 1e300):
                    yield (
                        ("power", alternative, paired, n, d),
                        power.power(d, n, alpha=0.05, alternative=alternative, paired=paired),
                    )
                yield (
                    ("mde", alternative, paired, n),
                    power.minimum_detectable_effect(
                        n, alpha=0.025, alternative=alternative, paired=paired, efficiency=power.ARE_RANK
                    ),
                )
    for paired in (False, True):
        for n in (2, 4, 20, 300):
            for bound in (0.1, 0.5, 1.5, 6.0):
                yield ("tost", paired, n, bound), power.tost_power(bound, n, paired=paired, effect=0.1)
            yield ("bound", paired, n), power.smallest_equivalence_bound(n, paired=paired)
        yield ("needed", paired), power.replicates_needed(0.3, paired=paired) or 0
        yield ("tost needed", paired), power.tost_replicates_needed(0.6, paired=paired) or 0


def effect_figures() -> Iterator[tuple[object, float]]:
    for alternative in ALTERNATIVES:
        for level in (0.5, 0.9, 0.95):
            for u, n1, n2 in ((0.0, 3, 3), (4.5, 3, 4), (20.0, 5, 4), (50.0, 10, 10)):
                r = effect.rank_biserial(u, n1, n2, alternative=alternative, level=level)
                for i, bound in enumerate(r["rank_biserial_ci"]):
                    yield ("rank_biserial", alternative, level, u, n1, n2, i), bound
            d = np.array([0.3, -0.1, 0.8, 0.5, 0.0, 1.2])
            for i, bound in enumerate(
                effect.matched_pairs_rank_biserial(d, alternative=alternative, level=level)[
                    "rank_biserial_ci"
                ]
            ):
                yield ("matched", alternative, level, i), bound


def sequential_figures() -> Iterator[tuple[object, float]]:
    for alternative in ALTERNATIVES:
        for spending in sequential.SPENDING:
            design = sequential.group_sequential_design(3, 0.05, spending, alternative=alternative)
            for k, (b, p) in enumerate(zip(design.bounds, design.nominal_p, strict=True)):
                yield ("bound", alternative, spending, k), b
                yield ("nominal_p", alternative, spending, k), p
            for t in (0.01, 0.3, 1.0):
                yield (
                    ("spent", alternative, spending, t),
                    sequential.spent_alpha(t, 0.05, spending, alternative),
                )
        for p in (0.0, 1e-12, 0.01, 0.5, 0.97, 1.0):
            yield ("z", alternative, p), sequential.z_from_p(p, -1.0, alternative)


@pytest.mark.parametrize("figures", [power_figures, effect_figures, sequential_figures])
def test_built_on_them_is_the_old_code(
    figures: Callable[[], Iterator[tuple[object, float]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = list(figures())
    with_scipy_stats(monkeypatch)
    theirs = list(figures())
    assert [where for where, _ in ours] == [where for where, _ in theirs]
    assert mismatches((w, a, b) for (w, a), (_, b) in zip(ours, theirs, strict=True)) == []


# --- the import ----------------------------------------------------------------------------

DEFAULT_PATH = """
import sys

import numpy as np

from repliflow.stats import builtin, corrections, effect, power, sequential

rng = np.random.default_rng(0)
a, b = list(rng.normal(size=8)), list(rng.normal(0.5, 1.0, size=8))
for name in ("welch_t", "student_t", "paired_t"):
    for alternative in ("two-sided", "greater", "less"):
        builtin.BUILTINS[name](a, b, alternative=alternative)
builtin.welch_t([1.0, 1.0], [2.0, 2.0])  # zero variance
builtin.welch_t([1.0], [2.0, 3.0])  # too few
builtin.tost_welch(a, b, sesoi={"d": 0.5})
builtin.tost_paired(a, b, sesoi={"value": 0.3})
effect.rank_biserial(30.0, 8, 8, alternative="two-sided", level=0.95)
corrections.adjust([0.01, 0.04, None], "holm")
corrections.adjust([0.01, 0.04], "bonferroni")
hypothesis = {"name": "h", "metric": "m", "sesoi": {"d": 0.5}}
for verifier in ("welch_t", "student_t", "paired_t", "tost_welch", "tost_paired", "mann_whitney"):
    power.replicate_row({**hypothesis, "verifier": verifier}, "t", a, b, k=2)
design = sequential.group_sequential_design(3, 0.05)
sequential.decide(design, [sequential.z_from_p(0.01, 1.0)])
avoided = (["scipy", "stats"], ["scipy", "optimize"])
print(sorted(name for name in sys.modules if name.split(".")[:2] in avoided))
"""


def test_the_default_path_does_not_import_scipy_stats() -> None:
    """Nor scipy.optimize (0.2 s more): its brentq is repliflow.stats.rootfind's."""
    done = subprocess.run([sys.executable, "-c", DEFAULT_PATH], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
