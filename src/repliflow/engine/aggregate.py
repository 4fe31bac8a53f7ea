"""Collect metrics from the store, run the verifiers, record provenance.

Writes ``metrics.csv``, ``hypotheses.json`` and ``provenance.json`` (see
docs/provenance.md). Every value read from the store is checked against the
sha256 its sidecar recorded. A replicate whose metric is NaN, None or absent
keeps its row (value ``nan`` or empty), so verifiers count it as missing and
paired tests keep replicates aligned.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import platform
import socket
import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repliflow.core import hashing
from repliflow.core.plan import BASELINE, Plan, build_plan
from repliflow.core.records import (
    PROVENANCE_SCHEMA,
    Manifest,
    ManifestReplicate,
    ManifestStep,
    OutputEntry,
    StepFailure,
)
from repliflow.engine import looks, summary
from repliflow.errors import RepliflowError, StoreMismatch
from repliflow.stats import DEFAULT_CORRECTION, EQUIVALENCE
from repliflow.stats.corrections import adjust
from repliflow.stats.registry import Verifier, check_params, family_of, resolve_verifier
from repliflow.store import pathgate, reconcile, storage
from repliflow.store.layout import HYPOTHESES, LAST_GOOD, METRICS, PROVENANCE, SIDECAR_SUFFIX
from repliflow.store.provenance import iter_provenance_outputs, read_manifests

if TYPE_CHECKING:
    from repliflow.report import drawing

# the block manifests, by (segment id, first replicate) (store.provenance.read_manifests)
Manifests = dict[tuple[str, int], Manifest]


class FailedReplicate(StepFailure):
    """One of hypotheses.json's ``failed_replicates`` (on_failure: missing)."""

    replicate: int


@dataclass(frozen=True, slots=True)
class MetricRow:
    condition: str
    replicate: int
    seed: int
    metric: str
    value: float | None  # None: the replicate did not return this metric


class MetricTable:
    """Every condition x replicate x metric value ``collect_metrics`` read.
    Iterating gives metrics.csv's MetricRows (conditions in plan order, then
    replicates, then metrics by name), made on the fly; ``column`` gives a
    (condition, metric)'s values by replicate for the verifiers.

    Stored as one float column per metric (NaN where absent) and a mask of
    the values a replicate returned (telling a NaN it returned from none):
    9 bytes a value, where a MetricRow and a float object took about 110
    (and the decoded outputs, kept until the rows were made, as much again)."""

    def __init__(self, conditions: list[str], seeds: list[int]):
        self.conditions = conditions
        self.seeds = seeds
        self._size = len(conditions) * len(seeds)
        self._values: dict[str, array[float]] = {}
        self._returned: dict[str, bytearray] = {}

    def put(self, position: int, outputs: object, *, condition: str, replicate: int, key: str) -> None:
        """The metrics one replicate's last step returned (``outputs``), checked."""
        if not isinstance(outputs, dict):
            raise RepliflowError(
                f"repliflow: the output of condition '{condition}', replicate {replicate} is "
                f"{type(outputs).__name__}, not a mapping (output {key}); the last step must return "
                "{metric name: number}"
            )
        for metric in sorted(outputs):  # the first bad value by name, as the rows would meet it
            if metric not in self._values:
                self._values[metric] = array("d", [math.nan]) * self._size
                self._returned[metric] = bytearray(self._size)
            value = _metric_value(
                outputs[metric], metric=metric, condition=condition, replicate=replicate, key=key
            )
            if value is not None:
                self._values[metric][position] = value
                self._returned[metric][position] = 1

    def copy(self, source: int, target: int) -> None:
        """Replicate ``target``'s metrics are ``source``'s (the same output)."""
        for metric, values in self._values.items():
            values[target] = values[source]
            self._returned[metric][target] = self._returned[metric][source]

    @property
    def metrics(self) -> list[str]:
        """Every metric name a last step returned, sorted."""
        return sorted(self._values)

    def returned(self, metric: str) -> bool:
        """Whether some replicate returned a value (NaN included) for ``metric``."""
        return any(self._returned.get(metric, b""))

    def column(self, condition: str, metric: str) -> list[float]:
        """``condition``'s values of ``metric`` by replicate, NaN where NaN or absent."""
        if condition not in self.conditions or metric not in self._values:
            return []
        lo = self.conditions.index(condition) * len(self.seeds)
        return self._values[metric][lo : lo + len(self.seeds)].tolist()

    def __len__(self) -> int:
        return self._size * len(self._values)

    def __iter__(self) -> Iterator[MetricRow]:
        metrics = [(name, self._values[name], self._returned[name]) for name in self.metrics]
        position = 0
        for condition in self.conditions:
            for replicate, seed in enumerate(self.seeds):
                for name, values, returned in metrics:
                    value = values[position] if returned[position] else None
                    yield MetricRow(condition, replicate, seed, name, value)
                position += 1


def replicate_entries(plan: Plan, manifests: Manifests, condition: str, replicate: int) -> list[ManifestStep]:
    """The manifest entries (one per step, datasource first) of one replicate."""
    steps: list[ManifestStep] = []
    for segment in plan.chain(condition):
        block = plan.block_for(segment, replicate)
        manifest = manifests.get((segment.id, block.lo))
        if manifest is None:
            raise RepliflowError(
                f"repliflow: no manifest for segment {segment.label}, replicates {block.lo}..{block.hi - 1} "
                f"(condition '{condition}'); run snakemake to produce it"
            )
        record = manifest["replicates"][replicate - block.lo]
        if record.get("failed"):  # on_failure: missing
            return []
        width = segment.end - segment.start + 1
        if manifest["hi"] != block.hi or len(record["steps"]) != width:
            raise RepliflowError(
                f"repliflow: the manifest {plan.manifest_path(block)} does not describe replicates "
                f"{block.lo}..{block.hi - 1} of {width} step(s) of segment {segment.label}; delete it "
                "and run snakemake again to rebuild it"
            )
        steps.extend(record["steps"])
    return steps


def failed_replicates(plan: Plan, manifests: Manifests) -> dict[str, list[FailedReplicate]]:
    """Per condition, the replicates that failed under ``on_failure: missing``:
    ``{"replicate", "step", "error"}`` of the first failure on its chain."""
    by_segment: dict[str, list[ManifestReplicate]] = {}
    for (segment_id, _), manifest in manifests.items():
        by_segment.setdefault(segment_id, []).extend(r for r in manifest["replicates"] if r.get("failed"))
    failed: dict[str, list[FailedReplicate]] = {}
    for condition in plan.conditions:
        first: dict[int, FailedReplicate] = {}
        for segment in plan.chain(condition.name):  # datasource first
            for record in by_segment.get(segment.id, []):
                if record["replicate"] < plan.replicates:
                    first.setdefault(
                        record["replicate"], {"replicate": record["replicate"], **record["failed"]}
                    )
        if first:
            failed[condition.name] = [first[r] for r in sorted(first)]
    return failed


def _metric_value(value: object, *, metric: str, condition: str, replicate: int, key: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str) and hasattr(value, "__float__"):  # numbers, bools, NumPy scalars
        return float(value)
    raise RepliflowError(
        f"repliflow: metric '{metric}' of condition '{condition}', replicate {replicate} is "
        f"{type(value).__name__} {value!r}, not a number (output {key}); the last step must return "
        "{metric name: number}"
    )


def collect_metrics(plan: Plan, manifests: Manifests) -> MetricTable:
    """The metrics of every condition x replicate, read from the store as each
    last step's output is loaded (one output decoded at a time)."""
    table = MetricTable([c.name for c in plan.conditions], plan.seeds())
    read: dict[str, int] = {}  # key -> the position that read it (conditions may share an output)
    position = 0
    for condition in plan.conditions:
        for replicate in range(plan.replicates):
            entries = replicate_entries(plan, manifests, condition.name, replicate)
            if entries:  # else it failed (on_failure: missing): its metrics are missing
                entry = entries[-1]
                key = entry["key"]
                if key in read:
                    table.copy(read[key], position)
                else:
                    # the manifest already holds file, format and sha256: no sidecar read per output
                    outputs, _ = storage.load(plan.store_dir, key, entry)
                    table.put(position, outputs, condition=condition.name, replicate=replicate, key=key)
                    read[key] = position
            position += 1
    return table


def metrics_csv(rows: Iterable[MetricRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["condition", "replicate", "seed", "metric", "value"])
    for row in rows:
        value = "" if row.value is None else repr(row.value)
        writer.writerow([row.condition, row.replicate, row.seed, row.metric, value])
    return buffer.getvalue()


def _plain(value: object) -> object:
    """JSON-safe copy: NaN and infinities become null, NumPy scalars Python ones."""
    if isinstance(value, dict):
        return _plain_dict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _plain_dict(value: Mapping[Any, object]) -> dict[str, Any]:
    """``_plain`` of a mapping: a JSON object."""
    return {str(k): _plain(v) for k, v in value.items()}


def _verify(
    hypothesis: dict[str, Any], verifier: Verifier, baseline: list[float], treatment: list[float], name: str
) -> dict[str, Any]:
    spec, metric = hypothesis["verifier"], hypothesis["metric"]
    # an equivalence test's bounds are the hypothesis' sesoi, not a param
    bounds = {"sesoi": hypothesis.get("sesoi")} if spec in EQUIVALENCE else {}
    try:
        result = verifier(baseline, treatment, **(hypothesis.get("params") or {}), **bounds)
    except Exception as exc:
        raise RepliflowError(
            f"repliflow: verifier '{spec}' of hypothesis '{hypothesis['name']}' failed on metric "
            f"'{metric}' for treatment '{name}': {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(result, dict) or "p_value" not in result or "significant" not in result:
        raise RepliflowError(
            f"repliflow: verifier '{spec}' of hypothesis '{hypothesis['name']}' returned {result!r}; a "
            "verifier returns a dict holding at least 'p_value' and 'significant'"
        )
    return _plain_dict(result)


def _correct(results: list[dict[str, Any]], correction: str, alpha: float, equivalence: list[bool]) -> None:
    """Adjust the p-values of a correction family (every treatment of its
    hypotheses) together; decide ``significant`` on the adjusted one, and say
    the ``verdict``: an equivalence test's (TOST) "equivalent" or "not shown
    equivalent", a difference test's "difference" or "no difference found"
    (which is not a finding of equivalence), or "not tested"."""
    raw = [result["p_value"] for result in results]
    for result, p_raw, p_adj, tost in zip(results, raw, adjust(raw, correction), equivalence, strict=True):
        adjusted = None if math.isnan(p_adj) else p_adj
        result["significant_raw"] = bool(result["significant"])
        significant = adjusted is not None and adjusted < alpha
        result.update(
            p_value=adjusted,
            p_value_raw=p_raw,
            p_value_adjusted=adjusted,
            correction=correction,
            significant=significant,
        )
        if tost:
            result["equivalent"] = significant
        if adjusted is None:
            result["verdict"] = "not tested"
        elif tost:
            result["verdict"] = "equivalent" if significant else "not shown equivalent"
        else:
            result["verdict"] = "difference" if significant else "no difference found"


def run_hypotheses(
    plan: Plan, rows: MetricTable, workdir: str | None = None, look: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """hypotheses.json (without ``failed_replicates``). For a sequential
    design, ``look`` is the stopping look's record (``engine.looks``): each
    comparison is tested on the replicates up to the look where it stopped,
    and its result carries the sequential inference."""
    stops = looks.comparison_stops(look) if look is not None else {}
    present = [metric for metric in rows.metrics if rows.returned(metric)]
    treatments = [c.name for c in plan.conditions if c.name != BASELINE]
    out: list[dict[str, Any]] = []
    for index, hypothesis in enumerate(plan.hypotheses):
        name, metric, spec = hypothesis["name"], hypothesis["metric"], hypothesis["verifier"]
        if metric not in present:
            raise RepliflowError(
                f"repliflow: hypothesis '{name}' tests metric '{metric}', which the last step never "
                f"returned (metrics: {', '.join(present) or 'none'}); fix hypotheses.*.metric in the config"
            )
        params = hypothesis.get("params") or {}
        check_params(spec, params, key=f"hypotheses.{index}.params")
        verifier = resolve_verifier(spec, workdir)
        baseline = rows.column(BASELINE, metric)
        results = {}
        for treatment in treatments:
            stop = stops.get((name, treatment))
            if stop is None:
                results[treatment] = _verify(
                    hypothesis, verifier, baseline, rows.column(treatment, metric), treatment
                )
                continue
            n = stop["replicates"]  # a stopped comparison keeps its stopping look's numbers
            b, t = baseline[:n], rows.column(treatment, metric)[:n]
            results[treatment] = _verify(hypothesis, verifier, b, t, treatment)
            looks.annotate(results[treatment], stop, plan, hypothesis, b, t)
        correction = hypothesis.get("correction", DEFAULT_CORRECTION)
        alpha = float(params.get("alpha", next(iter(results.values()), {}).get("alpha") or 0.05))
        entry: dict[str, Any] = {
            "name": name,
            "metric": metric,
            "verifier": spec,
            "params": params,
            "correction": correction,
            "correction_family": family_of(hypothesis),
            "alpha": alpha,
            "results": results,
        }
        if hypothesis.get("sesoi"):
            entry["sesoi"] = hypothesis["sesoi"]
        out.append(entry)
    # corrections: per family, over every treatment of its hypotheses (the planner
    # checked that they share correction and alpha); sequential: of the stagewise p-values
    families: dict[str, list[dict[str, Any]]] = {}
    for entry in out:
        families.setdefault(entry["correction_family"], []).append(entry)
    for members in families.values():
        family = [(entry, result) for entry in members for result in entry["results"].values()]
        _correct(
            [result for _, result in family],
            members[0]["correction"],
            members[0]["alpha"],
            [entry["verifier"] in EQUIVALENCE for entry, _ in family],
        )
        for entry in members:
            entry["family_size"] = len(family)
    for entry in out:
        metric, results = entry["metric"], entry["results"]
        ranking = sorted(
            treatments,
            key=lambda t: (
                results[t]["p_value"] is None,
                results[t]["p_value"] or 0.0,
                results[t]["p_value_raw"] if results[t]["p_value_raw"] is not None else math.inf,
                treatments.index(t),
            ),
        )
        missing = {
            condition: [r for r, v in enumerate(rows.column(condition, metric)) if not math.isfinite(v)]
            for condition in [BASELINE, *treatments]
        }
        entry.update(ranking=ranking, missing_replicates=missing)
    return {"hypotheses": out}


def _versions() -> dict[str, str]:
    versions = {}
    for name in [
        "repliflow",
        "snakemake",
        "numpy",
        "pandas",
        "scipy",
        "matplotlib",
        "pyyaml",
        "pulp",
        "pyarrow",
    ]:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def build_provenance(plan: Plan, manifests: Manifests, config_files: str) -> dict[str, Any]:
    """provenance.json without its ``outputs`` (write_provenance streams them)."""
    code_path = plan.code_path
    return {
        "schema": PROVENANCE_SCHEMA,
        "experiment": plan.experiment,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": plan.config,
        "config_hash": hashing.digest(plan.config, 64),
        "config_files": config_files,
        "code": {
            "source": plan.code,
            "sha256": hashing.sha256_file(str(code_path)),
            "steps": {
                step.name: {"function": step.function, "code_hash": step.code_hash}
                for step in plan.conditions[0].steps
            },
        },
        "seeds": {"base": plan.seed, "replicates": plan.seeds()},
        "conditions": {
            c.name: {
                "params": {step.name: step.params for step in c.steps},
                "segments": [s.label for s in plan.chain(c.name)],
            }
            for c in plan.conditions
        },
        "batch": {"replicates_per_job": plan.block_size},
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "host": socket.gethostname(),
            "packages": _versions(),
        },
    }


def aggregate(plan: Plan, manifest_paths: Iterable[str | Path], out_dir: Path, config_files: str) -> None:
    look = None
    if plan.sequential is not None:  # the replicates up to the look where the run stopped
        look = looks.recorded_stop(plan, out_dir.parent.parent)
        if look is None:
            raise RepliflowError(
                f"repliflow: the looks of the sequential design under {plan.layout.looks} have not "
                "decided yet; run snakemake to make them"
            )
        plan = plan.truncated(int(look["replicates"]))
    paths = [str(path) for path in manifest_paths]
    stamps = reconcile.manifest_stamps(paths)
    manifests = read_manifests(paths)
    try:
        rows = collect_metrics(plan, manifests)
    except StoreMismatch as exc:
        raise _set_aside(plan, manifests, exc) from None
    hypotheses = run_hypotheses(plan, rows, look=look)
    if look is not None:
        hypotheses["sequential"] = looks.summary(plan, look)
    failed = failed_replicates(plan, manifests)
    if failed:  # on_failure: missing; each is also in its hypotheses' missing_replicates
        hypotheses["failed_replicates"] = failed
    provenance = build_provenance(plan, manifests, config_files)
    # what the manifests list, for the next run's reconciliation (which then parses none of them)
    by_path = {
        plan.manifest_path(block): manifests[(segment.id, block.lo)]
        for segment in plan.segments.values()
        for block in plan.blocks(segment)
        if (segment.id, block.lo) in manifests
    }
    work = summary.recorded_work(plan, by_path)  # from the manifests read above, not read again
    if work is not None:  # what this run computed, reused from the store and repaired
        provenance["work"] = work
    if plan.store is not None:  # outputs' store/... paths are in this shared store
        provenance["store"] = plan.store
    tables = {
        METRICS: metrics_csv(rows).encode(),
        HYPOTHESES: json.dumps(hypotheses, indent=2, allow_nan=False).encode(),
    }
    provenance["results"] = {name: hashing.sha256_hex(data) for name, data in tables.items()}
    for name, data in tables.items():
        storage.atomic_write(out_dir / name, data)
    write_provenance(out_dir / PROVENANCE, provenance, iter_provenance_outputs(plan, manifests))
    keep_last_good(out_dir, [*tables, PROVENANCE])
    reconcile.remember_manifests(by_path, stamps)


def _set_aside(plan: Plan, manifests: Manifests, exc: StoreMismatch) -> RepliflowError:
    """Move what does not match out of the way, so that the next run repairs
    it (reconcile sees it missing): the edited manifest, or the damaged
    output and its sidecar (to quarantine). Returns the error to stop with."""
    if exc.record_wrong:
        for (segment_id, lo), manifest in manifests.items():
            if any(step["key"] == exc.key for entry in manifest["replicates"] for step in entry["steps"]):
                path = Path(plan.manifest_path(plan.block_for(plan.segments[segment_id], lo)))
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                return RepliflowError(
                    f"{exc}; removed that manifest, {path}: run the same command again to rebuild it"
                )
        return RepliflowError(str(exc))
    names = [os.path.basename(exc.path), f"{exc.key}{SIDECAR_SUFFIX}"]
    moved = storage.quarantine(plan.store_dir, exc.key, names, str(exc), plan.layout.quarantine)
    return RepliflowError(
        f"{exc}; moved {', '.join(moved) or 'nothing'} to {plan.layout.quarantine}: run the same "
        "command again to recompute it"
    )


def keep_last_good(out_dir: Path, names: list[str]) -> None:
    """Hard-link the tables just written into ``last-good/``. Snakemake deletes
    a job's outputs before it runs, so when a later aggregate fails (a
    damaged store the run cannot repair, a verifier that raises), the last
    good tables, the ones the audit checks, are still there. Links cost no
    space; where the file system has none, nothing is kept."""
    folder = out_dir / LAST_GOOD
    pathgate.check_real_dir(folder, "last-good/ folder")
    folder.mkdir(exist_ok=True)
    for name in names:
        staged = folder / f".{name}.{os.getpid()}.tmp"
        try:
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()
            os.link(out_dir / name, staged)
            os.replace(staged, folder / name)
        except OSError:
            return


def write_provenance(path: Path, head: dict[str, Any], outputs: Iterable[OutputEntry]) -> None:
    """Write provenance.json as ``provenance_json`` would (the same text), with
    the outputs encoded and written one at a time, through a temp file that
    is then renamed: the whole text is never in memory."""
    text = json.dumps(
        {key: value for key, value in head.items() if key != "outputs"}, indent=1, allow_nan=False
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as handle:
            handle.write(f'{text[:-2]},\n "outputs": [')
            separator = "\n  "
            for entry in outputs:
                handle.write(separator + json.dumps(entry, allow_nan=False))
                separator = ",\n  "
            handle.write("]\n}" if separator == "\n  " else "\n ]\n}")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def provenance_json(provenance: dict[str, Any]) -> str:
    """provenance.json's text: indented, with one line per output.

    ``json.dumps(indent=...)`` runs the pure-Python encoder; each output is
    encoded by the C encoder on a line of its own instead (40,000 outputs:
    0.18 s instead of 0.35 s), which also keeps the file readable line by
    line. The same JSON value.
    """
    head = {key: value for key, value in provenance.items() if key != "outputs"}
    text = json.dumps(head, indent=1, allow_nan=False)
    if "outputs" not in provenance:
        return text
    lines = ",\n  ".join(json.dumps(entry, allow_nan=False) for entry in provenance["outputs"])
    outputs = f'"outputs": [\n  {lines}\n ]' if lines else '"outputs": []'
    return f"{text[:-2]},\n {outputs}\n}}" if head else f"{{\n {outputs}\n}}"


def run_job(spec_file: str, log_path: str, figure_process: drawing.FigureProcess | None = None) -> None:
    """The ``aggregate`` job (``python -m repliflow.snakemake.summary aggregate``):
    the tables, then the report rendered from them. One job rather than two:
    the report needs the same numpy and scipy imports, which cost more than
    rendering it at the end of every run.

    ``figure_process``: the process the entry point forked before importing
    this module (``repliflow.report.drawing``), which draws the figures; None
    draws them here.

    Only the tables can fail the job. The report never does (``report.publish``):
    what it cannot show, or why it could not be rendered at all, goes to the
    log, to stderr and into the report, and the last report that rendered is
    kept as ``last-good/report.html``."""
    from repliflow.report import document as report
    from repliflow.snakemake.hooks import skip_final_collection
    from repliflow.snakemake.summary import read_spec, summary_manifests

    skip_final_collection()  # scipy's and matplotlib's objects: 0.3 s at exit otherwise
    try:
        with open(log_path, "w") as log:
            try:
                config, config_files = read_spec(spec_file)
                plan = build_plan(config)
                manifests = summary_manifests(plan)
                out_dir = Path(plan.layout.root)
                aggregate(plan, manifests, out_dir, config_files)
            except RepliflowError as exc:
                print(str(exc), file=log)
                print(str(exc), file=sys.stderr)
                sys.exit(1)
            print(f"aggregated {len(manifests)} manifests", file=log, flush=True)
            figures = Path(plan.layout.table("figures"))  # for Snakemake's report (--report)
            html, md = Path(plan.layout.table("report.html")), Path(plan.layout.table("report.md"))
            if report.publish(out_dir, html, md, log, figures, figure_process):
                print(f"wrote {html} and {md}", file=log)
    finally:
        if figure_process is not None:
            figure_process.close()
