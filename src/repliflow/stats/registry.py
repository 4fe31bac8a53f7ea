"""Verifiers: fn(baseline, treatment, **params) -> {"p_value", "significant", ...}.

The import point the planner and the aggregator use. Built-ins live in
``repliflow.stats.builtin`` (re-exported here as ``BUILTINS``); custom
verifiers are named "module:function" or "file.py:function". Planning
checks that a verifier exists, without importing user code, and a built-in's
params, without importing scipy.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from repliflow.core.stepcode import function_info, load_module, resolve_code_path
from repliflow.errors import ConfigError
from repliflow.stats import (
    BUILTIN_NAMES,
    BUILTIN_PARAMS,
    DEFAULT_CORRECTION,
    EQUIVALENCE,
    FROM_HYPOTHESIS,
    PARAM_CHOICES,
)

if TYPE_CHECKING:
    from repliflow.stats.builtin import VerifierResult

# fn(baseline, treatment, **params): a built-in returns a VerifierResult; a
# custom verifier should return a dict holding at least p_value and significant
# (the aggregate checks what it gets).
Verifier = Callable[..., Mapping[str, object]]

__all__ = [
    "BUILTIN_NAMES",
    "check_families",
    "check_params",
    "check_sesoi",
    "check_verifier",
    "family_of",
    "resolve_verifier",
]  # and BUILTINS, lazily


def __getattr__(name: str) -> dict[str, Callable[..., VerifierResult]]:
    """``BUILTINS`` ({name: function}) imports scipy, so only when asked for."""
    if name == "BUILTINS":
        from repliflow.stats.builtin import BUILTINS

        return BUILTINS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_params(spec: str, params: object, *, key: str) -> None:
    """A built-in verifier's params must be keywords it takes, with values it
    can use (``alpha`` in (0, 1), a known ``alternative``, ...); checked from
    the table in ``repliflow.stats``, so without importing scipy. A custom
    verifier's params are its own business."""
    if spec not in BUILTIN_NAMES:
        return
    if not isinstance(params, dict):
        raise ConfigError(f"expected a mapping of parameter names to values, not {_shown(params)}", key=key)
    accepted = tuple(name for name in BUILTIN_PARAMS[spec] if name not in FROM_HYPOTHESIS)
    given = sorted(str(name) for name in params if name in FROM_HYPOTHESIS)
    if given:
        where = key.removesuffix(".params")
        raise ConfigError(
            f"verifier '{spec}' takes {given[0]} from the hypothesis, not from its params: set "
            f"{where}.{given[0]} (e.g. {{value: 0.5}} in metric units, or {{d: 0.3}})",
            key=f"{key}.{given[0]}",
        )
    unknown = sorted(str(name) for name in params if name not in accepted)
    if unknown:
        raise ConfigError(
            f"verifier '{spec}' takes no parameter {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(accepted)}",
            key=key,
        )
    for name, value in params.items():
        problem = _bad_value(name, value)
        if name == "alpha" and not problem and spec in EQUIVALENCE and _is_number(value) and value >= 0.5:
            problem = "must be below 0.5 for an equivalence test (its interval is at level 1 - 2 alpha)"
        if problem:
            raise ConfigError(
                f"verifier '{spec}': {name} {problem}, not {_shown(value)}", key=f"{key}.{name}"
            )


def check_sesoi(spec: str, hypothesis: Mapping[str, object], *, key: str) -> None:
    """An equivalence verifier's bounds come from the hypothesis' ``sesoi``: it
    must be there (the schema checks its shape)."""
    if spec in EQUIVALENCE and not hypothesis.get("sesoi"):
        raise ConfigError(
            f"verifier '{spec}' is an equivalence test and needs its bounds: set {key}.sesoi to "
            "{value: X} (the smallest difference of interest in metric units; the bounds are -X and +X) "
            "or {d: X} (standardised)",
            key=f"{key}.sesoi",
        )


def family_of(hypothesis: Mapping[str, Any]) -> str:
    """A hypothesis' correction family: its ``correction_family``, else its own name."""
    family = hypothesis.get("correction_family") or hypothesis["name"]
    return str(family)


def _setting(hypothesis: Mapping[str, Any], what: str) -> object:
    if what == "correction":
        return hypothesis.get("correction", DEFAULT_CORRECTION)
    return (hypothesis.get("params") or {}).get("alpha", 0.05)


def check_families(hypotheses: Sequence[Mapping[str, Any]]) -> None:
    """The hypotheses of one correction family share their correction and alpha:
    their p-values are adjusted together, by one method at one level."""
    first: dict[str, int] = {}
    for index, hypothesis in enumerate(hypotheses):
        family = family_of(hypothesis)
        if family not in first:
            first[family] = index
            continue
        other = hypotheses[first[family]]
        for what in ("correction", "alpha"):
            theirs, this = _setting(other, what), _setting(hypothesis, what)
            if this != theirs:
                at = index if hypothesis.get("correction_family") else first[family]
                raise ConfigError(
                    f"hypotheses '{other['name']}' and '{hypothesis['name']}' are in correction family "
                    f"'{family}' but their {what} differs ({theirs} and {this}): a family is adjusted by "
                    f"one correction at one alpha; give them the same {what} or different "
                    "correction_family names",
                    key=f"hypotheses.{at}.correction_family",
                )


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bad_value(name: str, value: object) -> str | None:
    """What is wrong with a built-in's parameter value, or None."""
    if name == "alpha" and not (_is_number(value) and 0 < value < 1):
        return "must be a number strictly between 0 and 1"
    if name in PARAM_CHOICES and not (isinstance(value, str) and value in PARAM_CHOICES[name]):
        return f"must be one of {', '.join(PARAM_CHOICES[name])}"
    if name == "n_resamples" and not (_is_number(value) and value >= 1 and float(value).is_integer()):
        return "must be a positive integer"
    if name == "seed" and not (_is_number(value) and isinstance(value, int) and value >= 0):
        return "must be a non-negative integer"
    return None


def _split(spec: str, key: str) -> tuple[str, str]:
    if ":" not in spec:
        raise ConfigError(
            f"unknown verifier {spec!r}: built-ins are {', '.join(BUILTIN_NAMES)}; "
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
    if spec in BUILTIN_NAMES:
        return
    where, name = _split(spec, key)
    try:
        path = resolve_code_path(where, workdir)
    except ConfigError as exc:
        raise ConfigError(f"verifier {spec!r}: {exc.message}", key=key) from None
    function_info(path, name, key=key)


def resolve_verifier(spec: str, workdir: str | None = None) -> Verifier:
    if spec in BUILTIN_NAMES:
        from repliflow.stats.builtin import BUILTINS

        return BUILTINS[spec]
    where, name = _split(spec, "verifier")
    if where.endswith(".py"):
        module = load_module(Path(workdir or os.getcwd(), where))
    else:
        module = importlib.import_module(where)
    # the user's function, as it is: the aggregate checks what it returns
    verifier: Verifier = getattr(module, name)
    return verifier
