"""rootfind.brentq is scipy.optimize.brentq bit for bit: the same root (``==``,
sign and repr), the same function calls, the same errors, and the statistics
built on it give the numbers they gave with scipy's."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import optimize

from repliflow.stats import effect, power, rootfind, sequential
from repliflow.stats.rootfind import brentq

Fn = Callable[[float], float]
EPS4 = 4 * np.finfo(float).eps


def identical(mine: float, theirs: float) -> bool:
    return (
        type(mine) is float
        and mine == theirs
        and math.copysign(1.0, mine) == math.copysign(1.0, theirs)
        and repr(mine) == repr(float(theirs))
    )


class Recorder:
    """f, keeping every x it was called with."""

    def __init__(self, f: Fn) -> None:
        self.f = f
        self.xs: list[float] = []

    def __call__(self, x: float) -> float:
        self.xs.append(x)
        return self.f(x)


def outcome(solver: Callable[..., float], f: Fn, a: float, b: float, **kw: Any) -> tuple[object, list[float]]:
    """The root (or the exception type) and the points f was called at."""
    rec = Recorder(f)
    try:
        result: object = solver(rec, a, b, **kw)
    except (ValueError, RuntimeError) as err:
        result = type(err)
    return result, rec.xs


def assert_same(f: Fn, a: float, b: float, **kw: Any) -> object:
    mine, my_calls = outcome(brentq, f, a, b, **kw)
    theirs, their_calls = outcome(optimize.brentq, f, a, b, **kw)
    if isinstance(theirs, float):
        assert isinstance(mine, float) and identical(mine, theirs), (a, b, kw, mine, theirs)
    else:
        assert mine is theirs, (a, b, kw, mine, theirs)
    assert [x.hex() for x in my_calls] == [float(x).hex() for x in their_calls], (a, b, kw)
    return theirs


# --- fixed cases ---------------------------------------------------------------------------


def step(x: float) -> float:
    """Discontinuous at 1/3: a sign change without a zero."""
    return -1.0 if x < 1 / 3 else 2.0


FUNCTIONS: dict[str, tuple[Fn, list[tuple[float, float]]]] = {
    "x^2-2": (
        lambda x: x * x - 2,
        [(0.0, 2.0), (1.0, 1.5), (-2.0, 0.0), (2.0, 0.0), (0.0, 1e6), (1.41, 1.42)],
    ),
    "cubic": (lambda x: x**3 - 2 * x - 5, [(2.0, 3.0), (-10.0, 10.0), (0.0, 1e3)]),
    "x^3 at 0": (lambda x: x * x * x, [(-1.0, 2.0), (-1e-5, 3e-5), (-1e200, 1e100)]),
    "x at 0": (lambda x: x, [(-1.0, 1.0), (-1.0, 3.0), (-3.0, 1.0), (-1e-300, 2e-300)]),
    "x^9 flat": (lambda x: (x - 1.1) ** 9, [(0.0, 2.0), (-5.0, 1.5)]),
    "cos-x": (lambda x: math.cos(x) - x, [(0.0, 1.0), (-2.0, 5.0)]),
    "sin": (math.sin, [(3.0, 4.0), (-4.0, -3.0), (2.0, 40.0)]),
    "exp-2": (lambda x: math.exp(x) - 2, [(-5.0, 5.0), (0.0, 700.0)]),
    "log": (math.log, [(0.5, 3.0), (1e-300, 1e300)]),
    "atan steep": (lambda x: math.atan(1e8 * (x - 0.3)), [(0.0, 1.0), (-100.0, 100.0)]),
    "tanh flat": (lambda x: math.tanh(x - 5.0), [(0.0, 10.0), (-1e3, 1e4)]),
    "exp steep": (lambda x: math.exp(50 * x) - 1e10, [(0.0, 1.0), (-3.0, 3.0)]),
    "x exp(-x) - tiny": (lambda x: x * math.exp(-x) - 1e-8, [(0.0, 2.0), (2.0, 40.0)]),
    # coarse xtol: steps near 3 |sbis| - delta, where C's MIN(|spre|, 3 |sbis| - delta) decides
    "atan offset": (lambda x: math.atan(-8.8 * (x - 5.25)) + 0.8, [(5.28, 8.89), (1.0, 9.0)]),
    "atan offset 2": (lambda x: math.atan(-7.8 * (x - 1.4)) - 0.64, [(5.86, 0.76)]),
    "exp decay": (lambda x: math.exp(-1.05 * x) - 1.81, [(-4.0, 6.0)]),
    "exp rise": (lambda x: math.exp(1.19 * x) - 9.84, [(4.53, -3.89)]),
    "step": (step, [(0.0, 1.0), (1.0, 0.0), (-1e6, 1e6)]),
    "tiny values": (lambda x: 1e-300 * (x - 0.7), [(0.0, 1.0), (-3.0, 8.0)]),
    "huge values": (lambda x: 1e300 * (x - 0.7), [(0.0, 1.0), (-3.0, 8.0)]),
    "negative root": (lambda x: (x + 7.25) * (x - 100.0), [(-20.0, -1.0), (-1e4, 0.0)]),
    "huge root": (lambda x: x - 1e250, [(0.0, 1e300), (1e249, 1e251)]),
    "tiny root": (lambda x: x - 1e-250, [(0.0, 1.0), (-1.0, 1e-200)]),
    "root at a": (lambda x: x - 0.25, [(0.25, 3.0), (-3.0, 0.25)]),
    "root at b": (lambda x: (x - 2.0) * (x + 5.0), [(0.0, 2.0), (2.0, -3.0), (-5.0, 0.0)]),
    "-0.0 at a": (lambda x: -0.0 if x == 1.0 else x - 1.0, [(1.0, 3.0)]),
    "narrow": (
        lambda x: x - 1.0,
        [(1.0 - 1e-15, 1.0 + 3e-15), (math.nextafter(1.0, 0), math.nextafter(1.0, 2))],
    ),
    "poly 5": (
        lambda x: ((((x - 3) * x + 1) * x + 2) * x - 1) * x + 0.1,
        [(-2.0, 0.0), (0.0, 0.2), (2.0, 4.0)],
    ),
}
TOLERANCES: list[dict[str, Any]] = [
    {},
    {"xtol": 1e-300},
    {"xtol": 1e-10},
    {"xtol": 1e-10, "rtol": 1e-10},
    {"xtol": 1e-12, "rtol": 1e-12, "maxiter": 200},
    {"xtol": 0.1},
    {"xtol": 0.5},
    {"xtol": 1e3, "rtol": 0.1},
    {"rtol": EPS4, "xtol": 5e-324},
    {"maxiter": 3},
    {"maxiter": 1},
    {"maxiter": 0},
]
CASES = [
    (name, a, b, tol) for name, (_, brackets) in FUNCTIONS.items() for a, b in brackets for tol in TOLERANCES
]


def test_the_fixed_cases_are_many() -> None:
    assert len(CASES) > 700


@pytest.mark.parametrize(("name", "a", "b", "tol"), CASES)
def test_same_as_scipy(name: str, a: float, b: float, tol: dict[str, Any]) -> None:
    assert_same(FUNCTIONS[name][0], a, b, **tol)


def test_the_cases_reach_both_outcomes() -> None:
    """Some converge, some run out of iterations (maxiter 0, 1, 3), in both."""
    results = [assert_same(FUNCTIONS[n][0], a, b, **tol) for n, a, b, tol in CASES]
    assert sum(isinstance(r, float) for r in results) > 400
    assert results.count(RuntimeError) > 50


def test_a_root_at_zero() -> None:
    assert identical(brentq(lambda x: x, -1.0, 1.0), 0.0)
    assert abs(brentq(lambda x: x + x * x * x, -1.0, 2.0)) < 1e-11
    # x^3 is too flat at 0 for 100 iterations at xtol 2e-12: in scipy too
    assert assert_same(lambda x: x * x * x, -1.0, 2.0) is RuntimeError


def test_ends_and_converters() -> None:
    assert identical(brentq(lambda x: x - 2, 2, 5), 2.0)  # ints in, the float of a out
    assert identical(brentq(lambda x: x - 5, np.float64(2), np.int64(5)), 5.0)
    assert identical(brentq(lambda x: np.float64(x) - 0.5, 0, 1), optimize.brentq(lambda x: x - 0.5, 0, 1))


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "kw"),
    [
        (1.0, 2.0, {}),  # same sign
        (-2.0, -1.0, {}),
        (0.5, 0.5, {}),  # empty bracket
        (0.0, 1.0, {"xtol": 0.0}),
        (0.0, 1.0, {"xtol": -1e-3}),
        (0.0, 1.0, {"rtol": 1e-16}),
        (0.0, 1.0, {"rtol": 0.0}),
        (0.0, 1.0, {"maxiter": -1}),
    ],
)
def test_value_errors_as_scipy(a: float, b: float, kw: dict[str, Any]) -> None:
    f = lambda x: x * x - 0.5  # noqa: E731
    with pytest.raises(ValueError):
        optimize.brentq(f, a, b, **kw)
    with pytest.raises(ValueError):
        brentq(f, a, b, **kw)


def test_the_sign_error_names_the_bracket() -> None:
    with pytest.raises(ValueError, match=r"different signs: f\(1\.0\) = 2\.0, f\(3\.0\) = 10\.0"):
        brentq(lambda x: x * x + 1, 1, 3)


def test_nan_is_a_value_error_as_in_scipy() -> None:
    f = lambda x: math.nan if x > 0.6 else x - 0.7  # noqa: E731
    assert assert_same(f, 0.0, 1.0) is ValueError
    assert assert_same(lambda x: math.nan, 0.0, 1.0) is ValueError


def test_a_float_maxiter_is_a_type_error_as_in_scipy() -> None:
    with pytest.raises(TypeError):
        optimize.brentq(lambda x: x, -1, 1, maxiter=5.0)
    with pytest.raises(TypeError):
        brentq(lambda x: x, -1, 1, maxiter=5.0)  # type: ignore[arg-type]


def test_not_converging_is_a_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="Failed to converge after 2 iterations"):
        brentq(lambda x: x * x - 2, 0.0, 2.0, maxiter=2)


@pytest.mark.parametrize("maxiter", range(12))
def test_iterations_as_scipy(maxiter: int) -> None:
    """Each maxiter: both converge (to the same root) or both raise."""
    for f, a, b in [
        (lambda x: x * x - 2, 0.0, 2.0),
        (lambda x: math.cos(x) - x, -3.0, 9.0),
        (step, 0.0, 1.0),
    ]:
        assert_same(f, a, b, maxiter=maxiter)


def test_rtol_at_its_floor_is_allowed() -> None:
    assert_same(lambda x: x - 1.0 / 3, 0.0, 1.0, rtol=float(EPS4))
    assert float(EPS4) == rootfind.RTOL


# --- properties ----------------------------------------------------------------------------

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(
    coefs=st.tuples(finite, finite, finite, finite),
    a=finite,
    b=finite,
    xtol=st.sampled_from([2e-12, 1e-300, 1e-6, 0.1, 0.5]),
)
def test_cubics_as_scipy(coefs: tuple[float, float, float, float], a: float, b: float, xtol: float) -> None:
    c3, c2, c1, c0 = coefs

    def f(x: float) -> float:
        return ((c3 * x + c2) * x + c1) * x + c0

    fa, fb = f(a), f(b)
    assume(not math.isnan(fa) and not math.isnan(fb))
    assume(fa == 0 or fb == 0 or (fa < 0) != (fb < 0))
    assert_same(f, a, b, xtol=xtol)


@settings(max_examples=200, deadline=None)
@given(
    root=st.floats(min_value=-1e3, max_value=1e3),
    left=st.floats(min_value=1e-9, max_value=1e4),
    right=st.floats(min_value=1e-9, max_value=1e4),
    power_=st.sampled_from([1, 3, 5]),
    xtol=st.sampled_from([1e-300, 2e-12, 1e-6, 0.1]),
    rtol=st.sampled_from([float(EPS4), 1e-10, 1e-3]),
    maxiter=st.integers(min_value=0, max_value=120),
    reverse=st.booleans(),
)
def test_straddled_roots_as_scipy(
    root: float, left: float, right: float, power_: int, xtol: float, rtol: float, maxiter: int, reverse: bool
) -> None:
    def f(x: float) -> float:
        return math.atan(x - root) * abs(x - root) ** (power_ - 1) + 1e-3 * (x - root) ** power_

    a, b = root - left, root + right
    assert_same(f, *((b, a) if reverse else (a, b)), xtol=xtol, rtol=rtol, maxiter=maxiter)


# --- the statistics built on it ------------------------------------------------------------


def scipys_brentq(monkeypatch: pytest.MonkeyPatch) -> None:
    """The callers with scipy.optimize.brentq in place of the port, as before it."""
    for module in (effect, power, sequential):
        assert module.brentq is brentq  # what the modules call is the port
        monkeypatch.setattr(module, "brentq", optimize.brentq)


def effect_figures() -> Iterator[tuple[object, float | str]]:
    rng = np.random.default_rng(7)
    for alternative in ("two-sided", "greater", "less"):
        for level in (0.5, 0.9, 0.95, 0.999):
            for n1, n2 in ((2, 2), (3, 5), (10, 10), (60, 40)):
                for shift in (0.0, 0.3, 2.0, -5.0):
                    b, t = rng.normal(0, 1, n1), rng.normal(shift, 1, n2)
                    where = (alternative, level, n1, n2, shift)
                    try:
                        d = effect.standardized_difference(b, t, alternative=alternative, level=level)
                    except ValueError as err:  # nctdtr's NaN far in a tail, with scipy's too
                        yield ("d", *where), str(err)
                    else:
                        for key, interval in (("d", d["cohens_d_ci"]), ("g", d["hedges_g_ci"])):
                            for i, bound in enumerate(interval):
                                yield (key, *where, i), bound
                    try:
                        dz = effect.paired_standardized_difference(
                            t[:3] - b[:3] if n1 > 2 else t[:2] - b[:2], alternative=alternative, level=level
                        )
                    except ValueError as err:
                        yield ("dz", *where), str(err)
                    else:
                        for i, bound in enumerate(dz["cohens_dz_ci"]):
                            yield ("dz", *where, i), bound
            for t_obs, df in ((0.0, 1.0), (1.3, 4.0), (-40.0, 7.0), (300.0, 500.0), (1e-9, 2.0)):
                for i, bound in enumerate(effect.ncp_interval(t_obs, df, alternative, level)):
                    yield ("ncp", alternative, level, t_obs, df, i), bound


def power_figures() -> Iterator[tuple[object, float]]:
    for alternative in ("two-sided", "greater", "less"):
        for paired in (False, True):
            for n in (2, 3, 5, 12, 50, 400, 1e5):
                for target in (0.5, 0.8, 0.95):
                    for alpha in (0.005, 0.05):
                        yield (
                            ("mde", alternative, paired, n, target, alpha),
                            power.minimum_detectable_effect(
                                n, target=target, alpha=alpha, alternative=alternative, paired=paired
                            ),
                        )
    for paired in (False, True):
        for n in (2, 4, 20, 300):
            for target in (0.5, 0.8, 0.95):
                yield (
                    ("bound", paired, n, target),
                    power.smallest_equivalence_bound(n, target=target, paired=paired),
                )


def sequential_figures() -> Iterator[tuple[object, float]]:
    for alternative in ("two-sided", "greater", "less"):
        for spending in sequential.SPENDING:
            for looks, alpha in ((2, 0.05), (3, 0.05), (5, 0.01)):
                design = sequential.group_sequential_design(
                    looks, alpha, spending, alternative=alternative, points_per_sd=8
                )
                for k, bound in enumerate(design.bounds):
                    yield ("bound", alternative, spending, looks, alpha, k), bound
        design = sequential.group_sequential_design(
            3, 0.05, fractions=[0.2, 0.7, 1.0], alternative=alternative
        )
        for k, bound in enumerate(design.bounds):
            yield ("uneven", alternative, k), bound


def same_figure(mine: float | str, theirs: float | str) -> bool:
    if isinstance(mine, str) or isinstance(theirs, str):  # the same error, at the same x
        return mine == theirs
    if math.isnan(mine) or math.isnan(theirs):
        return math.isnan(mine) and math.isnan(theirs)
    return mine == theirs and math.copysign(1.0, mine) == math.copysign(1.0, theirs)


@pytest.mark.parametrize("figures", [effect_figures, power_figures, sequential_figures])
def test_callers_give_scipys_numbers(
    figures: Callable[[], Iterator[tuple[object, float | str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = list(figures())
    scipys_brentq(monkeypatch)
    theirs = list(figures())
    assert [where for where, _ in ours] == [where for where, _ in theirs]
    differ = [
        (where, mine, other)
        for (where, mine), (_, other) in zip(ours, theirs, strict=True)
        if not same_figure(mine, other)
    ]
    assert differ == []
    # the roots were really searched for (not all NaN, infinite or errors)
    found = [v for _, v in ours if isinstance(v, float) and math.isfinite(v) and v != 0]
    assert len(found) > len(ours) // 2
