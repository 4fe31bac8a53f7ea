"""Sequential designs in the workflow: what each look decides, and which
replicates a run therefore needs.

A config with ``sequential: {looks: K, spending: ...}`` runs its replicates in
K equal looks (``Plan.sequential``; ``replicates`` is the most). The
checkpoint rule ``look`` (workflow/rules/sequential.smk) runs ``evaluate``
after the replicates of look k are stored: for every hypothesis x treatment
it runs the verifier on the replicates of each look so far, converts its
p-value to z (``stats.sequential.z_from_p``, signed by the mean difference)
and lets ``stats.sequential.decide`` say whether the comparison crossed its
efficacy boundary. A comparison that stopped keeps the numbers of its
stopping look (later looks are not tested for it); the experiment continues
while any comparison has not stopped and k < K. The decisions go to
``results/<exp>/looks/look-<k>.json``.

The rules that need every block (``aggregate``, ``view``) get their manifests
from ``sequential_manifests``, which walks the looks through the checkpoint:
replicates past the stopping look are never requested, so never computed,
and since the look files are outputs, a resumed run picks up at the first
look not yet decided. ``recorded_stop`` reads the same walk from the files
alone, for ``repliflow status``, the store check before a run, the view and
the aggregate (``run_plan``: the plan cut to the replicates the run made).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repliflow.core.plan import BASELINE, Plan, Sequential
from repliflow.errors import RepliflowError
from repliflow.store import storage
from repliflow.store.pathgate import read_json

if TYPE_CHECKING:
    from snakemake.script import Snakemake

    from repliflow.engine.aggregate import MetricTable
    from repliflow.stats.sequential import Design

LOOK_SCHEMA = "repliflow.look/1"
# |z| is recorded at most this large: a p-value that underflows to 0 gives an
# infinite z, which JSON cannot hold (and no boundary is anywhere near it).
Z_LIMIT = 37.5


def settings(hypothesis: Mapping[str, Any]) -> tuple[float, str]:
    """A hypothesis' alpha and alternative (the design's level and sides)."""
    params = hypothesis.get("params") or {}
    return float(params.get("alpha", 0.05)), str(params.get("alternative", "two-sided"))


def design_of(plan: Plan, hypothesis: Mapping[str, Any]) -> Design:
    """The group-sequential design of ``hypothesis``' comparisons."""
    from repliflow.stats.sequential import group_sequential_design

    if plan.sequential is None:
        raise RepliflowError(f"repliflow: experiment '{plan.experiment}' has no sequential design")
    alpha, alternative = settings(hypothesis)
    memo: dict[tuple[float, str], Design] = plan._memo.setdefault("designs", {})
    if (alpha, alternative) not in memo:
        memo[(alpha, alternative)] = group_sequential_design(
            plan.sequential.looks, alpha, plan.sequential.spending, alternative=alternative
        )
    return memo[(alpha, alternative)]


def z_of(result: Mapping[str, Any], alternative: str) -> float | None:
    """The z statistic of a verifier's result: its p-value converted, signed
    by its mean difference (treatment minus baseline); None without a p-value."""
    from repliflow.stats.sequential import z_from_p

    p = result.get("p_value")
    if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:  # None or NaN: not tested
        return None
    effect = result.get("mean_difference")
    if not isinstance(effect, (int, float)) or not math.isfinite(effect):
        effect = 0.0
    z = z_from_p(float(p), float(effect), alternative)
    return max(-Z_LIMIT, min(Z_LIMIT, z))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def evaluate(plan: Plan, look: int, table: MetricTable, workdir: str | None = None) -> dict[str, Any]:
    """The look file's content at ``look`` (1-based), from the metrics of the
    replicates up to it (``table``: at least that many)."""
    from repliflow.engine.aggregate import _verify
    from repliflow.stats.registry import resolve_verifier
    from repliflow.stats.sequential import decide

    sequential = plan.sequential
    if sequential is None:
        raise RepliflowError(f"repliflow: experiment '{plan.experiment}' has no sequential design")
    treatments = [c.name for c in plan.conditions if c.name != BASELINE]
    comparisons: list[dict[str, Any]] = []
    for hypothesis in plan.hypotheses:
        name, metric = hypothesis["name"], hypothesis["metric"]
        verifier = resolve_verifier(hypothesis["verifier"], workdir)
        design = design_of(plan, hypothesis)
        alpha, alternative = settings(hypothesis)
        baseline = table.column(BASELINE, metric)
        if not baseline:
            raise RepliflowError(
                f"repliflow: hypothesis '{name}' tests metric '{metric}', which the last step never "
                "returned; fix hypotheses.*.metric in the config"
            )
        for treatment in treatments:
            values = table.column(treatment, metric)
            zs: list[float] = []
            p_values: list[float | None] = []
            notes: list[str] = []
            for j in range(1, look + 1):
                n = sequential.replicates_at(j)
                result = _verify(hypothesis, verifier, baseline[:n], values[:n], treatment)
                z = z_of(result, alternative)
                p = result.get("p_value")
                p_values.append(float(p) if isinstance(p, (int, float)) and math.isfinite(p) else None)
                if z is None:
                    notes.append(f"look {j}: not tested ({result.get('note', 'no p-value')}); z taken as 0")
                    z = 0.0
                zs.append(z)
                decision = decide(design, zs)
                if decision.stopped:
                    break
            comparisons.append(
                {
                    "hypothesis": name,
                    "treatment": treatment,
                    "metric": metric,
                    "verifier": hypothesis["verifier"],
                    "alpha": alpha,
                    "alternative": alternative,
                    "bounds": [_finite(b) for b in design.bounds],
                    "z": zs,
                    "p_values_nominal": p_values,
                    "look": decision.look,
                    "replicates": sequential.replicates_at(decision.look),
                    "reason": decision.reason,
                    "stopped": decision.stopped,
                    "bound": _finite(decision.bound),
                    "p_value_stagewise": decision.p_value,
                    **({"notes": notes} if notes else {}),
                }
            )
    running = [c for c in comparisons if not c["stopped"]]
    return {
        **_identity(plan, sequential, look),
        "max_replicates": sequential.max_replicates,
        "schedule": list(sequential.schedule),
        "continue": bool(running) and look < sequential.looks,
        "comparisons": comparisons,
    }


def _identity(plan: Plan, sequential: Sequential, look: int) -> dict[str, Any]:
    """The fields that tie a look file to its experiment, design and look."""
    return {
        "schema": LOOK_SCHEMA,
        "experiment": plan.experiment,
        "look": look,
        "looks": sequential.looks,
        "spending": sequential.spending,
        "replicates": sequential.replicates_at(look),
    }


def read_look(plan: Plan, path: str | Path, look: int) -> dict[str, Any]:
    """A look file of ``plan`` at ``look``, checked to be of this design;
    raises RepliflowError for a broken or foreign one."""
    record = read_json(Path(path), "look record")
    sequential = plan.sequential
    if sequential is None:
        raise RepliflowError(f"repliflow: experiment '{plan.experiment}' has no sequential design")
    expected = _identity(plan, sequential, look)
    if not isinstance(record, dict):
        raise RepliflowError(f"repliflow: {path} does not hold a look record")
    wrong = [key for key, value in expected.items() if record.get(key) != value]
    if (
        wrong
        or not isinstance(record.get("continue"), bool)
        or not isinstance(record.get("comparisons"), list)
    ):
        what = ", ".join(f"{key} {record.get(key)!r} (expected {expected[key]!r})" for key in wrong)
        raise RepliflowError(
            f"repliflow: {path} is not look {look} of this design{': ' + what if what else ''}; "
            "delete it and run again"
        )
    return record


def stopping_look(plan: Plan, look_file: Callable[[int], str]) -> dict[str, Any]:
    """The record of the look at which the experiment stops, walking the looks
    from the first: ``look_file(k)`` gives look k's file (in the workflow,
    through the checkpoint, which makes Snakemake run the look first)."""
    if plan.sequential is None:
        raise RepliflowError(f"repliflow: experiment '{plan.experiment}' has no sequential design")
    for k in range(1, plan.sequential.looks + 1):
        record = read_look(plan, look_file(k), k)
        if not record["continue"]:
            return record
    raise RepliflowError(
        f"repliflow: look {plan.sequential.looks} (the last) says to continue; delete "
        f"{plan.layout.looks} and run again"
    )


def sequential_manifests(plan: Plan, look_file: Callable[[int], str]) -> list[str]:
    """Every block manifest up to the look at which the experiment stops."""
    return plan.look_manifests(stopping_look(plan, look_file)["look"])


def recorded_looks(plan: Plan, workdir: str | Path = ".") -> list[dict[str, Any]]:
    """The look records on disk, from look 1 up to the first that is missing,
    broken or of another design (the next run makes that one again) or that
    stops the run; empty without a sequential design."""
    if plan.sequential is None:
        return []
    layout = plan.layout_at(workdir)
    found: list[dict[str, Any]] = []
    for k in range(1, plan.sequential.looks + 1):
        try:
            record = read_look(plan, layout.look(k), k)
        except (OSError, RepliflowError):
            break
        found.append(record)
        if not record["continue"]:
            break
    return found


def recorded_stop(plan: Plan, workdir: str | Path = ".") -> dict[str, Any] | None:
    """The stopping look's record if the look files on disk reach a stop,
    else None (no sequential design, or the looks so far continue)."""
    found = recorded_looks(plan, workdir)
    return found[-1] if found and not found[-1]["continue"] else None


def run_plan(plan: Plan, workdir: str | Path = ".") -> Plan:
    """``plan`` cut to the replicates its run makes: those up to the stopping
    look when the look files record one; else the plan itself."""
    record = recorded_stop(plan, workdir)
    return plan if record is None else plan.truncated(int(record["replicates"]))


# --------------------------------------------------------------------------
# the aggregate's part


def expected_replicates(
    plan: Plan, hypothesis: Mapping[str, Any], baseline: Sequence[float], treatment: Sequence[float]
) -> dict[str, Any]:
    """The design's operating characteristics under the hypothesis' ``sesoi``
    (a standardised d as given, or a difference in metric units over the
    SD of these samples: pooled, or of the paired differences): the
    probability of stopping at each look, the power and the expected
    replicates per condition (and those saved against running them all)."""
    from repliflow.stats.power import _pairs, _plan_as, declared_effect
    from repliflow.stats.sequential import drift_for_effect, operating_characteristics

    sequential = plan.sequential
    assert sequential is not None
    paired, efficiency, planned_as = _plan_as(hypothesis["verifier"])
    a = [v for v in baseline if math.isfinite(v)]
    b = [v for v in treatment if math.isfinite(v)]
    if paired:
        differences = _pairs(baseline, treatment)
        sd = float(differences.std(ddof=1)) if len(differences) > 1 else math.nan
    else:
        var_a = _variance(a)
        var_b = _variance(b)
        sd = math.sqrt((var_a + var_b) / 2.0)
    difference, d, source = declared_effect(hypothesis, sd, None)
    if source == "none":
        return {
            "source": "none",
            "note": "declare the hypothesis' sesoi ({d: X} or {value: X}) for the expected replicates "
            "saved under a true effect",
        }
    if not math.isfinite(d):
        return {
            "source": source,
            "effect": _finite(difference),
            "note": "the standard deviation is not known here, so the sesoi has no standardised size",
        }
    design = design_of(plan, hypothesis)
    drift = drift_for_effect(d, sequential.max_replicates, paired=paired) * math.sqrt(efficiency)
    oc = operating_characteristics(design, drift, sequential.max_replicates)
    return {
        "source": source,
        "effect": _finite(difference),
        "effect_d": d,
        "planned_as": planned_as,
        "stop_probabilities": list(oc.stop),
        "power": oc.power,
        "expected_replicates": oc.expected_replicates,
        "saved_replicates": oc.saved_replicates,
        "saved_share": (oc.saved_replicates or 0.0) / sequential.max_replicates,
    }


def _variance(values: Sequence[float]) -> float:
    if len(values) < 2:
        return math.nan
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def comparison_stops(record: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """A stopping look's comparisons by (hypothesis, treatment)."""
    return {(c["hypothesis"], c["treatment"]): c for c in record["comparisons"]}


def annotate(
    result: dict[str, Any],
    stop: Mapping[str, Any],
    plan: Plan,
    hypothesis: Mapping[str, Any],
    baseline: Sequence[float],
    treatment: Sequence[float],
) -> None:
    """Turn a verifier's result at a comparison's stopping look into the
    sequential inference: ``p_value`` becomes the stagewise (adjusted) p-value
    (the verifier's is kept as ``p_value_nominal``), ``significant`` whether
    it crossed the boundary, and ``sequential`` says where and how it stopped."""
    sequential = plan.sequential
    assert sequential is not None
    result["p_value_nominal"] = result.get("p_value")
    result["significant_nominal"] = bool(result.get("significant"))
    result["p_value"] = stop["p_value_stagewise"]
    result["significant"] = stop["reason"] == "efficacy"
    result["sequential"] = {
        "look": stop["look"],
        "looks": sequential.looks,
        "replicates": stop["replicates"],
        "max_replicates": sequential.max_replicates,
        "spending": sequential.spending,
        "decision": stop["reason"],
        "z": stop["z"][-1],
        "z_by_look": stop["z"],
        "boundary": stop["bound"],
        "boundaries": stop["bounds"],
        "p_value_stagewise": stop["p_value_stagewise"],
        "expected": expected_replicates(plan, hypothesis, baseline, treatment),
        **({"notes": stop["notes"]} if stop.get("notes") else {}),
    }


def summary(plan: Plan, record: Mapping[str, Any]) -> dict[str, Any]:
    """hypotheses.json's ``sequential``: the design and where the run stopped."""
    sequential = plan.sequential
    assert sequential is not None
    return {
        "looks": sequential.looks,
        "spending": sequential.spending,
        "futility": False,
        "schedule": list(sequential.schedule),
        "max_replicates": sequential.max_replicates,
        "stopped_at_look": record["look"],
        "replicates": record["replicates"],
    }


# --------------------------------------------------------------------------
# the checkpoint rule


def run_look(plan: Plan, look: int, manifest_paths: Sequence[str], output: Path) -> dict[str, Any]:
    """Evaluate look ``look`` from its block manifests; write its file."""
    from repliflow.engine.aggregate import collect_metrics
    from repliflow.store.provenance import read_manifests

    if plan.sequential is None or not 1 <= look <= plan.sequential.looks:
        raise RepliflowError(f"repliflow: no look {look} in experiment '{plan.experiment}'")
    at_look = plan.truncated(plan.sequential.replicates_at(look))
    table = collect_metrics(at_look, read_manifests(manifest_paths))
    record = evaluate(at_look, look, table)
    output.parent.mkdir(parents=True, exist_ok=True)
    storage.atomic_write(output, json.dumps(record, indent=2, allow_nan=False).encode())
    return record


def describe_look(record: Mapping[str, Any]) -> str:
    """One line per comparison, for the log."""
    lines = [
        f"look {record['look']} of {record['looks']} ({record['replicates']} replicates per condition): "
        + ("continue" if record["continue"] else "stop")
    ]
    for c in record["comparisons"]:
        state = (
            f"stopped at look {c['look']} ({c['reason']})"
            if c["stopped"]
            else f"z = {c['z'][-1]:.3f}, continue"
        )
        lines.append(f"  {c['hypothesis']} / {c['treatment']}: {state}")
    return "\n".join(lines)


def run_from_snakemake(smk: Snakemake) -> None:
    """The ``look`` checkpoint."""
    from repliflow.core.plan import build_plan
    from repliflow.snakemake.hooks import skip_final_collection

    skip_final_collection()
    with open(smk.log[0], "w") as log:
        try:
            plan = build_plan(smk.params.config)
            record = run_look(plan, int(smk.wildcards.k), list(smk.input.manifests), Path(smk.output[0]))
        except RepliflowError as exc:
            print(str(exc), file=log)
            print(str(exc), file=sys.stderr)
            sys.exit(1)
        print(describe_look(record), file=log)
