"""Verifiers: fn(baseline, treatment, **params) -> {"p_value", "significant", ...}.

Built-ins wrap ``scipy.stats``; custom verifiers are named "module:function"
or "file.py:function". scipy is imported inside the functions so planning
(which only checks that a verifier exists) stays cheap.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from repliflow.errors import ConfigError
from repliflow.stepcode import function_info, load_module, resolve_code_path


def _clean(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def _result(method: str, statistic: float, p_value: float, alpha: float, a: list, b: list) -> dict:
    p = float(p_value)
    return {
        "method": method,
        "statistic": float(statistic),
        "p_value": p,
        "significant": bool(p < alpha) if not math.isnan(p) else False,
        "alpha": alpha,
        "n_baseline": len(a),
        "n_treatment": len(b),
        "mean_baseline": sum(a) / len(a) if a else float("nan"),
        "mean_treatment": sum(b) / len(b) if b else float("nan"),
    }


def welch_t(baseline, treatment, *, alpha: float = 0.05, alternative: str = "two-sided") -> dict:
    """Welch's unequal-variances t-test (scipy.stats.ttest_ind, equal_var=False)."""
    from scipy import stats

    a, b = _clean(baseline), _clean(treatment)
    res = stats.ttest_ind(b, a, equal_var=False, alternative=alternative)
    return _result("welch_t", res.statistic, res.pvalue, alpha, a, b)


def student_t(baseline, treatment, *, alpha: float = 0.05, alternative: str = "two-sided") -> dict:
    """Student's pooled-variance t-test (scipy.stats.ttest_ind, equal_var=True)."""
    from scipy import stats

    a, b = _clean(baseline), _clean(treatment)
    res = stats.ttest_ind(b, a, equal_var=True, alternative=alternative)
    return _result("student_t", res.statistic, res.pvalue, alpha, a, b)


def mann_whitney(baseline, treatment, *, alpha: float = 0.05, alternative: str = "two-sided") -> dict:
    """Mann-Whitney U test (scipy.stats.mannwhitneyu)."""
    from scipy import stats

    a, b = _clean(baseline), _clean(treatment)
    res = stats.mannwhitneyu(b, a, alternative=alternative)
    return _result("mann_whitney", res.statistic, res.pvalue, alpha, a, b)


BUILTINS: dict[str, Callable[..., dict]] = {
    "welch_t": welch_t,
    "student_t": student_t,
    "mann_whitney": mann_whitney,
}


def _split(spec: str, key: str) -> tuple[str, str]:
    if ":" not in spec:
        raise ConfigError(
            f"unknown verifier {spec!r}: built-ins are {', '.join(BUILTINS)}; "
            "a custom one is 'module:function' or 'file.py:function'",
            key=key,
        )
    where, _, name = spec.rpartition(":")
    if not where or not name.isidentifier():
        raise ConfigError(
            f"verifier {spec!r} is not of the form 'module:function' or 'file.py:function'", key=key
        )
    return where, name


def check_verifier(spec: str, *, key: str, workdir: str | None = None) -> None:
    """Fail at plan time, without importing user code, if ``spec`` names nothing."""
    if spec in BUILTINS:
        return
    where, name = _split(spec, key)
    try:
        path = resolve_code_path(where, workdir)
    except ConfigError as exc:
        raise ConfigError(f"verifier {spec!r}: {exc.message}", key=key) from None
    function_info(path, name, key=key)


def resolve_verifier(spec: str, workdir: str | None = None) -> Callable[..., dict]:
    if spec in BUILTINS:
        return BUILTINS[spec]
    where, name = _split(spec, "verifier")
    if where.endswith(".py"):
        module = load_module(Path(workdir or os.getcwd(), where))
    else:
        module = importlib.import_module(where)
    return getattr(module, name)
