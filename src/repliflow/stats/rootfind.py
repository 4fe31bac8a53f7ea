"""Brent's root finder, ``scipy.optimize.brentq`` without importing scipy.optimize.

Importing scipy.optimize costs every aggregate job about 0.25 s (it pulls in
scipy.linalg, scipy.sparse and more), and the statistics use nothing of it but
``brentq``. This is a line-by-line port of scipy's C ``brentq``
(``scipy/optimize/Zeros/brentq.c``, the same in scipy 1.17.1 and in scipy's
main at 3dbf660) and of the argument checks of its Python wrapper and C entry
point (``_zeros_py.py``, ``zeros.c``; NaN from f is a ValueError): the same
floating-point operations in the same order, so it returns the very same root,
bit for bit, after the same function calls (``tests/unit/test_rootfind.py``
compares it with scipy's).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from sys import float_info

XTOL = 2e-12
RTOL = 4 * float_info.epsilon  # scipy's smallest rtol: 4 * np.finfo(float).eps


def _signbit(x: float) -> bool:
    return math.copysign(1.0, x) < 0


def _div(num: float, den: float) -> float:
    """num / den as C divides: IEEE's infinity or NaN where Python raises
    ZeroDivisionError (a product of tiny slopes can underflow to 0)."""
    if den == 0:
        if num == 0 or math.isnan(num):
            return math.nan
        return math.inf if _signbit(num) == _signbit(den) else -math.inf
    return num / den


def brentq(
    f: Callable[[float], float],
    a: float,
    b: float,
    *,
    xtol: float = XTOL,
    rtol: float = RTOL,
    maxiter: int = 100,
) -> float:
    """A root of ``f`` in the bracket [a, b] (either order), where f(a) and f(b)
    have different signs, to within ``xtol + rtol * |root|``, as
    ``scipy.optimize.brentq(f, a, b, xtol=xtol, rtol=rtol, maxiter=maxiter)``.

    ValueError for xtol <= 0, rtol < 4 eps, maxiter < 0, f(a) and f(b) of the
    same sign, or f giving NaN; RuntimeError when ``maxiter`` iterations do not
    converge."""
    maxiter = operator.index(maxiter)
    if xtol <= 0:
        raise ValueError(f"xtol too small ({xtol:g} <= 0)")
    if rtol < RTOL:
        raise ValueError(f"rtol too small ({rtol:g} < {RTOL:g})")
    if maxiter < 0:
        raise ValueError(f"maxiter must be >= 0, not {maxiter}")
    xtol, rtol = float(xtol), float(rtol)

    def call(x: float) -> float:
        fx = float(f(x))
        if math.isnan(fx):
            raise ValueError(f"The function value at x={x} is NaN; solver cannot continue.")
        return fx

    xpre, xcur = float(a), float(b)
    xblk = fblk = spre = scur = 0.0
    fpre = call(xpre)
    fcur = call(xcur)
    if fpre == 0:
        return xpre
    if fcur == 0:
        return xcur
    if _signbit(fpre) == _signbit(fcur):
        raise ValueError(
            f"f(a) and f(b) must have different signs: f({xpre!r}) = {fpre!r}, f({xcur!r}) = {fcur!r}"
        )
    for _ in range(maxiter):
        if fpre != 0 and fcur != 0 and _signbit(fpre) != _signbit(fcur):
            xblk = xpre
            fblk = fpre
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):
            xpre = xcur
            xcur = xblk
            xblk = xpre

            fpre = fcur
            fcur = fblk
            fblk = fpre

        delta = (xtol + rtol * abs(xcur)) / 2
        sbis = (xblk - xcur) / 2
        if fcur == 0 or abs(sbis) < delta:
            return xcur

        if abs(spre) > delta and abs(fcur) < abs(fpre):
            if xpre == xblk:
                # interpolate
                stry = _div(-fcur * (xcur - xpre), fcur - fpre)
            else:
                # extrapolate
                dpre = _div(fpre - fcur, xpre - xcur)
                dblk = _div(fblk - fcur, xblk - xcur)
                stry = _div(-fcur * (fblk * dblk - fpre * dpre), dblk * dpre * (fblk - fpre))
            # C's MIN(x, y): x < y ? x : y (not Python's min, which differs on NaN)
            limit = abs(spre) if abs(spre) < 3 * abs(sbis) - delta else 3 * abs(sbis) - delta
            if 2 * abs(stry) < limit:
                # good short step
                spre = scur
                scur = stry
            else:
                # bisect
                spre = sbis
                scur = sbis
        else:
            # bisect
            spre = sbis
            scur = sbis

        xpre = xcur
        fpre = fcur
        if abs(scur) > delta:
            xcur += scur
        else:
            xcur += delta if sbis > 0 else -delta

        fcur = call(xcur)
    raise RuntimeError(
        f"Failed to converge after {maxiter} iterations (bracket [{a!r}, {b!r}], last estimate {xcur!r})."
    )
