"""Validate an experiment config against the JSON Schema, with readable errors.

Also reads config files strictly (UTF-8 only, no key given twice, no YAML tag
that makes a Python object) and refuses values that have no JSON form: a
recipe is canonical JSON, so a value it cannot hold would end in a traceback.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import os
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import yaml

from repliflow import shipped
from repliflow.errors import ConfigError

SCHEMA_PATH = shipped.schema("config")


def validate_config(
    config: Mapping[str, Any], *, file: str | None = None, schema: Path | None = None
) -> dict[str, Any]:
    """Validate ``config`` with ``snakemake.utils.validate`` and fill defaults.

    Returns a validated deep copy; raises ConfigError naming the key at fault.
    """
    from jsonschema import ValidationError  # type: ignore[import-untyped]  # stubs (types-jsonschema) not installed
    from snakemake.utils import validate

    check_config_values(config, file=file)
    validated = copy.deepcopy(dict(config))
    try:
        validate(validated, str(schema or SCHEMA_PATH), set_default=True)
    except Exception as exc:  # snakemake wraps the jsonschema error in a WorkflowError
        error = next((a for a in exc.args if isinstance(a, ValidationError)), None)
        if error is None and isinstance(exc, ValidationError):
            error = exc
        if error is None and isinstance(exc.__context__, ValidationError):
            error = exc.__context__  # snakemake 9 keeps only the text in args
        if error is None:
            raise ConfigError(str(exc), file=file) from None
        key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        expected = error.schema.get("description", "") if isinstance(error.schema, dict) else ""
        hint = f" Expected: {expected}" if expected else ""
        raise ConfigError(f"{error.message}.{hint}", key=key, file=file) from None
    return validated


# --- values with a JSON form --------------------------------------------------------------------

JSON_VALUES = "strings, numbers, true/false, null, lists and mappings with string keys"


def check_config_values(config: Any, *, file: str | None = None) -> None:
    """Raise ConfigError naming the key of the first value without a JSON form.

    A recipe key is the hash of canonical JSON, so only JSON values can be
    parameters: not NaN or infinities, dates and timestamps (YAML reads an
    unquoted ``2024-01-02`` as a date), sets, binary data, Python objects from
    tags such as ``!!python/tuple``, mapping keys that are not strings, or a
    structure that contains itself (a YAML alias inside its own anchor).
    """
    stack: list[tuple[Any, str, bool]] = [(config, "", False)]
    inside: set[int] = set()  # the mappings and lists being walked: a cycle returns to one
    done: set[int] = set()  # shared by YAML aliases: checked once
    while stack:
        value, path, leaving = stack.pop()
        if leaving:
            inside.discard(id(value))
            done.add(id(value))
            continue
        if isinstance(value, (dict, list)):
            if id(value) in inside:
                raise ConfigError(
                    "this value contains itself (a YAML alias inside its own anchor), which has no JSON form",
                    key=path or "(top level)",
                    file=file,
                )
            if id(value) in done:
                continue
            inside.add(id(value))
            stack.append((value, path, True))
            if isinstance(value, dict):
                for name in value:
                    if not isinstance(name, str):
                        raise ConfigError(
                            f"the mapping key {name!r} is a {_kind(name)}, not a string; JSON keys are "
                            f"strings (quote it: '{name}')",
                            key=_join(path, name),
                            file=file,
                        )
                children = list(value.items())
            else:
                children = list(enumerate(value))
            stack.extend((child, _join(path, name), False) for name, child in reversed(children))
            continue
        problem = _value_problem(value)
        if problem:
            raise ConfigError(problem, key=path or "(top level)", file=file)


def _join(path: str, name: Any) -> str:
    return f"{path}.{name}" if path else str(name)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, datetime.datetime):
        return "timestamp"
    if isinstance(value, datetime.date):
        return "date"
    return {int: "number", float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def _value_problem(value: Any) -> str | None:
    """Why ``value`` (not a list or mapping) has no JSON form, or None."""
    if value is None or isinstance(value, (bool, int)):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return (
            f"{value!r} is not a finite number; recipes are canonical JSON, which has no NaN or "
            "infinity (pass a string and convert it in the step)"
        )
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"the string {value!r} is not valid Unicode (it holds a lone surrogate escape)"
        return None
    if isinstance(value, (datetime.date, datetime.datetime)):
        return (
            f"YAML read {value} as a {_kind(value)}, which has no JSON form; quote it "
            f"('{value}') to pass a string"
        )
    if isinstance(value, (set, frozenset)):
        return f"a set (YAML !!set) has no JSON form; write a list. Values are {JSON_VALUES}"
    if isinstance(value, (bytes, bytearray)):
        return f"binary data (YAML !!binary) has no JSON form; write a string. Values are {JSON_VALUES}"
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    if isinstance(value, tuple):
        return f"the Python tuple {shown} (YAML tag !!python/tuple) has no JSON form; write a list"
    return (
        f"the Python {type(value).__name__} {shown} (from a YAML tag such as !!python/...) has no "
        f"JSON form; values are {JSON_VALUES}"
    )


# --- reading config files strictly --------------------------------------------------------------

_MERGE_TAG = "tag:yaml.org,2002:merge"


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (plain
    YAML keeps the last silently) and any tag it has no constructor for (such
    as ``!!python/tuple``), naming the dotted key path and the line."""

    def __init__(self, stream: str, file: str | None = None) -> None:
        super().__init__(stream)
        self.file = file
        self._paths: dict[int, str] = {}  # id(node) -> its dotted key path (nodes live for the load)

    def _path(self, node: yaml.Node) -> str:
        return self._paths.get(id(node), "")

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if isinstance(node, yaml.MappingNode):
            path = self._path(node)
            lines: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:  # '<<: *base' then an explicit key overrides: allowed
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = key in lines
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                line = key_node.start_mark.line + 1
                if seen:
                    raise ConfigError(
                        f"the key {str(key)!r} is given twice in one mapping (lines {lines[key]} and "
                        f"{line}); YAML would silently keep only the last one",
                        key=_join(path, key),
                        file=self.file,
                    )
                lines[key] = line
                self._paths.setdefault(id(value_node), _join(path, key))
        return super().construct_mapping(node, deep=deep)

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> list[Any]:
        path = self._path(node)
        for index, child in enumerate(getattr(node, "value", [])):
            self._paths.setdefault(id(child), _join(path, index))
        return super().construct_sequence(node, deep=deep)

    def construct_unknown(self, node: yaml.Node) -> NoReturn:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise ConfigError(
            f"line {node.start_mark.line + 1}: the YAML tag {tag} makes a Python object, which has no "
            f"JSON form; values are {JSON_VALUES}",
            key=self._path(node) or "(top level)",
            file=self.file,
        )


StrictLoader.add_constructor(None, StrictLoader.construct_unknown)


class _DuplicateJSONKey(Exception):
    pass


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateJSONKey(key)
        result[key] = value
    return result


def load_config_file(path: str | Path) -> Any:
    """Read a config file the way Snakemake does (JSON, else YAML), strictly.

    Raises ConfigError naming the file for a file that is not UTF-8 (with the
    byte offset), a key given twice (with its line), a YAML syntax error, an
    unknown tag or a value without a JSON form (with its key). OSError
    (a missing file) passes through.
    """
    name = str(path)
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"the file is not UTF-8 text: byte {exc.start} (line {line}) is 0x{data[exc.start]:02x}; "
            "save it as UTF-8",
            file=name,
        ) from None
    try:
        document = json.loads(text, object_pairs_hook=_json_pairs)
    except _DuplicateJSONKey as exc:
        raise ConfigError(
            f"the key {exc.args[0]!r} is given twice in one JSON object; JSON readers would silently "
            "keep only the last one",
            key=exc.args[0],
            file=name,
        ) from None
    except ValueError:  # not JSON: YAML, as Snakemake reads it next
        loader = StrictLoader(text, file=name)
        try:
            document = loader.get_single_data()
        except yaml.YAMLError as exc:
            raise ConfigError(f"the file is not valid YAML: {_yaml_problem(exc)}", file=name) from None
        finally:
            loader.dispose()
    check_config_values(document, file=name)
    return document


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def check_config_files(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Re-read the config files Snakemake was given (``workflow.configfiles``)
    strictly: Snakemake's own loader takes a key given twice silently (the
    last wins). Raises ConfigError naming the file, line and key."""
    for path in dict.fromkeys(str(p) for p in paths):
        try:
            load_config_file(path)
        except OSError as exc:
            raise ConfigError(f"cannot read the file: {exc.strerror or exc}", file=path) from None


def code_environment(config: Mapping[str, Any], default: str, workdir: str | Path = ".") -> str:
    """The conda environment file of the jobs that run the experiment's code
    (the rules' ``conda:``): the config's ``conda`` as an absolute path (a rule
    would read a relative one from its own folder), else ``default``."""
    name = config.get("conda")
    if name is None:
        return default
    path = Path(workdir, name).resolve()
    if not path.is_file():
        raise ConfigError(
            f"the conda environment file {name!r} is not a file (looked for {path}); the path is "
            "relative to the working directory",
            key="conda",
        )
    return str(path)
