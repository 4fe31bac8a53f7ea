"""The content-addressed store: step outputs, their sidecars, atomic writes.

Layout: ``<store>/<key[:2]>/<key>.<ext>`` holds the output and
``<store>/<key[:2]>/<key>.meta.json`` its provenance sidecar. The sidecar is
written last, so a sidecar on disk means its output was completely written.

Formats are chosen by type, safest first: JSON for plain dicts, lists,
numbers and strings; ``.npy`` (no pickle) for NumPy arrays of plain dtypes;
Parquet for DataFrames when pyarrow is installed; pickle only as a fallback,
and a pickle is loaded only after its bytes match the sidecar's sha256.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repliflow.errors import IntegrityError
from repliflow.hashing import sha256_hex

SIDECAR_SCHEMA = "repliflow.sidecar/1"
EXTENSIONS = {"json": "json", "npy": "npy", "parquet": "parquet", "pickle": "pkl"}


class _NotJSON(Exception):
    pass


@dataclass(frozen=True)
class Encoded:
    format: str
    data: bytes
    sha256: str


# Plain strings, not Paths: these are on the path of every replicate x step
# (building a Path parses it, several times a step).
def key_dir(store: str | Path, key: str) -> str:
    return f"{os.fspath(store)}/{key[:2]}"


def sidecar_path(store: str | Path, key: str) -> str:
    return f"{os.fspath(store)}/{key[:2]}/{key}.meta.json"


def output_path(store: str | Path, key: str, fmt: str) -> str:
    return f"{os.fspath(store)}/{key[:2]}/{key}.{EXTENSIONS[fmt]}"


_made_dirs: set[str] = set()


def atomic_write(path: Path | str, data: bytes) -> None:
    """Write via a temp file in the same directory and rename: readers and a
    crash mid-write never see a partial file.

    The temp name is unique per process and target (no random names: this is
    on the path of every replicate x step, and file creation dominates there).
    """
    path = os.fspath(path)
    parent = os.path.dirname(path) or "."
    if parent not in _made_dirs:
        os.makedirs(parent, exist_ok=True)
        _made_dirs.add(parent)
    tmp = f"{parent}/.{os.path.basename(path)}.{os.getpid()}.tmp"
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except FileNotFoundError:  # the directory went away since we made it
            os.makedirs(parent, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON types, or _NotJSON if that would change its type."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int) and type(value) is int:
        return value
    if isinstance(value, float):
        return float(value)
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise _NotJSON
        return {k: _jsonable(v) for k, v in value.items()}
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, (numpy.integer, numpy.floating, numpy.bool_)):
        return value.item()
    raise _NotJSON


def encode(value: Any) -> Encoded:
    try:
        text = json.dumps(_jsonable(value), allow_nan=True, ensure_ascii=False)
        data = text.encode()
        return Encoded("json", data, sha256_hex(data))
    except _NotJSON:
        pass
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray) and not value.dtype.hasobject:
        buffer = io.BytesIO()
        numpy.save(buffer, value, allow_pickle=False)
        data = buffer.getvalue()
        return Encoded("npy", data, sha256_hex(data))
    pandas = sys.modules.get("pandas")
    if (
        pandas is not None
        and isinstance(value, pandas.DataFrame)
        and all(isinstance(c, str) for c in value.columns)
        and _has_pyarrow()
    ):
        buffer = io.BytesIO()
        value.to_parquet(buffer)
        data = buffer.getvalue()
        return Encoded("parquet", data, sha256_hex(data))
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return Encoded("pickle", data, sha256_hex(data))


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def decode(fmt: str, data: bytes) -> Any:
    if fmt == "json":
        return json.loads(data)
    if fmt == "npy":
        import numpy

        return numpy.load(io.BytesIO(data), allow_pickle=False)
    if fmt == "parquet":
        import pandas

        return pandas.read_parquet(io.BytesIO(data))
    if fmt == "pickle":
        return pickle.loads(data)  # noqa: S301 - only after the sha256 check in load()
    raise IntegrityError(f"unknown storage format {fmt!r}")


def read_sidecar(store: str | Path, key: str) -> dict | None:
    try:
        with open(sidecar_path(store, key), "rb") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def load(store: str | Path, key: str, sidecar: dict | None = None) -> tuple[Any, str]:
    """The stored value of ``key`` and its sha256, checked against the sidecar."""
    sidecar = sidecar or read_sidecar(store, key)
    if sidecar is None:
        raise IntegrityError(f"no sidecar for key {key} in {store}")
    output = sidecar["output"]
    path = f"{key_dir(store, key)}/{output['file']}"
    with open(path, "rb") as handle:
        data = handle.read()
    actual = sha256_hex(data)
    if actual != output["sha256"]:
        raise IntegrityError(
            f"{path} does not match its sidecar (sha256 {actual}, recorded {output['sha256']}): "
            "it was modified or corrupted after it was written; delete it and its .meta.json to recompute"
        )
    return decode(output["format"], data), actual


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isinf(value)
