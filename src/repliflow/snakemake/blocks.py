"""Snakemake glue for the ``run_segment`` rule: its functions, resources and job group.

``common.smk`` makes one ``BlockJobs`` and ``steps.smk`` hands its attributes to
the rule's ``threads:``, ``resources:`` and ``group:``. The arithmetic lives
in ``repliflow.snakemake.resources``; this module adds what needs Snakemake: falling
back to the profile's ``default-resources`` for a value no step declares, the
HTCondor translation, and the job group.

Snakemake calls these functions (and the rule's input and params functions)
once per job, so each is cheap: what depends only on the segment and the size
of its block is computed once, and ``rule_function`` spares Snakemake the
signature inspection it otherwise redoes on every call.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import math
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal, ParamSpec, TypeVar

from repliflow.core.plan import Block, Plan, spec_json
from repliflow.snakemake.markers import SPECS
from repliflow.snakemake.resources import (
    BlockResources,
    block_resources,
    capped_threads,
    component_minutes,
    declared,
    undeclared_runtimes,
)

if TYPE_CHECKING:
    from snakemake.resources import Resources
    from snakemake.workflow import Workflow

GROUP = "replicates"  # the job group of every block job; profiles size it with group-components
# Executors that run jobs on this machine, without a time limit per job (None: none set yet)
LOCAL_EXECUTORS = (None, "local", "dryrun", "touch")
# The old cap of "auto" blocks, whose 30-minute jobs allowed 1.8 s a call; larger blocks allow less
LARGE_BLOCK = 1024

P = ParamSpec("P")
R = TypeVar("R")
# What Snakemake evaluates a resource to (snakemake.resources.Resource.value).
ResourceValue = int | str | None


def rule_function(func: Callable[P, R]) -> Callable[P, R]:
    """``func`` with its signature stored on it (PEP 362 ``__signature__``).

    Snakemake reads an input, params or resource function's signature on every
    call, to choose which of wildcards, input, threads, attempt... to pass; with
    ``__signature__`` set, ``inspect.signature`` returns it at once. A bound
    method cannot carry it, so it is wrapped in a plain function first."""
    signature = inspect.signature(func)
    if not isinstance(func, types.FunctionType):
        method = func

        @functools.wraps(method)
        def func(*args: P.args, **kwargs: P.kwargs) -> R:
            return method(*args, **kwargs)

    func.__signature__ = signature  # type: ignore[attr-defined]  # PEP 362: not in typeshed's function type
    return func


def htcondor_installed() -> bool:
    """Whether Snakemake could submit to HTCondor here (its executor plugin is installed)."""
    return importlib.util.find_spec("snakemake_executor_plugin_htcondor") is not None


class BlockJobs:
    def __init__(self, plan: Plan, workflow: Workflow, block_of: Callable[[object], Block]) -> None:
        self.plan = plan
        self.workflow = workflow
        self.block_of = block_of
        self.group = GROUP if (plan.config.get("batch") or {}).get("group", True) else None
        # (segment, replicates in block) -> resources
        self._resources: dict[tuple[str, int], BlockResources] = {}
        self._minutes: dict[tuple[int, int], int] = {}  # (replicates in block, fallback) -> minutes
        # (the profile's default-resources, parsed)
        self._defaults: tuple[object, Resources] | None = None
        # threads: a number when every block job asks for the same (so Snakemake
        # calls nothing for it), else a function of the job's wildcards
        threads = {
            block_resources(plan, plan.block_for(segment, 0))["threads"] for segment in plan.segments.values()
        }
        self.threads: int | Callable[[object], int] = (
            threads.pop() if len(threads) == 1 else rule_function(self._threads)
        )

    def spec_file(self, wildcards: object) -> str:
        """The runner's ``--spec-file`` for this job (its ``--block`` is the wildcard)."""
        segment = self.block_of(wildcards).segment
        return f"{SPECS}/{self.plan.experiment}/{segment.label}.json"

    @functools.cached_property
    def spec_file_of(self) -> Callable[[object], str]:
        """``spec_file`` as the rule's params function (see ``rule_function``)."""
        return rule_function(self.spec_file)

    def write_specs(self) -> None:
        """Write every segment's block spec (its range left 0-0) where its jobs
        read it; a file already holding the same spec is left alone."""
        from repliflow.store.storage import write_if_changed

        folder = SPECS / self.plan.experiment
        for segment in self.plan.segments.values():
            data = spec_json(self.plan.block_spec(Block(segment, 0, 0))).encode()
            write_if_changed(folder / f"{segment.label}.json", data)

    def capped_notice(self) -> str | None:
        """Snakemake caps a job's threads at --cores (on a cluster: the most one
        submission asks for); say so when a step declares more."""
        cores = self.workflow.resource_settings.cores
        capped = capped_threads(self.plan, cores if isinstance(cores, int) else None)
        if not capped:
            return None
        return (
            f"repliflow: --cores {cores} caps every job's threads, so these steps run with "
            f"fewer threads than they declare: {', '.join(capped)}"
        )

    def runtime_notice(self) -> str | None:
        """What to say when jobs go to a cluster, blocks hold more than
        LARGE_BLOCK replicates and a step declares no runtime: its block jobs
        then ask for the profile's default runtime (30 minutes in the shipped
        profiles), which a large block of calls of a second or so outruns.
        Call it from ``onstart``: the executor is unknown while the Snakefile
        is parsed."""
        # a block never holds more than the experiment's replicates, whatever its size says
        largest = min(self.plan.block_size, self.plan.replicates)
        if self._executor() in LOCAL_EXECUTORS or largest <= LARGE_BLOCK:
            return None
        steps = undeclared_runtimes(self.plan)
        if not steps:
            return None
        return (
            f"repliflow: each cluster job runs blocks of up to {largest} replicates, and "
            f"these steps declare no runtime, so their jobs ask for the profile's default runtime: "
            f"{', '.join(steps)}. Declare runtime (minutes per call) for any that takes more than a "
            "fraction of a second, or set batch.replicates_per_job (docs/clusters.md)"
        )

    def _declared(self, wildcards: object) -> BlockResources:
        block = self.block_of(wildcards)
        key = (block.segment.id, block.hi - block.lo)  # all block_resources depends on
        if key not in self._resources:
            self._resources[key] = block_resources(self.plan, block)
        return self._resources[key]

    def _default(self, name: str, wildcards: object, kwargs: Mapping[str, object]) -> ResourceValue:
        """The profile's default-resources value for ``name`` in this job, or None."""
        from snakemake.resources import Resources

        defaults = self.workflow.resource_settings.default_resources
        if defaults is None:
            return None
        if self._defaults is None or self._defaults[0] is not defaults:
            self._defaults = (defaults, Resources.from_mapping(defaults))
        resource = self._defaults[1].get(name)
        if resource is None:
            return None
        value: ResourceValue = resource.evaluate(wildcards, **kwargs).value
        return value

    def _or_default(
        self, name: Literal["mem_mb", "runtime"], wildcards: object, kwargs: Mapping[str, object]
    ) -> ResourceValue:
        value = self._declared(wildcards)[name]
        return self._default(name, wildcards, kwargs) if value is None else value

    def _executor(self) -> str | None:
        name: str | None = getattr(self.workflow.executor_plugin, "name", None)
        return name

    # --- priority: of run_segment ----------------------------------------------

    def _work(self, block: Block) -> int:
        return (block.hi - block.lo) * (block.segment.end - block.segment.start + 1)

    def _priority(self, wildcards: object) -> int:
        return self._work(self.block_of(wildcards))

    @functools.cached_property
    def priority(self) -> int | Callable[[object], int]:
        """The rule's ``priority:``, a block's replicate-steps: Snakemake starts
        the ready jobs of highest priority first, so the largest blocks run
        first and a segment's short last block (when ``replicates`` is no
        multiple of the block size) fills the last wave, where it would
        otherwise leave one full block alone on one core at the end (longest
        job first). 0 when every block has the same work: Snakemake then
        calls nothing per job."""
        works = {
            self._work(block)
            for segment in self.plan.segments.values()
            for block in self.plan.blocks(segment)
        }
        return 0 if len(works) <= 1 else rule_function(self._priority)

    # --- threads: and resources: of run_segment --------------------------------

    def _threads(self, wildcards: object) -> int:
        return self._declared(wildcards)["threads"]

    def resources(self) -> dict[str, Callable[..., ResourceValue]]:
        """The rule's ``resources:``. A resource no step of the experiment
        declares is left out, so the rule keeps the profile's default for it;
        the HTCondor translations are left out where HTCondor's plugin is not
        installed (Snakemake would call each of them for every job)."""
        named = {key for step in declared(self.plan.config) for key in step}
        resources: dict[str, Callable[..., ResourceValue]] = {
            key: getattr(self, key) for key in ("mem_mb", "runtime") if key in named
        }
        if htcondor_installed():
            resources.update(
                request_memory=self.request_memory,
                request_disk=self.request_disk,
                allowed_job_duration=self.allowed_job_duration,
            )
        return {key: rule_function(function) for key, function in resources.items()}

    def mem_mb(self, wildcards: object, **kwargs: object) -> int | str:
        # a size resource must be a number: 0 (no --mem, no request_memory) when unknown
        return self._or_default("mem_mb", wildcards, kwargs) or 0

    def runtime(self, wildcards: object, **kwargs: object) -> ResourceValue:
        return self._or_default("runtime", wildcards, kwargs)

    # The HTCondor plugin (0.3) maps threads to request_cpus but reads neither
    # mem_mb, disk_mb nor runtime: translate them, only when submitting there
    # (None drops a resource). request_memory is in MB, request_disk in KB; the
    # plugin's htcondor_request_*_mb names would have to be numbers everywhere.

    def request_memory(self, wildcards: object, **kwargs: object) -> ResourceValue:
        if self._executor() != "htcondor":
            return None
        return self._or_default("mem_mb", wildcards, kwargs) or None

    def request_disk(self, wildcards: object, **kwargs: object) -> int | None:
        if self._executor() != "htcondor":
            return None
        disk_mb = self._default("disk_mb", wildcards, kwargs)
        return disk_mb * 1024 if isinstance(disk_mb, int) and disk_mb > 0 else None

    def allowed_job_duration(self, wildcards: object, **kwargs: object) -> int | None:
        """Seconds, an upper bound for the whole submission: a job group sums
        ``runtime`` over its layers but takes the largest per-layer sum of any
        other resource, so each job carries the serial time of every block job
        of its replicate range, times the blocks one submission may hold."""
        if self._executor() != "htcondor":
            return None
        default = self._default("runtime", wildcards, kwargs)
        # Snakemake gives runtime in whole minutes; a text (its placeholder while an input
        # is unknown) is no number of minutes
        fallback = default if isinstance(default, int) else None
        block = self.block_of(wildcards)
        if self.group is None:
            minutes = self._declared(wildcards)["runtime"] or fallback
        else:
            components = self.workflow.group_settings.group_components.get(self.group, 1)
            key = (block.hi - block.lo, fallback or 0)  # every segment has this block's bounds
            if key not in self._minutes:
                self._minutes[key] = component_minutes(self.plan, block, fallback or 0)
            minutes = components * self._minutes[key]
        return None if not minutes else int(math.ceil(minutes * 60))
