"""Power, sensitivity and replicate planning.

For every hypothesis x treatment of a finished run, from the observed SD (the
pooled SD of the two conditions, or the SD of the replicate-paired
differences for paired tests):

* the **minimum detectable effect** at the current replicates: the smallest
  true difference the test finds with the target power (80% by default), in
  metric units and standardised (a sensitivity analysis);
* only for a **declared** effect (the hypothesis' ``sesoi``, the smallest
  effect size of interest, or ``repliflow power --effect``): the power the
  current replicates have for it and the replicates per condition that reach
  the target power. Replicates are never planned from the observed
  difference: power computed from it is a restatement of the p-value, and
  for a null result it asks for replicates to chase noise (the "observed
  power" fallacy; Hoenig & Heisey 2001, The American Statistician 55:19-24).

Power is the noncentral t's, as R's ``power.t.test`` and statsmodels'
``TTestIndPower``/``TTestPower`` compute it: two independent samples of n
(df 2n - 2, noncentrality d sqrt(n/2)) or n pairs (df n - 1, noncentrality
d_z sqrt(n)). Each tail is the noncentral t's survival function (a lower tail
as the upper tail of the mirrored distribution: scipy's ``nct.cdf`` returns
NaN far in the lower tail, e.g. ``nct.cdf(-2.01, 49, 14.5)``), so power runs
from alpha (no effect) to 1 (a large one) without NaN. Rank tests are planned
as their t-test with n scaled by the asymptotic relative efficiency 3/pi
(Mann-Whitney and Wilcoxon against t under normality; Lehmann 1975),
``permutation`` and ``bootstrap`` as Welch's t (their large-sample
equivalent), a custom verifier as Welch's t. An equivalence test (TOST) is
planned for a true difference of 0 with its ``sesoi`` as the bounds: its
power is the probability that both one-sided tests reject, taken as
P(A) + P(B) - 1 (a lower bound of P(A and B), PowerTOST's "nct"
approximation), and its sensitivity is the narrowest bound it shows with the
target power. With k comparisons in a correction family each comparison is
planned at the level a correction demands of a lone true effect (alpha / k;
alpha with ``correction: none``).

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
from scipy import special

from repliflow.snakemake.command import DEFAULT_CONFIG
from repliflow.stats import BUILTIN_NAMES, DEFAULT_CORRECTION, EQUIVALENCE, PAIRED, RANK_BASED
from repliflow.stats.builtin import flat
from repliflow.stats.corrections import per_comparison_alpha
from repliflow.stats.effect import FloatArray, norm_sf
from repliflow.stats.rootfind import brentq

try:
    # The Boost survival function scipy.stats.nct.sf calls (scipy >= 1.10): the
    # same numbers without importing scipy.stats. scipy.special's public nctdtr
    # gives NaN in the far lower tail, where planning goes (see upper_tail).
    from scipy.special._ufuncs import _nct_sf
except ImportError:  # a scipy that moved it: scipy.stats' own, at its import cost
    _nct_sf = None

if TYPE_CHECKING:
    from repliflow.report.tables import Results

TARGET_POWER = 0.8
ARE_RANK = 3 / math.pi
MAX_REPLICATES = 10_000_000


def upper_tail(t: float, df: float, ncp: float) -> float:
    """P(T > t) for T noncentral t with ``df`` degrees of freedom and noncentrality
    ``ncp``. scipy's survival function is accurate across the planning range
    (checked in the tests against numerical integration of the density); if it
    ever gives no number, the normal approximation of Abramowitz & Stegun
    26.7.10 stands in."""
    value = _nct_upper(t, df, ncp)
    if not math.isfinite(value):
        z = (t * (1 - 1 / (4 * df)) - ncp) / math.sqrt(1 + t * t / (2 * df))
        value = norm_sf(z)
    return min(1.0, max(0.0, value))


def _nct_upper(t: float, df: float, ncp: float) -> float:
    """``scipy.stats.nct.sf(t, df, ncp)``: for finite t and df > 0 (all that
    planning asks) its Boost function, clipped to [0, 1] as scipy clips it;
    elsewhere scipy.stats itself, which knows the ends of the support."""
    if _nct_sf is None or not (math.isfinite(t) and df > 0):
        from scipy import stats

        return float(stats.nct.sf(t, df, ncp))
    return float(np.clip(_nct_sf(t, df, ncp), 0.0, 1.0))


def t_isf(q: float, df: float) -> float:
    """``scipy.stats.t.isf(q, df)``, the t with upper tail ``q``: for q in (0, 1)
    and df > 0 (all that planning asks) ``0.0 - stdtrit(df, q)`` (not ``-``: scipy
    adds its loc of 0, so q = 0.5 gives 0.0, not -0.0); elsewhere scipy.stats
    itself (stdtrit gives inf at both q = 0 and q = 1)."""
    if not (0 < q < 1 and df > 0):
        from scipy import stats

        return float(stats.t.isf(q, df))
    return 0.0 - float(special.stdtrit(df, q))


def _df_scale(n: float, paired: bool) -> tuple[float, float]:
    """(degrees of freedom, noncentrality per unit of standardised effect)."""
    return (n - 1, math.sqrt(n)) if paired else (2 * n - 2, math.sqrt(n / 2))


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
    df, scale = _df_scale(n, paired)
    if df <= 0:
        return math.nan
    ncp = effect * scale
    if alternative == "greater":
        return upper_tail(t_isf(alpha, df), df, ncp)
    if alternative == "less":  # P(T < -c | ncp) = P(T > c | -ncp): T(ncp) is -T(-ncp)
        return upper_tail(t_isf(alpha, df), df, -ncp)
    crit = t_isf(alpha / 2, df)
    return min(1.0, upper_tail(crit, df, ncp) + upper_tail(crit, df, -ncp))


def tost_power(
    bound: float, n: float, *, alpha: float = 0.05, paired: bool = False, effect: float = 0.0
) -> float:
    """Power of the two one-sided tests to show equivalence within the
    standardised bounds (-bound, bound) when the true standardised difference
    is ``effect``: P(A) + P(B) - 1 for the two one-sided rejections A and B (a
    lower bound of P(A and B); PowerTOST's "nct" method), at least 0."""
    if math.isnan(bound) or math.isnan(effect) or bound <= 0:
        return math.nan if math.isnan(bound) or math.isnan(effect) else 0.0
    df, scale = _df_scale(n, paired)
    if df <= 0:
        return math.nan
    crit = t_isf(alpha, df)
    lower = upper_tail(crit, df, (effect + bound) * scale)  # rejects H0: difference <= -bound
    upper = upper_tail(crit, df, (bound - effect) * scale)  # rejects H0: difference >= bound
    return max(0.0, lower + upper - 1)


def _fewest(enough: Callable[[int], bool]) -> int | None:
    """The fewest replicates (>= 2) for which ``enough`` holds, when it holds for
    every larger number too; None beyond MAX_REPLICATES."""
    lo, hi = 1, 2
    while not enough(hi):
        lo, hi = hi, hi * 2
        if hi > MAX_REPLICATES:
            if enough(MAX_REPLICATES):
                hi = MAX_REPLICATES
                break
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


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
    return _fewest(
        lambda n: power(effect, n * efficiency, alpha=alpha, alternative=alternative, paired=paired) >= target
    )


def tost_replicates_needed(
    bound: float, *, target: float = TARGET_POWER, alpha: float = 0.05, paired: bool = False
) -> int | None:
    """The fewest replicates per condition for which the TOST with standardised
    bounds (-bound, bound) shows equivalence of equal means with power ``target``."""
    if math.isnan(bound) or bound <= 0:
        return None
    return _fewest(lambda n: tost_power(bound, n, alpha=alpha, paired=paired) >= target)


def _smallest(reach: Callable[[float], float], target: float) -> float:
    """The smallest x > 0 with reach(x) >= target, for ``reach`` rising in x."""
    if reach(0.0) >= target:
        return 0.0
    hi = 1.0
    while reach(hi) < target:
        hi *= 2
        if hi > 1e6:
            return math.nan
    return brentq(lambda x: reach(x) - target, 0.0, hi, xtol=1e-10, rtol=1e-10)


def minimum_detectable_effect(
    n: float,
    *,
    target: float = TARGET_POWER,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    paired: bool = False,
    efficiency: float = 1.0,
) -> float:
    """The smallest standardised effect the t-test detects with power ``target``
    at ``n`` replicates per condition (n pairs): positive, negative for
    ``alternative="less"``; NaN below 2 replicates."""
    if _df_scale(n * efficiency, paired)[0] <= 0:
        return math.nan
    sign = -1.0 if alternative == "less" else 1.0

    def reach(d: float) -> float:
        return power(sign * d, n * efficiency, alpha=alpha, alternative=alternative, paired=paired)

    return sign * _smallest(reach, target)


def smallest_equivalence_bound(
    n: float, *, target: float = TARGET_POWER, alpha: float = 0.05, paired: bool = False
) -> float:
    """The narrowest standardised bound the TOST shows with power ``target`` when
    the means are equal, at ``n`` replicates per condition (n pairs)."""
    if _df_scale(n, paired)[0] <= 0:
        return math.nan
    return _smallest(lambda b: tost_power(b, n, alpha=alpha, paired=paired) if b > 0 else 0.0, target)


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
    test: str  # "difference" or "equivalence"
    planned_as: str
    alpha: float
    alpha_per_comparison: float
    alternative: str
    observed_difference: float  # treatment minus baseline, metric units: shown, never planned from
    sd: float
    replicates: int
    # the smallest true difference found with the target power at these replicates
    # (an equivalence test: the narrowest bound shown when the means are equal)
    detectable: float  # metric units
    detectable_standardized: float
    # the declared effect (a difference test) or equivalence bound (TOST); NaN when none
    effect: float  # metric units
    effect_source: str  # "sesoi" (the hypothesis'), "given" (--effect) or "none"
    standardized_effect: float
    power: float  # for the declared effect; NaN when none
    replicates_needed: int | None  # for the declared effect; None when none or none reach it
    note: str = ""


def _plan_as(verifier: str) -> tuple[bool, float, str]:
    """(paired, efficiency against the t-test, what the plan models)."""
    if verifier in EQUIVALENCE:
        return verifier in PAIRED, 1.0, "TOST, paired t" if verifier in PAIRED else "TOST, Welch t"
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


def declared_effect(
    hypothesis: Mapping[str, Any], sd: float, effect: float | None
) -> tuple[float, float, str]:
    """(metric units, standardised, source) of the effect to plan for: ``effect``
    (``--effect``, metric units, signed) when given, else the hypothesis'
    ``sesoi`` (``{"value": x}`` or ``{"d": x}``, a magnitude, pointed the way a
    one-sided alternative looks), else none (NaN, NaN, "none")."""
    alternative = (hypothesis.get("params") or {}).get("alternative", "two-sided")
    sign = -1.0 if alternative == "less" else 1.0
    sesoi = hypothesis.get("sesoi")
    if effect is not None:
        diff, source = float(effect), "given"
    elif isinstance(sesoi, Mapping) and isinstance(sesoi.get("value"), (int, float)):
        diff, source = sign * float(sesoi["value"]), "sesoi"
    elif isinstance(sesoi, Mapping) and isinstance(sesoi.get("d"), (int, float)):
        d = sign * float(sesoi["d"])
        return (d * sd if math.isfinite(sd) else math.nan), d, "sesoi"
    else:
        return math.nan, math.nan, "none"
    if math.isnan(sd):
        return diff, math.nan, source
    if sd == 0:
        return diff, (math.nan if diff == 0 else math.copysign(math.inf, diff)), source
    return diff, diff / sd, source


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
    equivalence = verifier in EQUIVALENCE
    if equivalence:
        alternative = "equivalence"
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
    diff, d, source = declared_effect(hypothesis, sd, effect)
    if equivalence:  # bounds are symmetric: a magnitude
        diff, d = abs(diff), abs(d)
    notes = []
    achieved, needed = math.nan, None
    detectable = detectable_d = math.nan
    if math.isnan(sd):
        notes.append("fewer than 2 values: no variance to plan with")
    elif sd == 0 and equivalence:
        notes.append("zero variance: the TOST is decided by the difference itself, no plan needed")
    elif sd == 0:
        planned_as = "exact permutation test"
        needed_any = permutation_replicates(alpha_c, alternative, paired)
        # any difference (the way the alternative looks) once the permutation test can reach alpha
        detectable = 0.0 if n >= needed_any else math.inf
        notes.append("zero variance" if observed else "no variation")
        if source != "none" and not math.isnan(d):
            reachable = power(d, 2, alpha=alpha_c, alternative=alternative, paired=paired) == 1.0
            needed = needed_any if reachable else None
            achieved = float(needed is not None and n >= needed)
    else:
        if equivalence:
            detectable_d = smallest_equivalence_bound(n, target=target, alpha=alpha_c, paired=paired)
            if source != "none":
                achieved = tost_power(d, n, alpha=alpha_c, paired=paired)
                needed = tost_replicates_needed(d, target=target, alpha=alpha_c, paired=paired)
        else:
            detectable_d = minimum_detectable_effect(
                n, target=target, alpha=alpha_c, alternative=alternative, paired=paired, efficiency=efficiency
            )
            if source != "none":
                achieved = power(d, n * efficiency, alpha=alpha_c, alternative=alternative, paired=paired)
                needed = replicates_needed(
                    d,
                    target=target,
                    efficiency=efficiency,
                    alpha=alpha_c,
                    alternative=alternative,
                    paired=paired,
                )
        detectable = detectable_d * sd
    if source != "none" and diff == 0:
        notes.append("a declared difference of 0 cannot be detected")
    elif source != "none" and needed is None and not achieved >= target and not math.isnan(d):
        wrong_way = (alternative == "greater" and d < 0) or (alternative == "less" and d > 0)
        notes.append(
            f"{alternative} test: the declared difference lies the other way"
            if wrong_way
            else f"no number of replicates up to {MAX_REPLICATES:,} reaches {target:.0%} power"
        )
    return Row(
        hypothesis=hypothesis["name"],
        metric=hypothesis["metric"],
        treatment=treatment,
        verifier=verifier,
        design="paired" if paired else "unpaired",
        test="equivalence" if equivalence else "difference",
        planned_as=planned_as,
        alpha=alpha,
        alpha_per_comparison=alpha_c,
        alternative=alternative,
        observed_difference=observed,
        sd=sd,
        replicates=n,
        detectable=detectable,
        detectable_standardized=detectable_d,
        effect=diff,
        effect_source=source,
        standardized_effect=d,
        power=achieved,
        replicates_needed=needed,
        note="; ".join(notes),
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
                    k=int(h.get("family_size") or len(treatments)),
                    effect=effect,
                    target=target,
                )
            )
    current = results.provenance.get("config", {}).get("replicates")
    sequential = results.provenance.get("config", {}).get("sequential")
    if current is None or sequential:  # a sequential run made only those up to its stopping look
        current = max((len(v) for v in results.values.values()), default=0)
    wanted = sorted(
        {r.replicates_needed for r in rows if r.replicates_needed and r.replicates_needed > current}
    )
    if sequential:  # its replicates are planned by its looks, not by raising replicates
        wanted = []
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
    if sequential:
        note = (
            "a sequential design: these are fixed-size numbers for the replicates made; its own power and "
            "expected replicates under the sesoi are in hypotheses.json (each result's sequential.expected) "
            "and the report's Sequential design section"
        )
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


def detectable_text(row: Mapping[str, Any], dash: str = "-") -> str:
    """The sensitivity cell: ``0.42 (d 0.57)``, an equivalence test's ``±0.42 (d 0.57)``."""
    value, d = row["detectable"], row["detectable_standardized"]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return dash
    sign = "±" if row.get("test") == "equivalence" else ""
    if isinstance(d, float) and math.isfinite(d):
        return f"{sign}{value:.4g} (d {d:.3g})"
    return f"{sign}{value:.4g}".replace("inf", "∞")


def planned_text(row: Mapping[str, Any], dash: str = "-") -> str:
    """The declared-effect cell: ``0.5 (sesoi, d 0.68)``, or ``-`` when none is declared."""
    if row["effect_source"] == "none":
        return dash
    value, d = row["effect"], row["standardized_effect"]
    sign = "±" if row.get("test") == "equivalence" else ""
    shown = f"{sign}{value:.4g}" if isinstance(value, float) and math.isfinite(value) else dash
    standard = f", d {d:.3g}" if isinstance(d, float) and math.isfinite(d) else ""
    return f"{shown} ({row['effect_source']}{standard})"


def summary(result: ReplicatePlan) -> list[str]:
    """What the plan concludes, a sentence per kind of row: no declared effect,
    enough replicates already, none enough (the text and the report say these)."""
    target = f"{result['target_power'] * 100:.0f}%"
    rows = result["rows"]

    def names(selected: list[dict[str, Any]]) -> str:
        return ", ".join(f"{r['hypothesis']}/{r['treatment']}" for r in selected)

    lines = []
    undeclared = [r for r in rows if r["effect_source"] == "none"]
    if undeclared:
        lines.append(
            f"no smallest effect of interest is declared for {names(undeclared)}: 'detectable' is the "
            f"smallest true difference the current replicates find with {target} power; to plan "
            "replicates, set sesoi on the hypothesis ({value: X} in metric units or {d: X}) or pass "
            "--effect X (replicates are never planned from the observed difference)"
        )
    declared = [r for r in rows if r["effect_source"] != "none"]
    enough = [r for r in declared if isinstance(r["power"], float) and r["power"] >= result["target_power"]]
    if enough:
        lines.append(f"the current replicates already give {target} power for {names(enough)}")
    short = [r for r in declared if r not in enough and not r["replicates_needed"]]
    if short:
        lines.append(f"no number of replicates gives {target} power for {names(short)} (see the notes)")
    return lines


def format_replicate_plan(result: ReplicatePlan, results_dir: str) -> str:
    """``repliflow power``'s text output."""
    target = f"{result['target_power'] * 100:.0f}%"
    headers = [
        "hypothesis/treatment",
        "planned as",
        "observed difference",
        "SD",
        "alpha",
        "n",
        f"detectable at {target}",
        "planned for",
        "power",
        f"n for {target}",
    ]
    table = [headers]
    for r in result["rows"]:
        table.append(
            [
                f"{r['hypothesis']}/{r['treatment']}",
                r["planned_as"],
                f"{r['observed_difference']:.4g}",
                f"{r['sd']:.4g}",
                f"{r['alpha_per_comparison']:.3g}",
                str(r["replicates"]),
                detectable_text(r),
                planned_text(r),
                "-" if math.isnan(r["power"]) else f"{r['power']:.2f}",
                str(r["replicates_needed"] or "-") + (f"  ({r['note']})" if r["note"] else ""),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(headers) - 1)]
    lines = [f"power in {results_dir}: {result['replicates']} replicates per condition now"]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in table
    ]
    if not result["rows"]:
        lines.append("no hypotheses: nothing to plan")
        return "\n".join(lines)
    if result["extend"]:
        lines.append("raising replicates only adds jobs (existing replicates are reused); to extend the run:")
        for e in result["extend"]:
            lines.append(f"  # {target} power for {', '.join(e['reaches_target_for'])}")
            lines.append(f"  {e['command']}")
        if result.get("note"):
            lines.append(f"note: {result['note']}")
    lines += summary(result)
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
