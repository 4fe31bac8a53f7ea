"""Which pickles may be unpickled: the ones this user's machine signed.

Pickle is the one store format that runs code when it is loaded, and a sha256
kept in a sidecar proves nothing when whoever replaced the pickle could edit
the sidecar too. So, as Jupyter does with notebooks, a per-user secret key
(made on first use, kept outside every repository) signs each pickle this
machine writes: the sidecar records ``output.hmac``, an HMAC-SHA256 over the
output's key and sha256. A pickle whose HMAC is absent or wrong (another
machine's run, or a forged file) is never unpickled; the run stops naming the
file, and the user either recomputes it or, after deciding to trust the
folder, runs ``repliflow trust results/<exp>``, which signs it with their key.

The key lives in ``$REPLIFLOW_TRUST_KEY_FILE``, else
``$XDG_CONFIG_HOME/repliflow/trust.key`` (``~/.config/...``). Cluster jobs
must see the same key: a home folder shared with the nodes does that.
JSON, ``.npy`` (read with ``allow_pickle=False``) and Parquet run no code
and need no signature.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repliflow.errors import BadRecord, RepliflowError, UntrustedError
from repliflow.store.pathgate import hash_file, read_json_object

KEY_ENV = "REPLIFLOW_TRUST_KEY_FILE"
_SCOPE = b"repliflow-pickle/1"
_key_cache: dict[str, bytes] = {}


def key_file() -> Path:
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base, "repliflow", "trust.key")


def secret_key() -> bytes:
    """This user's signing key, made on first use (0600, created atomically:
    two jobs starting at once end up with the same key)."""
    path = key_file()
    cached = _key_cache.get(str(path))
    if cached is not None:
        return cached
    try:
        key = _read_key(path)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode())
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # fails when another process made the key first: use theirs
        os.unlink(tmp)
        key = _read_key(path)
    _key_cache[str(path)] = key
    return key


def _read_key(path: Path) -> bytes:
    key = path.read_bytes().strip()
    if len(key) < 32:
        raise RepliflowError(f"repliflow: the trust key {path} is too short; delete it to make a new one")
    return key


def signature(key: str, sha256: str) -> str:
    """The HMAC that marks the output ``key`` with content ``sha256`` as written here."""
    message = b"\0".join([_SCOPE, key.encode(), sha256.encode()])
    return hmac.new(secret_key(), message, hashlib.sha256).hexdigest()


def is_signed(key: str, sha256: str, recorded: object) -> bool:
    return isinstance(recorded, str) and hmac.compare_digest(signature(key, sha256), recorded)


def untrusted_message(path: str, results: str | None = None) -> str:
    folder = results or "results/<experiment>"
    return (
        f"repliflow: {path} is a pickle that this machine did not sign (it came from another "
        "machine or user, or it was replaced); unpickling runs code, so it is not loaded. Either "
        "recompute it (delete it and its .meta.json, then run snakemake again), or, if you trust "
        f"whoever made it, run `repliflow trust {folder}` to sign its pickles with your key"
    )


def check_signed(path: str, key: str, sha256: str, recorded: object) -> None:
    if not is_signed(key, sha256, recorded):
        # <results>/store/<kk>/<file>; a shared store's results folder is not known here
        parents = Path(path).parents
        own = len(parents) > 2 and parents[1].name == "store" and (parents[2] / "blocks").is_dir()
        results = str(parents[2]) if own else None
        raise UntrustedError(untrusted_message(path, results))


@dataclass
class TrustResult:
    signed: list[str] = field(default_factory=list)  # pickles signed now
    already: int = 0  # pickles that were signed already
    refused: list[str] = field(default_factory=list)  # "path: why" for pickles that cannot be signed


def unsigned_pickles(
    results: str | Path, store: str | Path | None = None
) -> tuple[list[tuple[Path, dict[str, Any]]], TrustResult]:
    """The pickle sidecars of ``results``' outputs that this key did not sign:
    every one in its own store; in a shared store (``store``, else the one
    its provenance.json names) only those its records name, since consent
    to one results folder is not consent to every experiment's."""
    from repliflow.store.layout import SIDECAR_SUFFIX, ResultsLayout
    from repliflow.store.pathgate import check_results_tree, check_store_tree
    from repliflow.store.provenance import recorded_store
    from repliflow.store.shared import referenced_keys

    results = Path(results)
    check_results_tree(results)
    found: list[tuple[Path, dict[str, Any]]] = []
    result = TrustResult()
    shared = str(store) if store is not None else recorded_store(results)
    root = ResultsLayout(str(results), shared).store
    check_store_tree(root)
    if shared is None:
        sidecars = sorted(Path(root).glob(f"*/*{SIDECAR_SUFFIX}"))
    else:
        sidecars = [Path(root, key[:2], f"{key}{SIDECAR_SUFFIX}") for key in sorted(referenced_keys(results))]
        sidecars = [path for path in sidecars if os.path.lexists(path)]
    for sidecar_path in sidecars:
        try:
            sidecar = read_json_object(sidecar_path, "sidecar", root=root)
            output = sidecar.get("output")
            if not isinstance(output, dict) or output.get("format") != "pickle":
                continue
            key = sidecar_path.name.removesuffix(SIDECAR_SUFFIX)
            if is_signed(key, str(output.get("sha256")), output.get("hmac")):
                result.already += 1
                continue
            found.append((sidecar_path, sidecar))
        except (BadRecord, OSError) as exc:
            result.refused.append(f"{sidecar_path}: {exc}")
    return found, result


def trust(
    results: str | Path, pending: list[tuple[Path, dict[str, Any]]], result: TrustResult
) -> TrustResult:
    """Sign each pending pickle whose bytes match its sidecar's sha256."""
    from repliflow.store.layout import SIDECAR_SUFFIX
    from repliflow.store.pathgate import check_store_file
    from repliflow.store.storage import atomic_write

    results = Path(results)
    for sidecar_path, sidecar in pending:
        key = sidecar_path.name.removesuffix(SIDECAR_SUFFIX)
        output = sidecar["output"]
        try:
            name = check_store_file(key, output.get("file"), "pickle", str(sidecar_path))
            actual, _ = hash_file(sidecar_path.parent / name, root=sidecar_path.parent.parent)
        except (RepliflowError, OSError) as exc:
            result.refused.append(f"{sidecar_path}: {exc}")
            continue
        if actual != output.get("sha256"):
            result.refused.append(
                f"{sidecar_path.parent / name}: its sha256 {actual} is not the one its sidecar records; "
                "it is damaged, not signed (delete it and its .meta.json to recompute it)"
            )
            continue
        output["hmac"] = signature(key, actual)
        atomic_write(sidecar_path, json.dumps(sidecar, separators=(",", ":"), allow_nan=True).encode())
        result.signed.append(str(sidecar_path.parent / name))
    return result
