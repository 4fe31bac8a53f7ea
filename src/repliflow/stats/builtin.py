"""The built-in verifiers: ``fn(baseline, treatment, **params) -> dict``.

Unpaired: ``welch_t``, ``student_t``, ``mann_whitney``, ``permutation`` and
``bootstrap``; paired by replicate index (replicate r of every condition shares
its seed): ``paired_t`` and ``wilcoxon``. Equivalence (TOST, Schuirmann 1987):
``tost_welch`` and ``tost_paired``, whose bounds are the hypothesis' ``sesoi``
(see ``tost``). Every test is ``scipy.stats``'; the t-tests are computed
here as ``scipy.stats.ttest_ind`` and ``ttest_rel`` compute them (``TTest``:
the same operations on the same ``scipy.special`` functions, so the same
numbers), since importing scipy.stats costs every aggregate job about 0.5 s
and the default verifiers are t-tests; the others import it when they run. The
one thing written here is the bootstrap p-value, read off the same BCa
construction scipy uses for its interval (see ``bca_p_value``), and the one
formula the exact permutation test has when nothing varies (``_extreme_p``).

Every verifier takes ``alpha`` (default 0.05) and ``alternative``
(``two-sided``, ``greater``: treatment above baseline, ``less``) and returns
``p_value``, ``significant`` (p < alpha), ``statistic`` (signed as treatment
minus baseline), the effect sizes with ``1 - alpha`` confidence intervals that
follow ``alternative``, the counts and the method name (docs/statistics.md lists the
keys). Values that are NaN, infinite or None are not tests' input: they are
dropped and counted (``n_missing_*``). Degenerate inputs get a verdict and a
``note`` saying why, never an exception: fewer than 2 values (``degenerate:
too_few``, p NaN, not significant), or no variation where a t statistic needs
it (``degenerate: zero_variance``, or ``identical`` when the samples are the
same, up to rounding; the p-value is then the exact permutation test's).

Memory is O(n): the resampling tests run in blocks (``BLOCK_VALUES``) that
give the results of one block, and the zero-variance p-value is a formula.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Literal, NamedTuple, NotRequired, Protocol, TypedDict

import numpy as np
from scipy import special

from repliflow.stats import BUILTIN_NAMES, PAIRED, RANK_BASED, SESOI_KINDS, effect
from repliflow.stats.effect import FloatArray

NAN = float("nan")
# Resampling tests run in blocks of at most this many values (about 1 MB per
# array): scipy's default, all n_resamples resamples at once, holds index and
# value arrays of n_resamples x n (80 KB per replicate each at 9999 resamples;
# 6.4 GB for a paired fallback at 10,000 pairs). With blocks, memory is O(n).
BLOCK_VALUES = 1 << 17
# Variation below this share of the values' size is rounding, not variation.
ROUNDING = 1e-12
# log N beyond which 1 / N is 0.0 in floating point (N > 2^1075, log 745.1).
UNDERFLOW = 750.0
# scipy.stats.permutation_test counts a resampled statistic within this
# relative distance of the observed one as a tie.
TIE_TOLERANCE = 100 * float(np.finfo(float).eps)
IDENTICAL = "the two samples are identical (an A/A comparison)"
IDENTICAL_PAIRS = (
    "the two samples are identical replicate by replicate (an A/A comparison: every difference is 0)"
)


class VerifierResult(TypedDict):
    """What a built-in verifier returns (docs/statistics.md, ``hypotheses.json``); the
    aggregate adds the corrected p-value's keys."""

    method: str
    p_value: float
    significant: bool
    statistic: float
    alternative: str
    alpha: float
    paired: bool
    n_baseline: int
    n_treatment: int
    n_missing_baseline: int
    n_missing_treatment: int
    mean_baseline: float
    mean_treatment: float
    sd_baseline: float
    sd_treatment: float
    mean_difference: float
    ci_level: float
    n_pairs: NotRequired[int]
    sd_difference: NotRequired[float]
    df: NotRequired[float]  # t-tests
    mean_difference_ci: NotRequired[list[float]]
    mean_difference_ci_method: NotRequired[str]
    effect_size: NotRequired[Literal["hedges_g", "cohens_dz", "rank_biserial"]]  # the headline one
    cohens_d: NotRequired[float]
    cohens_d_ci: NotRequired[list[float]]
    hedges_g: NotRequired[float]
    hedges_g_ci: NotRequired[list[float]]
    cohens_dz: NotRequired[float]
    cohens_dz_ci: NotRequired[list[float]]
    rank_biserial: NotRequired[float]
    rank_biserial_ci: NotRequired[list[float]]
    exact: NotRequired[bool]  # permutation
    n_resamples: NotRequired[int]  # permutation and bootstrap
    seed: NotRequired[int]  # permutation and bootstrap
    degenerate: NotRequired[Literal["too_few", "zero_variance", "identical"]]
    note: NotRequired[str]
    # equivalence (TOST): the bounds, how the sesoi was given, the two one-sided tests
    equivalence_bounds: NotRequired[list[float]]
    sesoi: NotRequired[dict[str, float]]
    statistic_lower: NotRequired[float]
    statistic_upper: NotRequired[float]
    p_value_lower: NotRequired[float]
    p_value_upper: NotRequired[float]
    equivalent: NotRequired[bool]


# The parts of scipy's results used here (scipy has no type annotations).
class _TestResult(Protocol):
    statistic: float
    pvalue: float


@dataclass
class Samples:
    """Finite values of both conditions (pairs kept aligned when paired)."""

    baseline: FloatArray
    treatment: FloatArray
    missing_baseline: int
    missing_treatment: int
    paired: bool

    @property
    def differences(self) -> FloatArray:
        return self.treatment - self.baseline

    @property
    def enough(self) -> bool:
        return min(len(self.baseline), len(self.treatment)) >= 2

    @property
    def constant(self) -> bool:
        """No variation for a t statistic: each sample constant, or constant differences."""
        if self.paired:
            scale = max(np.max(np.abs(self.baseline)), np.max(np.abs(self.treatment)))
            return flat(self.differences, scale)
        return flat(self.baseline) and flat(self.treatment)

    @property
    def identical(self) -> bool:
        if self.paired:
            return bool(np.all(self.differences == 0))
        return bool(np.array_equal(np.sort(self.baseline), np.sort(self.treatment)))


# A test's part of a verifier: fills in statistic and p-value (and what it adds).
_Test = Callable[[VerifierResult, Samples], None]


def flat(values: FloatArray, scale: float | None = None) -> bool:
    """Whether the values are all equal, up to rounding relative to ``scale``
    (default: their own size): a constant shift added in floating point leaves
    differences that vary by ~1e-17, and a t statistic of 1e16 on them is noise."""
    if len(values) == 0:
        return True
    scale = float(np.max(np.abs(values))) if scale is None else float(scale)
    return bool(np.ptp(values) <= ROUNDING * scale)


def _as_float(values: Sequence[float | None]) -> FloatArray:
    return np.array([NAN if v is None else float(v) for v in values], dtype=float)


def prepare(baseline: Sequence[float | None], treatment: Sequence[float | None], *, paired: bool) -> Samples:
    a, b = _as_float(baseline), _as_float(treatment)
    ok_a, ok_b = np.isfinite(a), np.isfinite(b)
    missing = (int((~ok_a).sum()), int((~ok_b).sum()))
    if paired:
        if len(a) != len(b):
            raise ValueError(
                f"a paired test needs one value per replicate in both conditions; got {len(a)} baseline "
                f"and {len(b)} treatment values"
            )
        both = ok_a & ok_b
        return Samples(a[both], b[both], *missing, paired=True)
    return Samples(a[ok_a], b[ok_b], *missing, paired=False)


def _check(alpha: float, alternative: str) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, not {alpha!r}")
    effect.tails(alternative, 0.95)  # raises on an unknown alternative


def _sd(values: FloatArray) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else NAN


def _mean(values: FloatArray) -> float:
    return float(np.mean(values)) if len(values) else NAN


def _describe(method: str, s: Samples, alpha: float, alternative: str) -> VerifierResult:
    out: VerifierResult = {
        "method": method,
        "p_value": NAN,
        "significant": False,
        "statistic": NAN,
        "alternative": alternative,
        "alpha": alpha,
        "paired": s.paired,
        "n_baseline": len(s.baseline),
        "n_treatment": len(s.treatment),
        "n_missing_baseline": s.missing_baseline,
        "n_missing_treatment": s.missing_treatment,
        "mean_baseline": _mean(s.baseline),
        "mean_treatment": _mean(s.treatment),
        "sd_baseline": _sd(s.baseline),
        "sd_treatment": _sd(s.treatment),
        "mean_difference": _mean(s.treatment) - _mean(s.baseline),
        "ci_level": 1 - alpha,
    }
    if s.paired:
        out["n_pairs"] = len(s.baseline)
        out["sd_difference"] = _sd(s.differences)
    return out


def _decide(out: VerifierResult) -> VerifierResult:
    p = out["p_value"]
    out["significant"] = bool(p < out["alpha"]) if not math.isnan(p) else False
    return out


def _too_few(out: VerifierResult, s: Samples) -> VerifierResult:
    have = (
        f"{len(s.baseline)} complete pair(s)"
        if s.paired
        else f"{len(s.baseline)} baseline and {len(s.treatment)} treatment value(s)"
    )
    missing = s.missing_baseline + s.missing_treatment
    dropped = f" ({missing} NaN or missing value(s) dropped)" if missing else ""
    need = "2 pairs" if s.paired else "2 values in each condition"
    out.update(
        {"degenerate": "too_few", "note": f"not tested: {have}{dropped}; a test needs at least {need}"}
    )
    return out


def _mean_diff(treatment: FloatArray, baseline: FloatArray, axis: int = -1) -> FloatArray | np.float64:
    """The difference in means along ``axis``: one number for 1-d samples, an
    array for scipy's stacked resamples (``vectorized=True``)."""
    difference: FloatArray | np.float64 = np.mean(treatment, axis=axis) - np.mean(baseline, axis=axis)
    return difference


def _rows(values: int) -> int:
    """Resamples per block when each resample holds ``values`` values: at most
    BLOCK_VALUES values per block (and at least one resample)."""
    return max(1, BLOCK_VALUES // max(values, 1))


def _permutation(s: Samples, alternative: str, n_resamples: int, seed: int) -> _TestResult:
    """scipy's permutation test of the difference in means (unpaired); exact
    when every relabelling fits in ``n_resamples``. In blocks of ``_rows``
    relabellings: scipy draws them one at a time whatever the block size, so
    blocks change the memory, not the result."""
    from scipy import stats  # here: only this test needs scipy.stats (0.5 s to import)

    result: _TestResult = stats.permutation_test(
        (s.treatment, s.baseline),
        _mean_diff,
        permutation_type="independent",
        vectorized=True,
        n_resamples=n_resamples,
        batch=_rows(len(s.baseline) + len(s.treatment)),
        alternative=alternative,
        rng=np.random.default_rng(seed),
    )
    return result


def _permutations(s: Samples) -> int:
    return math.comb(len(s.baseline) + len(s.treatment), len(s.baseline))


def _extreme_p(s: Samples, alternative: str) -> float | None:
    """The exact permutation test's p-value of the difference in means for data
    with no variation (``Samples.constant``), in closed form; None when the
    conditions differ by no more than rounding.

    Paired (sign flips of the n differences d_i = c, c != 0): flipping j of them
    gives the statistic c (n - 2 j) / n, with multiplicity C(n, j) among the 2^n
    sign vectors (a binomial lattice). Unpaired (n1 baseline values a, n2
    treatment values b != a): a relabelling that puts k of the b's and n2 - k of
    the a's in the treatment group gives (b - a) (k / n2 - (n2 - k) / n1), with
    multiplicity C(n2, k) C(n1, n2 - k) among the C(n1 + n2, n1) relabellings
    (a hypergeometric lattice). Both are strictly monotone in j or k, and the
    observed statistic (j = 0, k = n2) is the single most extreme one, on the
    side of c or b - a. So, with N = 2^n or C(n1 + n2, n1), for c or b - a > 0:

        P(T >= T_obs) = 1 / N,   P(T <= T_obs) = 1,
        two-sided p = min(1, 2 min(P(T >= T_obs), P(T <= T_obs))) = min(1, 2 / N)

    (mirrored for c or b - a < 0): the p-values scipy.stats.permutation_test
    gives when it enumerates the N relabellings. With nothing differing at all
    (every d_i = 0, or one value everywhere) every relabelling ties: p = 1. The
    float value of 1 / N is 0.0 beyond 1075 pairs (or C(n1 + n2, n1) > 2^1075).

    Only that order matters, not exact equality: it holds whenever all the
    differences have one sign (paired) or the samples do not overlap
    (unpaired), the smallest step away from the observed labelling,
    2 min|d_i| / n or (the gap between the samples) (1 / n1 + 1 / n2), exceeds
    scipy's tolerance for ties with the observed statistic (100 eps |T_obs|),
    and that gap is more than rounding (``ROUNDING`` of the values' size, the
    yardstick of ``flat``). So values equal up to rounding qualify. What does
    not (differences of both signs, overlapping samples, samples a few ulps
    apart) is a difference within rounding itself: None."""
    a, b = s.baseline, s.treatment
    observed = abs(float(_mean_diff(b, a)))
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))))
    if s.paired:
        d = s.differences
        if not np.any(d):
            return 1.0
        above, below = bool(np.all(d > 0)), bool(np.all(d < 0))
        gap = float(np.min(np.abs(d)))
        step = 2 * gap / len(d)
        log_total = len(d) * math.log(2)
    else:
        if np.all(a == a[0]) and np.all(b == a[0]):
            return 1.0
        above, below = bool(np.min(b) > np.max(a)), bool(np.max(b) < np.min(a))
        gap = float(np.min(b) - np.max(a)) if above else float(np.min(a) - np.max(b))
        step = gap * (1 / len(a) + 1 / len(b))
        n1, n2 = len(a), len(b)
        log_total = math.lgamma(n1 + n2 + 1) - math.lgamma(n1 + 1) - math.lgamma(n2 + 1)
    if not (above or below) or not gap > ROUNDING * scale or not step > TIE_TOLERANCE * observed:
        return None
    if log_total > UNDERFLOW:  # 1 / N rounds to 0.0 (and N itself would take seconds to compute)
        extreme = 0.0
    else:  # N exactly: 1 / N correctly rounded
        extreme = 1 / ((1 << len(a)) if s.paired else math.comb(len(a) + len(b), len(a)))
    greater, less = (extreme, 1.0) if above else (1.0, extreme)
    if alternative == "greater":
        return greater
    if alternative == "less":
        return less
    return min(1.0, 2 * min(greater, less))


def _zero_variance(out: VerifierResult, s: Samples, alternative: str) -> VerifierResult:
    """A t statistic is 0/0 or d/0 here; the exact permutation test still has
    an answer (``_extreme_p``). Conditions that differ by no more than rounding
    are no difference (p = 1): a permutation test on rounding noise, as scipy
    ran it here before, gave whatever order numpy summed the means in."""
    p = _extreme_p(s, alternative)
    kind = "exact permutation test (sign flips)" if s.paired else "exact permutation test"
    if s.identical:
        what = IDENTICAL_PAIRS if s.paired else IDENTICAL
        out.update({"degenerate": "identical", "note": f"{what}: no difference; p from the {kind}"})
    elif p is None:
        what = "every paired difference is 0" if s.paired else "every value of both is the same"
        out.update(
            {
                "degenerate": "identical",
                "note": f"the two samples are equal up to rounding ({what}, within {ROUNDING:g} of the "
                "values' size): no difference (p = 1)",
            }
        )
    else:
        what = "every paired difference is the same" if s.paired else "each condition's values are all equal"
        out.update(
            {
                "degenerate": "zero_variance",
                "note": f"zero variance ({what}): the t statistic is undefined; p from the "
                f"{kind} of the difference in means",
            }
        )
    diff = out["mean_difference"]
    out.update(
        {
            "p_value": 1.0 if p is None else p,
            "mean_difference_ci": [diff, diff],
            "mean_difference_ci_method": "exact (no variation)",
        }
    )
    return out


# --- t-tests: scipy.stats' ttest_ind and ttest_rel, without importing scipy.stats ----------


# numpy's scalars: np.mean and np.sqrt return floating[Any] to the type checker
_Float = np.floating[Any]


class Interval(NamedTuple):
    low: _Float
    high: _Float


@dataclass(frozen=True)
class TTest:
    """A t-test of ``estimate`` (a mean difference) with standard error
    ``standard_error``, as scipy.stats' ``TtestResult``: its interval is
    scipy's ``_t_confidence_interval``. The numbers are numpy float64, as
    scipy's are, so 0/0 and d/0 give NaN and infinities, not exceptions."""

    statistic: _Float
    pvalue: float
    df: _Float
    estimate: _Float
    standard_error: _Float
    alternative: str

    def confidence_interval(self, confidence_level: float) -> Interval:
        if self.alternative == "less":
            low, high = -np.inf, special.stdtrit(self.df, confidence_level)
        elif self.alternative == "greater":
            low, high = special.stdtrit(self.df, 1 - confidence_level), np.inf
        else:
            tail = (1 - confidence_level) / 2
            low, high = special.stdtrit(self.df, np.array([tail, 1 - tail]))
        se, estimate = self.standard_error, self.estimate
        return Interval(low * se + estimate, high * se + estimate)


def _t_p_value(t: _Float, df: _Float, alternative: str) -> float:
    """scipy's ``_get_pvalue`` for the t distribution (``_SimpleStudentT``)."""
    if alternative == "less":
        return float(special.stdtr(df, t))
    if alternative == "greater":
        return float(special.stdtr(df, -t))
    return float(2 * special.stdtr(df, -np.abs(t)))


def _t_test_of(estimate: _Float, se: _Float, df: _Float, alternative: str) -> TTest:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.divide(estimate, se)
    return TTest(t, _t_p_value(t, df, alternative), df, estimate, se, alternative)


def _variance(values: FloatArray) -> np.float64:
    """scipy.stats' sample variance (``_var``, ddof 1): the mean squared
    deviation times n / (n - 1), which can differ from ``np.var``'s last bit."""
    n = np.float64(len(values))
    squared: np.float64 = np.mean((values - np.mean(values)) ** 2)
    return squared * (n / (n - 1))


def welch_test(treatment: FloatArray, baseline: FloatArray, alternative: str = "two-sided") -> TTest:
    """``scipy.stats.ttest_ind(treatment, baseline, equal_var=False)`` for 2 or
    more values each: Welch's t with the Welch-Satterthwaite df."""
    n1, n2 = len(treatment), len(baseline)
    vn1, vn2 = _variance(treatment) / n1, _variance(baseline) / n2
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (vn1 + vn2) ** 2 / (vn1**2 / (n1 - 1) + vn2**2 / (n2 - 1))
    df = np.float64(1.0) if np.isnan(df) else df  # scipy's: no variance leaves df 0/0; any df will do
    estimate = np.mean(treatment) - np.mean(baseline)
    return _t_test_of(estimate, np.sqrt(vn1 + vn2), df, alternative)


def student_test(treatment: FloatArray, baseline: FloatArray, alternative: str = "two-sided") -> TTest:
    """``scipy.stats.ttest_ind(treatment, baseline)`` for 2 or more values each:
    the pooled-variance t."""
    n1, n2 = len(treatment), len(baseline)
    df = n1 + n2 - 2.0
    pooled = ((n1 - 1) * _variance(treatment) + (n2 - 1) * _variance(baseline)) / df
    estimate = np.mean(treatment) - np.mean(baseline)
    return _t_test_of(estimate, np.sqrt(pooled * (1.0 / n1 + 1.0 / n2)), np.float64(df), alternative)


def paired_test(treatment: FloatArray, baseline: FloatArray, alternative: str = "two-sided") -> TTest:
    """``scipy.stats.ttest_rel(treatment, baseline)`` for 2 or more pairs: the
    one-sample t of the differences."""
    differences = treatment - baseline
    n = len(differences)
    se = np.sqrt(_variance(differences) / n)
    return _t_test_of(np.mean(differences), se, np.float64(n - 1), alternative)


# A t-test, called as test(treatment, baseline, alternative).
_TTestFunction = Callable[[FloatArray, FloatArray, str], TTest]


def _welch_ci(s: Samples, alpha: float, alternative: str) -> list[float]:
    test = paired_test if s.paired else welch_test
    ci = test(s.treatment, s.baseline, alternative).confidence_interval(1 - alpha)
    return [float(ci.low), float(ci.high)]


def _effects(out: VerifierResult, s: Samples, alpha: float, alternative: str) -> VerifierResult:
    level = 1 - alpha
    if s.constant:  # rounding noise is no SD: the standardised difference is infinite (or 0/0)
        # (and has no CI: solving for one on the t of a rounding-noise SD fails)
        value = math.nan if out["mean_difference"] == 0 else math.copysign(math.inf, out["mean_difference"])
        if s.paired:
            out.update({"cohens_dz": value, "cohens_dz_ci": [NAN, NAN]})
        else:
            out.update({"cohens_d": value, "cohens_d_ci": [NAN, NAN]})
            out.update({"hedges_g": value, "hedges_g_ci": [NAN, NAN]})
    elif s.paired:
        dz = effect.paired_standardized_difference(s.differences, alternative=alternative, level=level)
        out.update({"cohens_dz": dz["cohens_dz"], "cohens_dz_ci": dz["cohens_dz_ci"]})
    else:
        d = effect.standardized_difference(s.baseline, s.treatment, alternative=alternative, level=level)
        out.update(
            {
                "cohens_d": d["cohens_d"],
                "cohens_d_ci": d["cohens_d_ci"],
                "hedges_g": d["hedges_g"],
                "hedges_g_ci": d["hedges_g_ci"],
            }
        )
    out.setdefault("effect_size", "cohens_dz" if s.paired else "hedges_g")
    if "mean_difference_ci" not in out:
        out["mean_difference_ci"] = _welch_ci(s, alpha, alternative)
        out["mean_difference_ci_method"] = "paired_t" if s.paired else "welch_t"
    return out


def _run(
    method: str,
    baseline: Sequence[float | None],
    treatment: Sequence[float | None],
    alpha: float,
    alternative: str,
    paired: bool,
    test: _Test,
) -> VerifierResult:
    """Shared frame: check, clean, describe, handle too few values, then ``test``
    fills statistic and p-value (and anything it adds), then effect sizes."""
    _check(alpha, alternative)
    s = prepare(baseline, treatment, paired=paired)
    out = _describe(method, s, alpha, alternative)
    if not s.enough:
        return _too_few(out, s)
    with warnings.catch_warnings():  # scipy warns (precision loss, 0/0) on degenerate inputs
        warnings.simplefilter("ignore", RuntimeWarning)
        test(out, s)
        _effects(out, s, alpha, alternative)
    if s.identical and "note" not in out:
        out["note"] = IDENTICAL
    return _decide(out)


def _t_test(
    method: str,
    baseline: Sequence[float | None],
    treatment: Sequence[float | None],
    alpha: float,
    alternative: str,
    paired: bool,
    t_test: _TTestFunction,
) -> VerifierResult:
    """A t-test verifier around ``t_test(treatment, baseline, alternative)``."""

    def test(out: VerifierResult, s: Samples) -> None:
        if s.constant:
            _zero_variance(out, s, alternative)
            return
        res = t_test(s.treatment, s.baseline, alternative)
        ci = res.confidence_interval(1 - alpha)
        out.update(
            {
                "statistic": float(res.statistic),
                "df": float(res.df),
                "p_value": float(res.pvalue),
                "mean_difference_ci": [float(ci.low), float(ci.high)],
                "mean_difference_ci_method": method,
            }
        )

    return _run(method, baseline, treatment, alpha, alternative, paired, test)


def welch_t(
    baseline: Sequence[float | None],
    treatment: Sequence[float | None],
    *,
    alpha: float = 0.05,
    alternative: str = "two-sided",
) -> VerifierResult:
    """Welch's unequal-variances t-test (``scipy.stats.ttest_ind(equal_var=False)``)."""
    return _t_test("welch_t", baseline, treatment, alpha, alternative, False, welch_test)


def student_t(
    baseline: Sequence[float | None],
    treatment: Sequence[float | None],
    *,
    alpha: float = 0.05,
    alternative: str = "two-sided",
) -> VerifierResult:
    """Student's pooled-variance t-test (``scipy.stats.ttest_ind(equal_var=True)``)."""
    return _t_test("student_t", baseline, treatment, alpha, alternative, False, student_test)


def paired_t(
    baseline: Sequence[float | None],
    treatment: Sequence[float | None],
    *,
    alpha: float = 0.05,
    alternative: str = "two-sided",
) -> VerifierResult:
    """Paired t-test on replicate-matched values (``scipy.stats.ttest_rel``)."""
    return _t_test("paired_t", baseline, treatment, alpha, alternative, True, paired_test)


def mann_whitney(
    baseline: Sequence[float | None],
    treatment: Sequence[float | None],
    *,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    method: str = "auto",
) -> VerifierResult:
    """Mann-Whitney U test (``scipy.stats.mannwhitneyu``); ``statistic`` is the
    treatment's U, the effect size Glass's rank-biserial correlation."""

    def test(out: VerifierResult, s: Samples) -> None:
        from scipy import stats  # here: only this test needs scipy.stats (0.5 s to import)

        res: _TestResult = stats.mannwhitneyu(s.treatment, s.baseline, alternative=alternative, method=method)
        n1, n2 = len(s.baseline), len(s.treatment)
        out.update(
            {"statistic": float(res.statistic), "p_value": float(res.pvalue), "effect_size": "rank_biserial"}
        )
        level = 1 - alpha
        r = effect.rank_biserial(res.statistic, n1, n2, alternative=alternative, level=level)
        out.update({"rank_biserial": r["rank_biserial"], "rank_biserial_ci": r["rank_biserial_ci"]})

    return _run("mann_whitney", baseline, treatment, alpha, alternative, False, test)


def wilcoxon(
    baseline: Sequence[float | None],
    treatment: Sequence[float | None],
    *,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    zero_method: str = "wilcox",
    method: str = "auto",
) -> VerifierResult:
    """Wilcoxon signed-rank test on replicate-matched differences
    (``scipy.stats.wilcoxon``); ``statistic`` is V = W+, the rank sum of the
    positive differences (as R reports it), the effect size the matched-pairs
    rank-biserial correlation."""

    def test(out: VerifierResult, s: Samples) -> None:
        d = s.differences
        level = 1 - alpha
        out.update({"effect_size": "rank_biserial"})
        r = effect.matched_pairs_rank_biserial(d, alternative=alternative, level=level)
        out.update({"rank_biserial": r["rank_biserial"], "rank_biserial_ci": r["rank_biserial_ci"]})
        if s.identical:
            out.update(
                {
                    "statistic": 0.0,
                    "p_value": 1.0,
                    "mean_difference_ci": [0.0, 0.0],
                    "mean_difference_ci_method": "exact (no variation)",
                    "degenerate": "identical",
                    "note": f"{IDENTICAL_PAIRS}: no difference (p = 1)",
                }
            )
            return
        from scipy import stats  # here: only this test needs scipy.stats (0.5 s to import)

        res: _TestResult = stats.wilcoxon(d, alternative=alternative, zero_method=zero_method, method=method)
        nonzero = d[d != 0]
        w_plus = float(stats.rankdata(np.abs(nonzero))[nonzero > 0].sum())
        out.update({"statistic": w_plus, "p_value": float(res.pvalue)})

    return _run("wilcoxon", baseline, treatment, alpha, alternative, True, test)


def permutation(
    baseline: Sequence[float | None],
    treatment: Sequence[float | None],
    *,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    n_resamples: int = 9999,
    seed: int = 0,
) -> VerifierResult:
    """Permutation test of the difference in means (``scipy.stats.permutation_test``),
    seeded; exact (every relabelling) when there are at most ``n_resamples`` of them."""

    def test(out: VerifierResult, s: Samples) -> None:
        res = _permutation(s, alternative, n_resamples, seed)
        out.update(
            {
                "statistic": float(res.statistic),
                "p_value": float(res.pvalue),
                "exact": _permutations(s) <= n_resamples,
                "n_resamples": min(n_resamples, _permutations(s)),
                "seed": seed,
            }
        )

    return _run("permutation", baseline, treatment, alpha, alternative, False, test)


def bca_p_value(boot: FloatArray, theta_hat: float, jackknife: list[FloatArray], alternative: str) -> float:
    """The p-value of H0: difference = 0 that matches scipy's BCa interval: the
    tail level at which the interval's bound reaches 0 (Efron & Tibshirani 1993,
    ch. 14.3 and 15.4, eq. 15.36). With z0 and the acceleration a computed as
    scipy computes them, the BCa bound at tail level alpha is the bootstrap
    quantile at Phi(z0 + (z0 + z_alpha) / (1 - a (z0 + z_alpha))); setting that
    quantile to 0, i.e. the level to G(0) (the share of the bootstrap distribution
    below 0), and solving for z_alpha gives the one-sided p = Phi(z_alpha)."""
    n_boot = len(boot)

    def share_below(x: float) -> float:  # scipy's percentile-of-score: ties count half
        return (np.count_nonzero(boot < x) + np.count_nonzero(boot <= x)) / (2 * n_boot)

    z0 = special.ndtri(share_below(theta_hat))
    u = [(len(j) - 1) * (j.mean() - j) for j in jackknife]
    num = sum(np.sum(ui**3) / len(ui) ** 3 for ui in u)
    den = sum(np.sum(ui**2) / len(ui) ** 2 for ui in u)
    a = num / den**1.5 / 6 if den > 0 else 0.0
    floor = 1 / (n_boot + 1)  # B resamples cannot resolve a smaller p
    g0 = min(max(share_below(0.0), 0.5 / n_boot), 1 - 0.5 / n_boot)
    w = special.ndtri(g0) - z0
    # 1 + a w <= 0 lies beyond the levels BCa reaches: 0 is outside every interval
    greater = float(special.ndtr(w / (1 + a * w) - z0)) if 1 + a * w > 0 else float(w > 0)
    if alternative == "greater":
        p = greater
    elif alternative == "less":
        p = 1 - greater
    else:
        p = 2 * min(greater, 1 - greater)
    return min(1.0, max(p, floor))


def _bootstrap_distribution(s: Samples, n_resamples: int, rng: np.random.Generator) -> FloatArray:
    """``scipy.stats.bootstrap``'s resampled differences in means, drawn as it
    draws them (all the treatment's resamples, then all the baseline's, each
    ``rng.integers(0, n, (n_resamples, n))``) but ``_rows`` resamples at a time,
    so memory is O(n), not O(n_resamples x n). The blocks draw the very numbers
    one call draws (numpy's Generator keeps its spare 32 bits in the bit
    generator, not per call), and each resample's mean is the same sum."""
    means = []
    for sample in (s.treatment, s.baseline):
        n, rows = len(sample), _rows(len(sample))
        mean = np.empty(n_resamples)
        for lo in range(0, n_resamples, rows):
            hi = min(lo + rows, n_resamples)
            mean[lo:hi] = np.mean(sample[rng.integers(0, n, (hi - lo, n))], axis=-1)
        means.append(mean)
    return means[0] - means[1]


def _jackknife_mean_diff(treatment: FloatArray, baseline: FloatArray) -> list[FloatArray]:
    """Leave-one-out differences in means, leaving out each sample's values in turn."""
    n1, n2 = len(treatment), len(baseline)
    loo_t = (treatment.sum() - treatment) / (n1 - 1) - baseline.mean()
    loo_b = treatment.mean() - (baseline.sum() - baseline) / (n2 - 1)
    return [loo_t, loo_b]


def bootstrap(
    baseline: Sequence[float | None],
    treatment: Sequence[float | None],
    *,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    n_resamples: int = 9999,
    seed: int = 0,
) -> VerifierResult:
    """Bootstrap of the difference in means (``scipy.stats.bootstrap``, BCa),
    seeded: the BCa interval is the mean difference's CI, and the p-value is
    the level at which that interval reaches 0 (``bca_p_value``)."""

    def test(out: VerifierResult, s: Samples) -> None:
        if s.constant:
            _zero_variance(out, s, alternative)
            return
        from scipy import stats  # here: only this test needs scipy.stats (0.5 s to import)

        distribution = _bootstrap_distribution(s, n_resamples, np.random.default_rng(seed))
        res = stats.bootstrap(  # the BCa interval of that distribution; the jackknife in blocks
            (s.treatment, s.baseline),
            _mean_diff,
            vectorized=True,
            n_resamples=0,
            bootstrap_result=SimpleNamespace(bootstrap_distribution=distribution),
            batch=_rows(max(len(s.treatment), len(s.baseline))),
            confidence_level=1 - alpha,
            alternative=alternative,
            method="BCa",
        )
        theta = float(_mean_diff(s.treatment, s.baseline))
        jackknife = _jackknife_mean_diff(s.treatment, s.baseline)
        out.update(
            {
                "statistic": theta,
                "p_value": bca_p_value(res.bootstrap_distribution, theta, jackknife, alternative),
                "mean_difference_ci": [
                    float(res.confidence_interval.low),
                    float(res.confidence_interval.high),
                ],
                "mean_difference_ci_method": "bootstrap_bca",
                "n_resamples": n_resamples,
                "seed": seed,
            }
        )

    return _run("bootstrap", baseline, treatment, alpha, alternative, False, test)


# --- equivalence: two one-sided tests ---------------------------------------------------


def sesoi_bound(sesoi: object, s: Samples) -> tuple[float, str, float]:
    """(Delta, kind, size): the equivalence bound Delta in metric units (the
    bounds are -Delta and +Delta) from a ``sesoi`` of ``{"value": x}`` (metric
    units) or ``{"d": x}`` (standardised: x times the pooled SD of the two
    conditions, or the SD of the paired differences; NaN with fewer than 2
    values, 0 with none)."""
    if not (isinstance(sesoi, dict) and len(sesoi) == 1 and next(iter(sesoi)) in SESOI_KINDS):
        raise ValueError(
            f"an equivalence test needs sesoi: {{value: X}} (metric units) or {{d: X}}, not {sesoi!r}"
        )
    kind, size = next(iter(sesoi.items()))
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not (math.isfinite(size) and size > 0):
        raise ValueError(f"sesoi {kind} must be a positive number, not {size!r}")
    if kind == "value":
        return float(size), kind, float(size)
    if s.paired:
        sd = _sd(s.differences)
    elif min(len(s.baseline), len(s.treatment)) > 1:
        n1, n2 = len(s.baseline), len(s.treatment)
        pooled = ((n1 - 1) * np.var(s.baseline, ddof=1) + (n2 - 1) * np.var(s.treatment, ddof=1)) / (
            n1 + n2 - 2
        )
        sd = math.sqrt(float(pooled))
    else:
        sd = NAN
    if s.enough and s.constant:
        sd = 0.0
    return float(size) * sd, kind, float(size)


def tost(
    method: str,
    baseline: Sequence[float | None],
    treatment: Sequence[float | None],
    *,
    alpha: float,
    sesoi: object,
    paired: bool,
) -> VerifierResult:
    """Schuirmann's (1987) two one-sided tests of equivalence within
    (-Delta, Delta): H0 is |difference| >= Delta. The lower test (H0: difference
    <= -Delta) and the upper one (H0: difference >= Delta) are ``scipy.stats``'
    one-sided t-tests (Welch's, or the paired t) of the treatment shifted by
    +Delta and -Delta; ``p_value`` is the larger of their p-values and
    ``significant`` (p < alpha) means **equivalent**, which is exactly when the
    1 - 2 alpha confidence interval of the difference lies inside the bounds
    (that interval, and the effect sizes', are at level 1 - 2 alpha). With zero
    variance the difference is exact: equivalent (p = 0) when it lies strictly
    inside the bounds, otherwise not (p = 1)."""
    if not 0 < alpha < 0.5:
        raise ValueError(f"an equivalence test's alpha must lie strictly between 0 and 0.5, not {alpha!r}")
    s = prepare(baseline, treatment, paired=paired)
    out = _describe(method, s, alpha, "equivalence")
    out["ci_level"] = 1 - 2 * alpha
    bound, kind, size = sesoi_bound(sesoi, s)  # checks sesoi first, whatever the data
    out["sesoi"] = {kind: size}
    out["equivalence_bounds"] = [-bound, bound]
    if not s.enough:
        _too_few(out, s)
        out["equivalent"] = False
        return out
    with warnings.catch_warnings():  # scipy warns (precision loss, 0/0) on degenerate inputs
        warnings.simplefilter("ignore", RuntimeWarning)
        diff = out["mean_difference"]
        if s.constant or not bound > 0:
            inside = bool(-bound < diff < bound)
            if s.constant:
                out["degenerate"] = "identical" if s.identical else "zero_variance"
                what = (
                    "the samples are identical: the difference is exactly 0"
                    if s.identical
                    else f"zero variance: the difference is exactly {diff:.6g}"
                )
            else:
                what = f"the bound is 0 ({kind} {size:g} times an SD of 0)"
            where = "inside" if inside else "not inside"
            out["note"] = f"{what}, {where} the bounds ±{bound:.6g}"
            out.update({"p_value": 0.0 if inside else 1.0, "mean_difference_ci": [diff, diff]})
            out["mean_difference_ci_method"] = "exact (no variation)"
        else:
            lower, upper = _one_sided_pair(s, bound)
            out.update(
                {
                    "statistic_lower": float(lower.statistic),
                    "statistic_upper": float(upper.statistic),
                    "p_value_lower": float(lower.pvalue),
                    "p_value_upper": float(upper.pvalue),
                    "df": float(lower.df),
                }
            )
            worse = lower if lower.pvalue >= upper.pvalue else upper
            out.update({"statistic": float(worse.statistic), "p_value": float(worse.pvalue)})
            ci = _centred(s).confidence_interval(1 - 2 * alpha)
            out["mean_difference_ci"] = [float(ci.low), float(ci.high)]
            out["mean_difference_ci_method"] = "paired_t" if paired else "welch_t"
        _effects(out, s, 2 * alpha, "two-sided")
    _decide(out)
    out["equivalent"] = out["significant"]
    return out


def _centred(s: Samples) -> TTest:
    """The two-sided t-test of the difference (its interval is the TOST's)."""
    return (paired_test if s.paired else welch_test)(s.treatment, s.baseline)


def _one_sided_pair(s: Samples, bound: float) -> tuple[TTest, TTest]:
    """The lower (H0: difference <= -bound) and upper (H0: difference >= bound)
    one-sided t-tests: the treatment shifted by the bound, which leaves the
    variances (and so the standard error and Welch's df) as they are."""
    test = paired_test if s.paired else welch_test
    return test(s.treatment + bound, s.baseline, "greater"), test(s.treatment - bound, s.baseline, "less")


def tost_welch(
    baseline: Sequence[float | None],
    treatment: Sequence[float | None],
    *,
    alpha: float = 0.05,
    sesoi: object = None,
) -> VerifierResult:
    """Equivalence of two independent samples: TOST with Welch's t (``tost``)."""
    return tost("tost_welch", baseline, treatment, alpha=alpha, sesoi=sesoi, paired=False)


def tost_paired(
    baseline: Sequence[float | None],
    treatment: Sequence[float | None],
    *,
    alpha: float = 0.05,
    sesoi: object = None,
) -> VerifierResult:
    """Equivalence of replicate-paired samples: TOST with the paired t (``tost``)."""
    return tost("tost_paired", baseline, treatment, alpha=alpha, sesoi=sesoi, paired=True)


BUILTINS: dict[str, Callable[..., VerifierResult]] = {
    "welch_t": welch_t,
    "student_t": student_t,
    "mann_whitney": mann_whitney,
    "permutation": permutation,
    "bootstrap": bootstrap,
    "paired_t": paired_t,
    "wilcoxon": wilcoxon,
    "tost_welch": tost_welch,
    "tost_paired": tost_paired,
}
assert tuple(BUILTINS) == BUILTIN_NAMES
__all__ = ["BUILTINS", "PAIRED", "RANK_BASED", *BUILTIN_NAMES, "bca_p_value", "prepare"]
