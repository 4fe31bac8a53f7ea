"""Group-sequential designs: test at K looks, stop when a boundary is crossed.

The statistics level of "run until decided" (issue 15, part 3). Nothing here
knows about Snakemake; the workflow calls these functions between looks.

* **Alpha spending** (Lan & DeMets 1983). ``spent_alpha`` gives the
  cumulative type I error a design may have spent by information fraction t:
  O'Brien-Fleming-type ``2 - 2 Phi(z_{1-a/2} / sqrt(t))`` and Pocock-type
  ``a ln(1 + (e - 1) t)``, with ``a`` the one-sided level. A two-sided test at
  total level alpha spends ``a = alpha / 2`` on each side, as gsDesign
  (``test.type=2``), rpact (``sided=2``, ``getSpendingValueCpp``) and ldbounds
  do: its O'Brien-Fleming-type total is ``4 - 4 Phi(z_{1-alpha/4} / sqrt(t))``
  (the Pocock type is linear in alpha, so both readings agree there).
* **Boundaries** (``group_sequential_design``). z-bounds b_1..b_K such that,
  under H0, the probability of first crossing at look k is the spent
  increment. Computed with the recursive numerical integration of Armitage,
  McPherson & Rowe (1969), as in Jennison & Turnbull (2000), chapter 19: the
  sub-density of the score process W(t) = Z sqrt(t) on the continuation region
  is propagated look to look through its independent normal increments
  (Simpson's rule on a grid finer than the increment's SD), and each b_k is
  solved with Brent's method (``rootfind.brentq``, scipy.optimize's
  ``brentq`` bit for bit without its import).
* **Decisions** (``decide``): which look stops and why, from the z
  statistics so far (``z_from_p`` converts a test's p-value).
* **Adjusted inference** (``stagewise_p_value``): the stagewise-ordering
  p-value (Armitage 1957; Jennison & Turnbull 2000, section 8.4).
* **Operating characteristics** (``operating_characteristics``): the
  probability of stopping at each look, the power and the expected replicates
  under a standardised true effect (the drift, ``drift_for_effect``).

Only efficacy boundaries: there is no futility stopping (binding or not).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from repliflow.stats.effect import norm_isf, norm_sf
from repliflow.stats.rootfind import brentq

FloatArray = npt.NDArray[np.float64]

SPENDING = ("obrien_fleming", "pocock")
ALTERNATIVES = ("two-sided", "greater", "less")
# Grid points per SD of the narrowest normal kernel the integration meets.
# 16 gives boundaries within about 1e-6 of a four-times finer grid (see
# tests/unit/test_sequential.py); 3 decimals need far less.
POINTS_PER_SD = 16
# The density is integrated over the marginal mean +- this many SDs of W(t):
# the mass left out is below 1e-30.
_TAIL_SDS = 12.0
_ROWS_PER_CHUNK = 2_000_000  # kernel entries evaluated at once (16 MB)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# --------------------------------------------------------------------------
# inputs


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be a number in (0, 1), not {alpha!r}")
    return float(alpha)


def _check_spending(spending: str) -> str:
    if spending not in SPENDING:
        raise ValueError(f"spending must be one of {', '.join(SPENDING)}, not {spending!r}")
    return spending


def _check_alternative(alternative: str) -> str:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {', '.join(ALTERNATIVES)}, not {alternative!r}")
    return alternative


def _check_looks(looks: int) -> int:
    if isinstance(looks, bool) or not isinstance(looks, int) or looks < 1:
        raise ValueError(f"looks must be an integer >= 1, not {looks!r}")
    return looks


def _check_fractions(fractions: Sequence[float], looks: int | None = None) -> tuple[float, ...]:
    values = tuple(float(f) for f in fractions)
    if looks is not None and len(values) != looks:
        raise ValueError(
            f"fractions must have one value per look ({looks}), got {len(values)}: {list(values)}"
        )
    if not values:
        raise ValueError("fractions must not be empty")
    if not all(math.isfinite(f) for f in values) or values[0] <= 0.0:
        raise ValueError(f"fractions must be finite and > 0, got {list(values)}")
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"fractions must increase strictly, got {list(values)}")
    if not math.isclose(values[-1], 1.0, rel_tol=0.0, abs_tol=1e-12):
        raise ValueError(f"fractions must end at 1 (the last look has all replicates), got {list(values)}")
    return (*values[:-1], 1.0)


# --------------------------------------------------------------------------
# spending


def spent_alpha(
    t: float, alpha: float, spending: str = "obrien_fleming", alternative: str = "two-sided"
) -> float:
    """Cumulative type I error spent by information fraction ``t`` in [0, 1]
    (both sides together for a two-sided test); ``spent_alpha(1, alpha) == alpha``."""
    alpha = _check_alpha(alpha)
    _check_spending(spending)
    sides = 2 if _check_alternative(alternative) == "two-sided" else 1
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be an information fraction in [0, 1], not {t!r}")
    if t == 0.0:
        return 0.0
    if spending == "pocock":
        return alpha * math.log1p((math.e - 1.0) * t)
    side = alpha / sides  # each side's one-sided level
    return sides * 2.0 * norm_sf(norm_isf(side / 2.0) / math.sqrt(t))


# --------------------------------------------------------------------------
# the recursive integration


def _simpson(lo: float, hi: float, spacing: float) -> tuple[FloatArray, FloatArray]:
    """Nodes and Simpson weights on [lo, hi], at most ``spacing`` apart."""
    intervals = max(2, math.ceil((hi - lo) / spacing))
    intervals += intervals % 2
    nodes = np.linspace(lo, hi, intervals + 1)
    weights = np.full(intervals + 1, 2.0)
    weights[1::2] = 4.0
    weights[0] = weights[-1] = 1.0
    return nodes, weights * (hi - lo) / (3.0 * intervals)


class _Recursion:
    """The score process W(t) = B(t) + drift * t observed at ``fractions``,
    walked look by look. Works on the upper side: a one-sided test stops at
    Z >= b, a two-sided one at |Z| >= b (``less`` is ``greater`` mirrored by
    the caller).

    Between looks it keeps the sub-density of W at the last look on the
    continuation region (the paths that have not stopped), as nodes and
    weight x density values, so any integral over it is a dot product."""

    def __init__(self, fractions: Sequence[float], drift: float, two_sided: bool, points_per_sd: int) -> None:
        self.fractions = tuple(fractions)
        self.drift = float(drift)
        self.two_sided = two_sided
        self.points_per_sd = points_per_sd
        self.look = 0  # looks passed
        self.nodes: FloatArray = np.zeros(0)
        self.mass: FloatArray = np.zeros(0)

    def _increment(self, look: int) -> tuple[float, float]:
        """Mean and SD of W(t_look) - W(t_{look-1}) (look is 0-based)."""
        before = self.fractions[look - 1] if look else 0.0
        width = self.fractions[look] - before
        return self.drift * width, math.sqrt(width)

    def exceed(self, bound: float) -> tuple[float, float]:
        """P(no stop before the next look, and at it Z >= bound) and, two-sided,
        P(no stop before, Z <= -bound); one-sided the second is 0."""
        t = self.fractions[self.look]
        c = bound * math.sqrt(t)  # the bound on W's scale
        mean, sd = self._increment(self.look)
        if self.look == 0:
            upper = float(special.ndtr((mean - c) / sd))
            lower = float(special.ndtr((-c - mean) / sd)) if self.two_sided else 0.0
            return upper, lower
        upper = float(special.ndtr((self.nodes + mean - c) / sd) @ self.mass)
        lower = float(special.ndtr((-c - self.nodes - mean) / sd) @ self.mass) if self.two_sided else 0.0
        return upper, lower

    def advance(self, bound: float) -> None:
        """Pass the next look with stopping bound ``bound``: keep the density
        of the paths that continue."""
        k = self.look
        self.look += 1
        if self.look == len(self.fractions):
            self.nodes, self.mass = np.zeros(0), np.zeros(0)
            return
        t = self.fractions[k]
        mean, sd = self._increment(k)
        centre, spread = self.drift * t, _TAIL_SDS * math.sqrt(t)
        hi = min(bound * math.sqrt(t), centre + spread)
        lo = max(-bound * math.sqrt(t) if self.two_sided else -math.inf, centre - spread)
        if not hi > lo:  # (virtually) every path has stopped
            self.nodes, self.mass = np.zeros(0), np.zeros(0)
            return
        # fine enough for this increment's kernel and the next one's
        _, next_sd = self._increment(k + 1)
        nodes, weights = _simpson(lo, hi, min(sd, next_sd) / self.points_per_sd)
        if k == 0:
            density = np.exp(-0.5 * ((nodes - mean) / sd) ** 2) * (_INV_SQRT_2PI / sd)
        elif self.mass.size == 0:
            density = np.zeros_like(nodes)
        else:
            density = np.empty_like(nodes)
            rows = max(1, _ROWS_PER_CHUNK // self.mass.size)
            for start in range(0, nodes.size, rows):
                w = nodes[start : start + rows, None]
                kernel = np.exp(-0.5 * ((w - self.nodes[None, :] - mean) / sd) ** 2)
                density[start : start + rows] = (kernel @ self.mass) * (_INV_SQRT_2PI / sd)
        self.nodes, self.mass = nodes, weights * density


def _solve_bound(recursion: _Recursion, target: float) -> float:
    """The bound whose first-crossing probability at the next look is ``target``."""
    if target <= 0.0:
        return math.inf

    def excess(b: float) -> float:
        upper, lower = recursion.exceed(b)
        return upper + lower - target

    if excess(0.0) <= 0.0:  # cannot happen with a valid spending function
        raise ValueError(
            f"cannot spend {target:.3g} at look {recursion.look + 1}: too little probability left"
        )
    hi = 8.0
    while excess(hi) > 0.0:
        hi *= 2.0
        if hi > 1e4:
            return math.inf
    return brentq(excess, 0.0, hi, xtol=1e-12, rtol=1e-12, maxiter=200)


def _mirror(alternative: str, drift: float) -> float:
    """``less`` is ``greater`` with the effect's sign turned."""
    return -drift if alternative == "less" else drift


# --------------------------------------------------------------------------
# designs


@dataclass(frozen=True)
class Design:
    """A group-sequential design: stop at look k when |z_k| >= bounds[k]
    (two-sided), z_k >= bounds[k] (``greater``) or z_k <= -bounds[k] (``less``)."""

    alpha: float
    spending: str
    alternative: str
    fractions: tuple[float, ...]  # information fraction of each look, the last 1
    bounds: tuple[float, ...]  # the z-bound of each look (inf: that look cannot stop)
    cumulative_alpha: tuple[float, ...]  # alpha spent by each look

    @property
    def looks(self) -> int:
        return len(self.fractions)

    @property
    def nominal_p(self) -> tuple[float, ...]:
        """The p-value (of the fixed-sample test with the design's
        alternative) below which each look stops: the bounds as p-values."""
        sides = 2.0 if self.alternative == "two-sided" else 1.0
        return tuple(sides * norm_sf(b) for b in self.bounds)


def group_sequential_design(
    looks: int,
    alpha: float = 0.05,
    spending: str = "obrien_fleming",
    *,
    fractions: Sequence[float] | None = None,
    alternative: str = "two-sided",
    points_per_sd: int = POINTS_PER_SD,
) -> Design:
    """The efficacy boundaries of a Lan-DeMets alpha-spending design.

    ``fractions`` are the looks' information fractions t_1 < ... < t_K = 1
    (default k / K; with replicates, the replicates at each look over the
    maximum, see ``replicate_schedule``). ``alpha`` is the total level: both
    sides together for ``two-sided``."""
    looks = _check_looks(looks)
    alpha = _check_alpha(alpha)
    spending = _check_spending(spending)
    alternative = _check_alternative(alternative)
    if fractions is None:
        fractions = [(k + 1) / looks for k in range(looks)]
    times = _check_fractions(fractions, looks)
    cumulative = tuple(spent_alpha(t, alpha, spending, alternative) for t in times)
    recursion = _Recursion(times, 0.0, alternative == "two-sided", points_per_sd)
    bounds: list[float] = []
    previous = 0.0
    for spent in cumulative:
        bound = _solve_bound(recursion, spent - previous)
        bounds.append(bound)
        recursion.advance(bound)
        previous = spent
    return Design(alpha, spending, alternative, times, tuple(bounds), cumulative)


def crossing_probabilities(
    bounds: Sequence[float],
    fractions: Sequence[float],
    drift: float = 0.0,
    *,
    alternative: str = "two-sided",
    points_per_sd: int = POINTS_PER_SD,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """For any z-bounds: P(first crossing at look k) on the side of the
    effect and on the other side (the second is all 0 one-sided), when
    W(t) = Z sqrt(t) has drift ``drift`` (Z's mean at t = 1)."""
    alternative = _check_alternative(alternative)
    times = _check_fractions(fractions, len(bounds))
    recursion = _Recursion(times, _mirror(alternative, drift), alternative == "two-sided", points_per_sd)
    upper: list[float] = []
    lower: list[float] = []
    for bound in bounds:
        hit_upper, hit_lower = recursion.exceed(float(bound))
        upper.append(hit_upper)
        lower.append(hit_lower)
        recursion.advance(float(bound))
    if alternative == "two-sided" and drift < 0:  # report the effect's side first
        return tuple(lower), tuple(upper)
    return tuple(upper), tuple(lower)


# --------------------------------------------------------------------------
# decisions and adjusted inference


def z_from_p(p: float, effect: float, alternative: str = "two-sided") -> float:
    """The z statistic of a test's p-value: ``Phi^-1(1 - p/2)`` with the sign
    of ``effect`` (treatment minus baseline) for a two-sided p; for a one-sided
    p, ``Phi^-1(1 - p)`` (``greater``) or ``Phi^-1(p)`` (``less``), and
    ``effect`` is not used."""
    alternative = _check_alternative(alternative)
    if not 0.0 <= p <= 1.0:  # also NaN
        raise ValueError(f"p must be a p-value in [0, 1], not {p!r}")
    if alternative == "greater":
        return norm_isf(p)
    if alternative == "less":
        return float(special.ndtri(p))
    if math.isnan(effect):
        raise ValueError("effect must be a number (its sign is z's), not nan")
    return math.copysign(norm_isf(p / 2.0), effect)


def _toward_effect(design: Design, z: float) -> float:
    """z on the scale where the design stops at large values."""
    if design.alternative == "two-sided":
        return abs(z)
    return -z if design.alternative == "less" else z


def stagewise_p_value(design: Design, look: int, z: float, *, points_per_sd: int = POINTS_PER_SD) -> float:
    """The stagewise-ordering p-value of stopping at ``look`` (1-based) with
    statistic ``z``: the probability under H0 of stopping at an earlier look,
    or at this look with a more extreme z (|z| two-sided). It is <= alpha
    exactly when the design rejects, and at one look it is the fixed-sample p."""
    if isinstance(look, bool) or not isinstance(look, int) or not 1 <= look <= design.looks:
        raise ValueError(f"look must be an integer in 1..{design.looks}, not {look!r}")
    if math.isnan(z):
        raise ValueError("z must be a number, not nan")
    recursion = _Recursion(design.fractions, 0.0, design.alternative == "two-sided", points_per_sd)
    earlier = 0.0
    for bound in design.bounds[: look - 1]:
        earlier += sum(recursion.exceed(bound))
        recursion.advance(bound)
    extreme = _toward_effect(design, z)
    here = sum(recursion.exceed(extreme))  # one-sided the second term is 0
    return min(1.0, earlier + here)


@dataclass(frozen=True)
class Decision:
    """What the z statistics so far decide.

    ``reason``: ``efficacy`` (crossed the boundary at ``look``: stop, H0
    rejected), ``last_look`` (reached the last look without crossing: stop, H0
    kept) or ``continue`` (run the next look; ``look`` is the last one seen)."""

    look: int
    reason: str
    z: float
    bound: float
    p_value: float | None  # stagewise-ordering p when stopped, else None

    @property
    def stopped(self) -> bool:
        return self.reason != "continue"

    @property
    def rejected(self) -> bool:
        return self.reason == "efficacy"

    def describe(self, looks: int) -> str:
        """One sentence for a report."""
        comparison = f"z = {self.z:.3f}, boundary {self.bound:.3f}"
        if self.reason == "efficacy":
            return (
                f"stopped at look {self.look} of {looks}: crossed the efficacy boundary "
                f"({comparison}); stagewise p = {self.p_value:.4g}"
            )
        if self.reason == "last_look":
            return (
                f"ran to the last look ({looks}) without crossing the boundary "
                f"({comparison}); stagewise p = {self.p_value:.4g}"
            )
        return f"continue after look {self.look} of {looks}: no boundary crossed ({comparison})"


def decide(design: Design, z: Sequence[float], *, points_per_sd: int = POINTS_PER_SD) -> Decision:
    """Which look stops, from the z statistics of the looks run so far
    (``z[0]`` at look 1; ``z_from_p`` converts p-values). The first look that
    crosses its boundary stops (values after it are not looked at); with no
    crossing, the last look stops and earlier ones continue."""
    values = [float(v) for v in z]
    if not values:
        raise ValueError("z must hold at least the first look's statistic")
    if len(values) > design.looks:
        raise ValueError(f"z has {len(values)} values but the design has {design.looks} looks")
    for index, value in enumerate(values):
        if math.isnan(value):
            raise ValueError(f"z[{index}] (look {index + 1}) is nan: a look needs a test statistic")
        look = index + 1
        bound = design.bounds[index]
        if math.isfinite(bound) and _toward_effect(design, value) >= bound:  # inf: cannot stop here
            p = stagewise_p_value(design, look, value, points_per_sd=points_per_sd)
            return Decision(look, "efficacy", value, bound, p)
        if look == design.looks:
            p = stagewise_p_value(design, look, value, points_per_sd=points_per_sd)
            return Decision(look, "last_look", value, bound, p)
    return Decision(len(values), "continue", values[-1], design.bounds[len(values) - 1], None)


# --------------------------------------------------------------------------
# replicates and operating characteristics


def replicate_schedule(max_replicates: int, looks: int) -> tuple[int, ...]:
    """Cumulative replicates per condition at each of ``looks`` equally
    spaced looks (rounded, the last ``max_replicates``). Their fractions of
    ``max_replicates`` are the design's information fractions."""
    looks = _check_looks(looks)
    if isinstance(max_replicates, bool) or not isinstance(max_replicates, int) or max_replicates < looks:
        raise ValueError(f"max_replicates must be an integer >= looks ({looks}), not {max_replicates!r}")
    return tuple(round((k + 1) * max_replicates / looks) for k in range(looks))


def drift_for_effect(effect: float, max_replicates: int, *, paired: bool = False) -> float:
    """The drift (the mean of Z with all replicates) of a standardised effect:
    Cohen's d for two independent conditions of ``max_replicates`` each,
    ``d * sqrt(n / 2)``; d_z for pairs, ``d_z * sqrt(n)``."""
    if isinstance(max_replicates, bool) or not isinstance(max_replicates, int) or max_replicates < 1:
        raise ValueError(f"max_replicates must be an integer >= 1, not {max_replicates!r}")
    if not math.isfinite(effect):
        raise ValueError(f"effect must be a finite standardised effect, not {effect!r}")
    return effect * math.sqrt(max_replicates if paired else max_replicates / 2.0)


@dataclass(frozen=True)
class Operating:
    """A design's behaviour under a true effect of drift ``drift``."""

    drift: float
    reject: tuple[float, ...]  # P(stop at look k by crossing), on either side
    stop: tuple[float, ...]  # P(stop at look k): ``reject``, the last look takes the rest
    power: float  # P(reject at some look) (alpha under drift 0)
    expected_fraction: float  # E[information fraction at stopping]
    expected_replicates: float | None  # E[replicates per condition] (with max_replicates)
    saved_replicates: float | None  # max_replicates - expected_replicates


def operating_characteristics(
    design: Design,
    drift: float,
    max_replicates: int | None = None,
    *,
    points_per_sd: int = POINTS_PER_SD,
) -> Operating:
    """Stopping probabilities, power and expected replicates under ``drift``
    (``drift_for_effect``), on z's scale: positive when the treatment is above
    the baseline, so a ``less`` design has its power against a negative drift
    (two-sided, the sign does not matter). With ``max_replicates`` the
    replicates at look k are ``fractions[k] * max_replicates``."""
    if not math.isfinite(drift):
        raise ValueError(f"drift must be a finite number, not {drift!r}")
    toward, away = crossing_probabilities(
        design.bounds, design.fractions, drift, alternative=design.alternative, points_per_sd=points_per_sd
    )
    reject = tuple(a + b for a, b in zip(toward, away, strict=True))
    stop = (*reject[:-1], max(0.0, 1.0 - sum(reject[:-1])))
    expected = float(sum(p * t for p, t in zip(stop, design.fractions, strict=True)))
    replicates = saved = None
    if max_replicates is not None:
        if isinstance(max_replicates, bool) or not isinstance(max_replicates, int) or max_replicates < 1:
            raise ValueError(f"max_replicates must be an integer >= 1, not {max_replicates!r}")
        replicates = expected * max_replicates
        saved = max_replicates - replicates
    return Operating(float(drift), reject, stop, float(sum(reject)), expected, replicates, saved)
