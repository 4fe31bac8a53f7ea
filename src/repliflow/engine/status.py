"""``repliflow status``: how far a run is, from the files alone.

Per condition, how many replicates are

- ``done``: the condition's last step is stored (its block's manifest, or
  its sidecar, exists);
- ``failed``: the last attempt of a job on its chain failed for it (read
  from the job's attempt record, ``logs/blocks/.../<block>.attempt.json``);
- ``running``: a job on its chain is marked incomplete by Snakemake and a
  snakemake process works in this directory;
- ``incomplete``: the same, but no snakemake runs here: the run was killed,
  and ``--rerun-incomplete`` redoes these jobs;
- ``missing``: not started yet.

It plans the config as the Snakefile does (which reads no user code and no
data) and never builds Snakemake's DAG: it lists the block manifests and
attempt records once per segment, decodes ``.snakemake/incomplete/``, and hashes keys
only for the replicates of jobs that started and did not finish. At the end
it prints the exact snakemake command that finishes the run.
"""

from __future__ import annotations

import os
import shlex
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repliflow.core.plan import Block, Plan, Segment, chain_keys, load_plan
from repliflow.core.records import STATUS_SCHEMA, check_attempt
from repliflow.engine.looks import recorded_looks
from repliflow.errors import RepliflowError
from repliflow.snakemake.command import DEFAULT_CONFIG, finish_command
from repliflow.snakemake.markers import incomplete_outputs, snakemake_active
from repliflow.store import storage
from repliflow.store.layout import TABLES
from repliflow.store.pathgate import check_results_tree, read_json
from repliflow.store.reconcile import Repair, reconcile

STATES = ("done", "failed", "running", "incomplete", "missing")

# Block states
_DONE_BLOCK, _IN_FLIGHT, _STARTED, _NOT_STARTED = "done", "in-flight", "started", "not-started"


@dataclass
class Failure:
    conditions: list[str]
    replicate: int | None  # None: the whole job failed before running a replicate
    message: str
    log: str


@dataclass
class Status:
    experiment: str
    config: str
    replicates: int
    jobs: int
    jobs_done: int
    counts: dict[str, dict[str, int]]  # condition -> state -> replicates
    active: bool
    in_flight: list[str] = field(default_factory=list)  # job manifests Snakemake marked incomplete
    failures: list[Failure] = field(default_factory=list)
    tables: bool = False  # metrics.csv, hypotheses.json and provenance.json are there
    repairs: list[str] = field(default_factory=list)  # "manifest: why" for blocks the next run repairs
    # a sequential design: {"looks", "look" (the last decided), "stopped", "replicates", "max_replicates"}
    sequential: dict[str, Any] | None = None
    command: list[str] = field(default_factory=list)  # empty when there is nothing to do

    @property
    def complete(self) -> bool:
        return not self.command

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["schema"] = STATUS_SCHEMA
        data["command"] = shlex.join(self.command) if self.command else None
        return data


class _Reader:
    """Block states and sidecar look-ups for one plan in one working directory."""

    def __init__(self, plan: Plan, workdir: Path):
        self.plan = plan
        self.workdir = workdir
        self.layout = plan.layout_at(workdir)
        self.results = Path(self.layout.root)
        self.store = Path(self.layout.store)
        self.marked = incomplete_outputs(workdir)
        self.states: dict[tuple[str, int], str] = {}
        self.failed: dict[tuple[str, int], dict[int | None, str]] = {}
        self.logs: dict[tuple[str, int], str] = {}
        self.in_flight: list[str] = []
        self._last_keys: dict[tuple[str, int], str] = {}
        self.seeds = plan.seeds()
        for segment in plan.segments.values():
            self._read_segment(segment)

    def _read_segment(self, segment: Segment) -> None:
        manifests = _names(Path(self.layout.segment_blocks(segment.label)))
        logs = _names(Path(self.layout.segment_logs(segment.label)))
        for block in self.plan.blocks(segment):
            where = (segment.id, block.lo)
            if self.plan.manifest_path(block) in self.marked:
                state = _IN_FLIGHT
                self.in_flight.append(self.plan.manifest_path(block))
            elif f"{block.label}.json" in manifests:
                state = _DONE_BLOCK
            elif f"{block.label}.log" in logs or f"{block.label}.attempt.json" in logs:
                state = _STARTED
                self.logs[where] = self.plan.layout.block_log(segment.label, block.label)
                failed = _failures(Path(self.layout.block_attempt(segment.label, block.label)))
                if failed:
                    self.failed[where] = failed
            else:
                state = _NOT_STARTED
            self.states[where] = state

    def last_key(self, segment: Segment, replicate: int) -> str:
        """The key of ``segment``'s last position for ``replicate``."""
        memo = (segment.id, replicate)
        if memo not in self._last_keys:
            upstream = None
            if segment.parent is not None:
                upstream = self.last_key(self.plan.segments[segment.parent], replicate)
            self._last_keys[memo] = chain_keys(segment.positions, self.seeds[replicate], upstream)[-1]
        return self._last_keys[memo]

    def stored(self, segment: Segment, replicate: int) -> bool:
        try:
            mode = os.lstat(storage.sidecar_path(self.store, self.last_key(segment, replicate))).st_mode
        except FileNotFoundError:
            return False
        return stat.S_ISREG(mode)


def _names(folder: Path) -> set[str]:
    try:
        return {entry.name for entry in os.scandir(folder)}
    except FileNotFoundError:
        return set()


def _failures(record: Path) -> dict[int | None, str]:
    """Failed replicates of a job's last attempt, from its attempt record
    (None: the whole job failed before running any replicate); empty when it
    succeeded, is still going, or left no readable record."""
    try:
        attempt = check_attempt(read_json(record, "attempt record"), str(record))
    except (OSError, RepliflowError):
        return {}
    if attempt["state"] != "failed":
        return {}
    failed: dict[int | None, str] = {}
    for failure in attempt["failures"]:
        failed.setdefault(failure["replicate"], failure["message"])
    return failed


def _replicate_state(
    reader: _Reader, chain: list[Segment], replicate: int, block: Block, active: bool
) -> str:
    final = chain[-1]
    where = (final.id, block.lo)
    if reader.states[where] == _DONE_BLOCK:
        return "done"
    if reader.states[where] != _NOT_STARTED and reader.stored(final, replicate):
        return "done"
    in_flight = False
    for segment in chain:
        seg_where = (segment.id, block.lo)
        failed = reader.failed.get(seg_where, {})
        if replicate in failed or None in failed:
            return "failed"
        if reader.states[seg_where] == _IN_FLIGHT and not reader.stored(segment, replicate):
            in_flight = True
    if in_flight:
        return "running" if active else "incomplete"
    return "missing"


def status(config_file: str | Path | None = None, workdir: str | Path = ".") -> Status:
    """The status of the run of ``config_file`` (relative to the current
    directory, like snakemake's --configfile; default: the workflow's own
    config/config.yaml in ``workdir``) in the working directory ``workdir``."""
    workdir = Path(workdir)
    plan = load_plan(config_file or workdir / DEFAULT_CONFIG, workdir)
    check_results_tree(workdir / plan.results_dir)
    progress = None
    if plan.sequential is not None:
        decided = recorded_looks(plan, workdir)
        stopped = bool(decided) and not decided[-1]["continue"]
        progress = {
            "looks": plan.sequential.looks,
            "look": len(decided),
            "stopped": stopped,
            "replicates": decided[-1]["replicates"] if decided else 0,
            "max_replicates": plan.sequential.max_replicates,
        }
        if stopped:  # the replicates past the stopping look are never made: not missing
            plan = plan.truncated(int(decided[-1]["replicates"]))
    reader = _Reader(plan, workdir)
    active = snakemake_active(workdir)
    counts: dict[str, dict[str, int]] = {}
    for condition in plan.conditions:
        chain = plan.chain(condition.name)
        tally = dict.fromkeys(STATES, 0)
        for block in plan.blocks(chain[-1]):
            if reader.states[(chain[-1].id, block.lo)] == _DONE_BLOCK:
                tally["done"] += block.hi - block.lo
                continue
            for replicate in range(block.lo, block.hi):
                tally[_replicate_state(reader, chain, replicate, block, active)] += 1
        counts[condition.name] = tally

    failures = []
    for (segment_id, _lo), failed in sorted(reader.failed.items()):
        segment = plan.segments[segment_id]
        for which, message in sorted(failed.items(), key=lambda item: -1 if item[0] is None else item[0]):
            failures.append(Failure(segment.conditions, which, message, reader.logs[(segment_id, _lo)]))
    tables = all(
        (reader.results / name).exists() and plan.layout.table(name) not in reader.marked for name in TABLES
    )
    result = Status(
        experiment=plan.experiment,
        config=str(config_file or workdir / DEFAULT_CONFIG),
        replicates=plan.replicates,
        jobs=len(reader.states),
        jobs_done=sum(state == _DONE_BLOCK for state in reader.states.values()),
        counts=counts,
        active=active,
        in_flight=sorted(reader.in_flight),
        failures=failures,
        tables=tables,
        sequential=progress,
    )
    repairs = reconcile(plan, workdir)
    result.repairs = [f"{r.target}: {r.reason}" for r in repairs]
    _count_recorded_failures(plan, repairs, counts)
    all_done = all(tally["done"] == plan.replicates for tally in counts.values())
    if not (all_done and tables and not reader.in_flight and not result.repairs):
        # a killed aggregate or view leaves its outputs marked incomplete too
        marked_here = any(path.startswith(f"{plan.results_dir}/") for path in reader.marked)
        result.command = finish_command(
            workdir, config_file, rerun_incomplete=bool(reader.in_flight) or marked_here
        )
    return result


def _count_recorded_failures(plan: Plan, repairs: list[Repair], counts: dict[str, dict[str, int]]) -> None:
    """Replicates a final block's manifest records as failed (on_failure:
    missing) are failed, not done."""
    failed = {repair.target: repair.failed for repair in repairs if repair.failed}
    if not failed:
        return
    for condition in plan.conditions:
        final = plan.final_segment(condition.name)
        for block in plan.blocks(final):
            number = len(failed.get(plan.manifest_path(block), ()))
            counts[condition.name]["done"] -= number
            counts[condition.name]["failed"] += number


def format_status(result: Status) -> str:
    width = max([len("condition"), *(len(name) for name in result.counts)])
    lines = [
        f"experiment {result.experiment} ({result.config}): {result.replicates} replicates per condition, "
        f"{result.jobs_done} of {result.jobs} jobs done",
        f"{'condition':<{width}}  " + "  ".join(f"{state:>10}" for state in STATES),
    ]
    for name, tally in result.counts.items():
        lines.append(f"{name:<{width}}  " + "  ".join(f"{tally[state]:>10}" for state in STATES))
    if result.sequential is not None:
        seq = result.sequential
        if seq["stopped"]:
            lines.append(
                f"sequential design: stopped at look {seq['look']} of {seq['looks']} ({seq['replicates']} of "
                f"at most {seq['max_replicates']} replicates per condition); the rest are never run"
            )
        else:
            lines.append(
                f"sequential design: {seq['look']} of {seq['looks']} looks decided, the run continues (at "
                f"most {seq['max_replicates']} replicates per condition; those past the look where it "
                "stops are never run)"
            )
    for failure in result.failures[:10]:
        lines.append(f"failed: {failure.message} (log: {failure.log})")
    if len(result.failures) > 10:
        lines.append(f"... and {len(result.failures) - 10} more failures")
    for repair in result.repairs[:10]:
        lines.append(f"damaged: {repair}")
    if len(result.repairs) > 10:
        lines.append(f"... and {len(result.repairs) - 10} more damaged jobs")
    if result.repairs:
        lines.append("the next run repairs these: it re-runs their jobs, recomputing only what is missing")
    if result.active:
        lines.append("snakemake is running in this directory; run status again to follow it")
    elif result.in_flight:
        lines.append(
            f"{len(result.in_flight)} job(s) were interrupted (Snakemake's incomplete markers, no "
            "snakemake running here): their in-flight replicates are redone with --rerun-incomplete"
        )
    if result.complete:
        lines.append("the run is complete: nothing to do")
    elif not result.active:
        hint = "fix the failing step, then finish with" if result.failures else "finish with"
        lines.append(f"{hint}: {shlex.join(result.command)}")
    return "\n".join(lines)
