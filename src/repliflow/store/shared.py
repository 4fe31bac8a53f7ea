"""A store shared between experiments and checkouts, and its registry.

By default each results folder keeps its own store (``results/<exp>/store``).
A config's ``store:`` (else the environment variable ``REPLIFLOW_STORE``)
names one folder that many results folders use instead: keys are content
hashes of recipes, so an output one experiment made is found, checked and
reused by any other whose recipe chain is the same, as by a re-run.

Records keep naming outputs ``store/<kk>/<key>.<ext>`` (relative to the
results folder); ``provenance.json`` says which store that is
(``store``, an absolute path) so that audit, ``repliflow.load`` and trust
find it from the results folder alone.

Every run registers its results folder in ``<store>/registry/`` (one small
JSON file per results folder). ``repliflow gc`` removes an output of a
shared store only when neither a given config nor any registered results
folder (its block manifests and provenance.json) names it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repliflow.errors import ConfigError, RepliflowError
from repliflow.store import pathgate

if TYPE_CHECKING:
    from repliflow.core.plan import Plan

ENVIRONMENT_VARIABLE = "REPLIFLOW_STORE"
REGISTRY = "registry"
REGISTRATION_SCHEMA = "repliflow.store-registration/1"


def store_location(config: dict[str, Any], experiment: str, workdir: str | None) -> str | None:
    """The shared store a config asks for, as an absolute real path; None for
    the results folder's own store. ConfigError for a store that is a file,
    or that lies inside a results folder (whose gc would not know of it)."""
    value, key = config.get("store"), "store"
    if value is None:
        value, key = os.environ.get(ENVIRONMENT_VARIABLE) or None, f"store (from ${ENVIRONMENT_VARIABLE})"
    if value is None:
        return None
    base = os.path.abspath(workdir or ".")
    path = os.path.realpath(os.path.join(base, os.path.expanduser(value)))
    results = os.path.realpath(os.path.join(base, "results"))
    if path == os.path.join(results, experiment, "store"):
        return None  # the results folder's own store, named explicitly
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ConfigError(f"{value!r} ({path}) exists and is not a folder; a store is a folder", key=key)
    inside_results = path == results or path.startswith(results + os.sep)
    parent = os.path.dirname(path)
    if (
        inside_results
        or os.path.isdir(os.path.join(parent, "blocks"))
        or os.path.isfile(os.path.join(parent, "provenance.json"))
    ):
        raise ConfigError(
            f"{value!r} ({path}) is inside a results folder; a shared store is a folder of its own "
            "(outside results/), so that no results folder's gc deletes what other experiments use",
            key=key,
        )
    return path


@dataclass(frozen=True)
class Registration:
    """One results folder that uses a shared store."""

    file: str  # <store>/registry/<id>.json
    results: str  # the results folder, absolute
    workdir: str  # where its snakemake runs, absolute
    experiment: str
    host: str

    @property
    def exists(self) -> bool:
        return os.path.isdir(self.results)


def registration_file(store: str, results: str) -> str:
    name = hashlib.sha256(os.path.realpath(results).encode()).hexdigest()[:16]
    return f"{store}/{REGISTRY}/{name}.json"


def register(store: str, results: str, workdir: str, experiment: str) -> bool:
    """Record that ``results`` uses ``store`` (written only when it changed);
    returns whether it was written."""
    from repliflow.store.storage import atomic_write

    record = {
        "schema": REGISTRATION_SCHEMA,
        "results": os.path.realpath(results),
        "workdir": os.path.realpath(workdir),
        "experiment": experiment,
        "host": socket.gethostname(),
    }
    path = registration_file(store, results)
    pathgate.check_real_dir(store, "shared store")
    try:
        if pathgate.read_json(path, "registration", root=store) == record:
            return False
    except (FileNotFoundError, RepliflowError):
        pass
    atomic_write(path, json.dumps(record, indent=1).encode())
    return True


def register_plan(plan: Plan, workdir: str | Path = ".") -> None:
    """Register the plan's results folder in its shared store (if it has one)."""
    if plan.store is None:
        return
    try:
        register(plan.store, plan.layout_at(workdir).root, str(workdir), plan.experiment)
    except OSError as exc:
        raise RepliflowError(
            f"repliflow: cannot register this results folder in the shared store {plan.store} "
            f"({exc}): the store must be a folder you can write to"
        ) from None


def unused_store_notice(plan: Plan, workdir: str | Path = ".") -> str | None:
    """A note when a shared store is configured but the results folder still
    holds outputs in its own store (made before ``store`` was set): they are
    not read from there, and the run would compute them again."""
    if plan.store is None:
        return None
    own = Path(workdir, plan.results_dir, "store").absolute()
    try:
        if not any(entry.is_dir(follow_symlinks=False) and len(entry.name) == 2 for entry in os.scandir(own)):
            return None
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (
        f"repliflow: {own} holds outputs of runs made before the shared store {plan.store} was "
        f"configured; they are not read from there. To reuse them rather than compute them "
        f"again, copy them over first, times kept: cp -Rnp {own}/. {plan.store}/"
    )


def registrations(store: str) -> tuple[list[Registration], list[str]]:
    """The results folders registered in ``store``, and what could not be read."""
    folder = f"{store}/{REGISTRY}"
    found: list[Registration] = []
    problems: list[str] = []
    if not pathgate.check_real_dir(folder, "registry folder"):
        return found, problems
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".json") or name.startswith("."):
            continue
        path = f"{folder}/{name}"
        try:
            record = pathgate.read_json_object(path, "registration", root=store)
        except (OSError, RepliflowError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        fields = [record.get(k) for k in ("results", "workdir", "experiment", "host")]
        if record.get("schema") != REGISTRATION_SCHEMA or not all(isinstance(f, str) and f for f in fields):
            problems.append(
                f"{path}: not a {REGISTRATION_SCHEMA} record (results, workdir, experiment, host)"
            )
            continue
        results, workdir, experiment, host = (str(f) for f in fields)
        if not os.path.isabs(results):
            problems.append(f"{path}: results {results!r} is not an absolute path")
            continue
        found.append(Registration(path, results, workdir, experiment, host))
    return found, problems


def forget(registration: Registration, store: str) -> None:
    pathgate.unlink_inside(registration.file, store)


def referenced_keys(results: str | Path) -> set[str]:
    """Every key the block manifests and provenance.json files of a results
    folder name: what gc keeps for a registered folder whose config it was
    not given. Raises RepliflowError when a record cannot be read (gc cannot
    tell what it names, so it must not delete on a guess)."""
    from repliflow.store.layout import LAST_GOOD, PROVENANCE

    results = Path(results)
    pathgate.check_results_tree(results)
    keys: set[str] = set()
    blocks = results / "blocks"
    records = sorted(blocks.glob("*/*.json")) if blocks.is_dir() else []
    for path in records:
        manifest = pathgate.read_json_object(path, "manifest", root=results)
        for replicate in manifest.get("replicates") or []:
            for step in (replicate.get("steps") or []) if isinstance(replicate, dict) else []:
                if isinstance(step, dict) and isinstance(step.get("key"), str):
                    keys.add(step["key"])
    for path in (results / PROVENANCE, results / LAST_GOOD / PROVENANCE):
        try:
            provenance = pathgate.read_json_object(path, "provenance", root=results)
        except FileNotFoundError:
            continue
        for entry in provenance.get("outputs") or []:
            if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                keys.add(entry["key"])
    return keys
