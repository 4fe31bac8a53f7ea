"""Verifiers: fn(baseline, treatment, **params) -> {"p_value", "significant", ...}.

The import point the planner and the aggregator use. Built-ins live in
``repliflow.stats.verifiers`` (re-exported here as ``BUILTINS``); custom
verifiers are named "module:function" or "file.py:function". Planning only
checks that a verifier exists, without importing user code.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from pathlib import Path

from repliflow.errors import ConfigError
from repliflow.stats import BUILTIN_NAMES
from repliflow.stepcode import function_info, load_module, resolve_code_path

__all__ = ["BUILTIN_NAMES", "check_params", "check_verifier", "resolve_verifier"]  # and BUILTINS, lazily


def __getattr__(name: str):
    """``BUILTINS`` ({name: function}) imports scipy, so only when asked for."""
    if name == "BUILTINS":
        from repliflow.stats.verifiers import BUILTINS

        return BUILTINS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_params(spec: str, params: dict, *, key: str) -> None:
    """A built-in verifier's params must be keywords it takes; custom ones are not checked."""
    if spec not in BUILTIN_NAMES:
        return
    from repliflow.stats.verifiers import BUILTINS

    accepted = [
        name
        for name, parameter in inspect.signature(BUILTINS[spec]).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(
            f"verifier '{spec}' takes no parameter {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(accepted)}",
            key=key,
        )


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


def resolve_verifier(spec: str, workdir: str | None = None) -> Callable[..., dict]:
    if spec in BUILTIN_NAMES:
        from repliflow.stats.verifiers import BUILTINS

        return BUILTINS[spec]
    where, name = _split(spec, "verifier")
    if where.endswith(".py"):
        module = load_module(Path(workdir or os.getcwd(), where))
    else:
        module = importlib.import_module(where)
    return getattr(module, name)
