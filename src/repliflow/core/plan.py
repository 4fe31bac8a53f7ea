"""Turn a validated config into conditions, seeds, recipe keys and jobs.

Pure Python and Snakemake-free, so it is unit-tested on its own.

The shape of the job graph: every condition is a chain of steps (position 0
is the datasource). Conditions that agree on the recipe of a chain's prefix
share it, so the chains form a trie; a *segment* is a maximal run of trie
nodes without a branch, and one Snakemake job runs one segment for one
*block* of consecutive replicates. Every replicate x step still gets its own
hashed output and sidecar: blocks only amortise the per-job cost of
Snakemake and of starting Python over many tiny steps.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repliflow.core import grid, hashing
from repliflow.core.records import BlockSpec, StepSpec
from repliflow.core.stepcode import FunctionInfo, function_info, resolve_code_path
from repliflow.errors import ConfigError, LayoutError
from repliflow.stats import DIFFERENCE_NAMES, EQUIVALENCE
from repliflow.store.layout import ResultsLayout
from repliflow.store.shared import store_location

BASELINE = "baseline"
DATASOURCE = "datasource"
MAX_REPLICATES = 10_000_000  # also the schema's maximum
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
AUTO_BLOCKS = 8  # blocks per segment that "auto" aims for: enough to fill a few cores
# The largest "auto" block. Above AUTO_BLOCKS * MAX_AUTO_BLOCK replicates the
# size stops doubling, so more replicates only add block jobs. It is this
# large because every job costs a fresh Python and Snakemake's handling
# (about 0.1-0.2 s of a core): at 50,000 replicates of microsecond steps a
# cap of 1024 made 196 jobs where 8192 makes 28, and the first run took
# about 8 s longer on 2 cores (bench/perf.py scale, docs/performance.md).
MAX_AUTO_BLOCK = 8192
# "auto" when the steps declare a `runtime`: a block job carries at most this
# many seconds of declared work (a job's own start, a fresh Python and the
# runner's imports, costs 0.1-0.2 s: <= 10% of it), so that the last wave of
# jobs leaves cores idle for at most about that long ...
AUTO_JOB_SECONDS = 2.0
# ... unless a segment would then have more than this many blocks: past it,
# larger blocks still spread evenly over any common number of cores and cost
# fewer job starts.
AUTO_MAX_BLOCKS = 64
SEQUENTIAL_SPENDING = ("obrien_fleming", "pocock")  # stats.sequential.SPENDING, without scipy


@dataclass(frozen=True)
class Step:
    name: str
    function: str
    position: int  # 0 = datasource
    code_hash: str
    params: dict[str, Any]
    is_async: bool = False

    def recipe(self) -> dict[str, Any]:
        return {"function": self.function, "code": self.code_hash, "params": self.params}

    def to_json(self) -> StepSpec:
        return {
            "name": self.name,
            "function": self.function,
            "position": self.position,
            "code_hash": self.code_hash,
            "params": self.params,
        }


@dataclass
class Condition:
    name: str
    steps: list[Step]
    prefix_ids: list[str]  # per position: digest of the recipe chain up to it


@dataclass
class Segment:
    id: str  # the prefix id of its last position
    start: int
    end: int  # inclusive
    steps: list[Step]  # the whole chain from the datasource to `end`
    parent: str | None
    conditions: list[str] = field(default_factory=list)

    @property
    def owner(self) -> str:
        """The condition a shared segment runs as (ctx.condition): the first in
        config order, so adding a treatment never changes it."""
        return self.conditions[0]

    @property
    def label(self) -> str:
        return f"{self.steps[self.end].name}-{self.id}"

    @property
    def positions(self) -> list[Step]:
        """The steps this segment runs (``start`` to ``end``)."""
        return self.steps[self.start : self.end + 1]


@dataclass(frozen=True)
class Sequential:
    """A group-sequential design (config ``sequential``): the replicates run
    in ``looks`` equal looks of ``look_size`` replicates per condition, and
    the experiment stops at the first look where every comparison has
    stopped (``repliflow.engine.looks``)."""

    looks: int
    spending: str
    max_replicates: int

    @property
    def look_size(self) -> int:
        return self.max_replicates // self.looks

    @property
    def schedule(self) -> tuple[int, ...]:
        """Cumulative replicates per condition at each look, the last the maximum."""
        return tuple(self.look_size * (k + 1) for k in range(self.looks))

    def replicates_at(self, look: int) -> int:
        """Replicates per condition by ``look`` (1-based)."""
        if isinstance(look, bool) or not isinstance(look, int) or not 1 <= look <= self.looks:
            raise ValueError(f"look must be an integer in 1..{self.looks}, not {look!r}")
        return self.look_size * look


@dataclass(frozen=True)
class Block:
    segment: Segment
    lo: int
    hi: int  # exclusive

    @property
    def label(self) -> str:
        return f"{self.lo:06d}-{self.hi:06d}"


@dataclass
class Plan:
    experiment: str
    code: str
    code_path: Path
    seed: int
    replicates: int
    block_size: int
    conditions: list[Condition]
    segments: dict[str, Segment]
    hypotheses: list[dict[str, Any]]
    config: dict[str, Any]
    sequential: Sequential | None = None  # config ``sequential``: ``replicates`` is the maximum
    store: str | None = None  # a shared store (absolute; repliflow.store.shared), else results/<exp>/store
    # per-plan memo of derived values that Snakemake asks for once per job
    _memo: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @functools.cached_property
    def layout(self) -> ResultsLayout:
        """Paths under results/<experiment>, relative to the working directory
        (made once: manifest_path asks for it for every job of every run)."""
        return ResultsLayout.of(self.experiment, store=self.store)

    def layout_at(self, workdir: str | Path) -> ResultsLayout:
        """The layout with paths under ``workdir`` (the store is absolute anyway)."""
        return ResultsLayout.of(self.experiment, str(workdir), store=self.store)

    @property
    def results_dir(self) -> str:
        return self.layout.root

    @property
    def store_dir(self) -> str:
        return self.layout.store

    def chain(self, condition: str) -> list[Segment]:
        """The segments ``condition`` runs through, the datasource's first."""
        segments = [self.final_segment(condition)]
        while segments[-1].parent is not None:
            segments.append(self.segments[segments[-1].parent])
        return segments[::-1]

    def condition(self, name: str) -> Condition:
        for condition in self.conditions:
            if condition.name == name:
                return condition
        raise KeyError(name)

    def segment_by_label(self, label: str) -> Segment:
        return self.segments[label.rsplit("-", 1)[1]]

    def blocks(self, segment: Segment) -> list[Block]:
        size = self.block_size
        return [Block(segment, lo, min(lo + size, self.replicates)) for lo in range(0, self.replicates, size)]

    def block_for(self, segment: Segment, replicate: int) -> Block:
        lo = replicate - replicate % self.block_size
        return Block(segment, lo, min(lo + self.block_size, self.replicates))

    def manifest_path(self, block: Block) -> str:
        return self.layout.manifest(block.segment.label, block.label)

    def final_segment(self, condition: str) -> Segment:
        return self.segments[self.condition(condition).prefix_ids[-1]]

    def final_manifests(self, condition: str) -> list[str]:
        segment = self.final_segment(condition)
        return [self.manifest_path(block) for block in self.blocks(segment)]

    def all_final_manifests(self) -> list[str]:
        seen: dict[str, None] = {}
        for condition in self.conditions:
            for path in self.final_manifests(condition.name):
                seen[path] = None
        return list(seen)

    def all_manifests(self) -> list[str]:
        """Every block job's manifest (the input of two rules: listed once)."""
        paths = self._memo.get("all_manifests")
        if paths is None:
            blocks = (block for segment in self.segments.values() for block in self.blocks(segment))
            paths = self._memo["all_manifests"] = [self.manifest_path(block) for block in blocks]
        return list(paths)

    def truncated(self, replicates: int) -> Plan:
        """This plan with only its first ``replicates`` replicates per
        condition (a sequential run that stopped at a look): the same blocks,
        seeds and keys for those, nothing past them."""
        if not 1 <= replicates <= self.replicates or replicates % self.block_size:
            raise ValueError(
                f"cannot cut {self.replicates} replicates in blocks of {self.block_size} to {replicates}"
            )
        if replicates == self.replicates:
            return self
        return dataclasses.replace(self, replicates=replicates)

    def look_manifests(self, look: int) -> list[str]:
        """The block manifests of every segment up to sequential look ``look``."""
        if self.sequential is None:
            raise ValueError(f"experiment '{self.experiment}' has no sequential design")
        return self.truncated(self.sequential.replicates_at(look)).all_manifests()

    def upstream_manifest(self, block: Block) -> list[str]:
        if block.segment.parent is None:
            return []
        parent = self.segments[block.segment.parent]
        return [self.manifest_path(Block(parent, block.lo, block.hi))]

    def block_spec(self, block: Block) -> BlockSpec:
        """Everything the job needs; determined by the manifest path alone, so
        Snakemake's params trigger fires only when the recipe really changes."""
        segment = block.segment
        spec: BlockSpec = {
            "experiment": self.experiment,
            "code": self.code,
            "seed": self.seed,
            "segment": segment.id,
            "start": segment.start,
            "condition": segment.owner,
            "lo": block.lo,
            "hi": block.hi,
            "steps": [step.to_json() for step in segment.steps],
            "metrics_position": len(self.conditions[0].steps) - 1,
        }
        # only when set: the spec is a Snakemake param, and an unchanged spec
        # keeps every job up to date
        entries = [self.config["datasource"], *self.config["pipeline"]]
        timeouts = [entry.get("timeout") for entry in entries]
        if any(t is not None for t in timeouts):
            spec["timeouts"] = timeouts  # seconds or None per position; the runner enforces them
        concurrency = step_concurrency(self.config)
        if any(c > 1 for c in concurrency):
            spec["concurrency"] = concurrency  # replicates in flight per position
        rates = [entry.get("max_rate") for entry in entries]
        if any(r is not None for r in rates):
            spec["max_rates"] = rates  # calls per second per position, or None
        retries = [entry.get("retries") for entry in entries]
        if any(r is not None for r in retries):
            spec["retries"] = retries
        if self.config.get("on_failure") == "missing":
            spec["on_failure"] = "missing"
        if self.store is not None:
            spec["store"] = self.store
        return spec

    def seeds(self) -> list[int]:
        return [hashing.replicate_seed(self.seed, r) for r in range(self.replicates)]

    def keys(self, condition: str, replicate: int) -> list[str]:
        return chain_keys(self.condition(condition).steps, hashing.replicate_seed(self.seed, replicate))


def segment_keys(plan: Plan) -> dict[str, list[list[str]]]:
    """Per segment id, per replicate, the keys of the segment's positions.

    Every trie node is hashed once, so shared prefixes cost nothing extra.
    """
    keys: dict[str, list[list[str]]] = {}
    pending = list(plan.segments.values())
    seeds = plan.seeds()
    while pending:
        waiting: list[Segment] = []
        for segment in pending:
            if segment.parent is not None and segment.parent not in keys:
                waiting.append(segment)
                continue
            parent = keys[segment.parent] if segment.parent is not None else None
            steps = segment.positions
            keys[segment.id] = [
                chain_keys(steps, seed, parent[replicate][-1] if parent is not None else None)
                for replicate, seed in enumerate(seeds)
            ]
        if len(waiting) == len(pending):
            raise LayoutError("repliflow: the plan's segments do not form a tree")
        pending = waiting
    return keys


def load_plan(config_file: str | Path, workdir: str | Path = ".") -> Plan:
    """Validate and plan the experiment in ``config_file`` (a path relative to
    the current directory, as snakemake's ``--configfile`` is) the way the
    Snakefile would in ``workdir``, without building Snakemake's DAG."""
    from repliflow.core.config import load_config_file, validate_config

    path = Path(config_file)
    try:
        # UTF-8, no key given twice, JSON values only: else a ConfigError naming file, line, key
        config = load_config_file(path)
    except FileNotFoundError:
        raise LayoutError(f"repliflow: the config file {path} does not exist") from None
    except OSError as exc:
        raise LayoutError(f"repliflow: cannot read the config file {path}: {exc}") from None
    if not isinstance(config, dict):
        raise LayoutError(f"repliflow: the config file {path} does not hold a mapping")
    config = validate_config(config, file=str(config_file))
    return build_plan(config, workdir=str(workdir))


def spec_json(spec: object) -> str:
    """A block spec as the job receives it: compact JSON with sorted keys."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def chain_keys(steps: Iterable[Step], seed: int, upstream: str | None = None) -> list[str]:
    """The recipe keys of ``steps`` in order, each chained on the one before
    (the first on ``upstream``): the one place keys are derived from a plan,
    so the cache, the audit, status and gc can never disagree."""
    keys: list[str] = []
    for step in steps:
        upstream = hashing.recipe_key(step.function, step.code_hash, step.params, seed, upstream)
        keys.append(upstream)
    return keys


def build_plan(config: dict[str, Any], *, workdir: str | None = None) -> Plan:
    """Plan a schema-validated config; raises ConfigError naming the culprit."""
    experiment = config["experiment"]
    _check_name(experiment, "experiment")
    replicates = config["replicates"]
    if isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 1:
        raise ConfigError(f"replicates must be a positive integer, got {replicates!r}", key="replicates")
    if replicates > MAX_REPLICATES:
        raise ConfigError(
            f"replicates is {replicates}, more than the {MAX_REPLICATES} repliflow plans (one file per "
            "replicate x step, and Snakemake holds every job in memory)",
            key="replicates",
        )
    seed = config.get("seed", 0)
    code_path = resolve_code_path(config["code"], workdir)

    baseline = _baseline_steps(config, code_path)
    by_name = {step.name: step for step in baseline}
    conditions = [_condition(BASELINE, baseline, seed)]
    for treatment, overrides in grid.treatments(config, code_path).items():  # explicit, then grid
        _check_name(treatment, f"treatments.{treatment}")
        if treatment == BASELINE:
            raise ConfigError(
                "'baseline' is reserved for the untreated condition", key=f"treatments.{treatment}"
            )
        if not isinstance(overrides, dict):
            raise ConfigError(
                "expected a mapping of step name to parameter overrides", key=f"treatments.{treatment}"
            )
        for step_name, params in overrides.items():
            key = f"treatments.{treatment}.{step_name}"
            if step_name not in by_name:
                raise ConfigError(
                    f"treatment '{treatment}' names the unknown step '{step_name}' "
                    f"(steps: {', '.join(by_name)})",
                    key=key,
                )
            if not isinstance(params, dict):
                raise ConfigError("expected a mapping of parameter name to value", key=key)
        steps = []
        for step in baseline:
            override = overrides.get(step.name) or {}
            params = {**step.params, **override}
            if override:
                info = function_info(code_path, step.function, key=f"treatments.{treatment}.{step.name}")
                _check_params(
                    info,
                    override,
                    step.position,
                    f"treatments.{treatment}.{step.name}",
                    condition=treatment,
                    step=step.name,
                )
            steps.append(Step(step.name, step.function, step.position, step.code_hash, params, step.is_async))
        conditions.append(_condition(treatment, steps, seed))

    segments = _segments(conditions)
    hypotheses = _check_hypotheses(config.get("hypotheses") or [], workdir)
    sequential = _check_sequential(config, hypotheses)
    in_flight = max(step_concurrency(config))
    block_size = _block_size(
        config.get("batch") or {},
        replicates,
        seconds_per_replicate=_declared_seconds(config, segments),
        # two full waves of the replicates a step keeps in flight: a job start
        # costs several waits of a typical waiting step
        min_block=2 * in_flight if in_flight > 1 else 1,
    )
    if sequential is not None:
        block_size = _look_aligned(block_size, sequential, config.get("batch") or {})
    store = store_location(config, experiment, workdir)
    if store is not None:  # as the jobs must see it, whatever their environment or folder
        config = {**config, "store": store}
    return Plan(
        experiment=experiment,
        code=config["code"],
        code_path=code_path,
        seed=seed,
        replicates=replicates,
        block_size=block_size,
        conditions=conditions,
        segments=segments,
        hypotheses=hypotheses,
        config=config,
        sequential=sequential,
        store=store,
    )


def _check_name(name: str, key: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
        raise ConfigError(
            f"{name!r} cannot be used as a name: it becomes part of a path under results/, so "
            "use letters, digits, '_', '-' and '.', start with a letter or digit, and never '..'",
            key=key,
        )


def _baseline_steps(config: dict[str, Any], code_path: Path) -> list[Step]:
    entries = [(DATASOURCE, config["datasource"], "datasource")]
    for index, entry in enumerate(config["pipeline"]):
        entries.append((entry.get("name") or entry["function"], entry, f"pipeline.{index}"))
    steps: list[Step] = []
    seen: dict[str, str] = {}
    for position, (name, entry, key) in enumerate(entries):
        _check_name(name, f"{key}.name")
        if name in seen:
            raise ConfigError(
                f"the step name '{name}' is used twice ({seen[name]} and {key}); "
                "give one of them a distinct 'name'",
                key=f"{key}.name",
            )
        seen[name] = key
        info = function_info(code_path, entry["function"], key=f"{key}.function")
        params = dict(entry.get("params") or {})
        _check_params(
            info, params, position, f"{key}.params", condition=BASELINE, step=name, check_required=True
        )
        steps.append(Step(name, entry["function"], position, info.code_hash, params, info.signature.is_async))
    return steps


def _check_params(
    info: FunctionInfo,
    params: dict[str, Any],
    position: int,
    key: str,
    *,
    condition: str,
    step: str,
    check_required: bool = False,
) -> None:
    sig = info.signature
    leading = 1 if position == 0 else 2
    shape = "(ctx, **params)" if position == 0 else "(data, ctx, **params)"
    if len(sig.positional) < leading and not sig.varargs:
        raise ConfigError(
            f"step '{step}' uses function {info.name}() in {info.source_file}, which takes "
            f"{len(sig.positional)} positional argument(s); a {'datasource' if position == 0 else 'step'} "
            f"is called as {info.name}{shape}",
            key=key,
        )
    accepted = set(sig.keyword) - set(sig.positional[:leading])
    for name in params:
        if name not in accepted and not sig.varkw:
            raise ConfigError(
                f"condition '{condition}' passes parameter '{name}' to step '{step}', but "
                f"{info.name}() in {info.source_file} does not accept it "
                f"(it accepts: {', '.join(sorted(accepted)) or 'no parameters'})",
                key=key,
            )
    if check_required:
        missing = [name for name in sig.required_keyword if name not in params]
        if missing:
            raise ConfigError(
                f"step '{step}' needs parameter(s) {', '.join(missing)} for "
                f"{info.name}() in {info.source_file}, which have no default",
                key=key,
            )


def _condition(name: str, steps: list[Step], seed: int) -> Condition:
    prefix_ids = []
    chain: list[dict[str, Any]] = []
    for step in steps:
        chain.append(step.recipe())
        prefix_ids.append(hashing.digest({"v": hashing.RECIPE_VERSION, "seed": seed, "chain": chain}, 16))
    return Condition(name, steps, prefix_ids)


def _segments(conditions: list[Condition]) -> dict[str, Segment]:
    children: dict[tuple[int, str], set[str]] = {}
    for condition in conditions:
        ids = condition.prefix_ids
        for position in range(len(ids) - 1):
            children.setdefault((position, ids[position]), set()).add(ids[position + 1])
    last = len(conditions[0].prefix_ids) - 1
    segments: dict[str, Segment] = {}
    for condition in conditions:
        ids = condition.prefix_ids
        start = 0
        parent = None
        for position, node in enumerate(ids):
            ends = position == last or len(children[(position, node)]) > 1
            if not ends:
                continue
            segment = segments.get(node)
            if segment is None:
                segment = Segment(node, start, position, condition.steps[: position + 1], parent)
                segments[node] = segment
            segment.conditions.append(condition.name)
            parent, start = node, position + 1
    return segments


def _check_hypotheses(hypotheses: list[dict[str, Any]], workdir: str | None) -> list[dict[str, Any]]:
    from repliflow.stats.registry import check_families, check_params, check_sesoi, check_verifier

    seen: set[str] = set()
    for index, hypothesis in enumerate(hypotheses):
        key = f"hypotheses.{index}"
        if hypothesis["name"] in seen:
            raise ConfigError(f"hypothesis name '{hypothesis['name']}' is used twice", key=f"{key}.name")
        seen.add(hypothesis["name"])
        check_verifier(hypothesis["verifier"], key=f"{key}.verifier", workdir=workdir)
        # a built-in's params now, not after every replicate ran (no scipy import: a table)
        check_params(hypothesis["verifier"], hypothesis.get("params") or {}, key=f"{key}.params")
        check_sesoi(hypothesis["verifier"], hypothesis, key=key)
    check_families(hypotheses)
    return hypotheses


# The verifiers a sequential design can use: each p-value comes with the sign
# of its effect, so it converts to a z statistic (stats.sequential.z_from_p).
SEQUENTIAL_VERIFIERS = frozenset(DIFFERENCE_NAMES)


def _check_sequential(config: dict[str, Any], hypotheses: list[dict[str, Any]]) -> Sequential | None:
    """The config's ``sequential`` block, checked against ``replicates`` and
    the hypotheses; None without one."""
    block = config.get("sequential")
    if block is None:
        return None
    if not isinstance(block, dict):
        raise ConfigError(f"expected a mapping {{looks: K, spending: ...}}, not {block!r}", key="sequential")
    looks = block.get("looks")
    if isinstance(looks, bool) or not isinstance(looks, int) or looks < 2:
        raise ConfigError(
            f"a sequential design needs at least 2 looks, not {looks!r} (one look is a fixed-size "
            "experiment: leave sequential out)",
            key="sequential.looks",
        )
    spending = block.get("spending", "obrien_fleming")
    if spending not in SEQUENTIAL_SPENDING:
        raise ConfigError(
            f"spending must be one of {', '.join(SEQUENTIAL_SPENDING)}, not {spending!r}",
            key="sequential.spending",
        )
    if block.get("futility", False) is not False:
        raise ConfigError(
            "futility stopping is not available: only efficacy boundaries (set futility: false or "
            "leave it out)",
            key="sequential.futility",
        )
    replicates = config["replicates"]
    if replicates % looks:
        lower, upper = replicates - replicates % looks, replicates - replicates % looks + looks
        raise ConfigError(
            f"replicates ({replicates}, the most a sequential run makes) must divide into "
            f"{looks} equal looks: use a multiple of {looks}, e.g. {lower or upper} or {upper}",
            key="replicates",
        )
    if not hypotheses:
        raise ConfigError(
            "a sequential design stops when its hypotheses are decided: add at least one hypothesis",
            key="sequential",
        )
    for index, hypothesis in enumerate(hypotheses):
        spec = hypothesis["verifier"]
        if spec in EQUIVALENCE:
            raise ConfigError(
                f"verifier '{spec}' is an equivalence test (TOST); sequential designs support only "
                "tests of a difference (equivalence needs its own two-sided boundaries, not "
                "implemented): use a fixed-size experiment for it",
                key=f"hypotheses.{index}.verifier",
            )
        if spec not in SEQUENTIAL_VERIFIERS:
            raise ConfigError(
                f"verifier '{spec}' gives no z statistic a sequential design can test: a look "
                "converts a built-in test's p-value and the sign of its mean difference to z; use "
                f"one of {', '.join(DIFFERENCE_NAMES)}",
                key=f"hypotheses.{index}.verifier",
            )
    return Sequential(looks, spending, replicates)


def _look_aligned(block_size: int, sequential: Sequential, batch: dict[str, Any]) -> int:
    """Blocks never straddle looks: a block size that divides the look size
    (``auto``: the largest divisor of it not above the automatic size)."""
    look_size = sequential.look_size
    if batch.get("replicates_per_job", "auto") != "auto":
        if look_size % block_size:
            raise ConfigError(
                f"replicates_per_job ({block_size}) must divide the look size ({look_size} "
                f"replicates: {sequential.max_replicates} in {sequential.looks} looks), so that no "
                "block job straddles two looks",
                key="batch.replicates_per_job",
            )
        return block_size
    return max(d for d in range(1, min(block_size, look_size) + 1) if look_size % d == 0)


def step_concurrency(config: dict[str, Any]) -> list[int]:
    """Replicates in flight at once, per position (datasource first): the
    step's ``concurrency``, else ``batch.concurrency``, else 1."""
    default = (config.get("batch") or {}).get("concurrency", 1)
    entries = [config["datasource"], *config["pipeline"]]
    return [int(entry.get("concurrency", default)) for entry in entries]


def _declared_seconds(config: dict[str, Any], segments: dict[str, Segment]) -> float | None:
    """Seconds one replicate of the heaviest segment takes by its steps'
    declared ``runtime`` (minutes per call; undeclared steps count 0), or
    None when no step declares one."""
    entries = [config["datasource"], *config["pipeline"]]
    minutes = [entry.get("runtime") for entry in entries]
    if all(m is None for m in minutes):
        return None
    return 60.0 * max(
        sum(minutes[p] or 0.0 for p in range(segment.start, segment.end + 1)) for segment in segments.values()
    )


def _power_of_two_at_least(n: float) -> int:
    return 1 << max(0, math.ceil(n) - 1).bit_length()


def _power_of_two_at_most(n: float) -> int:
    return 1 << max(0, math.floor(n).bit_length() - 1) if n >= 1 else 1


def _block_size(
    batch: dict[str, Any],
    replicates: int,
    *,
    seconds_per_replicate: float | None = None,
    min_block: int = 1,
) -> int:
    """Replicates per block job: ``batch.replicates_per_job``, or for "auto" a
    power of two (so raising ``replicates`` keeps every existing block, and its
    job, until the size doubles) chosen from the config alone, never from
    ``--cores`` or timings: the size names the manifests, so it must not
    change from run to run.

    - With declared runtimes (``seconds_per_replicate``: the heaviest
      segment's): the largest block whose job carries at most
      AUTO_JOB_SECONDS of work (1 s steps: 2 per block, 0.3 s: 4,
      microseconds: MAX_AUTO_BLOCK, i.e. one block per segment up to 8192
      replicates), but never more than AUTO_MAX_BLOCKS blocks per segment.
    - Without: about AUTO_BLOCKS blocks per segment (replicates / 8 rounded
      up), enough to fill a few cores.

    Either way at least ``min_block`` (rounded up to a power of two) and at
    most MAX_AUTO_BLOCK."""
    size = batch.get("replicates_per_job", "auto")
    if size == "auto":
        if seconds_per_replicate is None:
            auto = _power_of_two_at_least(replicates / AUTO_BLOCKS)
        else:
            by_time = (
                MAX_AUTO_BLOCK
                if seconds_per_replicate <= 0
                else _power_of_two_at_most(AUTO_JOB_SECONDS / seconds_per_replicate)
            )
            auto = max(by_time, _power_of_two_at_least(replicates / AUTO_MAX_BLOCKS))
        floor = _power_of_two_at_least(max(1, min_block))
        return min(MAX_AUTO_BLOCK, max(auto, floor))
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(
            f"expected a positive integer or 'auto', got {size!r}", key="batch.replicates_per_job"
        )
    return size
