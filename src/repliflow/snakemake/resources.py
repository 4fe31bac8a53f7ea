"""What a block job asks its executor for, derived from what its steps declare.

A step (the datasource or a pipeline entry) may declare ``threads``, ``mem_mb``
and ``runtime`` (minutes one call takes, i.e. per replicate; fractions allowed).
A block job runs its segment's steps one after another for each replicate of
its block, in one process, so it needs

- ``threads``: the most any of its steps declares (1 when none does);
- ``mem_mb``: the most any of its steps declares;
- ``runtime``: the sum of its steps' runtimes times the replicates in the
  block (divided by a step's ``concurrency``, rounded up: its waves of
  replicates in flight), plus ``STARTUP_MINUTES`` for starting Python and
  importing the code, rounded up to whole minutes.

A ``mem_mb`` or ``runtime`` that no step of the block declares is ``None``:
the Snakefile then falls back to the profile's ``default-resources``.
Resources never enter a recipe key: changing them re-runs nothing.

Snakemake-free, so it is unit-tested on its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

from repliflow.core.plan import Block, Plan, Segment, step_concurrency

ResourceKey = Literal["threads", "mem_mb", "runtime"]
RESOURCE_KEYS: tuple[ResourceKey, ...] = ("threads", "mem_mb", "runtime")
STARTUP_MINUTES = 1.0


class Declared(TypedDict, total=False):
    """The resources one chain entry declares (the schema's types)."""

    threads: int
    mem_mb: int
    runtime: float  # minutes per replicate


class BlockResources(TypedDict):
    threads: int
    mem_mb: int | None
    runtime: int | None  # whole minutes


def declared(config: Mapping[str, Any]) -> list[Declared]:
    """Per chain position (0 = datasource), the resources its entry declares."""
    entries = [config["datasource"], *config["pipeline"]]
    found: list[Declared] = []
    for entry in entries:
        step: Declared = {}
        for key in RESOURCE_KEYS:
            if entry.get(key) is not None:
                step[key] = entry[key]
        found.append(step)
    return found


def segment_positions(segment: Segment) -> range:
    """The chain positions one job of this segment computes."""
    return range(segment.start, segment.end + 1)


def block_resources(plan: Plan, block: Block) -> BlockResources:
    """``{"threads", "mem_mb", "runtime"}`` for one block job."""
    steps = [declared(plan.config)[position] for position in segment_positions(block.segment)]
    threads = max((step["threads"] for step in steps if "threads" in step), default=1)
    memory = [step["mem_mb"] for step in steps if "mem_mb" in step]
    positions = segment_positions(block.segment)
    # a step with `concurrency: c` takes its replicates in waves of c
    concurrency = step_concurrency(plan.config)
    waves = [math.ceil((block.hi - block.lo) / concurrency[p]) for p in positions]
    runtimes = [step["runtime"] * n for step, n in zip(steps, waves, strict=True) if "runtime" in step]
    runtime = None
    if runtimes:
        runtime = math.ceil(STARTUP_MINUTES + sum(runtimes))
    return {"threads": threads, "mem_mb": max(memory) if memory else None, "runtime": runtime}


def component_minutes(plan: Plan, block: Block, fallback: int) -> int:
    """Minutes all block jobs of this block's replicate range take in series:
    the jobs one cluster job group component (see steps.smk) runs. A job whose
    steps declare no runtime counts as ``fallback`` minutes."""
    total = 0
    for segment in plan.segments.values():
        runtime = block_resources(plan, plan.block_for(segment, block.lo))["runtime"]
        total += fallback if runtime is None else runtime
    return total


def _step_names(plan: Plan) -> list[str]:
    """Per chain position (0 = datasource), the step's name."""
    return [step.name for step in plan.conditions[0].steps]


def undeclared_runtimes(plan: Plan) -> list[str]:
    """Names of the steps that declare no ``runtime``."""
    names = _step_names(plan)
    return [names[position] for position, step in enumerate(declared(plan.config)) if "runtime" not in step]


def capped_threads(plan: Plan, cores: int | None) -> list[str]:
    """Names of steps declaring more threads than ``cores`` lets a job have."""
    if not cores:
        return []
    names = _step_names(plan)
    return [
        f"{names[position]} ({step['threads']})"
        for position, step in enumerate(declared(plan.config))
        if step.get("threads", 1) > cores
    ]
