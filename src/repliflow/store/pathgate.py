"""The one gate between a results folder and the code that reads or deletes it.

A results folder may come from someone else (a colleague, a CI artifact, a
paper's supplement), so nothing in it is trusted: not the paths its records
name, not the kind of file found at a path. Every reader and deleter
(runner, aggregate, view, audit, status, gc, power, the PROV export) goes
through here:

- a store path taken from a record must be exactly
  ``store/<key[:2]>/<key>.<ext>``, its extension the one of its recorded
  format (:func:`store_file_name`, :func:`check_store_file`);
- ``results/<experiment>`` and its ``store``, ``blocks`` and ``runs`` must be
  real directories, not symbolic links (:func:`check_results_tree`), and so
  must every folder between a checked root and a file opened below it;
- files are opened with ``O_NOFOLLOW | O_NONBLOCK`` and must be regular
  files (a symlink to ``/etc/passwd``, a FIFO that would hang a reader and
  ``/dev/zero`` are refused), and a size limit bounds what is read whole.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from repliflow.errors import BadRecord, UnsafePathError

# What a record may name as its output format, and the extension it is stored under.
EXTENSIONS = {"json": "json", "npy": "npy", "parquet": "parquet", "pickle": "pkl"}
GUARDED_FOLDERS = ("store", "blocks", "runs", "quarantine")
# Records (sidecars, manifests, provenance.json, tables) are read whole; a
# larger file is refused rather than read into memory.
RECORD_LIMIT = 1 << 30
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)

_checked_dirs: set[str] = set()


def store_file_name(key: str, fmt: str) -> str:
    return f"{key}.{EXTENSIONS[fmt]}"


def check_store_file(key: str, file: object, fmt: object, where: str) -> str:
    """The output file name a record gives for ``key``, checked to be
    ``<key>.<ext>`` with the extension of the recorded format."""
    if not isinstance(fmt, str) or fmt not in EXTENSIONS:
        raise BadRecord(where, f"format {fmt!r} is not one of {', '.join(EXTENSIONS)}")
    expected = store_file_name(key, fmt)
    if file != expected:
        raise BadRecord(where, f"names the file {file!r}; a {fmt} output of key {key} is {expected}")
    return expected


def check_real_dir(path: str | Path, what: str | None = None) -> bool:
    """Whether ``path`` exists as a real directory; refuses a symbolic link
    (or anything else that is not a directory) in its place."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(mode):
        raise UnsafePathError(
            f"repliflow: {path} is a symbolic link; repliflow refuses a linked {what or 'folder'} "
            "inside a results folder (reads and deletions would leave it): make it a real directory"
        )
    if not stat.S_ISDIR(mode):
        raise UnsafePathError(f"repliflow: {path} is not a directory")
    return True


def check_results_tree(results: str | Path) -> None:
    """``results/<experiment>`` and its store, blocks and runs folders are real
    directories where they exist."""
    results = Path(results)
    check_real_dir(results, "results/<experiment> folder")
    for name in GUARDED_FOLDERS:
        check_real_dir(results / name, f"{name}/ folder")


def check_store_tree(store: str | Path) -> None:
    """A store (a results folder's own, or a shared one) and its quarantine
    are real directories where they exist; its ``<kk>`` folders are checked
    as each file below them is opened (``root``)."""
    check_real_dir(store, "store folder")
    check_real_dir(Path(store) / "quarantine", "quarantine folder")


def _check_parents(path: str, root: str | None) -> None:
    """Every folder from ``root`` (exclusive) down to ``path``'s parent is real."""
    if root is None:
        return
    parent = os.path.dirname(path)
    root = root.rstrip("/") or "/"
    pending = []
    while parent not in _checked_dirs and len(parent) > len(root) and parent.startswith(root):
        pending.append(parent)
        parent = os.path.dirname(parent)
    for folder in reversed(pending):
        check_real_dir(folder)
        _checked_dirs.add(folder)


def open_regular(path: str | Path, root: str | Path | None = None) -> int:
    """A read-only descriptor of the regular file ``path``; UnsafePathError for
    a symlink, FIFO, device or directory. FileNotFoundError passes through.
    With ``root``, the folders between it and the file must be real too."""
    path = os.fspath(path)
    _check_parents(path, None if root is None else os.fspath(root))
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(f"repliflow: {path} is a symbolic link; it is not followed") from None
        if exc.errno in (errno.ENXIO, errno.ENODEV):
            raise UnsafePathError(f"repliflow: {path} is not a regular file") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UnsafePathError(f"repliflow: {path} is not a regular file (a FIFO, device or folder)")
    return fd


def read_bytes(path: str | Path, root: str | Path | None = None, *, limit: int = RECORD_LIMIT) -> bytes:
    """The whole content of the regular file ``path``, at most ``limit`` bytes."""
    fd = open_regular(path, root)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise UnsafePathError(f"repliflow: {path} is {size} bytes, more than the {limit} read whole")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            size -= len(chunk)
            if size < -limit:
                raise UnsafePathError(f"repliflow: {path} grew while it was read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def hash_file(path: str | Path, root: str | Path | None = None) -> tuple[str, int]:
    """sha256 and size of the regular file ``path``, streamed in 1 MiB chunks."""
    fd = open_regular(path, root)
    digest = hashlib.sha256()
    size = 0
    try:
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest(), size


def read_json(path: str | Path, kind: str, root: str | Path | None = None) -> Any:
    """The JSON value in ``path``; BadRecord (naming the file and ``kind``) when
    it cannot be read or parsed. FileNotFoundError passes through."""
    try:
        data = read_bytes(path, root)
    except UnsafePathError as exc:
        raise BadRecord(str(path), str(exc).removeprefix("repliflow: "), kind=kind) from None
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadRecord(str(path), f"is not valid JSON: {type(exc).__name__}: {exc}", kind=kind) from None


def read_json_object(path: str | Path, kind: str, root: str | Path | None = None) -> dict[str, Any]:
    value = read_json(path, kind, root)
    if not isinstance(value, dict):
        raise BadRecord(str(path), f"holds a JSON {type(value).__name__}, not an object", kind=kind)
    return value


def unlink_inside(path: str | Path, root: str | Path) -> None:
    """Delete the regular file ``path`` only when it lies below the real
    folder ``root`` through real folders; never a link's target."""
    path, root = os.fspath(path), os.fspath(root)
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(os.path.dirname(path))
    if real_parent != real_root and not real_parent.startswith(real_root + os.sep):
        raise UnsafePathError(f"repliflow: {path} is not inside {root}; not deleted")
    _check_parents(path, root)
    mode = os.lstat(path).st_mode
    if not stat.S_ISREG(mode):
        raise UnsafePathError(f"repliflow: {path} is not a regular file; not deleted")
    os.unlink(path)
