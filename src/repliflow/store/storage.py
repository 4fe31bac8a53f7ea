"""The content-addressed store: step outputs, their sidecars, atomic writes.

Layout: ``<store>/<key[:2]>/<key>.<ext>`` holds the output and
``<store>/<key[:2]>/<key>.meta.json`` its provenance sidecar. The sidecar is
written last, so a sidecar on disk means its output was completely written.

Formats are chosen by type, safest first: JSON for plain dicts, lists,
numbers and strings; ``.npy`` (no pickle) for NumPy arrays of plain dtypes;
Parquet for DataFrames when pyarrow is installed; pickle only as a fallback.
A pickle is loaded only when its bytes match the recorded sha256 and its
sidecar carries this machine's signature of them (``repliflow.store.trust``);
every file is opened through ``repliflow.store.pathgate`` (no symlinks, regular
files only, the name its key and format dictate).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pickle
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from repliflow.core.hashing import sha256_hex
from repliflow.core.records import ManifestStep, Sidecar, StoredOutput, check_sidecar
from repliflow.errors import IntegrityError, RepliflowError, StoreMismatch
from repliflow.store import pathgate
from repliflow.store.layout import ResultsLayout

EXTENSIONS = pathgate.EXTENSIONS


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
_HOST = socket.gethostname()


def write_if_changed(path: Path | str, data: bytes) -> None:
    """``atomic_write`` unless ``path`` already holds ``data`` (the jobs' spec
    files, written at every parse: an unchanged file keeps its mtime)."""
    try:
        if Path(path).read_bytes() == data:
            return
    except OSError:
        pass
    atomic_write(path, data)


def atomic_write(path: Path | str, data: bytes) -> None:
    """Write via a temp file in the same directory and rename: readers and a
    crash mid-write never see a partial file.

    The temp name is unique per host, process and target (no random names:
    this is on the path of every replicate x step, and file creation
    dominates there).
    """
    path = os.fspath(path)
    parent = os.path.dirname(path) or "."
    if parent not in _made_dirs:
        os.makedirs(parent, exist_ok=True)
        if os.path.islink(parent):  # a planted link would send the write elsewhere
            pathgate.check_real_dir(parent)
        _made_dirs.add(parent)
    # the host too: processes on two hosts may write one key of a shared store at once
    tmp = f"{parent}/.{os.path.basename(path)}.{_HOST}.{os.getpid()}.tmp"
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
        # not installed here, and it ships no type information: only whether it imports matters
        import pyarrow  # type: ignore[import-not-found]  # noqa: F401
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
        import pandas  # no stubs (pyproject: mypy ignores its missing imports); returned as Any

        return pandas.read_parquet(io.BytesIO(data))
    if fmt == "pickle":
        return pickle.loads(data)  # noqa: S301 - load() checked this machine's signature first
    raise IntegrityError(f"unknown storage format {fmt!r}")


def store_output(store: str | Path, key: str, encoded: Encoded) -> StoredOutput:
    """Store ``encoded`` as the output of ``key``; returns its record (a
    sidecar's ``output``). A pickle is signed with this machine's key."""
    out = output_path(store, key, encoded.format)
    atomic_write(out, encoded.data)
    output: StoredOutput = {
        "file": os.path.basename(out),
        "format": encoded.format,
        "sha256": encoded.sha256,
        "bytes": len(encoded.data),
    }
    if encoded.format == "pickle":  # only pickles this machine signed are ever loaded
        from repliflow.store.trust import signature

        output["hmac"] = signature(key, encoded.sha256)
    return output


def write_sidecar(store: str | Path, key: str, sidecar: Sidecar) -> int:
    """Write the sidecar of ``key``, once its output is stored (``store_output``):
    a sidecar on disk means a complete output. Returns its size in bytes."""
    data = json.dumps(sidecar, separators=(",", ":"), allow_nan=True).encode()
    atomic_write(sidecar_path(store, key), data)
    return len(data)


def quarantine(
    store: str | Path, key: str, names: list[str], why: str, target: str | None = None
) -> list[str]:
    """Move the store files ``names`` of ``key`` (those that exist: a link is
    moved as the link) to ``target`` (``ResultsLayout.quarantine``; default:
    ``results/<exp>/quarantine/`` beside the store), and log why in its
    ``log.tsv``; returns the names moved. Nothing damaged is deleted: a
    person may want to see what it was."""
    folder = key_dir(store, key)
    target = target or ResultsLayout(os.path.dirname(os.fspath(store))).quarantine
    moved = []
    for name in dict.fromkeys(n for n in names if n):
        if os.path.basename(name) != name or not os.path.lexists(f"{folder}/{name}"):
            continue
        os.makedirs(target, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        destination = f"{target}/{name}.{stamp}.{os.getpid()}"
        try:
            os.rename(f"{folder}/{name}", destination)
        except FileNotFoundError:  # another job moved it first
            continue
        moved.append(name)
        line = f"{stamp}\t{name}\t{os.path.basename(destination)}\t{' '.join(why.split())}\n"
        fd = os.open(f"{target}/log.tsv", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    return moved


def read_sidecar(store: str | Path, key: str) -> Sidecar | None:
    """The sidecar of ``key``, type-checked; None when there is none."""
    path = sidecar_path(store, key)
    try:
        value = pathgate.read_json(path, "sidecar", root=store)
    except FileNotFoundError:
        return None
    return check_sidecar(value, path, key)


def _readable_sidecar(store: str | Path, key: str) -> Sidecar | None:
    try:
        return read_sidecar(store, key)
    except (OSError, RepliflowError):
        return None


def load(store: str | Path, key: str, output: StoredOutput | ManifestStep | None = None) -> tuple[Any, str]:
    """The stored value of ``key`` and its sha256, checked against the record.

    ``output`` is the record of the output (a sidecar's ``output``, or a block
    manifest's entry: file, format, sha256); default: the sidecar's. A pickle
    also needs this machine's signature (in the sidecar), or it is not loaded.
    """
    given = output is not None
    if output is None:
        sidecar = read_sidecar(store, key)
        if sidecar is None:
            raise IntegrityError(f"repliflow: no sidecar for key {key} in {store}")
        output = sidecar["output"]
    fmt = output["format"]
    path = f"{key_dir(store, key)}/{pathgate.check_store_file(key, output['file'], fmt, key)}"
    data = pathgate.read_bytes(path, store, limit=1 << 62)
    actual = sha256_hex(data)
    if actual != output["sha256"]:
        if given:  # a manifest's entry: is the manifest, not the file, what changed?
            sidecar = _readable_sidecar(store, key)
            if sidecar is not None and sidecar["output"]["sha256"] == actual:
                raise StoreMismatch(
                    f"repliflow: the block manifest lists sha256 {output['sha256']} for {path}, but the "
                    "file matches its own sidecar: the manifest was edited, not the file",
                    key=key,
                    path=path,
                    record_wrong=True,
                )
        raise StoreMismatch(
            f"repliflow: {path} does not match its record (sha256 {actual}, recorded {output['sha256']}): "
            "it was modified or corrupted after it was written",
            key=key,
            path=path,
            record_wrong=False,
        )
    if fmt == "pickle":
        from repliflow.store.trust import check_signed

        signed = output.get("hmac")
        if signed is None:  # a manifest entry: the signature is in the sidecar
            sidecar = read_sidecar(store, key)
            signed = sidecar and sidecar["output"]["sha256"] == actual and sidecar["output"].get("hmac")
        check_signed(path, key, actual, signed)
    return decode(fmt, data), actual


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isinf(value)
