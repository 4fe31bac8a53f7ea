"""Run one block: one recipe segment for a range of replicates, in one process.

Called by the ``run_segment`` rule as ``python -m repliflow.engine.runner``. Each
replicate x step is written to the store with its sidecar as soon as it is
computed, so a killed job loses at most the step in flight; a re-run skips
every replicate x step whose sidecar exists. The block's manifest (the
Snakemake output) is written last, and only when every replicate succeeded.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import random
import signal
import socket
import sys
import time
import traceback
import warnings
from collections.abc import Awaitable, Callable, Container
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal, NoReturn, TextIO

from repliflow import __version__
from repliflow.core import hashing
from repliflow.core.context import Context
from repliflow.core.plan import Step, chain_keys
from repliflow.core.records import (
    ATTEMPT_SCHEMA,
    MANIFEST_SCHEMA,
    SIDECAR_SCHEMA,
    Attempt,
    AttemptFailure,
    BlockSpec,
    BlockWork,
    JobSidecar,
    Manifest,
    ManifestReplicate,
    ManifestStep,
    Retried,
    Sidecar,
    StepFailure,
    Upstream,
)
from repliflow.core.stepcode import function_info, load_module, resolve_code_path
from repliflow.engine.pacing import RateLimit, RetryPolicy
from repliflow.engine.supervise import Death, Watch, supervise
from repliflow.errors import BadRecord, IntegrityError, RepliflowError, StepError, UntrustedError
from repliflow.store import pathgate, storage
from repliflow.store.layout import SIDECAR_SUFFIX, ResultsLayout


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class _Versions:
    """Versions of the third-party modules loaded so far (recomputed as
    steps import more)."""

    def __init__(self) -> None:
        self._seen = -1
        self._versions: dict[str, str] = {}

    def get(self) -> dict[str, str]:
        if len(sys.modules) != self._seen:
            self._seen = len(sys.modules)
            stdlib = sys.stdlib_module_names
            versions = {"repliflow": __version__}
            for name, module in list(sys.modules.items()):
                if "." in name or name in stdlib or name.startswith("_"):
                    continue
                with warnings.catch_warnings():  # some packages deprecate __version__
                    warnings.simplefilter("ignore")
                    version = getattr(module, "__version__", None)
                if isinstance(version, str):
                    versions[name] = version
            self._versions = dict(sorted(versions.items()))
        return self._versions


class BlockRunner:
    def __init__(
        self,
        spec: BlockSpec,
        workdir: str | None = None,
        log_path: str | None = None,
        watch: Watch | None = None,
        serial: bool = False,
    ) -> None:
        self.spec = spec
        count = len(spec["steps"])
        self.timeouts: list[float | None] = spec.get("timeouts") or [None] * count
        self.concurrency: list[int] = spec.get("concurrency") or [1] * count
        self.rates = [RateLimit(rate) for rate in spec.get("max_rates") or [None] * count]
        self.retries = [RetryPolicy.of(retry) for retry in spec.get("retries") or [None] * count]
        # several replicates in flight at once, unless a crash with several in
        # flight made the watching parent ask for one at a time (to tell which)
        self.concurrent = not serial and max(self.concurrency[spec["start"] :]) > 1
        self.watch = watch or Watch(max(self.concurrency))
        self.log_path = log_path
        self.workdir = workdir or os.getcwd()
        self.steps = [
            Step(s["name"], s["function"], s["position"], s["code_hash"], s["params"]) for s in spec["steps"]
        ]
        self.start = spec["start"]
        layout = ResultsLayout.of(spec["experiment"], self.workdir, store=spec.get("store"))
        pathgate.check_results_tree(layout.root)
        pathgate.check_store_tree(layout.store)
        self.store = layout.store
        self.quarantine_dir = layout.quarantine
        self.condition = spec["condition"]
        self.versions = _Versions()
        self.host = socket.gethostname()
        self.python = platform.python_version()
        self.functions = self._load_functions()
        self.computed = 0  # replicate-steps this process computed ...
        self.reused = 0  # ... and found stored (the manifest's `work`)

    def _load_functions(self) -> list[Callable[..., Any]]:
        code_path = self.code_path = resolve_code_path(self.spec["code"], self.workdir)
        for step in self.steps:
            info = function_info(code_path, step.function, key=f"step {step.name}")
            if info.code_hash != step.code_hash:
                raise RepliflowError(
                    f"repliflow: the code of step '{step.name}' ({step.function} in {code_path}) "
                    "changed after Snakemake planned this job; run snakemake again so the "
                    "changed step gets new keys"
                )
        try:
            module = load_module(code_path)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            raise RepliflowError(
                f"repliflow: importing the code file {code_path} failed for condition "
                f"'{self.condition}', replicates {self.spec['lo']}..{self.spec['hi'] - 1}: "
                f"{type(exc).__name__}: {exc} (traceback in the job's log)"
            ) from exc
        return [getattr(module, step.function) for step in self.steps]

    def run(
        self, progress: Callable[[int, int, int], None] | None = None, skip: Container[int] = frozenset()
    ) -> tuple[list[ManifestReplicate], list[StepError]]:
        """Every replicate of the block but those in ``skip`` (which a watching
        parent already reported as failed: they killed their process). With a
        step's ``concurrency`` above 1 (and ``serial`` false) several
        replicates are in flight at once (repliflow.engine.concurrent)."""
        if self.concurrent:
            from repliflow.engine.concurrent import run_concurrently

            return run_concurrently(self, progress, skip)
        entries: list[ManifestReplicate] = []
        failures: list[StepError] = []
        lo, hi = self.spec["lo"], self.spec["hi"]
        for index, replicate in enumerate(range(lo, hi)):
            if replicate in skip:
                continue
            try:
                entries.append(self.run_replicate(replicate))
            except StepError as exc:
                failures.append(exc)
            if progress:
                progress(index + 1, hi - lo, len(failures))
        return entries, failures

    def run_replicate(self, replicate: int) -> ManifestReplicate:
        seed, keys, sidecars, first_missing = self.scan(replicate)
        if first_missing is not None:
            data, upstream = self.first_input(replicate, keys, first_missing, sidecars)
            for position in range(first_missing, len(self.steps)):
                started, clock = now(), time.perf_counter()
                data, retried = self._call_with_retries(replicate, seed, position, data)
                upstream = self.record(
                    replicate, seed, position, keys, data, upstream, started, clock, retried, sidecars
                )
        return self.entry(replicate, seed, keys, sidecars)

    def scan(self, replicate: int) -> tuple[int, list[str], dict[int, tuple[Sidecar, int]], int | None]:
        """The replicate's seed and keys, the sidecars (and their sizes) of
        its steps already stored, by position, and the first position to
        compute (None: all stored)."""
        seed = hashing.replicate_seed(self.spec["seed"], replicate)
        keys = chain_keys(self.steps, seed)
        sidecars: dict[int, tuple[Sidecar, int]] = {}
        for position in range(self.start, len(self.steps)):
            stored = self._stored(keys[position], replicate)
            if stored is None:
                return seed, keys, sidecars, position
            sidecars[position] = stored
            self.reused += 1
        return seed, keys, sidecars, None

    def entry(
        self, replicate: int, seed: int, keys: list[str], sidecars: dict[int, tuple[Sidecar, int]]
    ) -> ManifestReplicate:
        steps: list[ManifestStep] = [
            {
                "step": self.steps[p].name,
                "position": p,
                "key": keys[p],
                "file": sidecars[p][0]["output"]["file"],
                "format": sidecars[p][0]["output"]["format"],
                "sha256": sidecars[p][0]["output"]["sha256"],
                "bytes": sidecars[p][0]["output"].get("bytes"),
                "sidecar_bytes": sidecars[p][1],
            }
            for p in range(self.start, len(self.steps))
        ]
        return {"replicate": replicate, "seed": seed, "steps": steps}

    def _stored(self, key: str, replicate: int) -> tuple[Sidecar, int] | None:
        """The sidecar of ``key`` (and its size) when it and its output are
        stored as regular files and the output's bytes still have the sha256
        the sidecar records; else None, and the output is computed again.
        A damaged piece (a malformed sidecar, a link, an output that no longer
        matches) is first moved to ``results/<exp>/quarantine/`` with a note."""
        folder = storage.key_dir(self.store, key)
        try:
            sidecar = storage.read_sidecar(self.store, key)
        except BadRecord as exc:
            self._quarantine(key, [f"{key}{SIDECAR_SUFFIX}"], exc.problem, replicate)
            return None
        if sidecar is None:
            return None
        output = sidecar["output"]
        try:
            actual, size = pathgate.hash_file(f"{folder}/{output['file']}", self.store)
        except FileNotFoundError:
            return None
        except (OSError, RepliflowError) as exc:
            self._quarantine(key, [output["file"], f"{key}{SIDECAR_SUFFIX}"], str(exc), replicate)
            return None
        if actual != output["sha256"]:
            why = f"its sha256 is {actual} ({size} bytes), its sidecar records {output['sha256']}"
            self._quarantine(key, [output["file"], f"{key}{SIDECAR_SUFFIX}"], why, replicate)
            return None
        return sidecar, os.lstat(storage.sidecar_path(self.store, key)).st_size

    def _load_input(
        self, replicate: int, step: str, key: str, known: tuple[Sidecar, int] | None
    ) -> tuple[Any, str]:
        """The value and sha256 of the stored input ``key``, or a StepError
        that says what to do: a damaged input goes to quarantine, and the next
        run makes it again (its own job) before this step."""
        cause: Exception
        try:
            return storage.load(self.store, key, known[0]["output"] if known else None)
        except UntrustedError as exc:
            cause, message = exc, str(exc).removeprefix("repliflow: ")
        except IntegrityError as exc:
            names = [f"{key}.{ext}" for ext in storage.EXTENSIONS.values()]
            moved = storage.quarantine(
                self.store, key, [*names, f"{key}{SIDECAR_SUFFIX}"], str(exc), self.quarantine_dir
            )
            cause, message = (
                exc,
                (
                    f"its input {key} is damaged ({exc}); moved {', '.join(moved) or 'nothing'} to "
                    "quarantine: run the same command again, which recomputes it and then this step"
                ),
            )
        except (OSError, RepliflowError) as exc:
            cause, message = (
                exc,
                (
                    f"cannot read its input {key} ({exc}); run the same command again, which re-runs the "
                    "job that makes it"
                ),
            )
        raise StepError(message, condition=self.condition, replicate=replicate, step=step) from cause

    def _quarantine(self, key: str, names: list[str], why: str, replicate: int) -> None:
        moved = storage.quarantine(self.store, key, names, why, self.quarantine_dir)
        if moved:
            print(
                f"{now()} replicate {replicate}: moved {', '.join(moved)} to quarantine ({why}); "
                "recomputing it",
                file=sys.stderr,
                flush=True,
            )

    def first_input(
        self, replicate: int, keys: list[str], first: int, sidecars: dict[int, tuple[Sidecar, int]]
    ) -> tuple[Any, Upstream | None]:
        """The data the step at ``first`` is called with, and its upstream record."""
        if first == 0:
            return None, None
        upstream_key = keys[first - 1]
        data, sha = self._load_input(replicate, self.steps[first].name, upstream_key, sidecars.get(first - 1))
        return data, {"key": upstream_key, "sha256": sha}

    def context(self, replicate: int, seed: int, position: int) -> Context:
        """A fresh ctx (a retry gets a new one, so ctx.rng starts over)."""
        step = self.steps[position]
        return Context(
            condition=self.condition,
            replicate=replicate,
            seed=seed,
            step=step.name,
            step_seed=hashing.step_seed(seed, position),
            params=step.params,
            experiment=self.spec["experiment"],
        )

    def step_error(self, exc: BaseException, replicate: int, position: int) -> StepError:
        traceback.print_exception(exc, file=sys.stderr)
        step = self.steps[position]
        return StepError(
            f"{_describe(exc, self.timeouts[position])} (in {step.function}() of {self.code_path}; "
            f"traceback in {self.log_path or 'the log'})",
            condition=self.condition,
            replicate=replicate,
            step=step.name,
        )

    def retry_delay(
        self, exc: BaseException, replicate: int, position: int, retried: list[Retried]
    ) -> float | None:
        """Seconds to wait before calling again, when the step's ``retries``
        cover ``exc`` (the failed call is added to ``retried``); else None."""
        delay = self.retries[position].delay(exc, len(retried) + 1)
        if delay is not None:
            error = _describe(exc, self.timeouts[position])
            retried.append({"attempt": len(retried) + 1, "error": error, "waited_s": delay})
            print(
                f"{now()} replicate {replicate}, step {self.steps[position].name}: {error}; "
                f"retry {len(retried)} of {self.retries[position].attempts} in {delay:g} s",
                file=sys.stderr,
                flush=True,
            )
        return delay

    def _call_with_retries(
        self, replicate: int, seed: int, position: int, data: Any
    ) -> tuple[Any, list[Retried]]:
        step = self.steps[position]
        retried: list[Retried] = []
        while True:
            if wait := self.rates[position].reserve():
                time.sleep(wait)
            try:
                self.watch.enter(replicate, position)
                result = self._call(
                    self.functions[position],
                    position,
                    data,
                    self.context(replicate, seed, position),
                    step.params,
                    self.timeouts[position],
                )
                return result, retried
            except (Exception, SystemExit) as exc:
                delay = self.retry_delay(exc, replicate, position, retried)
                if delay is None:
                    raise self.step_error(exc, replicate, position) from exc
            finally:
                self.watch.leave()
            time.sleep(delay)

    def record(
        self,
        replicate: int,
        seed: int,
        position: int,
        keys: list[str],
        data: Any,
        upstream: Upstream | None,
        started: str,
        clock: float,
        retried: list[Retried],
        sidecars: dict[int, tuple[Sidecar, int]],
    ) -> Upstream:
        """Check and store the output of ``position`` and its sidecar (added
        to ``sidecars``); the upstream record of the next step."""
        duration = time.perf_counter() - clock
        step = self.steps[position]
        if position == self.spec["metrics_position"]:
            _check_metrics(data, self.condition, replicate, step.name)
        try:
            encoded = storage.encode(data)
        except Exception as exc:
            raise StepError(
                f"its output ({type(data).__name__}) cannot be stored: {type(exc).__name__}: {exc}",
                condition=self.condition,
                replicate=replicate,
                step=step.name,
            ) from exc
        key = keys[position]
        finished = now()
        output = storage.store_output(self.store, key, encoded)
        sidecar: JobSidecar = {
            "schema": SIDECAR_SCHEMA,
            "key": key,
            "experiment": self.spec["experiment"],
            "step": step.name,
            "function": step.function,
            "position": position,
            "condition": self.condition,
            "replicate": replicate,
            "seed": seed,
            "step_seed": hashing.step_seed(seed, position),
            "params": step.params,
            "code_hash": step.code_hash,
            "upstream": upstream,
            "output": output,
            "started": started,
            "finished": finished,
            "duration_s": round(duration, 6),
            "python": self.python,
            "packages": self.versions.get(),
            "host": self.host,
        }
        if retried:
            sidecar["retried"] = retried
        sidecars[position] = (sidecar, storage.write_sidecar(self.store, key, sidecar))
        self.computed += 1
        return {"key": key, "sha256": encoded.sha256}

    @staticmethod
    def _call(
        function: Callable[..., Any],
        position: int,
        data: Any,
        ctx: Context,
        params: dict[str, Any],
        timeout: float | None = None,
    ) -> Any:
        if timeout is not None:  # the watching parent kills the process GRACE seconds later
            signal.signal(signal.SIGALRM, _timed_out)
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return BlockRunner._call_step(function, position, data, ctx, params)
        finally:
            if timeout is not None:
                signal.setitimer(signal.ITIMER_REAL, 0)

    @staticmethod
    def _call_step(
        function: Callable[..., Any], position: int, data: Any, ctx: Context, params: dict[str, Any]
    ) -> Any:
        random.seed(ctx.step_seed)
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            numpy.random.seed(hashing.legacy_seed(ctx.step_seed))
        result = function(ctx, **params) if position == 0 else function(data, ctx, **params)
        if inspect.isawaitable(result):
            import asyncio  # only async steps pay for it

            result = asyncio.run(_await(result))
        return result


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class StepTimeout(Exception):
    """Raised in a step by the alarm its ``timeout`` set."""


def _timed_out(signum: int, frame: FrameType | None) -> NoReturn:
    raise StepTimeout


def _describe(exc: BaseException, timeout: float | None) -> str:
    if isinstance(exc, StepTimeout):
        return f"it ran longer than its timeout of {timeout:g} s (stopped)"
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r}), which would have ended the whole job"
    return f"{type(exc).__name__}: {exc}"


def _check_metrics(value: object, condition: str, replicate: int, step: str) -> None:
    if not (isinstance(value, dict) and all(isinstance(k, str) and _is_number(v) for k, v in value.items())):
        shown = repr(value)
        shown = shown if len(shown) < 200 else shown[:200] + "..."
        raise StepError(
            f"the last step must return a mapping of metric name to number, got {shown}",
            condition=condition,
            replicate=replicate,
            step=step,
        )
    for name, number in value.items():
        if isinstance(number, int) and not isinstance(number, bool) and abs(number) > sys.float_info.max:
            digits = int(number.bit_length() * 0.30103) + 1  # str() refuses ints this long
            raise StepError(
                f"metric {name!r} is an integer of about {digits} digits, beyond the largest float "
                f"({sys.float_info.max:.3g}); the statistics work in floats, so return it scaled "
                "(or as a float, where it becomes inf and is counted as missing)",
                condition=condition,
                replicate=replicate,
                step=step,
            )


def _is_number(value: object) -> bool:
    if value is None:  # a metric this replicate could not compute: counted as missing
        return True
    if isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return True
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, (numpy.integer, numpy.floating, numpy.bool_))


def _with_failures(
    spec: BlockSpec, entries: list[ManifestReplicate], failures: list[StepError], skip: dict[int, Death]
) -> list[ManifestReplicate]:
    """The manifest's replicates with the failed ones in place, as
    ``{"replicate", "seed", "failed": {"step", "error"}, "steps": []}``."""
    failed: dict[int, StepFailure] = {f.replicate: {"step": f.step, "error": str(f)} for f in failures}
    for replicate, death in skip.items():
        step = spec["steps"][death.position]["name"]
        failed[replicate] = {"step": step, "error": f"step '{step}': {death.cause}"}
    records = {entry["replicate"]: entry for entry in entries}
    for replicate, failure in failed.items():
        seed = hashing.replicate_seed(spec["seed"], replicate)
        records[replicate] = {"replicate": replicate, "seed": seed, "failed": failure, "steps": []}
    return [records[r] for r in sorted(records)]


def write_manifest(
    path: Path, spec: BlockSpec, entries: list[ManifestReplicate], work: BlockWork | None = None
) -> None:
    manifest: Manifest = {
        "schema": MANIFEST_SCHEMA,
        "experiment": spec["experiment"],
        "segment": spec["segment"],
        "condition": spec["condition"],
        "lo": spec["lo"],
        "hi": spec["hi"],
        "replicates": entries,
    }
    if work is not None:
        manifest["work"] = work
    storage.atomic_write(path, json.dumps(manifest, separators=(",", ":")).encode())


def write_attempt(
    path: str | None, state: Literal["running", "done", "failed"], failures: list[AttemptFailure]
) -> None:
    """The attempt record ``repliflow status`` reads (records.Attempt)."""
    if path:
        record: Attempt = {"schema": ATTEMPT_SCHEMA, "state": state, "failures": failures}
        storage.atomic_write(Path(path), json.dumps(record, indent=1).encode())


def _death_message(spec: BlockSpec, death: Death) -> str:
    return str(
        StepError(
            f"{death.cause}; the other replicates of the block go on in a new process",
            condition=spec["condition"],
            replicate=death.replicate,
            step=spec["steps"][death.position]["name"],
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repliflow.engine.runner", description=__doc__)
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--spec", help="the block spec (JSON) the planner made")
    given.add_argument(
        "--spec-file", help="a file holding the segment's block spec (JSON), its range given by --block"
    )
    parser.add_argument(
        "--block", help="with --spec-file: the block's replicates, as <lo>-<hi> (hi exclusive)"
    )
    parser.add_argument("--manifest", required=True, help="the manifest to write on success")
    parser.add_argument("--log", help="log file for progress and tracebacks")
    parser.add_argument("--attempt", help="where to record how this attempt went (for repliflow status)")
    args = parser.parse_args(argv)
    try:
        spec = _read_spec(args.spec, args.spec_file, args.block)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"repliflow: cannot read the block spec {args.spec_file or '--spec'}: {exc}", file=sys.stderr)
        return 1
    log: TextIO = open(args.log, "a") if args.log else sys.stderr  # noqa: SIM115
    saved_stderr = sys.stderr
    sys.stderr = log
    steps = spec["steps"]

    def report(death: Death) -> None:
        message = _death_message(spec, death)
        print(message, file=log, flush=True)
        print(message, file=saved_stderr, flush=True)

    def work(watch: Watch, skip: dict[int, Death], serial: bool) -> int:
        return _run(
            spec,
            Path(args.manifest),
            log,
            saved_stderr,
            args.log,
            watch=watch,
            skip=skip,
            attempt=args.attempt,
            serial=serial,
        )

    try:
        return supervise(
            work,
            timeouts=spec.get("timeouts") or [None] * len(steps),
            report=report,
            log=log,
            slots=max(spec.get("concurrency") or [1]),
        )
    finally:
        sys.stderr = saved_stderr
        if log is not saved_stderr:
            log.close()


def _read_spec(text: str | None, path: str | None, block: str | None) -> BlockSpec:
    """The block spec the plan made: given whole (``--spec``), or the
    segment's (``--spec-file``, written by the Snakefile) with the block's
    range from ``--block``, which keeps the job's command line short."""
    if text is not None:
        spec: BlockSpec = json.loads(text)
        return spec
    assert path is not None
    if block is None:
        raise ValueError("--spec-file needs --block <lo>-<hi>")
    spec = json.loads(Path(path).read_text())
    lo, hi = (int(bound) for bound in block.split("-"))
    spec["lo"], spec["hi"] = lo, hi
    return spec


def _run(
    spec: BlockSpec,
    manifest: Path,
    log: TextIO,
    terminal: TextIO,
    log_path: str | None = None,
    *,
    watch: Watch | None = None,
    skip: dict[int, Death] | None = None,
    attempt: str | None = None,
    serial: bool = False,
) -> int:
    skip = skip or {}
    block = (
        f"segment {spec['segment']} (steps {', '.join(s['name'] for s in spec['steps'][spec['start'] :])}), "
        f"replicates {spec['lo']}..{spec['hi'] - 1}"
    )
    if skip:  # the same attempt, in a new process (status reads one attempt from "start" on)
        print(f"{now()} resume {block} without replicate(s) {', '.join(map(str, sorted(skip)))}", file=log)
    else:
        print(f"{now()} start {block}", file=log, flush=True)
        write_attempt(attempt, "running", [])
    clock = time.perf_counter()
    try:
        runner = BlockRunner(spec, log_path=log_path, watch=watch, serial=serial)
    except RepliflowError as exc:
        print(str(exc), file=log)
        print(str(exc), file=terminal)
        write_attempt(attempt, "failed", [{"replicate": None, "step": None, "message": str(exc)}])
        return 1
    total = spec["hi"] - spec["lo"]
    every = max(1, total // 10)

    def progress(done: int, total: int, failed: int) -> None:
        if done % every == 0 or done == total:
            print(f"{now()} {done}/{total} replicates, {failed} failed", file=log, flush=True)

    try:
        entries, failures = runner.run(progress, skip=skip)
    except RepliflowError as exc:  # the block cannot go on (a global RNG used under concurrency)
        print(str(exc), file=log)
        print(str(exc), file=terminal)
        write_attempt(attempt, "failed", [{"replicate": None, "step": None, "message": str(exc)}])
        return 1
    elapsed = time.perf_counter() - clock
    for failure in failures:
        print(str(failure), file=log)
        print(str(failure), file=terminal)
    failed: list[AttemptFailure] = [
        {"replicate": f.replicate, "step": f.step, "message": str(f)} for f in failures
    ]
    failed += [
        {"replicate": r, "step": spec["steps"][d.position]["name"], "message": _death_message(spec, d)}
        for r, d in skip.items()
    ]
    failed.sort(key=lambda f: f["replicate"] if f["replicate"] is not None else -1)
    if (failures or skip) and spec.get("on_failure") == "missing":
        entries = _with_failures(spec, entries, failures, skip)
        print(
            f"{now()} {len(failures) + len(skip)} of {total} replicates failed; with on_failure: missing "
            "they are recorded as missing and the next run retries them",
            file=log,
        )
    elif failures or skip:
        print(
            f"{now()} {len(failures) + len(skip)} of {total} replicates failed after {elapsed:.2f}s; the "
            "other replicates' outputs are kept, and the next run redoes only the failed ones",
            file=log,
        )
        write_attempt(attempt, "failed", failed)
        return 1
    write_manifest(manifest, spec, entries, {"computed": runner.computed, "reused": runner.reused})
    write_attempt(attempt, "done", failed)  # with on_failure: missing, the manifest has them too
    print(f"{now()} done {block} in {elapsed:.3f}s", file=log, flush=True)
    return 0


if __name__ == "__main__":
    from repliflow.snakemake.hooks import skip_final_collection

    skip_final_collection()  # the process ends here: no collection of what it still holds
    sys.exit(main())
