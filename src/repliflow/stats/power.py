"""Power and replicate planning.

For every hypothesis x treatment of a finished run: the standardised effect
(the observed difference in means, or a given one, over the observed SD: the
pooled SD of the two conditions, or the SD of the replicate-paired
differences for paired tests), the power the current replicates have, and the
replicates per condition that reach the target power (80% by default).

Power is the noncentral t's (``scipy.stats.nct``), as R's ``power.t.test``
and statsmodels' ``TTestIndPower``/``TTestPower`` compute it: two independent
samples of n (df 2n - 2, noncentrality d sqrt(n/2)) or n pairs (df n - 1,
noncentrality d_z sqrt(n)). Rank tests are planned as their t-test with n
scaled by the asymptotic relative efficiency 3/pi (Mann-Whitney and Wilcoxon
against t under normality; Lehmann 1975), ``permutation`` and ``bootstrap``
as Welch's t (their large-sample equivalent), a custom verifier as Welch's t.
With k treatments each comparison is planned at the level a correction
demands of a lone true effect (alpha / k; alpha with ``correction: none``).

Raising ``replicates`` only adds jobs (the existing replicates are cached), so
the plan ends with the exact command that extends the run. That command is
built from the user's own inputs only (run in the current directory, with the
config file they name): a results folder may come from someone else, so no
string from its records (provenance.json's ``config_files`` included) is ever
put into it. When the record says the run read another config than
config/config.yaml, a note says to add ``--configfile`` without repeating it.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
from scipy import stats

from repliflow.snakemake.command import DEFAULT_CONFIG
from repliflow.stats import BUILTIN_NAMES, DEFAULT_CORRECTION, PAIRED, RANK_BASED
from repliflow.stats.builtin import flat
from repliflow.stats.corrections import per_comparison_alpha
from repliflow.stats.effect import FloatArray

if TYPE_CHECKING:
    from repliflow.report.tables import Results

TARGET_POWER = 0.8
ARE_RANK = 3 / math.pi
MAX_REPLICATES = 10_000_000


def power(
    effect: float, n: float, *, alpha: float = 0.05, alternative: str = "two-sided", paired: bool = False
) -> float:
    """Power of a t-test at standardised effect ``effect`` (signed, treatment
    minus baseline) with ``n`` replicates per condition (or ``n`` pairs)."""
    if math.isnan(effect):
        return math.nan
    if math.isinf(effect):  # zero variance: certain, unless a one-sided test looks the other way
        wrong_way = (alternative == "greater" and effect < 0) or (alternative == "less" and effect > 0)
        return 0.0 if wrong_way else 1.0
    df = n - 1 if paired else 2 * n - 2
    if df <= 0:
        return math.nan
    ncp = effect * math.sqrt(n if paired else n / 2)
    if alternative == "greater":
        return float(stats.nct.sf(stats.t.isf(alpha, df), df, ncp))
    if alternative == "less":
        return float(stats.nct.cdf(-stats.t.isf(alpha, df), df, ncp))
    crit = stats.t.isf(alpha / 2, df)
    return float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))


def replicates_needed(
    effect: float,
    *,
    target: float = TARGET_POWER,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    paired: bool = False,
    efficiency: float = 1.0,
) -> int | None:
    """The fewest replicates per condition (>= 2) whose power reaches ``target``;
    None when no number does (no effect, the wrong direction for a one-sided
    test, or more than MAX_REPLICATES)."""
    if math.isnan(effect) or effect == 0:
        return None

    def enough(n: int) -> bool:
        return power(effect, n * efficiency, alpha=alpha, alternative=alternative, paired=paired) >= target

    lo, hi = 1, 2
    while not enough(hi):
        lo, hi = hi, hi * 2
        if hi > MAX_REPLICATES:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


def permutation_replicates(alpha: float, alternative: str = "two-sided", paired: bool = False) -> int:
    """With no variation the permutation test rejects exactly when its smallest
    attainable p-value (1 or 2 relabellings out of all of them) is below alpha:
    the fewest replicates per condition for which it is."""
    tails = 2 if alternative == "two-sided" else 1
    n = 2
    while tails / (2**n if paired else math.comb(2 * n, n)) >= alpha:
        n += 1
    return n


@dataclass
class Row:
    """The plan for one hypothesis x treatment."""

    hypothesis: str
    metric: str
    treatment: str
    verifier: str
    design: str  # "paired" or "unpaired"
    planned_as: str
    alpha: float
    alpha_per_comparison: float
    alternative: str
    effect: float  # difference in means, metric units
    effect_source: str  # "observed" or "given"
    sd: float
    standardized_effect: float
    replicates: int
    power: float
    replicates_needed: int | None
    note: str = ""


def _plan_as(verifier: str) -> tuple[bool, float, str]:
    """(paired, efficiency against the t-test, what the plan models)."""
    if verifier in PAIRED:
        if verifier in RANK_BASED:
            return True, ARE_RANK, "paired t, n × 3/π"
        return True, 1.0, "paired t"
    if verifier in RANK_BASED:
        return False, ARE_RANK, "Welch t, n × 3/π"
    if verifier == "student_t":
        return False, 1.0, "Student t"
    if verifier in BUILTIN_NAMES:
        return False, 1.0, "Welch t"
    return False, 1.0, "Welch t (custom verifier)"


def _pairs(baseline: Sequence[float], treatment: Sequence[float]) -> FloatArray:
    a, b = np.asarray(baseline, np.float64), np.asarray(treatment, np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    return b[both] - a[both]


def replicate_row(
    hypothesis: Mapping[str, Any],
    treatment: str,
    baseline_values: Sequence[float],
    treatment_values: Sequence[float],
    *,
    k: int,
    effect: float | None = None,
    target: float = TARGET_POWER,
) -> Row:
    params = hypothesis.get("params") or {}
    verifier = hypothesis["verifier"]
    alpha = float(params.get("alpha", 0.05))
    alternative = params.get("alternative", "two-sided")
    correction = hypothesis.get("correction", DEFAULT_CORRECTION)
    alpha_c = per_comparison_alpha(alpha, k, correction)
    paired, efficiency, planned_as = _plan_as(verifier)
    a = np.asarray([v for v in baseline_values if math.isfinite(v)])
    b = np.asarray([v for v in treatment_values if math.isfinite(v)])
    if paired:
        diffs = _pairs(baseline_values, treatment_values)
        n = len(diffs)
        observed = float(diffs.mean()) if n else math.nan
        sd = float(diffs.std(ddof=1)) if n > 1 else math.nan
        scale = max(np.abs(a).max(initial=0), np.abs(b).max(initial=0))
        constant = n > 1 and flat(diffs, scale)
    else:
        n = min(len(a), len(b))
        observed = float(b.mean() - a.mean()) if n else math.nan
        sd = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2) if n > 1 else math.nan
        constant = n > 1 and flat(a) and flat(b)
    if constant:
        sd = 0.0
    diff = observed if effect is None else float(effect)
    note = ""
    if math.isnan(sd):
        d = math.nan
        note = "fewer than 2 values: no variance to plan with"
    elif sd == 0:
        d = math.nan if diff == 0 else math.copysign(math.inf, diff)
        note = "zero variance" if diff else "no variation"
    else:
        d = diff / sd
    if not note and diff == 0:
        note = "no difference to detect"
    if math.isinf(d):
        planned_as = "exact permutation test"
        # the direction the alternative looks in
        reachable = power(d, 2, alpha=alpha_c, alternative=alternative, paired=paired) == 1.0
        needed = permutation_replicates(alpha_c, alternative, paired) if reachable else None
        achieved = float(needed is not None and n >= needed)
    else:
        achieved = (
            power(d, n * efficiency, alpha=alpha_c, alternative=alternative, paired=paired)
            if n > 1
            else math.nan
        )
        needed = replicates_needed(
            d, target=target, efficiency=efficiency, alpha=alpha_c, alternative=alternative, paired=paired
        )
    return Row(
        hypothesis=hypothesis["name"],
        metric=hypothesis["metric"],
        treatment=treatment,
        verifier=verifier,
        design="paired" if paired else "unpaired",
        planned_as=planned_as,
        alpha=alpha,
        alpha_per_comparison=alpha_c,
        alternative=alternative,
        effect=diff,
        effect_source="observed" if effect is None else "given",
        sd=sd,
        standardized_effect=d,
        replicates=n,
        power=achieved,
        replicates_needed=needed,
        note=note,
    )


def extend_command(replicates: int, configfile: str | None = None, cores: str = "all") -> str:
    """The command that extends a run to ``replicates`` per condition, with
    ``--configfile`` when the user gave one (never a path from a record)."""
    parts = ["snakemake", "--cores", cores]
    if configfile:
        parts += ["--configfile", configfile]
    parts += ["--config", f"replicates={replicates}"]
    return shlex.join(parts)


def read_another_config(provenance: Mapping[str, Any]) -> bool:
    """Whether provenance.json says the run read a config file other than
    config/config.yaml; only this yes or no is taken from the record."""
    recorded = provenance.get("config_files")
    if not isinstance(recorded, str):
        return False
    files = [name.strip() for name in recorded.split(",")]
    files = [name for name in files if name and not name.startswith("(")]
    return bool(files) and files != [DEFAULT_CONFIG]


class ExtendCommand(TypedDict):
    replicates: int
    reaches_target_for: list[str]  # "hypothesis/treatment"
    command: str


class ReplicatePlan(TypedDict):
    """``repliflow power``'s plan (``--json`` prints it, NaN as null)."""

    target_power: float
    replicates: int  # per condition now
    rows: list[dict[str, Any]]  # Row's fields
    configfile: str | None
    extend: list[ExtendCommand]
    note: str


def replicate_plan(
    results: Results,
    *,
    effect: float | None = None,
    target: float = TARGET_POWER,
    hypothesis: str | None = None,
    configfile: str | None = None,
) -> ReplicatePlan:
    """The replicate plan of a results directory (``repliflow.report.tables.Results``);
    ``configfile`` is the user's config for the run, passed on to the commands."""
    rows: list[Row] = []
    for h in results.hypotheses:
        if hypothesis is not None and h["name"] != hypothesis:
            continue
        treatments = list(h["results"])
        for treatment in treatments:
            rows.append(
                replicate_row(
                    h,
                    treatment,
                    results.values.get(("baseline", h["metric"]), []),
                    results.values.get((treatment, h["metric"]), []),
                    k=len(treatments),
                    effect=effect,
                    target=target,
                )
            )
    current = results.provenance.get("config", {}).get("replicates")
    if current is None:
        current = max((len(v) for v in results.values.values()), default=0)
    wanted = sorted(
        {r.replicates_needed for r in rows if r.replicates_needed and r.replicates_needed > current}
    )
    commands: list[ExtendCommand] = [
        {
            "replicates": n,
            "reaches_target_for": [
                f"{r.hypothesis}/{r.treatment}"
                for r in rows
                if r.replicates_needed and current < r.replicates_needed <= n
            ],
            "command": extend_command(n, configfile),
        }
        for n in wanted
    ]
    note = ""
    if commands and configfile is None and read_another_config(results.provenance):
        note = (
            f"the run read a config file other than {DEFAULT_CONFIG}: add --configfile <your config> to "
            "these commands (or give it to repliflow power --configfile)"
        )
    return {
        "target_power": target,
        "replicates": current,
        "rows": [asdict(r) for r in rows],
        "configfile": configfile,
        "extend": commands,
        "note": note,
    }


def format_replicate_plan(result: ReplicatePlan, results_dir: str) -> str:
    """``repliflow power``'s text output."""
    target = f"{result['target_power'] * 100:.0f}%"
    headers = [
        "hypothesis/treatment",
        "planned as",
        "difference",
        "SD",
        "d",
        "alpha",
        "n",
        "power",
        f"n for {target}",
    ]
    table = [headers]
    for r in result["rows"]:
        table.append(
            [
                f"{r['hypothesis']}/{r['treatment']}",
                r["planned_as"],
                f"{r['effect']:.4g}",
                f"{r['sd']:.4g}",
                f"{r['standardized_effect']:.3g}",
                f"{r['alpha_per_comparison']:.3g}",
                str(r["replicates"]),
                f"{r['power']:.2f}",
                str(r["replicates_needed"] or "-") + (f"  ({r['note']})" if r["note"] else ""),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(headers) - 1)]
    source = "given" if any(r["effect_source"] == "given" for r in result["rows"]) else "observed"
    lines = [
        f"power in {results_dir}: {result['replicates']} replicates per condition now; "
        f"differences are {source}"
    ]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in table
    ]
    if not result["rows"]:
        lines.append("no hypotheses: nothing to plan")
    elif result["extend"]:
        lines.append("raising replicates only adds jobs (existing replicates are reused); to extend the run:")
        for e in result["extend"]:
            lines.append(f"  # {target} power for {', '.join(e['reaches_target_for'])}")
            lines.append(f"  {e['command']}")
        if result.get("note"):
            lines.append(f"note: {result['note']}")
    else:
        lines.append(f"the current replicates already give {target} power wherever a difference was seen")
    return "\n".join(lines)


def jsonable(value: object) -> object:
    """A JSON-safe copy: NaN and infinities become null."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
