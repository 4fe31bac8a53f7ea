"""Find step functions in user code, hash them and read their signatures.

Planning never imports user code: the file is parsed with ``ast``. That keeps
Snakemake's parse fast (no pandas import at plan time), keeps a broken module
from crashing the DAG build, and gives the same code hash in the planner and
in the job that runs the step.

What the code hash covers: the syntax tree of the function's own ``def``
statement (decorators, signature with default values, docstring, body, nested
functions), so reformatting and comments do not change it. What it does not
see: helper functions the step calls, module-level constants and imports,
other files, and the versions of installed libraries. A change there does not
re-run anything; bump a parameter or edit the step to force it.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from repliflow.errors import ConfigError


@dataclass(frozen=True)
class Signature:
    positional: tuple[str, ...]  # names that can be passed by position, in order
    keyword: tuple[str, ...]  # names that can be passed by keyword
    required_keyword: tuple[str, ...]  # keyword-only names without a default
    varargs: bool
    varkw: bool
    is_async: bool


@dataclass(frozen=True)
class FunctionInfo:
    name: str
    code_hash: str
    signature: Signature
    source_file: str


def resolve_code_path(code: str, workdir: str | None = None) -> Path:
    """The .py file behind ``code`` (a path, or a dotted module name)."""
    workdir = workdir or os.getcwd()
    if code.endswith(".py") or "/" in code or os.sep in code:
        path = Path(workdir, code)
        if not path.is_file():
            raise ConfigError(
                f"the code file {code!r} does not exist (looked for {path}); "
                "give a .py path relative to the working directory or a dotted module name",
                key="code",
            )
        return path
    found = find_module_file(code, [workdir, *sys.path])
    if found is None:
        raise ConfigError(
            f"the code module {code!r} cannot be found (no {code.replace('.', '/')}.py or "
            f"{code.replace('.', '/')}/__init__.py in {workdir} or on sys.path); give a .py path "
            "relative to the working directory or a module importable from it",
            key="code",
        )
    return found


def find_module_file(module: str, roots: list[str]) -> Path | None:
    """The source file of the dotted ``module`` in the first root holding it,
    found by looking at files only: ``importlib.util.find_spec`` would import
    (run) every parent package, and planning and auditing never run code."""
    parts = module.split(".")
    if not all(part.isidentifier() for part in parts):
        return None
    for root in roots:
        if not root or not os.path.isdir(root):
            continue
        base = Path(root, *parts)
        for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


@lru_cache(maxsize=64)
def _parse(path: str, mtime_ns: int) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    import io
    import tokenize

    # decoded as Python imports it: UTF-8 unless a coding line (PEP 263) says otherwise
    data = Path(path).read_bytes()
    try:
        encoding, cookie_problem = tokenize.detect_encoding(io.BytesIO(data).readline)[0], None
    except SyntaxError as exc:  # an unknown coding, or a first line that is not UTF-8
        encoding, cookie_problem = "utf-8", exc.msg
    try:
        source = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"the code file {path} is not {encoding.upper()} text: byte {exc.start} (line {line}) "
            f"is 0x{data[exc.start]:02x}; save it as UTF-8 (or declare its encoding, PEP 263)",
            key="code",
        ) from None
    if cookie_problem:
        raise ConfigError(f"the code file {path} cannot be read: {cookie_problem}", key="code")
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        raise ConfigError(
            f"the code file {path} has a syntax error at line {exc.lineno}: {exc.msg}",
            key="code",
        ) from None
    return {
        node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


def function_info(path: Path, name: str, *, key: str) -> FunctionInfo:
    functions = _parse(str(path), path.stat().st_mtime_ns)
    node = functions.get(name)
    if node is None:
        known = ", ".join(sorted(functions)) or "none"
        raise ConfigError(
            f"function {name!r} is not defined at the top level of {path} (functions there: {known})",
            key=key,
        )
    dumped = ast.dump(node, annotate_fields=True, include_attributes=False)
    code_hash = hashlib.sha256(dumped.encode()).hexdigest()[:20]
    return FunctionInfo(name, code_hash, _signature(node), str(path))


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> Signature:
    args = node.args
    positional = tuple(a.arg for a in [*args.posonlyargs, *args.args])
    keyword = tuple(a.arg for a in [*args.args, *args.kwonlyargs])
    defaults = zip(args.kwonlyargs, args.kw_defaults, strict=True)
    required = tuple(a.arg for a, default in defaults if default is None)
    return Signature(
        positional=positional,
        keyword=keyword,
        required_keyword=required,
        varargs=args.vararg is not None,
        varkw=args.kwarg is not None,
        is_async=isinstance(node, ast.AsyncFunctionDef),
    )


def load_module(path: Path) -> ModuleType:
    """Import the user's code file (in a job, never at plan time).

    It is registered under its file stem so objects pickled from it can be
    unpickled in another job.
    """
    path = path.resolve()
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # no loader for the suffix: not a .py file
        raise ImportError(f"{path} is not a Python source file (.py); it cannot be imported", path=str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
