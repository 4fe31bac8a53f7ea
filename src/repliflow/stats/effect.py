"""Effect sizes with confidence intervals.

* Standardised mean differences: Cohen's d and Hedges' g for two independent
  samples (pooled SD), Cohen's d_z for pairs (SD of the differences). Their
  intervals invert the noncentral t distribution (Steiger & Fouladi 1997),
  as R's ``effectsize`` and ``MBESS`` packages do; g's interval is d's times
  Hedges' exact small-sample factor J.
* Rank-biserial correlations (Glass's for Mann-Whitney, the matched-pairs one
  for Wilcoxon; Kerby 2014) with the Fisher-z interval and standard errors of
  R's ``effectsize::rank_biserial``.

Every interval follows ``alternative``: two-sided, or one-sided with the
other bound infinite (a correlation's at -1 or 1), at ``level``.

The normal distribution is ``scipy.special``'s functions, not ``scipy.stats.norm``
(``norm_sf``, ``norm_isf``): importing scipy.stats costs every aggregate job
about 0.5 s, and its ``norm`` calls these very functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

import numpy as np
import numpy.typing as npt
from scipy import special

from repliflow.stats import ALTERNATIVES
from repliflow.stats.rootfind import brentq

NAN = float("nan")

FloatArray = npt.NDArray[np.float64]


class StandardizedDifference(TypedDict):
    cohens_d: float
    cohens_d_ci: list[float]
    hedges_g: float
    hedges_g_ci: list[float]


class PairedStandardizedDifference(TypedDict):
    cohens_dz: float
    cohens_dz_ci: list[float]


class RankBiserial(TypedDict):
    rank_biserial: float
    rank_biserial_ci: list[float]


def norm_sf(x: float) -> float:
    """``scipy.stats.norm.sf(x)``: the upper tail of the standard normal."""
    return float(special.ndtr(-x))


def norm_isf(q: float) -> float:
    """``scipy.stats.norm.isf(q)``: the z with upper tail ``q``. ``0.0 -``, not
    ``-``, as scipy adds its loc of 0: q = 0.5 gives 0.0, not -0.0."""
    return 0.0 - float(special.ndtri(q))


def tails(alternative: str, level: float) -> tuple[float | None, float | None]:
    """Tail probability below the lower bound and above the upper bound
    (None: that side is unbounded)."""
    if alternative == "two-sided":
        return (1 - level) / 2, (1 - level) / 2
    if alternative == "greater":
        return 1 - level, None
    if alternative == "less":
        return None, 1 - level
    raise ValueError(f"alternative must be one of {', '.join(ALTERNATIVES)}, not {alternative!r}")


def _solve_ncp(t: float, df: float, target: float) -> float:
    """The noncentrality at which P(T <= t) = target; the cdf falls as ncp grows."""

    # special.nctdtr is stats.nct.cdf without the distribution wrapper's overhead
    def gap(ncp: float) -> float:
        return float(special.nctdtr(df, ncp, t)) - target

    width = 1.0 + abs(t)
    for _ in range(60):
        lo, hi = t - width, t + width
        if gap(lo) > 0 > gap(hi):
            try:
                return brentq(gap, lo, hi, xtol=1e-10)
            except ValueError:
                # nctdtr is NaN far in a tail at small df (Boost's series gives up:
                # df 1 at level 0.99 and |t| about 12-19), and Brent cannot go on
                # from a NaN: the bound is unknown, as when no bracket is found
                return NAN
        width *= 2
    return NAN


def ncp_interval(t: float, df: float, alternative: str, level: float) -> tuple[float, float]:
    """Confidence interval of the noncentrality parameter given an observed t."""
    if not (math.isfinite(t) and df > 0):
        return NAN, NAN
    lower_tail, upper_tail = tails(alternative, level)
    lo = _solve_ncp(t, df, 1 - lower_tail) if lower_tail is not None else -math.inf
    hi = _solve_ncp(t, df, upper_tail) if upper_tail is not None else math.inf
    return lo, hi


def hedges_j(df: float) -> float:
    """Hedges' exact bias correction J(df) = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2))."""
    if df <= 1:
        return NAN
    return math.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / math.sqrt(df / 2)


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return NAN if num == 0 else math.copysign(math.inf, num)


def _scaled(interval: Sequence[float], factor: float) -> list[float]:
    return [bound * factor for bound in interval]


def standardized_difference(
    baseline: FloatArray, treatment: FloatArray, *, alternative: str, level: float
) -> StandardizedDifference:
    """Cohen's d and Hedges' g (treatment minus baseline over the pooled SD) with CIs."""
    n1, n2 = len(baseline), len(treatment)
    df = n1 + n2 - 2
    pooled = math.sqrt(((n1 - 1) * np.var(baseline, ddof=1) + (n2 - 1) * np.var(treatment, ddof=1)) / df)
    d = _ratio(float(np.mean(treatment) - np.mean(baseline)), pooled)
    scale = math.sqrt(1 / n1 + 1 / n2)
    d_ci = _scaled(ncp_interval(d / scale, df, alternative, level), scale)
    j = hedges_j(df)
    return {
        "cohens_d": d,
        "cohens_d_ci": d_ci,
        "hedges_g": d * j,
        "hedges_g_ci": _scaled(d_ci, j),
    }


def paired_standardized_difference(
    differences: FloatArray, *, alternative: str, level: float
) -> PairedStandardizedDifference:
    """Cohen's d_z: the mean paired difference over the differences' SD, with its CI."""
    n = len(differences)
    dz = _ratio(float(np.mean(differences)), float(np.std(differences, ddof=1)))
    scale = 1 / math.sqrt(n)
    return {
        "cohens_dz": dz,
        "cohens_dz_ci": _scaled(ncp_interval(dz / scale, n - 1, alternative, level), scale),
    }


def _fisher_interval(r: float, se: float, pairs: float, alternative: str, level: float) -> list[float]:
    """Fisher-z interval. At complete dominance (r = +-1, where atanh is infinite)
    the far bound comes from r moved in by one pair of ``pairs`` and the near
    bound is r itself, so the interval keeps a width and holds r."""
    lower_tail, upper_tail = tails(alternative, level)
    if pairs < 2:
        return [NAN, NAN]
    z = math.atanh(max(-1 + 1 / pairs, min(1 - 1 / pairs, r)))
    lo = math.tanh(z - norm_isf(lower_tail) * se) if lower_tail is not None else -1.0
    hi = math.tanh(z + norm_isf(upper_tail) * se) if upper_tail is not None else 1.0
    return [-1.0 if r <= -1 else lo, 1.0 if r >= 1 else hi]


def rank_biserial(u_treatment: float, n1: int, n2: int, *, alternative: str, level: float) -> RankBiserial:
    """Glass's rank-biserial correlation 2U/(n1 n2) - 1 from the treatment's U:
    +1 when every treatment value exceeds every baseline value."""
    r = 2 * u_treatment / (n1 * n2) - 1
    se = math.sqrt((n1 + n2 + 1) / (3 * n1 * n2))
    return {"rank_biserial": r, "rank_biserial_ci": _fisher_interval(r, se, n1 * n2, alternative, level)}


def matched_pairs_rank_biserial(differences: FloatArray, *, alternative: str, level: float) -> RankBiserial:
    """Kerby's matched-pairs rank-biserial correlation (W+ - W-) / (W+ + W-) over
    the non-zero differences (zeros dropped, as the Wilcoxon test does)."""
    nonzero = differences[differences != 0]
    n = len(nonzero)
    if n == 0:
        return {"rank_biserial": 0.0, "rank_biserial_ci": [NAN, NAN]}
    from scipy import stats  # here: only the Wilcoxon test needs scipy.stats (0.5 s to import)

    ranks = stats.rankdata(np.abs(nonzero))
    total = n * (n + 1) / 2
    r = (ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / total
    se = math.sqrt((2 * n**3 + 3 * n**2 + n) / 6) / total
    return {
        "rank_biserial": float(r),
        "rank_biserial_ci": _fisher_interval(float(r), se, total, alternative, level),
    }
