"""The records a results folder holds, their schema ids and their type checks:
sidecars, block manifests, provenance.json and its output entries.

A record may have been edited by hand or by someone hostile, so every field
is checked for its type before it is used; a malformed record raises
BadRecord naming the file, the field and what was expected, never a
KeyError or TypeError from deep inside a reader. The JSON Schemas in
``workflow/schemas/`` document the same shapes; these checks are the part of
them that readers rely on, done in plain Python because they run once per
output (jsonschema costs ~100 us a record: 20 s at 200,000 outputs).
"""

from __future__ import annotations

import re
from typing import Any, Literal, NoReturn, NotRequired, TypedDict, cast

from repliflow.errors import BadRecord
from repliflow.store.pathgate import EXTENSIONS, check_store_file

KEY = re.compile(r"^[0-9a-f]{20}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")

# Every record's schema id, in one place: a reader refuses a version it does
# not know (workflow/schemas/ documents the shapes; CHANGELOG.md the changes).
SIDECAR_SCHEMA = "repliflow.sidecar/2"
MANIFEST_SCHEMA = "repliflow.manifest/1"
PROVENANCE_SCHEMA = "repliflow.provenance/2"
ATTEMPT_SCHEMA = "repliflow.attempt/1"
# ... and of what the commands print with --json
STATUS_SCHEMA = "repliflow.status/1"
GC_SCHEMA = "repliflow.gc/1"
AUDIT_SCHEMA = "repliflow.audit/1"


class StepSpec(TypedDict):
    name: str
    function: str
    position: int
    code_hash: str
    params: dict[str, Any]


class BlockSpec(TypedDict):
    """What one block job runs (the runner's ``--spec``), made by the plan."""

    experiment: str
    code: str
    seed: int
    segment: str  # the segment id
    start: int  # its first position; ``steps`` is the chain from the datasource
    condition: str  # the condition it runs as (ctx.condition)
    lo: int
    hi: int  # exclusive
    steps: list[StepSpec]
    metrics_position: int
    timeouts: NotRequired[list[float | None]]
    on_failure: NotRequired[str]
    # speed and pacing only (never in a key), per position, present when set
    concurrency: NotRequired[list[int]]
    max_rates: NotRequired[list[float | None]]
    retries: NotRequired[list[RetrySpec | None]]
    store: NotRequired[str]  # a shared store (absolute), else results/<experiment>/store


class RetrySpec(TypedDict):
    """A step's ``retries`` (config.schema.yaml)."""

    attempts: int
    exceptions: list[str]
    backoff: NotRequired[float]
    max_backoff: NotRequired[float]


class Retried(TypedDict):
    """One failed call a retry followed, as the sidecar's ``retried`` lists it."""

    attempt: int  # 1 for the first call
    error: str
    waited_s: float


class Upstream(TypedDict):
    key: str
    sha256: str


class StoredOutput(TypedDict):
    file: str  # <key>.<extension of format>
    format: str
    sha256: str
    bytes: NotRequired[int]
    hmac: NotRequired[str]  # pickles only: this user's signature (repliflow.store.trust)


class Sidecar(TypedDict):
    """``store/<kk>/<key>.meta.json``: the recipe and the output of one replicate x step."""

    schema: str
    key: str
    step: str
    function: str
    position: int
    condition: str
    replicate: int
    seed: int
    params: dict[str, Any]
    code_hash: str
    upstream: Upstream | None
    output: StoredOutput


class JobSidecar(Sidecar):
    """A sidecar as a job writes it: the fields readers check and use, and how
    the output was made (all documented in workflow/schemas/sidecar.schema.yaml)."""

    experiment: str
    step_seed: int
    started: str
    finished: str
    duration_s: float
    python: str
    packages: dict[str, str]
    host: str
    retried: NotRequired[list[Retried]]  # the failed calls before this output, when retried


class ManifestStep(TypedDict):
    key: str
    step: str
    position: int
    file: str
    format: str
    sha256: str
    bytes: NotRequired[int | None]  # what reconcile compares with lstat (absent before 0.1)
    sidecar_bytes: NotRequired[int | None]


class BlockWork(TypedDict):
    """What the job that wrote a manifest did: replicate-steps it computed,
    and those it found stored (its last process's count, after a crash)."""

    computed: int
    reused: int


class StepFailure(TypedDict):
    step: str
    error: str


class ManifestReplicate(TypedDict):
    replicate: int
    seed: int
    steps: list[ManifestStep]
    failed: NotRequired[StepFailure]  # on_failure: missing


class Manifest(TypedDict):
    """``blocks/<segment>/<lo>-<hi>.json``: what one block job stored."""

    schema: str
    experiment: str
    segment: str
    condition: str
    lo: int
    hi: int
    replicates: list[ManifestReplicate]
    work: NotRequired[BlockWork]  # absent in manifests of repliflow before it


class OutputEntry(TypedDict):
    """One of provenance.json's ``outputs``."""

    key: str
    path: str  # relative to results/<experiment>
    sidecar: str
    sha256: str
    format: NotRequired[str]
    step: str
    position: int
    replicate: int
    seed: int
    conditions: list[str]


class _Checker:
    def __init__(self, path: str, kind: str):
        self.path, self.kind = path, kind

    def fail(self, problem: str) -> NoReturn:
        raise BadRecord(self.path, problem, kind=self.kind)

    def object(self, value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(f"{where} is {_type(value)}, expected an object")
        return value

    def get(
        self,
        record: dict[str, Any],
        name: str,
        expected: type | re.Pattern[str],
        where: str = "",
        *,
        optional: bool = False,
    ) -> Any:
        label = f"{where}{name}"
        if name not in record:
            if optional:
                return None
            self.fail(f"has no field {label!r}")
        value = record[name]
        if optional and value is None:
            return None
        if expected is int:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            what = "a non-negative integer"
        elif expected is str:
            ok, what = isinstance(value, str), "a string"
        elif expected is dict:
            ok, what = isinstance(value, dict), "an object"
        elif expected is list:
            ok, what = isinstance(value, list), "a list"
        else:  # a pattern
            assert isinstance(expected, re.Pattern)
            ok, what = isinstance(value, str) and expected.match(value) is not None, expected.pattern
        if not ok:
            self.fail(f"field {label!r} is {_type(value)}, expected {what}")
        return value


def _type(value: object) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{type(value).__name__} {text}"


def check_sidecar(value: object, path: str, key: str | None = None) -> Sidecar:
    """A sidecar (``<key>.meta.json``) with every field readers use typed right;
    ``key``, when given, must be the one it names."""
    c = _Checker(path, "sidecar")
    sidecar = c.object(value, "the sidecar")
    recorded = c.get(sidecar, "key", KEY)
    if key is not None and recorded != key:
        c.fail(f"names key {recorded}, but it is the sidecar of {key}")
    c.get(sidecar, "function", str)
    c.get(sidecar, "code_hash", str)
    c.get(sidecar, "params", dict)
    c.get(sidecar, "seed", int)
    c.get(sidecar, "position", int)
    c.get(sidecar, "replicate", int)
    c.get(sidecar, "step", str)
    upstream = c.get(sidecar, "upstream", dict, optional=True)
    if upstream is not None:
        c.get(upstream, "key", KEY, "upstream.")
        c.get(upstream, "sha256", SHA256, "upstream.")
    output = c.get(sidecar, "output", dict)
    c.get(output, "sha256", SHA256, "output.")
    c.get(output, "bytes", int, "output.", optional=True)
    c.get(output, "hmac", SHA256, "output.", optional=True)
    check_store_file(recorded, output.get("file"), output.get("format"), f"{path} (sidecar): output")
    return cast(Sidecar, sidecar)


def check_manifest(value: object, path: str) -> Manifest:
    """A block manifest (``blocks/<segment>/<lo>-<hi>.json``): its replicates
    and, per step, the key, file, format and sha256 of the output."""
    c = _Checker(path, "manifest")
    manifest = c.object(value, "the manifest")
    if manifest.get("schema") != MANIFEST_SCHEMA:
        c.fail(f"has schema {manifest.get('schema')!r}, expected {MANIFEST_SCHEMA!r}")
    c.get(manifest, "segment", str)
    lo, hi = c.get(manifest, "lo", int), c.get(manifest, "hi", int)
    replicates = c.get(manifest, "replicates", list)
    if len(replicates) != hi - lo:
        c.fail(f"lists {len(replicates)} replicates for the range {lo}..{hi - 1}")
    for index, replicate in enumerate(replicates):
        if _plain_replicate_ok(replicate, lo + index):
            continue
        where = f"replicates[{index}]."
        c.object(replicate, where[:-1])
        if c.get(replicate, "replicate", int, where) != lo + index:
            c.fail(f"{where}replicate is {replicate['replicate']}, expected {lo + index}")
        c.get(replicate, "seed", int, where)
        failed = c.get(replicate, "failed", dict, where, optional=True)
        if failed is not None:  # on_failure: missing
            c.get(failed, "step", str, f"{where}failed.")
            c.get(failed, "error", str, f"{where}failed.")
        for position, step in enumerate(c.get(replicate, "steps", list, where)):
            step_where = f"{where}steps[{position}]."
            c.object(step, step_where[:-1])
            key = c.get(step, "key", KEY, step_where)
            c.get(step, "step", str, step_where)
            c.get(step, "position", int, step_where)
            c.get(step, "sha256", SHA256, step_where)
            check_store_file(key, step.get("file"), step.get("format"), f"{path} (manifest): {step_where}")
    return cast(Manifest, manifest)


def _plain_replicate_ok(replicate: object, number: int) -> bool:
    """Whether a manifest's replicate record (no ``failed``) passes every check
    ``check_manifest`` makes, decided fast: aggregate, view and status check
    200,000 steps' records at scale. False sends it through the full checks,
    which say what is wrong (or accept what only they know to accept)."""
    if type(replicate) is not dict or "failed" in replicate:
        return False
    recorded, seed, steps = replicate.get("replicate"), replicate.get("seed"), replicate.get("steps")
    if type(recorded) is not int or recorded != number or type(seed) is not int or seed < 0:
        return False
    if type(steps) is not list:
        return False
    for step in steps:
        if type(step) is not dict:
            return False
        key, fmt, sha = step.get("key"), step.get("format"), step.get("sha256")
        position = step.get("position")
        if not (
            type(key) is str
            and KEY.match(key)
            and type(step.get("step")) is str
            and type(position) is int
            and position >= 0
            and type(sha) is str
            and SHA256.match(sha)
            and type(fmt) is str
            and fmt in EXTENSIONS
            and step.get("file") == f"{key}.{EXTENSIONS[fmt]}"
        ):
            return False
    return True


class AttemptFailure(TypedDict):
    replicate: int | None  # None: the job failed before it ran a replicate
    step: str | None
    message: str


class Attempt(TypedDict):
    """``logs/blocks/<segment>/<lo>-<hi>.attempt.json``: how the last attempt
    of a block job went; ``repliflow status`` reads it (the log is for people)."""

    schema: str
    state: Literal["running", "done", "failed"]
    failures: list[AttemptFailure]


ATTEMPT_STATES = ("running", "done", "failed")


def check_attempt(value: object, path: str) -> Attempt:
    c = _Checker(path, "attempt record")
    attempt = c.object(value, "the attempt record")
    if attempt.get("schema") != ATTEMPT_SCHEMA:
        c.fail(f"has schema {attempt.get('schema')!r}, expected {ATTEMPT_SCHEMA!r}")
    if attempt.get("state") not in ATTEMPT_STATES:
        c.fail(f"field 'state' is {_type(attempt.get('state'))}, expected one of {', '.join(ATTEMPT_STATES)}")
    for index, failure in enumerate(c.get(attempt, "failures", list)):
        where = f"failures[{index}]."
        c.object(failure, where[:-1])
        c.get(failure, "replicate", int, where, optional=True)
        c.get(failure, "step", str, where, optional=True)
        c.get(failure, "message", str, where)
    return cast(Attempt, attempt)


def check_output_entry(entry: object, where: str, path: str = "provenance.json") -> OutputEntry:
    """One of provenance.json's ``outputs``: the fields audit, the view and
    the PROV export read (the path itself is checked by layout.output_paths)."""
    c = _Checker(path, "provenance")
    record = c.object(entry, where)
    prefix = f"{where}."
    c.get(record, "key", KEY, prefix)
    c.get(record, "sha256", SHA256, prefix)
    c.get(record, "position", int, prefix)
    c.get(record, "replicate", int, prefix)
    c.get(record, "seed", int, prefix)
    c.get(record, "step", str, prefix)
    fmt = c.get(record, "format", str, prefix, optional=True)
    if fmt is not None and fmt not in EXTENSIONS:
        c.fail(f"{prefix}format is {fmt!r}, expected one of {', '.join(EXTENSIONS)}")
    conditions = c.get(record, "conditions", list, prefix)
    if not all(isinstance(name, str) for name in conditions):
        c.fail(f"{prefix}conditions holds something other than names")
    return cast(OutputEntry, record)


def check_provenance(value: object, path: str) -> dict[str, Any]:
    """provenance.json's top-level fields, typed (its outputs are checked one by
    one with check_output_entry, so one bad entry does not hide the rest)."""
    c = _Checker(path, "provenance")
    provenance = c.object(value, "provenance.json")
    c.get(provenance, "outputs", list)
    for name in ("seeds", "code", "conditions", "environment", "results", "batch"):
        c.get(provenance, name, dict, optional=True)
    seeds = provenance.get("seeds") or {}
    c.get(seeds, "base", int, "seeds.", optional=True)
    for name, value in (provenance.get("results") or {}).items():
        if not isinstance(value, str):
            c.fail(f"results.{name} is {_type(value)}, expected a sha256")
    for name in ("experiment", "config_hash", "config_files", "created", "store"):
        c.get(provenance, name, str, optional=True)
    if "store" in provenance and not provenance["store"].startswith("/"):
        c.fail(f"store is {provenance['store']!r}, expected an absolute path")
    return provenance
