"""Check a results directory against its recorded provenance, from the files alone.

For every output ``provenance.json`` lists, ``audit`` reports, each with its
path and a ``kind``:

- ``missing``: the output file is gone;
- ``tampered``: its sha256 no longer matches the record (a flipped byte, a
  truncated file); ``swapped`` when its bytes are those of another recorded
  output (a valid file from another replicate or step);
- ``sidecar-missing`` / ``sidecar-invalid``: no readable sidecar;
- ``sidecar-edited``: the sidecar disagrees with its key or the record: its
  recipe (function, code hash, params, seed, input key) no longer hashes to
  the output's key, or its sha256, key, file, position or seed differ;
- ``broken-chain``: the input sha256 a sidecar recorded is not the sha256
  recorded for that input (the input was replaced after this output was made);
- ``stale``: the step's code hash differs from the current code (the step
  changed since), or the output was made from a stale input;
- ``code-missing``: the code file or a step function cannot be found, so
  staleness cannot be checked (``check_code=False`` skips it);
- ``unsafe-path``: an entry names a path other than the one its key dictates
  (nothing outside ``store/`` is ever opened);
- ``table``: ``metrics.csv`` or ``hypotheses.json`` differs from its record;
- ``provenance``: ``provenance.json`` is missing, malformed or of another
  schema version.

Outputs are hashed in parallel worker processes, streaming each file; only
sidecars (small JSON) are read whole. Nothing is ever unpickled, imported or
executed, and nothing outside the results folder is opened because a record
names it: every file is opened through ``repliflow.store.pathgate`` (regular files
only, no symlinks), every record is type-checked (``repliflow.core.records``), and
staleness is judged from the code file of the *current* config (read as a
syntax tree), never from a path or module provenance.json names.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from repliflow.core import hashing
from repliflow.core.records import check_sidecar
from repliflow.errors import BadRecord, ConfigError, LayoutError, RepliflowError, UnsafePathError
from repliflow.snakemake.command import DEFAULT_CONFIG
from repliflow.store.layout import HYPOTHESES, LAST_GOOD, METRICS, PROVENANCE, ResultsLayout, output_paths
from repliflow.store.pathgate import check_results_tree, check_store_tree, hash_file, read_json
from repliflow.store.provenance import read_provenance

AUDIT_SCHEMA = "repliflow.audit/1"
TABLES = (METRICS, HYPOTHESES)  # provenance.json is read, not hashed
CHUNK = 1000  # outputs per worker task
PARALLEL_FROM = 2000  # fewer outputs are checked in this process


@dataclass(frozen=True)
class Problem:
    path: str
    problem: str
    kind: str = "tampered"
    key: str | None = None


@dataclass
class AuditResult:
    checked: int
    problems: list[Problem]
    notes: list[str] = field(default_factory=list)
    repair: list[str] = field(default_factory=list)  # the snakemake command that repairs the problems

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": AUDIT_SCHEMA,
            "ok": self.ok,
            "checked": self.checked,
            "problems": [asdict(p) for p in self.problems],
            "notes": self.notes,
            "repair": shlex.join(self.repair) if self.repair else None,
        }


class _Seen(NamedTuple):
    """What one worker learned about one output (a tuple: cheap to send back)."""

    key: str
    actual: str | None  # the file's sha256, None when missing
    size: int | None
    sidecar_ok: bool
    recorded_bytes: int | None = None
    function: str | None = None
    code_hash: str | None = None
    upstream: tuple[str, str] | None = None  # (key, sha256) the sidecar recorded as input
    problems: tuple[Problem, ...] = ()


# The fields of a provenance entry a worker needs: sent as tuples, not dicts.
_SENT = ("key", "path", "sidecar", "sha256", "position", "seed")
_Sent = tuple[object, ...]  # an entry's values of the _SENT fields, in that order
_Entries = Mapping[str, Mapping[str, Any]]  # provenance.json's outputs by key


def _check_one(store: str, entry: Mapping[str, Any], base_seed: object) -> _Seen:
    key = entry["key"]
    # the entry's paths are store/<kk>/... (checked by layout.output_paths)
    path, sidecar_path = f"{store}{entry['path'][5:]}", f"{store}{entry['sidecar'][5:]}"
    try:
        actual, size = hash_file(path, store)
    except FileNotFoundError:
        actual, size = None, None
    except UnsafePathError as exc:
        problem = Problem(path, f"not read: {exc}", "unsafe-path", key)
        return _Seen(key, None, None, False, problems=(problem,))
    except OSError as exc:
        problem = Problem(path, f"cannot be read: {exc}", "missing", key)
        return _Seen(key, None, None, False, problems=(problem,))
    problems: list[Problem] = []
    if actual is None:
        problems.append(Problem(path, "missing output", "missing", key))
    try:
        sidecar = check_sidecar(read_json(sidecar_path, "sidecar", store), sidecar_path)
    except FileNotFoundError:
        problem = Problem(sidecar_path, "missing sidecar", "sidecar-missing", key)
        return _Seen(key, actual, size, False, problems=(*problems, problem))
    except (LayoutError, OSError) as exc:
        problem = Problem(sidecar_path, str(exc), "sidecar-invalid", key)
        return _Seen(key, actual, size, False, problems=(*problems, problem))
    try:
        output = sidecar["output"]
        upstream = sidecar.get("upstream")
        recipe = hashing.recipe_key(
            sidecar["function"],
            sidecar["code_hash"],
            sidecar["params"],
            sidecar["seed"],
            upstream["key"] if upstream else None,
        )
        recorded_sha, recorded_bytes = output["sha256"], output.get("bytes")
        upstream_pair = (upstream["key"], upstream["sha256"]) if upstream else None
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        text = f"sidecar is incomplete: {type(exc).__name__}: {exc}"
        problems.append(Problem(sidecar_path, text, "sidecar-invalid", key))
        return _Seen(key, actual, size, False, problems=tuple(problems))

    def edited(text: str) -> None:
        problems.append(Problem(sidecar_path, text, "sidecar-edited", key))

    if recipe != key:
        edited(
            f"the recipe in the sidecar (function, code hash, params, seed, input key) hashes to "
            f"{recipe}, not to its key {key}: it was edited after the output was made"
        )
    if sidecar.get("key") != key:
        edited(f"the sidecar names key {sidecar.get('key')!r}, not {key}")
    if recorded_sha != entry["sha256"]:
        edited(f"the sidecar records sha256 {recorded_sha}, provenance.json {entry['sha256']}")
    name = entry["path"].rsplit("/", 1)[-1]
    if output.get("file") != name:
        edited(f"the sidecar names the file {output.get('file')!r}, not {name}")
    if sidecar.get("position") != entry.get("position"):
        edited(
            f"the sidecar says position {sidecar.get('position')!r}, "
            f"provenance.json {entry.get('position')!r}"
        )
    if sidecar["seed"] != entry.get("seed"):
        edited(f"the sidecar says seed {sidecar['seed']!r}, provenance.json {entry.get('seed')!r}")
    replicate = sidecar.get("replicate")
    if isinstance(base_seed, int) and (
        not isinstance(replicate, int) or hashing.replicate_seed(base_seed, replicate) != sidecar["seed"]
    ):
        edited(f"the sidecar's replicate {replicate!r} does not have its seed {sidecar['seed']!r}")
    return _Seen(
        key,
        actual,
        size,
        True,
        recorded_bytes,
        sidecar["function"],
        sidecar["code_hash"],
        upstream_pair,
        tuple(problems),
    )


def _check_chunk(task: tuple[str, list[_Sent], object]) -> list[_Seen]:
    store, rows, base_seed = task
    return [_check_one(store, dict(zip(_SENT, row, strict=True)), base_seed) for row in rows]


def _check_all(
    store: str, entries: Sequence[Mapping[str, Any]], base_seed: object, workers: int
) -> list[_Seen]:
    rows = [tuple(entry.get(name) for name in _SENT) for entry in entries]
    if workers <= 1 or len(rows) < PARALLEL_FROM:
        return _check_chunk((store, rows, base_seed))
    chunks = [(store, rows[i : i + CHUNK], base_seed) for i in range(0, len(rows), CHUNK)]
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks))) as pool:
        return [seen for part in pool.map(_check_chunk, chunks) for seen in part]


class _CurrentCode:
    """Code hashes of the step functions as the current config's code file
    holds them now, read as a syntax tree (nothing is imported)."""

    def __init__(self, config: Path, workdir: Path, experiment: object) -> None:
        self.source = str(config)
        self.error: str | None = None
        self.path: Path | None = None
        self._hashes: dict[str, str | None] = {}
        try:
            self.path = current_code_file(config, workdir, experiment)
        except RepliflowError as exc:
            self.error = getattr(exc, "message", None) or str(exc)

    def hash(self, function: str) -> str | None:
        """The current code hash of ``function``; None when it no longer exists."""
        from repliflow.core.stepcode import function_info

        if self.path is None:  # no code file (self.error says why): no function is in it
            return None
        if function not in self._hashes:
            try:
                self._hashes[function] = function_info(self.path, function, key="code").code_hash
            except (ConfigError, OSError, ValueError, RecursionError):
                self._hashes[function] = None
        return self._hashes[function]


def current_code_file(config: Path, workdir: Path, experiment: object = None) -> Path:
    """The code file the config ``config`` names (``code:``), resolved in
    ``workdir`` without importing anything; a path must stay inside ``workdir``.
    With ``experiment``, the config must be that experiment's."""
    import yaml

    from repliflow.core.stepcode import resolve_code_path

    try:
        text = config.read_text(encoding="utf-8")
        loaded = yaml.safe_load(text)
    except FileNotFoundError:
        raise ConfigError(
            f"the current config {config} does not exist (give it with --config, or audit with --no-code)"
        ) from None
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"the current config {config} cannot be read: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"the current config {config} does not hold a mapping")
    if experiment is not None and loaded.get("experiment") != experiment:
        raise ConfigError(
            f"the current config {config} is for experiment {loaded.get('experiment')!r}, not "
            f"{experiment!r}; give this experiment's config with --config"
        )
    code = loaded.get("code")
    if not isinstance(code, str) or not code:
        raise ConfigError(f"the current config {config} names no code file (key 'code')")
    path = resolve_code_path(code, str(workdir))
    if (code.endswith(".py") or "/" in code) and not path.resolve().is_relative_to(workdir.resolve()):
        raise ConfigError(f"the code file {code!r} of {config} lies outside {workdir}; it is not read")
    return path


def _default_workdir(results: Path) -> Path:
    """results/<experiment> lives in the working directory the code path is relative to."""
    absolute = results.absolute()
    return absolute.parent.parent if absolute.parent.name == "results" else Path.cwd()


def audit(
    results_dir: str | Path,
    workers: int | None = None,
    *,
    config: str | Path | None = None,
    workdir: str | Path | None = None,
    check_code: bool = True,
    store: str | Path | None = None,
) -> AuditResult:
    """Audit ``results/<experiment>``; see the module docstring for what is checked.

    Staleness is judged against the code file of ``config`` (default:
    ``config/config.yaml`` in ``workdir``, which defaults to the folder
    holding ``results/``); its code path is relative to ``workdir``. The
    outputs are looked for in ``store`` if given, else in the shared store
    provenance.json names, else in the results folder's own store.
    """
    results = Path(results_dir)
    provenance_path = str(results / PROVENANCE)
    tables_dir = results
    notes: list[str] = []
    try:
        check_results_tree(results)
        if not os.path.lexists(provenance_path) and os.path.lexists(results / LAST_GOOD / PROVENANCE):
            # the last aggregate did not finish (Snakemake removed its outputs first)
            tables_dir = results / LAST_GOOD
            provenance_path = str(tables_dir / PROVENANCE)
            notes.append(
                f"{results / 'provenance.json'} is missing (the last aggregate did not finish): audited "
                f"the last good record, {provenance_path}"
            )
        provenance = read_provenance(tables_dir)
    except UnsafePathError as exc:
        return AuditResult(0, [Problem(str(results), str(exc), "unsafe-path")])
    except LayoutError as exc:
        return AuditResult(0, [Problem(provenance_path, str(exc), "provenance")])
    problems: list[Problem] = []
    entries: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(provenance["outputs"]):
        try:
            output_paths(entry, f"outputs[{index}]")
        except BadRecord as exc:
            problems.append(Problem(provenance_path, f"not checked: {exc.problem}", "provenance"))
            continue
        except LayoutError as exc:
            text = f"outputs[{index}] is not checked: {exc}"
            problems.append(Problem(provenance_path, text, "unsafe-path"))
            continue
        entries.setdefault(entry["key"], entry)
    layout = ResultsLayout(str(results), os.path.abspath(store) if store else provenance.get("store"))
    if layout.shared_store:
        notes.append(_shared_store_note(layout.shared_store, given=store is not None))
    try:
        check_store_tree(layout.store)
    except UnsafePathError as exc:
        return AuditResult(0, [Problem(layout.store, str(exc), "unsafe-path")], notes)
    base_seed = (provenance.get("seeds") or {}).get("base")
    workers = workers or os.cpu_count() or 1
    seen = {s.key: s for s in _check_all(layout.store, list(entries.values()), base_seed, workers)}
    _integrity(layout, entries, seen, problems)
    _chains(layout, entries, seen, problems)
    repair: list[str] = []
    if check_code:
        code_workdir = Path(workdir) if workdir else _default_workdir(results)
        code_config = Path(config) if config else code_workdir / DEFAULT_CONFIG
        code = _CurrentCode(code_config, code_workdir, provenance.get("experiment"))
        _staleness(layout, provenance, entries, seen, code, problems, notes)
        # (the table problems _tables adds below name no output: they are not repairable)
        if any(p.kind in REPAIRABLE and p.key in entries for p in problems):
            repair = repair_command(entries, problems, code_config, code_workdir, notes)
    _tables(tables_dir, provenance, problems)
    return AuditResult(len(entries), problems, notes, repair)


def _shared_store_note(store: str, *, given: bool) -> str:
    where = "given with --store" if given else "named by provenance.json"
    if os.path.isdir(store):
        return f"outputs checked in the shared store {store} ({where})"
    return (
        f"the shared store {store} ({where}) is not here: every output reads as missing; "
        "pass --store DIR where a copy of it is"
    )


# Kinds the workflow repairs: running the block that made the output again
# quarantines what does not match and recomputes it.
REPAIRABLE = frozenset(
    {"missing", "tampered", "swapped", "sidecar-missing", "sidecar-invalid", "sidecar-edited", "unsafe-path"}
)


def repair_command(
    entries: _Entries, problems: list[Problem], config: Path, workdir: Path, notes: list[str]
) -> list[str]:
    """``snakemake ... --forcerun <manifest> ...``: the jobs that made the
    damaged outputs, planned from the current config (which must be the
    run's); built from the user's own inputs and the plan, never from
    strings in the records."""
    from repliflow.core.plan import load_plan
    from repliflow.snakemake.command import finish_command

    try:
        plan = load_plan(config, workdir)
    except RepliflowError as exc:
        notes.append(f"no repair command: {exc}")
        return []
    manifests: set[str] = set()
    for problem in problems:
        entry = entries.get(problem.key) if problem.kind in REPAIRABLE and problem.key is not None else None
        if entry is None or entry["conditions"][0] not in {c.name for c in plan.conditions}:
            continue
        segment = plan.final_segment(entry["conditions"][0])
        while segment.start > entry["position"] and segment.parent is not None:
            segment = plan.segments[segment.parent]
        if entry["replicate"] < plan.replicates and segment.start <= entry["position"] <= segment.end:
            manifests.add(plan.manifest_path(plan.block_for(segment, entry["replicate"])))
    if not manifests:
        return []
    here = Path.cwd()
    relative = config if config.is_absolute() else Path(os.path.relpath(config.absolute(), here))
    return [*finish_command(workdir, relative, rerun_incomplete=False), "--forcerun", *sorted(manifests)]


def _integrity(
    layout: ResultsLayout, entries: _Entries, seen: Mapping[str, _Seen], problems: list[Problem]
) -> None:
    by_sha: dict[str, str] = {}
    for key, entry in entries.items():
        by_sha.setdefault(entry["sha256"], key)
    for key, entry in entries.items():
        found = seen[key]
        problems.extend(found.problems)
        if found.actual is None or found.actual == entry["sha256"]:
            continue
        text = f"sha256 {found.actual} differs from the recorded {entry['sha256']}"
        if found.recorded_bytes is not None and found.size is not None and found.size != found.recorded_bytes:
            cut = " (truncated)" if found.size < found.recorded_bytes else ""
            text += f"; {found.size} bytes, {found.recorded_bytes} recorded{cut}"
        other = by_sha.get(found.actual)
        if other is not None and other != key:
            o = entries[other]
            text += (
                f"; it holds the content of {layout.in_store(o['path'])} (step {o.get('step')}, replicate "
                f"{o.get('replicate')}, {', '.join(o.get('conditions') or [])}): swapped or copied"
            )
            problems.append(Problem(layout.in_store(entry["path"]), text, "swapped", key))
        else:
            problems.append(
                Problem(layout.in_store(entry["path"]), text + ": tampered or corrupted", "tampered", key)
            )


def _chains(
    layout: ResultsLayout, entries: _Entries, seen: Mapping[str, _Seen], problems: list[Problem]
) -> None:
    for key, entry in entries.items():
        upstream = seen[key].upstream
        if upstream is None:
            continue
        up_key, up_sha = upstream
        sidecar = layout.in_store(entry["sidecar"])
        recorded = entries.get(up_key)
        if recorded is None:
            text = f"its input {up_key} is not among the outputs provenance.json records (broken chain)"
            problems.append(Problem(sidecar, text, "broken-chain", key))
        elif recorded["sha256"] != up_sha:
            text = (
                f"its input {layout.in_store(recorded['path'])} was recorded with sha256 {up_sha} when this "
                f"output was made, but is recorded as {recorded['sha256']} now (broken chain)"
            )
            problems.append(Problem(sidecar, text, "broken-chain", key))


def _staleness(
    layout: ResultsLayout,
    provenance: Mapping[str, Any],
    entries: _Entries,
    seen: Mapping[str, _Seen],
    code: _CurrentCode,
    problems: list[Problem],
    notes: list[str],
) -> None:
    code_path = code.path
    if code.error or code_path is None:
        text = f"{code.error}; cannot tell which outputs are stale (audit --no-code checks integrity only)"
        problems.append(Problem(code.source or "code", text, "code-missing"))
        return
    stale: dict[str, str] = {}  # key -> why
    missing_functions: set[str] = set()

    fresh: set[str] = set()

    def own_reason(function: str, recorded_hash: str | None) -> str | None:
        current = code.hash(function)
        if current is None:
            missing_functions.add(function)
            return f"its step function {function}() is no longer in {code_path}"
        if current != recorded_hash:
            return (
                f"the code of {function}() changed since it was made "
                f"(recorded code hash {recorded_hash}, current {current})"
            )
        return None

    def why_stale(key: str) -> str | None:
        # Walk up the chain without recursion (a forged chain can be long, or a cycle).
        chain: list[str] = []
        reason = None
        while True:
            if key in stale:
                reason = stale[key]
                break
            found = seen.get(key)
            if key in fresh or found is None or found.function is None or key in chain:
                break
            reason = own_reason(found.function, found.code_hash)
            if reason is not None:
                stale[key] = reason
                break
            chain.append(key)
            if found.upstream is None:
                break
            key = found.upstream[0]
        for below in reversed(chain):
            if reason is None:
                fresh.add(below)
            else:
                reason = f"it was made from a stale input, {layout.in_store(entries[key]['path'])}"
                stale[below] = reason
            key = below
        return reason

    for key, entry in entries.items():
        reason = why_stale(key)
        if reason is not None:
            problems.append(Problem(layout.in_store(entry["path"]), f"stale: {reason}", "stale", key))
    recorded = (provenance.get("code") or {}).get("sha256")
    if not stale and isinstance(recorded, str) and hashing.sha256_file(str(code_path)) != recorded:
        notes.append(
            f"{code_path} changed since the run, but no step function did: helpers, constants or "
            "imports the steps use may have (the code hash covers each step's own def only)"
        )


def _tables(results: Path, provenance: Mapping[str, Any], problems: list[Problem]) -> None:
    recorded_tables = provenance.get("results") or {}
    for name, recorded in recorded_tables.items():
        if name not in TABLES:
            text = f"results lists {name!r}, which is not one of {', '.join(TABLES)}; not checked"
            problems.append(Problem(str(results / PROVENANCE), text, "unsafe-path"))
            continue
        path = str(results / name)
        try:
            actual, _ = hash_file(path, results)
        except FileNotFoundError:
            problems.append(Problem(path, "missing", "table"))
            continue
        except (UnsafePathError, OSError) as exc:
            problems.append(Problem(path, f"not read: {exc}", "unsafe-path"))
            continue
        if actual != recorded:
            problems.append(Problem(path, f"sha256 {actual} differs from the recorded {recorded}", "table"))
