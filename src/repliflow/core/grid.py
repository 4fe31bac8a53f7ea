"""Treatment grids: ``grid:`` in the config, expanded to the full factorial.

A grid maps ``step.param`` (``datasource.param`` for the datasource) to a list
of values; every combination of values is one treatment, after the explicit
``treatments`` and in row-major order (the first axis varies slowest)::

    grid:
      datasource.n: [10, 40]
      datasource.noise: [0.5, 1.0]
    # -> n-10_noise-0.5, n-10_noise-1.0, n-40_noise-0.5, n-40_noise-1.0

Names depend on the config alone (never on the machine, the Python process
or the order of a set), so two machines name every cell alike. A name joins
``<label>-<token>`` per axis with ``_``. The label is the parameter's name, or
``step.param`` when two axes share a parameter name. The token is the value's
canonical form, with its type kept: ``1`` (int) and ``1.0`` (float) are
different recipes and get different names, and a float is written as
Python's shortest round-trip ``repr`` (``0.1``, ``1e-05``, ``1e16``), never
re-parsed, so ``alpha~1`` vs ``alpha~1.0`` drift cannot happen. Booleans are
``true``/``false`` and None is ``null``. A value that is not a short path-safe
string or number (a list, a mapping, a long or odd string), or whose token
would equal another value's on the same axis, gets ``h`` + 8 hex characters
of the sha256 of its canonical JSON. If the names are still not valid,
unique names (e.g. longer than 100 characters), every cell is named
``grid-`` + 16 hex characters of the hash of its parameters instead.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repliflow.core import hashing
from repliflow.errors import ConfigError

AXIS_PATTERN = re.compile(r"^(?P<step>[A-Za-z0-9][A-Za-z0-9_.-]*)\.(?P<param>[A-Za-z_][A-Za-z0-9_]*)$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # plan.NAME_PATTERN, the schema's name
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_TOKEN = 24
MAX_NAME = 100  # the schema's maxLength for a name
MAX_CELLS = 10_000

# A treatment: {step: {param: value}}, the parameters it changes.
Overrides = dict[str, dict[str, object]]


@dataclass(frozen=True)
class Axis:
    key: str  # "step.param", as written in the config
    step: str
    param: str
    label: str  # what the cell names call it
    values: tuple[object, ...]
    tokens: tuple[str, ...]  # one per value, as it appears in the cell names


@dataclass(frozen=True)
class Cell:
    name: str
    values: tuple[object, ...]  # one per axis, in axis order
    indices: tuple[int, ...]  # each value's position in its axis' list

    def overrides(self, axes: Sequence[Axis]) -> Overrides:
        """{step: {param: value}}, the treatment this cell is."""
        out: Overrides = {}
        for axis, value in zip(axes, self.values, strict=True):
            out.setdefault(axis.step, {})[axis.param] = value
        return out


def axes(grid: Mapping[str, object] | None) -> list[Axis]:
    """The grid's axes in config order, with their labels and value tokens."""
    parsed: list[tuple[str, str, str, tuple[object, ...]]] = []
    for key, values in (grid or {}).items():
        match = AXIS_PATTERN.match(key) if isinstance(key, str) else None
        if match is None:
            raise ConfigError(
                f"a grid axis is named 'step.param' (e.g. datasource.n or scale.factor), not {key!r}",
                key=f"grid.{key}",
            )
        if not isinstance(values, list) or not values:
            raise ConfigError(f"expected a non-empty list of values, got {values!r}", key=f"grid.{key}")
        canonical = []
        for value in values:
            try:
                canonical.append(hashing.canonical_json(value))
            except (TypeError, ValueError) as exc:
                raise ConfigError(
                    f"the value {value!r} cannot be a parameter: {exc}", key=f"grid.{key}"
                ) from None
        repeated = sorted({c for c in canonical if canonical.count(c) > 1})
        if repeated:
            raise ConfigError(
                f"the value(s) {', '.join(repeated)} are listed twice; every value makes its own treatments",
                key=f"grid.{key}",
            )
        parsed.append((key, match["step"], match["param"], tuple(values)))
    params = [param for _, _, param, _ in parsed]
    return [
        Axis(key, step, param, param if params.count(param) == 1 else key, values, _tokens(values))
        for key, step, param, values in parsed
    ]


def cells(grid: Mapping[str, object] | None) -> list[Cell]:
    """Every combination of the grid's values, first axis slowest; [] without a grid."""
    found = axes(grid)
    if not found:
        return []
    size = 1
    for axis in found:
        size *= len(axis.values)
    if size > MAX_CELLS:
        raise ConfigError(
            f"the grid has {size} cells, more than the {MAX_CELLS} allowed; split the experiment "
            "or shorten the value lists",
            key="grid",
        )
    combos = list(itertools.product(*(range(len(axis.values)) for axis in found)))
    names = [
        "_".join(f"{a.label}-{a.tokens[i]}" for a, i in zip(found, combo, strict=True)) for combo in combos
    ]
    valid = all(len(n) <= MAX_NAME and NAME_PATTERN.match(n) and ".." not in n for n in names)
    if not valid or len(set(names)) < len(names):
        names = [
            "grid-" + hashing.digest({a.key: a.values[i] for a, i in zip(found, combo, strict=True)}, 16)
            for combo in combos
        ]
    return [
        Cell(name, tuple(a.values[i] for a, i in zip(found, combo, strict=True)), combo)
        for name, combo in zip(names, combos, strict=True)
    ]


def treatments(config: Mapping[str, Any], code_path: Path | None = None) -> dict[str, Overrides]:
    """The explicit treatments, then one per grid cell: {name: {step: {param: value}}}.

    Raises ConfigError when an axis names an unknown step or (given the code
    file) a parameter its function does not take, or when a cell's name is
    taken by an explicit treatment.
    """
    combined: dict[str, Overrides] = dict(config.get("treatments") or {})
    grid = config.get("grid") or {}
    found = axes(grid)
    entries = [config["datasource"], *config["pipeline"]]
    steps: list[str] = ["datasource"] + [entry.get("name") or entry["function"] for entry in entries[1:]]
    grid_cells = cells(grid)
    for axis in found:
        if axis.step not in steps:
            raise ConfigError(
                f"grid axis '{axis.key}' names the unknown step '{axis.step}' (steps: {', '.join(steps)})",
                key=f"grid.{axis.key}",
            )
        if code_path is not None:
            from repliflow.core.plan import _check_params  # plan imports this module
            from repliflow.core.stepcode import function_info

            position = steps.index(axis.step)
            key = f"grid.{axis.key}"
            info = function_info(code_path, entries[position]["function"], key=key)
            _check_params(
                info, {axis.param: None}, position, key, condition=grid_cells[0].name, step=axis.step
            )
    for cell in grid_cells:
        if cell.name in combined:
            raise ConfigError(
                f"the grid names one of its treatments '{cell.name}', which is also an explicit "
                "treatment; rename the explicit treatment",
                key=f"treatments.{cell.name}",
            )
        combined[cell.name] = cell.overrides(found)
    return combined


def _token(value: object) -> str | None:
    """The readable token of a value, or None when it must be hashed."""
    if isinstance(value, bool) or value is None:
        return hashing.canonical_json(value)  # true, false, null
    if isinstance(value, int):
        token = str(value)
    elif isinstance(value, float):
        token = repr(value).replace("e+", "e")
    elif isinstance(value, str):
        token = value
    else:
        return None
    if len(token) > MAX_TOKEN or not TOKEN_PATTERN.match(token.lstrip("-")) or ".." in token:
        return None
    return token


def _tokens(values: tuple[object, ...]) -> tuple[str, ...]:
    hashed = [f"h{hashing.digest(value, 8)}" for value in values]
    readable = [_token(value) for value in values]
    tokens = [token if token is not None else h for token, h in zip(readable, hashed, strict=True)]
    clashes = {token for token in tokens if tokens.count(token) > 1}  # e.g. "1" and 1
    tokens = [h if token in clashes else token for token, h in zip(tokens, hashed, strict=True)]
    if len(set(tokens)) < len(tokens):  # a literal string that looks like another value's hash
        tokens = hashed
    return tuple(tokens)
