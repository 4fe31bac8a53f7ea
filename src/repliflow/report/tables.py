"""Read the result tables back: ``metrics.csv``, ``hypotheses.json``, ``provenance.json``.

Shared by the report and ``repliflow power``, which work from a finished
results directory only. That directory may come from someone else, so every
file is read through :mod:`repliflow.store.pathgate` (no symbolic link is followed,
no FIFO or device is opened) and every field the report or the power plan
uses is checked for its type before it is used: a malformed table raises
BadRecord naming the file and the field, never a KeyError or TypeError from
deep inside a reader.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeGuard

from repliflow.errors import BadRecord, UnsafePathError
from repliflow.stats import CORRECTIONS
from repliflow.store import pathgate
from repliflow.store.layout import HYPOTHESES, METRICS, PROVENANCE

METRIC_COLUMNS = ("condition", "replicate", "metric", "value")
MAX_REPLICATE_DIGITS = 12
# Records nest a few levels; deeper ones are refused before anything recurses into them.
MAX_DEPTH = 64
MAX_COUNT = 1 << 62


@dataclass
class Results:
    """One results directory: metric values by (condition, metric) in replicate
    order (NaN where the metric was NaN or missing), the hypotheses and the
    provenance record (empty when absent), all checked for their types."""

    path: Path
    values: dict[tuple[str, str], list[float]]
    hypotheses: list[dict[str, Any]]
    provenance: dict[str, Any]
    # per condition, replicates that failed under on_failure: missing ({"replicate", "step", "error"})
    failed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def conditions(self) -> list[str]:
        if self.provenance.get("conditions"):
            return list(self.provenance["conditions"])
        return list(dict.fromkeys(condition for condition, _ in self.values))

    @property
    def metrics(self) -> list[str]:
        return sorted({metric for _, metric in self.values})

    def finite(self, condition: str, metric: str) -> list[float]:
        return [v for v in self.values.get((condition, metric), []) if math.isfinite(v)]


# --- what a field may hold -----------------------------------------------------------------

# A field check: (test, what a valid value is, for the message).
Check = tuple[Callable[[object], bool], str]


def _is_number(value: object) -> TypeGuard[int | float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        float(value)
    except OverflowError:  # an int with hundreds of digits
        return False
    return True


def _is_name(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value != "" and value.isprintable()


def _between(lo: float, hi: float, *, closed: bool) -> Callable[[object], bool]:
    if closed:
        return lambda v: _is_number(v) and lo <= v <= hi
    return lambda v: _is_number(v) and lo < v < hi


def _optional(check: Check) -> Check:
    test, what = check
    return (lambda v: v is None or test(v)), f"{what} or null"


TEXT: Check = (lambda v: isinstance(v, str), "a string")
NAME: Check = (_is_name, "a name (printable text)")
OBJECT: Check = (lambda v: isinstance(v, dict), "an object")
LIST: Check = (lambda v: isinstance(v, list), "a list")
BOOL: Check = (lambda v: isinstance(v, bool), "true or false")
NUMBER: Check = (_is_number, "a number")
INTEGER: Check = (lambda v: _is_number(v) and isinstance(v, int), "an integer")
COUNT: Check = (
    lambda v: _is_number(v) and isinstance(v, int) and 0 <= v <= MAX_COUNT,
    "a non-negative integer",
)
SIZE: Check = (_between(0, math.inf, closed=True), "a non-negative number")
P_VALUE: Check = (_between(0, 1, closed=True), "a p-value in [0, 1]")
LEVEL: Check = (_between(0, 1, closed=False), "a number between 0 and 1")
INTERVAL: Check = (
    lambda v: isinstance(v, list) and len(v) == 2 and all(b is None or _is_number(b) for b in v),
    "a list of two bounds (numbers or nulls)",
)
CORRECTION: Check = (lambda v: v in CORRECTIONS, "one of " + ", ".join(CORRECTIONS))

# The fields of one verifier result the report and the plan read; a field not
# listed (a custom verifier's own) is not read and not checked.
RESULT_FIELDS: dict[str, Check] = {
    **dict.fromkeys(["p_value", "p_value_raw", "p_value_adjusted"], _optional(P_VALUE)),
    **dict.fromkeys(["significant", "significant_raw", "paired"], _optional(BOOL)),
    **dict.fromkeys(
        ["mean_difference", "statistic", "mean_baseline", "mean_treatment", "sd_baseline", "sd_treatment"],
        _optional(NUMBER),
    ),
    **dict.fromkeys(["ci_level", "alpha"], _optional(LEVEL)),
    **dict.fromkeys(
        ["n_baseline", "n_treatment", "n_pairs", "n_missing_baseline", "n_missing_treatment"],
        _optional(SIZE),
    ),
    **dict.fromkeys(
        ["note", "alternative", "effect_size", "correction", "method", "verdict"], _optional(TEXT)
    ),
    "equivalent": _optional(BOOL),
    "equivalence_bounds": _optional(INTERVAL),
}
# a hypothesis' sesoi: {"value": x} or {"d": x}, x > 0
SESOI: Check = (
    lambda v: (
        isinstance(v, dict)
        and len(v) == 1
        and next(iter(v)) in ("value", "d")
        and _is_number(next(iter(v.values())))
        and next(iter(v.values())) > 0
    ),
    "{value: X} or {d: X} with X > 0",
)
HYPOTHESIS_FIELDS: dict[str, Check] = {
    "name": NAME,
    "metric": NAME,
    "verifier": NAME,
    "results": OBJECT,
    "ranking": LIST,
    "params": _optional(OBJECT),
    "correction": CORRECTION,
    "alpha": LEVEL,
    "sesoi": _optional(SESOI),
    "correction_family": _optional(NAME),
    "family_size": _optional(COUNT),
}
# A custom verifier may name its alternatives otherwise; the plan takes an
# alternative it does not know as two-sided.
PARAMS_FIELDS: dict[str, Check] = {"alpha": LEVEL, "alternative": TEXT}
# provenance.json: (where, its fields, the ones that must be there), for the
# parts the report and the plan read.
PROVENANCE_PARTS: list[tuple[tuple[str, ...], dict[str, Check], tuple[str, ...]]] = [
    (
        (),
        {
            "experiment": NAME,
            "created": TEXT,
            "config": OBJECT,
            "config_hash": TEXT,
            "config_files": TEXT,
            "code": OBJECT,
            "seeds": OBJECT,
            "conditions": OBJECT,
            "environment": OBJECT,
            "outputs": LIST,
        },
        ("created", "config", "config_hash", "config_files", "code", "conditions", "environment", "outputs"),
    ),
    (("config",), {"replicates": COUNT, "seed": INTEGER, "grid": _optional(OBJECT)}, ("replicates",)),
    (("code",), {"source": TEXT, "sha256": TEXT, "steps": OBJECT}, ("source", "sha256", "steps")),
    (("seeds",), {"replicates": LIST}, ()),
    (
        ("environment",),
        {"python": TEXT, "platform": TEXT, "host": TEXT, "packages": OBJECT},
        ("python", "platform", "host", "packages"),
    ),
]


class _Table:
    """One file being checked: every failure is a BadRecord naming it."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path, self.kind = path, kind

    def fail(self, problem: str) -> NoReturn:
        raise BadRecord(str(self.path), problem, kind=self.kind)

    def check(
        self,
        record: Mapping[str, object],
        fields: Mapping[str, Check],
        where: str = "",
        required: Iterable[str] = (),
    ) -> None:
        """``record``'s ``fields`` (those present) pass their checks; ``where`` is its place."""
        for key in required:
            if key not in record:
                self.fail(f"has no field {_place(where, key)!r}")
        for key, (test, what) in fields.items():
            if key in record and not test(record[key]):
                self.fail(f"{_place(where, key)} is {_shown(record[key])}, expected {what}")

    def names(self, mapping: Mapping[str, object], where: str, check: Check = OBJECT) -> None:
        """Every key of ``mapping`` a name, every value passing ``check``."""
        test, what = check
        for key, value in mapping.items():
            if not _is_name(key):
                self.fail(f"{where} has the key {_shown(key)}, expected a name (printable text)")
            if not test(value):
                self.fail(f"{where}[{key!r}] is {_shown(value)}, expected {what}")

    def shallow(self, value: Mapping[str, object], where: str, skip: Container[str] = ()) -> None:
        """``value`` nests at most MAX_DEPTH levels (the report re-encodes parts of it)."""
        pending: list[tuple[object, int]] = [(v, 1) for k, v in value.items() if k not in skip]
        while pending:
            item, depth = pending.pop()
            if depth > MAX_DEPTH:
                self.fail(f"{where} nests deeper than {MAX_DEPTH} levels")
            children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
            pending += [(child, depth + 1) for child in children]


def _place(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _shown(value: object) -> str:
    """A field's value for a message: short, control characters escaped."""
    if isinstance(value, (dict, list)):
        return f"a JSON {'object' if isinstance(value, dict) else 'list'}"
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**40 else "a huge integer"
    return text if len(text) <= 60 else text[:57] + "..."


# --- reading ------------------------------------------------------------------------------------


def _read_bytes(path: Path, kind: str) -> bytes:
    """The file's bytes through the path gate; FileNotFoundError passes through,
    anything else that stops the read is a BadRecord naming the file."""
    try:
        return pathgate.read_bytes(path)
    except FileNotFoundError:
        raise
    except UnsafePathError as exc:
        raise BadRecord(str(path), str(exc).removeprefix("repliflow: "), kind=kind) from None
    except OSError as exc:
        raise BadRecord(str(path), f"cannot be read: {exc.strerror or exc}", kind=kind) from None


def _read_object(path: Path, kind: str) -> dict[str, Any]:
    try:
        return pathgate.read_json_object(path, kind)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise BadRecord(str(path), f"cannot be read: {exc.strerror or exc}", kind=kind) from None


# provenance.json as aggregate writes it: its outputs last, one per line.
_OUTPUTS_START, _OUTPUTS_END = b'\n "outputs": [\n', b"\n ]\n}"


def _read_provenance(path: Path) -> dict[str, Any]:
    """provenance.json, its ``outputs`` read as placeholders (the report and the
    plan only count them): at 200,000 outputs parsing them would hold ~220 MB.
    A file in another layout (edited by hand, say) is parsed whole."""
    data = _read_bytes(path, PROVENANCE)
    at = data.find(_OUTPUTS_START)
    if at == -1 or not data.endswith(_OUTPUTS_END):
        return _read_object(path, PROVENANCE)
    count = data.count(b"\n", at + len(_OUTPUTS_START), len(data) - len(_OUTPUTS_END)) + 1
    try:
        head = json.loads(data[:at] + b'\n "outputs": []\n}')
    except (ValueError, RecursionError) as exc:
        raise BadRecord(
            str(path), f"is not valid JSON: {type(exc).__name__}: {exc}", kind=PROVENANCE
        ) from None
    if not isinstance(head, dict):
        raise BadRecord(str(path), "does not hold a JSON object", kind=PROVENANCE)
    head["outputs"] = [None] * count
    return head


def parse_metrics(text: str, path: Path) -> dict[tuple[str, str], list[float]]:
    """The text of ``metrics.csv`` as {(condition, metric): values by replicate}."""
    table = _Table(path, METRICS)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: dict[tuple[str, str], dict[int, float]] = {}
    try:
        header = next(reader, None)
        if not header:
            table.fail(f"is empty: expected the header row {','.join(METRIC_COLUMNS)}")
        missing = [column for column in METRIC_COLUMNS if column not in header]
        if missing:
            table.fail(
                f"has no column {', '.join(map(repr, missing))} (its header: {_shown(','.join(header))})"
            )
        at = [header.index(column) for column in METRIC_COLUMNS]
        for fields in reader:
            if not fields:
                continue
            line = reader.line_num
            if len(fields) != len(header):
                table.fail(f"line {line} has {len(fields)} fields; the header has {len(header)}")
            condition, replicate, metric, value = (fields[i] for i in at)
            for column, name in (("condition", condition), ("metric", metric)):
                if not _is_name(name):
                    table.fail(f"line {line}: {column} {_shown(name)} is not a name (printable text)")
            if not (replicate.isascii() and replicate.isdigit() and len(replicate) <= MAX_REPLICATE_DIGITS):
                table.fail(
                    f"line {line}: replicate {_shown(replicate)} is not a replicate number (0, 1, ...)"
                )
            try:
                number = float(value) if value != "" else math.nan
            except ValueError:
                table.fail(
                    f"line {line}: value {_shown(value)} is not a number (nor empty, for a missing one)"
                )
            by_replicate = rows.setdefault((condition, metric), {})
            if int(replicate) in by_replicate:
                table.fail(
                    f"line {line} repeats replicate {int(replicate)} of {condition!r}, metric {metric!r}"
                )
            by_replicate[int(replicate)] = number
    except csv.Error as exc:
        table.fail(f"is not a CSV table (line {reader.line_num}): {exc}")
    return {key: [reps[r] for r in sorted(reps)] for key, reps in rows.items()}


def read_metrics(path: Path) -> dict[tuple[str, str], list[float]]:
    """``metrics.csv`` as {(condition, metric): values by replicate}; an empty
    value (a replicate that did not return the metric) reads as NaN."""
    data = _read_bytes(path, METRICS)
    try:
        text = data.decode("utf-8-sig")  # a spreadsheet's byte-order mark is no part of the header
    except UnicodeDecodeError as exc:
        raise BadRecord(str(path), f"is not UTF-8 text (byte {exc.start})", kind=METRICS) from None
    return parse_metrics(text, path)


def check_hypotheses(document: Mapping[str, Any], path: Path) -> list[dict[str, Any]]:
    """hypotheses.json's hypotheses, every field the report and the plan read typed."""
    table = _Table(path, HYPOTHESES)
    table.check(document, {"hypotheses": LIST}, required=("hypotheses",))
    hypotheses: list[dict[str, Any]] = document["hypotheses"]  # a list: checked; its items below
    for index, hypothesis in enumerate(hypotheses):
        where = f"hypotheses[{index}]"
        if not isinstance(hypothesis, dict):
            table.fail(f"{where} is {_shown(hypothesis)}, expected an object")
        table.check(
            hypothesis, HYPOTHESIS_FIELDS, where, ("name", "metric", "verifier", "results", "ranking")
        )
        table.shallow(hypothesis, where)
        table.check(hypothesis.get("params") or {}, PARAMS_FIELDS, f"{where}.params")
        results = hypothesis["results"]
        table.names(results, f"{where}.results")
        for treatment, result in results.items():
            at = f"{where}.results[{treatment!r}]"
            table.check(result, RESULT_FIELDS, at)
            effect = result.get("effect_size")
            intervals = {key: _optional(INTERVAL) for key in result if key.endswith("_ci")}
            table.check(result, {**intervals, **({effect: _optional(NUMBER)} if effect else {})}, at)
        ranking = hypothesis["ranking"]
        if not all(isinstance(t, str) and t in results for t in ranking) or len(set(ranking)) < len(ranking):
            table.fail(
                f"{where}.ranking is not a list of its treatments (the keys of its results), each once"
            )
    return hypotheses


def check_failed(document: Mapping[str, Any], path: Path) -> dict[str, list[dict[str, Any]]]:
    """hypotheses.json's ``failed_replicates`` (on_failure: missing), typed; {} when absent."""
    table = _Table(path, HYPOTHESES)
    failed: dict[str, list[dict[str, Any]]] = document.get("failed_replicates") or {}  # checked below
    table.check(document, {"failed_replicates": _optional(OBJECT)})
    table.names(failed, "failed_replicates", LIST)
    for condition, records in failed.items():
        for index, record in enumerate(records):
            where = f"failed_replicates[{condition!r}][{index}]"
            if not isinstance(record, dict):
                table.fail(f"{where} is {_shown(record)}, expected an object")
            table.check(
                record, {"replicate": COUNT, "step": TEXT, "error": TEXT}, where, ("replicate", "error")
            )
    return failed


def check_provenance(provenance: dict[str, Any], path: Path) -> dict[str, Any]:
    """provenance.json, every field the report and the plan read typed."""
    table = _Table(path, PROVENANCE)
    table.shallow(provenance, "the record", skip=("outputs",))
    for parts, fields, required in PROVENANCE_PARTS:
        record = provenance
        for part in parts:
            record = record.get(part, {})
        table.check(record, fields, ".".join(parts), required)
    if not all(INTEGER[0](seed) for seed in provenance.get("seeds", {}).get("replicates", [])):
        table.fail("seeds.replicates holds something other than integers")
    table.names(provenance["code"]["steps"], "code.steps")
    for name, step in provenance["code"]["steps"].items():
        table.check(
            step, {"function": TEXT, "code_hash": TEXT}, f"code.steps[{name!r}]", ("function", "code_hash")
        )
    table.names(provenance["environment"]["packages"], "environment.packages", TEXT)
    conditions = provenance["conditions"]
    table.names(conditions, "conditions")
    if "baseline" not in conditions:
        table.fail("conditions has no 'baseline'")
    for name, condition in conditions.items():
        table.check(condition, {"params": OBJECT}, f"conditions[{name!r}]", ("params",))
        table.names(condition["params"], f"conditions[{name!r}].params")
    return provenance


def load(
    metrics: str | Path,
    hypotheses: str | Path,
    provenance: str | Path | None = None,
    directory: str | Path | None = None,
) -> Results:
    """The tables at these paths, checked; ``directory`` (default: the one
    holding metrics.csv) is how the results directory is named in messages.
    A missing metrics.csv or hypotheses.json raises FileNotFoundError; a
    missing provenance.json reads as {}."""
    hypotheses = Path(hypotheses)
    values = read_metrics(Path(metrics))
    document = _read_object(hypotheses, HYPOTHESES)
    checked = check_hypotheses(document, hypotheses)
    failed = check_failed(document, hypotheses)
    record: dict[str, Any] = {}
    if provenance:
        with contextlib.suppress(FileNotFoundError):  # no provenance.json: an empty record
            record = check_provenance(_read_provenance(Path(provenance)), Path(provenance))
    results = Results(
        path=Path(directory) if directory is not None else Path(metrics).parent,
        values=values,
        hypotheses=checked,
        provenance=record,
        failed=failed,
    )
    conditions = set(results.conditions)
    for hypothesis in checked:
        unknown = [t for t in hypothesis["results"] if t not in conditions]
        if unknown:
            _Table(hypotheses, HYPOTHESES).fail(
                f"hypothesis {hypothesis['name']!r} has results for {_shown(unknown[0])}, which is not a "
                "condition of the results (metrics.csv, provenance.json)"
            )
    return results


def read_results(directory: str | Path) -> Results:
    """The tables of a results directory, ``results/<experiment>`` (a real
    directory: a symbolic link in its place is refused)."""
    directory = Path(directory)
    pathgate.check_real_dir(directory, "results/<experiment> folder")
    return load(directory / METRICS, directory / HYPOTHESES, directory / PROVENANCE, directory)
