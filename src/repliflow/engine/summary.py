"""What a run did, per condition: replicate-steps computed, reused from the
store, or repaired. Printed at the end of every run (workflow/Snakefile).

A block job's manifest records what the job computed and what it found
stored (``work``). A manifest written since the run began belongs to a job
of this run; every other block was up to date, so all of its replicate-steps
were reused. A block the run re-ran because the store no longer matched its
manifest (repliflow.store.reconcile) counts what it computed as repaired. A
condition counts every segment of its chain, so a shared datasource counts
for each condition that uses it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from repliflow.core.plan import Plan
from repliflow.core.records import check_attempt
from repliflow.errors import BadRecord
from repliflow.store.reconcile import Repair


@dataclass
class Work:
    computed: int = 0
    reused: int = 0
    repaired: int = 0

    def add(self, other: Work) -> None:
        self.computed += other.computed
        self.reused += other.reused
        self.repaired += other.repaired


def _recorded(path: str, parsed: Mapping[str, Any] | None = None) -> tuple[int, int] | None:
    """(computed, reused) as the manifest records them (``parsed``: the manifest
    already read, so it is not read again); None when it cannot be read or
    records no valid counts (a manifest of an older repliflow)."""
    try:
        if parsed is None:
            with open(path, "rb") as handle:
                parsed = json.load(handle)
        work: Any = parsed.get("work")  # anything: a hostile manifest's counts are checked below
        computed, reused = work["computed"], work["reused"]
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None
    valid = all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (computed, reused))
    return (computed, reused) if valid else None


def run_work(
    plan: Plan, since: float, repaired: set[str], parsed: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Work]:
    """Per condition (config order), what this run did; ``since`` is when it
    began (seconds since the epoch), ``repaired`` the manifests reconcile
    scheduled again, ``parsed`` manifests already read, by path."""
    by_segment: dict[str, Work] = {}
    for segment in plan.segments.values():
        work = by_segment[segment.id] = Work()
        steps = segment.end - segment.start + 1
        for block in plan.blocks(segment):
            path = plan.manifest_path(block)
            size = (block.hi - block.lo) * steps
            try:
                fresh = os.stat(path).st_mtime >= since
            except OSError:  # not made (a failed job): nothing to count
                continue
            counts = _recorded(path, (parsed or {}).get(path)) if fresh else None
            if not fresh:
                work.reused += size
            elif counts is None:
                work.computed += size
            elif path in repaired:
                work.repaired += counts[0]
                work.reused += counts[1]
            else:
                work.computed += counts[0]
                work.reused += counts[1]
    totals: dict[str, Work] = {}
    for condition in plan.conditions:
        total = totals[condition.name] = Work()
        for segment in plan.chain(condition.name):
            total.add(by_segment[segment.id])
    return totals


def describe(totals: dict[str, Work]) -> str:
    """The lines printed at the end of a run."""
    every = Work()
    for work in totals.values():
        every.add(work)
    if not every.computed and not every.repaired:
        return (
            f"repliflow: nothing computed; all {every.reused:,} replicate-steps of "
            f"{len(totals)} condition{'s' if len(totals) != 1 else ''} were reused from the store"
        )
    width = max(len(name) for name in totals)
    lines = ["repliflow: replicate-steps this run computed, reused from the store, and repaired:"]
    for name, work in totals.items():
        lines.append(
            f"  {name:<{width}}  computed {work.computed:>8,}  reused {work.reused:>8,}  "
            f"repaired {work.repaired:>6,}"
        )
    return "\n".join(lines)


def describe_run(plan: Plan, since: float, repairs: list[Repair]) -> str:
    return describe(run_work(plan, since, {repair.target for repair in repairs}))


def failures(plan: Plan, since: float) -> list[str]:
    """The error lines of the block jobs that failed in this run (their
    attempt records written since ``since``), in plan order."""
    found: list[str] = []
    for segment in plan.segments.values():
        for block in plan.blocks(segment):
            path = plan.layout.block_attempt(segment.label, block.label)
            try:
                if os.stat(path).st_mtime < since:
                    continue
                with open(path, "rb") as handle:
                    attempt = check_attempt(json.load(handle), path)
            except (OSError, ValueError, BadRecord):
                continue
            if attempt["state"] == "failed":
                found += [failure["message"] for failure in attempt["failures"]]
    return found


def describe_failures(plan: Plan, since: float, shown: int = 5) -> str | None:
    """What failed, for the end of a failed run's output (Snakemake prints its
    own account of every failed job above it); None when no block job failed."""
    found = failures(plan, since)
    if not found:
        return None
    lines = [f"repliflow: {len(found)} replicate(s) or job(s) failed in this run:"]
    lines += [f"  {' '.join(message.split())}" for message in found[:shown]]
    if len(found) > shown:
        lines.append(f"  ... and {len(found) - shown} more (repliflow status lists them all)")
    return "\n".join(lines)


RUN_RECORD = os.path.join(".snakemake", "repliflow-run.json")


def record_run(since: float, repairs: list[Repair], path: str = RUN_RECORD) -> None:
    """When this run began and what it repairs, for the aggregate job (which
    says in provenance.json and the report what the run computed)."""
    from repliflow.store.storage import atomic_write

    record = {"started": since, "repaired": sorted(repair.target for repair in repairs)}
    atomic_write(path, json.dumps(record).encode())


def recorded_work(
    plan: Plan, parsed: Mapping[str, Mapping[str, Any]] | None = None, path: str = RUN_RECORD
) -> dict[str, dict[str, int]] | None:
    """``run_work`` of the run recorded by ``record_run``, per condition, as
    provenance.json holds it; None without a readable record."""
    try:
        with open(path, "rb") as handle:
            record = json.load(handle)
        since, repaired = float(record["started"]), {str(target) for target in record["repaired"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {
        name: {"computed": work.computed, "reused": work.reused, "repaired": work.repaired}
        for name, work in run_work(plan, since, repaired, parsed).items()
    }
