"""The report: ``report.html`` (self-contained: inline CSS and SVG plots, no
external resources) and ``report.md`` (the same text and tables, for
terminals and pull-request comments).

Sections: verdicts at a glance, design, metrics (distribution plots and
summaries, paired-difference plots where paired tests are used), verdicts
(raw and adjusted p, effect sizes with CIs), failed or missing replicates,
power and replicate planning, provenance. Both files are rendered from one
list of blocks, so they always say the same thing.

Rendering never loses the tables: a plot that cannot be drawn or a section
that cannot be built becomes a note in its place (``note`` blocks, also
returned to be logged), and ``publish`` turns a report that cannot be
rendered at all into a short report saying why. Every report that rendered is
also kept as ``last-good/report.html`` (and ``.md``), which Snakemake does not
know of and so never deletes; a failed report links to it.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import json
import math
import re
import statistics
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from repliflow.errors import RepliflowError
from repliflow.report import drawing, plots
from repliflow.report.grid import grid_elements
from repliflow.report.tables import Results, read_results
from repliflow.stats import PAIRED
from repliflow.store import storage
from repliflow.store.layout import LAST_GOOD

CSS = """
body{font-family:system-ui,sans-serif;max-width:74em;margin:2em auto;padding:0 1em;color:#222;
line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}h3{margin-top:1.3em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;white-space:nowrap}
strong.yes{color:#a40000}code{background:#f5f5f5;padding:0 .2em;font-size:.95em}
pre{background:#f5f5f5;padding:.6em .8em;overflow-x:auto}figure{margin:.8em 0}
figure svg{max-width:100%;height:auto}figcaption{font-size:.85em;color:#555}.small{font-size:.85em;color:#555}
p.note{background:#fff4e5;border-left:3px solid #d1603d;padding:.3em .6em}
"""

DASH = "–"


# --- blocks: one document, two renderings ---------------------------------------------


@dataclass
class Element:
    kind: str  # h1 h2 h3 p small note link table figure pre ul
    text: str = ""
    href: str = ""  # link: a relative path
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    svg: str = ""
    # a figure not drawn yet: its name and what draws it (build draws them all at the end)
    plot: str = field(default="", compare=False)
    draw: Callable[[], str] | None = field(default=None, repr=False, compare=False)


def _inline_html(text: str) -> str:
    """Escape, then render the two bits of Markdown the blocks use: `code` and **bold**."""
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*significant\*\*", r'<strong class="yes">significant</strong>', text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def _td(cell: str) -> str:
    """Numbers, intervals and counts align right."""
    numeric = cell[:1] in set("0123456789-−∞[" + DASH)
    return f'<td class="n">{_inline_html(cell)}</td>' if numeric else f"<td>{_inline_html(cell)}</td>"


def to_html(blocks: list[Element], title: str) -> str:
    parts = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            parts.append(f"<{b.kind}>{_inline_html(b.text)}</{b.kind}>")
        elif b.kind == "p":
            parts.append(f"<p>{_inline_html(b.text)}</p>")
        elif b.kind == "small":
            parts.append(f'<p class="small">{_inline_html(b.text)}</p>')
        elif b.kind == "note":
            parts.append(f'<p class="note">{_inline_html(b.text)}</p>')
        elif b.kind == "link":
            parts.append(f'<p><a href="{html.escape(b.href)}">{_inline_html(b.text)}</a></p>')
        elif b.kind == "pre":
            parts.append(f"<pre><code>{html.escape(b.text)}</code></pre>")
        elif b.kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "figure":
            parts.append(f"<figure>{b.svg}<figcaption>{_inline_html(b.text)}</figcaption></figure>")
        elif b.kind == "table":
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in b.headers)
            body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in b.rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Element]) -> str:
    parts = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            parts.append("#" * int(b.kind[1]) + " " + b.text)
        elif b.kind in ("p", "small"):
            parts.append(b.text)
        elif b.kind == "note":
            parts.append(f"> **Note:** {b.text}")
        elif b.kind == "link":
            parts.append(f"[{b.text}](<{b.href}>)")
        elif b.kind == "pre":
            parts.append(f"```sh\n{b.text}\n```")
        elif b.kind == "ul":
            parts.append("\n".join(f"- {i}" for i in b.items))
        elif b.kind == "figure":
            parts.append(f"*Figure (in report.html): {b.text}*")
        elif b.kind == "table":
            lines = ["| " + " | ".join(_md_cell(h) for h in b.headers) + " |"]
            lines.append("|" + "|".join("---" for _ in b.headers) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


# --- formatting --------------------------------------------------------------------------


def num(value: object) -> str:
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if math.isnan(value):
            return DASH
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.4g}" if isinstance(value, float) else str(value)
    return str(value)


def pval(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{value:.2e}" if value < 0.001 else f"{value:.3g}"


def interval(ci: Sequence[float | None] | None, alternative: str | None = None) -> str:
    """[low, high]; JSON null bounds are the open side of a one-sided interval."""
    if not ci:
        return DASH
    low, high = ci
    if low is None and high is None:
        return DASH
    low_text = num(low) if low is not None else ("−∞" if alternative == "less" else DASH)
    high_text = num(high) if high is not None else ("∞" if alternative == "greater" else DASH)
    return f"[{low_text}, {high_text}]"


EFFECT_NAMES = {
    "hedges_g": "Hedges' g",
    "cohens_d": "Cohen's d",
    "cohens_dz": "Cohen's d_z",
    "rank_biserial": "rank-biserial r",
}
TEST_NAMES = {
    "welch_t": "Welch t",
    "student_t": "Student t",
    "mann_whitney": "Mann-Whitney U",
    "permutation": "permutation",
    "bootstrap": "bootstrap BCa",
    "paired_t": "paired t",
    "wilcoxon": "Wilcoxon signed-rank",
    "tost_welch": "TOST equivalence (Welch t)",
    "tost_paired": "TOST equivalence (paired t)",
}


def _effect(result: Mapping[str, Any]) -> tuple[str, str]:
    name = result.get("effect_size")
    if not isinstance(name, str) or name not in result:
        return DASH, DASH
    label = EFFECT_NAMES.get(name, name)
    return f"{label} {num(result.get(name))}", interval(result.get(f"{name}_ci"), result.get("alternative"))


def _level(result: Mapping[str, Any]) -> str:
    level = result.get("ci_level")
    return f"{level * 100:.3g}% CI" if isinstance(level, (int, float)) else "CI"


# --- sections --------------------------------------------------------------------------


def _verdict_sentence(hypothesis: Mapping[str, Any], treatment: str, result: Mapping[str, Any]) -> str:
    metric = hypothesis["metric"]
    diff = result.get("mean_difference")
    test = TEST_NAMES.get(hypothesis["verifier"], hypothesis["verifier"])
    correction = result.get("correction", hypothesis.get("correction", "none"))
    k = _family_size(hypothesis)
    p_text = (
        f"adjusted p = {pval(result.get('p_value'))} ({correction} over {k})"
        if k > 1
        else (f"p = {pval(result.get('p_value'))}")
    )
    if result.get("p_value") is None:
        return f"**{treatment}** vs baseline on `{metric}`: not tested. {result.get('note', '')}".strip()
    effect_name, _ = _effect(result)
    ci = interval(result.get("mean_difference_ci"), result.get("alternative"))
    effect_text = f"; {effect_name}" if not effect_name.endswith(DASH) else ""
    detail = f"difference {num(diff)} ({_level(result)} {ci}{effect_text})"
    bounds = _bounds(result)
    if bounds and result.get("significant"):
        verdict = f"**{treatment}**: **shown equivalent** to the baseline on `{metric}` within {bounds}"
    elif bounds:
        verdict = (
            f"**{treatment}**: **not shown equivalent** on `{metric}` (the interval does not lie "
            f"within {bounds})"
        )
    elif result.get("significant"):
        direction = "raised" if isinstance(diff, (int, float)) and diff > 0 else "lowered"
        verdict = f"**{treatment}** {direction} `{metric}`: **significant**"
    else:
        verdict = (
            f"**{treatment}**: no difference found in `{metric}` (absence of evidence, not evidence of "
            "equivalence: see the detectable difference under Power)"
        )
    note = f" Note: {result['note']}." if result.get("note") else ""
    return f"{verdict}, {detail}; {test}, {p_text}.{note}"


def _family_size(hypothesis: Mapping[str, Any]) -> int:
    """The comparisons adjusted together: the hypothesis' correction family's."""
    size = hypothesis.get("family_size")
    return size if isinstance(size, int) and size > 0 else len(hypothesis["results"])


def _bounds(result: Mapping[str, Any]) -> str:
    """An equivalence test's bounds, ``±0.5``; "" for a difference test."""
    bounds = result.get("equivalence_bounds")
    if not (isinstance(bounds, list) and len(bounds) == 2):
        return ""
    return f"±{num(bounds[1])}"


def _glance(results: Results) -> list[Element]:
    blocks = [Element("h2", "Verdicts at a glance")]
    if not results.hypotheses:
        return blocks + [Element("p", "No hypotheses are configured: the report shows the metrics only.")]
    for hypothesis in results.hypotheses:
        items = [_verdict_sentence(hypothesis, t, hypothesis["results"][t]) for t in hypothesis["ranking"]]
        blocks.append(Element("p", f"Hypothesis **{hypothesis['name']}**:"))
        blocks.append(Element("ul", items=items))
    return blocks


def _differs(params: Mapping[str, Any], baseline: Mapping[str, Any]) -> str:
    diff = {
        step: {k: v for k, v in p.items() if baseline.get(step, {}).get(k, object()) != v}
        for step, p in params.items()
    }
    diff = {step: d for step, d in diff.items() if d}
    return json.dumps(diff, sort_keys=True) if diff else "(nothing: same recipe as the baseline)"


def _design(results: Results) -> list[Element]:
    prov = results.provenance
    if not prov:
        return [Element("h2", "Design"), Element("p", "No provenance.json: the design is unknown.")]
    config = prov["config"]
    conditions = list(prov["conditions"])
    seeds = prov.get("seeds", {}).get("replicates", [])
    shown = ", ".join(f"{r}: {s}" for r, s in enumerate(seeds[:4])) + (
        ", … (all in provenance.json)" if len(seeds) > 4 else ""
    )
    made = str(config["replicates"])
    if config.get("sequential") and seeds:  # the replicates up to the stopping look
        made = f"{len(seeds)} (sequential design: at most {config['replicates']})"
    blocks = [
        Element("h2", "Design"),
        Element(
            "p",
            f"{len(conditions)} conditions × {made} replicates, base seed "
            f"{config.get('seed', 0)}, code `{prov['code']['source']}`. Replicate r has the same seed in "
            "every condition (common random numbers), so replicate r of a treatment and of the baseline "
            f"form a pair; replicate seeds {shown}.",
        ),
    ]
    baseline = prov["conditions"]["baseline"]["params"]
    blocks.append(
        Element(
            "table",
            headers=["condition", "replicates", "parameters that differ from the baseline"],
            rows=[
                [
                    c,
                    str(len(seeds) if config.get("sequential") and seeds else config["replicates"]),
                    _differs(prov["conditions"][c]["params"], baseline),
                ]
                for c in conditions
            ],
        )
    )
    blocks.append(
        Element(
            "table",
            headers=["step", "function", "code hash", "baseline parameters"],
            rows=[
                [name, info["function"], f"`{info['code_hash'][:12]}`", json.dumps(baseline.get(name, {}))]
                for name, info in prov["code"]["steps"].items()
            ],
        )
    )
    return blocks


def _summary_rows(results: Results, metric: str) -> list[list[str]]:
    """Per condition: n, missing (NaN, absent or infinite), and the summaries of
    the finite values, computed so that values near the float maximum do not
    overflow (an SD beyond it is ∞)."""
    rows = []
    for condition in results.conditions:
        values = results.values.get((condition, metric), [])
        finite = results.finite(condition, metric)

        def summary(
            statistic: Callable[[list[float]], float], least: int = 1, finite: list[float] = finite
        ) -> str:
            return num(plots.overflow_safe(statistic, finite) if len(finite) >= least else math.nan)

        rows.append(
            [
                condition,
                str(len(finite)),
                str(len(values) - len(finite)),
                summary(statistics.fmean),
                summary(statistics.stdev, least=2),
                summary(min),
                summary(statistics.median),
                summary(max),
            ]
        )
    return rows


def _infinite_note(results: Results, metric: str) -> list[Element]:
    counts = {
        condition: sum(math.isinf(v) for v in results.values.get((condition, metric), []))
        for condition in results.conditions
    }
    counted = ", ".join(f"{c}: {n}" for c, n in counts.items() if n)
    if not counted:
        return []
    return [
        Element(
            "note",
            f"`{metric}` has infinite values ({counted}): they are not drawn, are counted as missing and "
            "are left out of the summaries and the tests, as NaN is.",
        )
    ]


_reason = drawing.reason


def _figure(name: str, caption: str, draw: Callable[[], str]) -> Element:
    """Plot ``name``, drawn with the others once every section is built (``_draw_figures``)."""
    return Element("figure", caption, plot=name, draw=draw)


def _draw_figures(blocks: list[Element], process: drawing.FigureProcess | None) -> list[Element]:
    """``blocks`` with every figure drawn (in ``process`` when given), or
    replaced by a note saying why it could not be drawn."""
    pending = [block for block in blocks if block.draw is not None]
    drawn = dict(
        zip(map(id, pending), drawing.draw_all([b.draw for b in pending if b.draw], process), strict=True)
    )
    resolved = []
    for block in blocks:
        svg = drawn.get(id(block))
        if isinstance(svg, drawing.DrawError):
            resolved.append(Element("note", f"plot {block.plot} could not be drawn: {svg.reason}"))
        elif svg is not None:
            resolved.append(dataclasses.replace(block, svg=svg, draw=None))
        else:
            resolved.append(block)
    return resolved


def _sampled_note(series: Iterable[Sequence[float]]) -> str:
    """The caption's word on a plot whose strips draw a sample (``plots.sample``)."""
    if all(sum(map(math.isfinite, values)) <= plots.MAX_POINTS for values in series):
        return ""
    return (
        f" Where a series has more than {plots.MAX_POINTS} points, {plots.MAX_POINTS} are drawn: those "
        f"beyond 1.5 IQR of the quartiles (at most {plots.MAX_POINTS // 2}) and a random sample of the "
        "rest; the box and the tables use them all."
    )


def _paired_plots(results: Results, metric: str, colors: dict[str, str], salt: str) -> list[Element]:
    paired = [h for h in results.hypotheses if h["metric"] == metric and h["verifier"] in PAIRED]
    if not paired:
        return []
    hypothesis = paired[0]
    treatments = list(hypothesis["results"])
    baseline = results.values.get(("baseline", metric), [])
    differences = {
        t: [b - a for a, b in zip(baseline, results.values.get((t, metric), []), strict=False)]
        for t in treatments
    }
    intervals: dict[str, tuple[float, float | None, float | None]] = {}
    for t in treatments:
        r = hypothesis["results"][t]
        ci = r.get("mean_difference_ci") or [None, None]
        mean = r.get("mean_difference")
        intervals[t] = (mean if isinstance(mean, (int, float)) else math.nan, ci[0], ci[1])
    overflowed = sum(
        math.isfinite(a) and math.isfinite(b) and not math.isfinite(b - a)
        for t in treatments
        for a, b in zip(baseline, results.values.get((t, metric), []), strict=False)
    )
    caption = (
        f"Paired differences of `{metric}` (tested by hypothesis {', '.join(h['name'] for h in paired)}): "
        f"each point is one replicate's treatment value minus the baseline value with the same seed; "
        f"the diamond is the mean difference with its {_level(hypothesis['results'][treatments[0]])} "
        f"({hypothesis['verifier']})."
        + (f" {overflowed} difference(s) overflow the float range and are not drawn." if overflowed else "")
        + _sampled_note(differences.values())
    )
    draw = functools.partial(
        plots.paired_differences, metric, treatments, differences, intervals, colors, salt
    )
    return [_figure(f"paired differences of `{metric}`", caption, draw)]


def _metrics(results: Results) -> list[Element]:
    blocks = [Element("h2", "Metrics")]
    conditions = results.conditions
    colors = plots.condition_colors(conditions)
    for index, metric in enumerate(results.metrics):
        by_condition = {c: results.values.get((c, metric), []) for c in conditions}
        blocks.append(Element("h3", metric))
        blocks.append(
            _figure(
                f"distribution of `{metric}`",
                f"`{metric}` per condition: every replicate is a point, the box spans the quartiles "
                "around the median." + _sampled_note(by_condition.values()),
                functools.partial(plots.distribution, metric, conditions, by_condition, salt=f"dist-{index}"),
            )
        )
        blocks += _paired_plots(results, metric, colors, salt=f"pair-{index}")
        blocks.append(
            Element(
                "table",
                headers=["condition", "n", "missing", "mean", "SD", "min", "median", "max"],
                rows=_summary_rows(results, metric),
            )
        )
        blocks += _infinite_note(results, metric)
    return blocks


def _with_ci(value: object, ci: Sequence[float | None] | None, alternative: str | None) -> str:
    return DASH if num(value) == DASH else f"{num(value)} {interval(ci, alternative)}"


def _verdicts(results: Results) -> list[Element]:
    blocks = [Element("h2", "Verdicts")]
    if not results.hypotheses:
        return blocks + [Element("p", "No hypotheses configured.")]
    for h in results.hypotheses:
        params = h.get("params") or {}
        correction = h.get("correction", "none")
        alternative = params.get("alternative", "two-sided")
        test = TEST_NAMES.get(h["verifier"], h["verifier"])
        blocks.append(Element("h3", f"{h['name']}: {h['metric']}, {test}"))
        size, family = _family_size(h), h.get("correction_family", h["name"])
        over = (
            f"the {size} comparisons of correction family `{family}`"
            if size != len(h["results"])
            else f"the {size} treatment(s)"
        )
        first = h["results"][h["ranking"][0]] if h["ranking"] else {}
        if _bounds(first):
            what = (
                f"Equivalence test (TOST, Schuirmann 1987) within the bounds {_bounds(first)} (the "
                f"hypothesis' sesoi, {json.dumps(h.get('sesoi') or first.get('sesoi'))}): the p-value is "
                "the larger of the two one-sided tests', and **significant** means shown equivalent: "
                "the difference's interval at level 1 - 2 alpha lies within the bounds"
            )
        else:
            what = f"Verifier `{h['verifier']}`, alternative {alternative}"
        blocks.append(
            Element(
                "p",
                f"{what}, alpha {num(h.get('alpha', 0.05))}; p-values adjusted over {over} by "
                f"`{correction}`; **significant** and the rank use the adjusted p-value. Differences are "
                "treatment minus baseline.",
            )
        )
        level = _level(first)
        effect = first.get("effect_size")
        rows: list[list[str]] = []
        notes: list[str] = []
        for rank, treatment in enumerate(h["ranking"], 1):
            r = h["results"][treatment]
            alt = r.get("alternative")
            n = (
                f"{r.get('n_pairs', DASH)} pairs"
                if r.get("paired")
                else (f"{r.get('n_baseline', DASH)} / {r.get('n_treatment', DASH)}")
            )
            missing = (r.get("n_missing_baseline") or 0) + (r.get("n_missing_treatment") or 0)
            if r.get("note"):
                notes.append(f"**{treatment}**: {r['note']}.")
            rows.append(
                [
                    treatment,
                    str(rank),
                    n + (f" ({missing} missing)" if missing else ""),
                    _with_ci(r.get("mean_difference"), r.get("mean_difference_ci"), alt),
                    _with_ci(r.get(effect), r.get(f"{effect}_ci"), alt) if isinstance(effect, str) else DASH,
                    num(r.get("statistic")),
                    pval(r.get("p_value_raw", r.get("p_value"))),
                    pval(r.get("p_value_adjusted", r.get("p_value"))),
                    _verdict_cell(r),
                ]
            )
        effect_label = EFFECT_NAMES.get(effect, effect) if isinstance(effect, str) else "effect size"
        blocks.append(
            Element(
                "table",
                headers=[
                    "treatment",
                    "rank",
                    "n (baseline / treatment)",
                    f"difference ({level})",
                    f"{effect_label} ({level})",
                    "statistic",
                    "p (raw)",
                    f"p ({correction})",
                    "verdict",
                ],
                rows=rows,
            )
        )
        if notes:
            blocks.append(Element("ul", items=notes))
    return blocks


def _verdict_cell(result: Mapping[str, Any]) -> str:
    """A difference test's "**significant**" or "no difference found"; an
    equivalence test's "**equivalent**" or "not shown equivalent"."""
    if _bounds(result):
        return "**equivalent**" if result.get("significant") else "not shown equivalent"
    return "**significant**" if result.get("significant") else "no difference found"


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _missing(results: Results) -> list[Element]:
    blocks = [Element("h2", "Failed or missing replicates")]
    rows = []
    for metric in results.metrics:
        for condition in results.conditions:
            values = results.values.get((condition, metric), [])
            bad = [str(r) for r, v in enumerate(values) if not math.isfinite(v)]
            if bad:
                rows.append([metric, condition, str(len(bad)), ", ".join(bad)])
    failed = [
        [condition, str(record["replicate"]), str(record.get("step", "")), _clip(record["error"])]
        for condition, records in results.failed.items()
        for record in records
    ]
    if failed:
        blocks.append(
            Element(
                "p",
                "These replicates failed (`on_failure: missing`): their metrics are counted as missing "
                "below, and the next run retries them.",
            )
        )
        blocks.append(Element("table", headers=["condition", "replicate", "step", "error"], rows=failed))
    if rows:
        blocks.append(
            Element(
                "p",
                "These replicates returned a NaN, infinite or no value for a metric (or failed, above). "
                "Tests leave them out and count them (the missing columns above); paired tests drop the "
                "whole pair.",
            )
        )
        blocks.append(Element("table", headers=["metric", "condition", "count", "replicates"], rows=rows))
    else:
        blocks.append(Element("p", "None: every replicate returned every metric as a finite number."))
    blocks.append(
        Element(
            "small",
            "With `on_failure: stop` (the default) a step that fails ends its job before any report is "
            "made; the job's log under `logs/` names the replicate and keeps the traceback.",
        )
    )
    return blocks


def _power(results: Results) -> list[Element]:
    blocks = [Element("h2", "Power and replicates")]
    if not results.hypotheses:
        return blocks + [Element("p", "No hypotheses, so nothing to plan.")]
    from repliflow.stats import power  # scipy.stats: only a report with hypotheses needs it

    plan = power.replicate_plan(results)
    target = f"{plan['target_power'] * 100:.0f}%"
    blocks.append(
        Element(
            "p",
            f"Sensitivity: for each comparison, the smallest true difference the current "
            f"{plan['replicates']} replicates detect with {target} power (**detectable**, in metric units "
            "and standardised by the observed SD), at the level (alpha) each comparison needs after its "
            "correction; for an equivalence test, the narrowest bounds it shows with that power when the "
            "means are equal. Power and the replicates needed are shown only for a declared smallest "
            "effect size of interest (the hypothesis' `sesoi`), never for the observed difference: "
            "power computed from it only restates the p-value. Power is the noncentral t's (paired "
            "tests: on the replicate-paired differences); rank tests are planned as their t-test with "
            "n × 3/π, their efficiency under normality; a metric with zero variance as the exact "
            "permutation test the verifiers then use. To plan for another difference (in metric units) "
            f"run `repliflow power {results.path} --effect X`.",
        )
    )
    rows = [
        [
            f"{r['hypothesis']} / {r['treatment']}",
            r["planned_as"],
            num(r["observed_difference"]),
            num(r["sd"]),
            num(r["alpha_per_comparison"]),
            str(r["replicates"]),
            power.detectable_text(r, DASH),
            power.planned_text(r, DASH),
            num(r["power"]),
            str(r["replicates_needed"]) if r["replicates_needed"] else DASH,
            r["note"],
        ]
        for r in plan["rows"]
    ]
    blocks.append(
        Element(
            "table",
            headers=[
                "hypothesis / treatment",
                "planned as",
                "observed difference",
                "SD",
                "alpha",
                "replicates",
                f"detectable at {target}",
                "smallest effect of interest",
                "power for it",
                f"replicates for {target}",
                "note",
            ],
            rows=rows,
        )
    )
    if plan["extend"]:
        blocks.append(
            Element(
                "p",
                "Raising `replicates` only adds jobs: the replicates already made are reused. To extend the "
                "run (or set `replicates:` in the config file to the same number and run snakemake again):",
            )
        )
        blocks.append(
            Element(
                "pre",
                "\n".join(
                    f"# {target} power for {', '.join(e['reaches_target_for'])}\n{e['command']}"
                    for e in plan["extend"]
                ),
            )
        )
    sentences = power.summary(plan)
    if sentences:
        blocks.append(
            Element("ul", items=[sentence[0].upper() + sentence[1:] + "." for sentence in sentences])
        )
    return blocks


def _sequential(results: Results) -> list[Element]:
    """A sequential design's looks, boundaries, where each comparison stopped
    and the replicates it saves under a true effect (absent otherwise)."""
    found = [
        (h, treatment, r, r["sequential"])
        for h in results.hypotheses
        for treatment, r in h["results"].items()
        if isinstance(r.get("sequential"), Mapping)
    ]
    if not found:
        return []
    design = found[0][3]
    looks, most = int(design["looks"]), int(design["max_replicates"])
    size = most // looks
    stopped = max(int(s["look"]) for _, _, _, s in found)
    schedule = ", ".join(str(size * k) for k in range(1, looks + 1))
    spending = {"obrien_fleming": "O'Brien-Fleming", "pocock": "Pocock"}.get(
        design["spending"], design["spending"]
    )
    ran = (
        f"The run stopped at look {stopped} of {looks}, with {stopped * size} of at most {most} "
        "replicates per condition: every comparison had stopped, so the replicates past look "
        f"{stopped} were never computed."
        if stopped < looks
        else f"The run went to the last look ({looks}), with all {most} replicates per condition: some "
        "comparison had not crossed its boundary before."
    )
    blocks = [
        Element("h2", "Sequential design"),
        Element(
            "p",
            f"{looks} looks of {size} replicates per condition ({schedule} in all by each look), "
            f"{spending}-type alpha spending (Lan-DeMets), efficacy boundaries only (no futility stopping). "
            "After each look every hypothesis x treatment was tested on the replicates so far, its p-value "
            "converted to z, and it stopped once |z| reached the look's boundary (one-sided: z in the "
            "direction of the alternative), or at the last look; a comparison that stopped keeps that "
            f"look's numbers. {ran}",
        ),
    ]
    designs: dict[tuple[Any, Any], list[Any]] = {}
    for _, _, r, s in found:
        designs.setdefault((r.get("alpha"), r.get("alternative")), s["boundaries"])
    headers = ["look", "replicates"] + [f"boundary (alpha {num(a)}, {alt})" for a, alt in designs]
    rows = [
        [str(k + 1), str(size * (k + 1))]
        + [
            num(bounds[k]) if k < len(bounds) and bounds[k] is not None else "∞"
            for bounds in designs.values()
        ]
        for k in range(looks)
    ]
    blocks.append(Element("table", headers=headers, rows=rows))
    blocks.append(
        Element(
            "table",
            headers=[
                "hypothesis / treatment",
                "stopped at look",
                "replicates",
                "decision",
                "z",
                "boundary",
                "p (nominal)",
                "p (stagewise)",
                "p (corrected)",
            ],
            rows=[
                [
                    f"{h['name']} / {treatment}",
                    f"{s['look']} of {s['looks']}",
                    str(s["replicates"]),
                    "crossed the boundary" if s["decision"] == "efficacy" else "last look, not crossed",
                    num(s["z"]),
                    num(s["boundary"]),
                    pval(r.get("p_value_nominal")),
                    pval(s["p_value_stagewise"]),
                    pval(r.get("p_value")),
                ]
                for h, treatment, r, s in found
            ],
        )
    )
    blocks.append(
        Element(
            "small",
            "p (stagewise) is the adjusted p-value of the stopping look (stagewise ordering: the "
            "probability under no difference of stopping earlier, or at this look with a larger z); it is "
            "below alpha exactly when the boundary was crossed. p (corrected) is it after the hypothesis' "
            "correction across treatments; p (nominal) is the fixed-size test's on the stopping look's "
            "replicates, which a sequential design may not read at face value.",
        )
    )
    rows = []
    missing = []
    for h, treatment, _, s in found:
        expected = s.get("expected") or {}
        if not isinstance(expected.get("expected_replicates"), (int, float)):
            missing.append(f"{h['name']} / {treatment}: {expected.get('note', 'no expected replicates')}")
            continue
        given = h.get("sesoi") or {}
        shown = (
            f"{num(given['value'])} (d {num(expected['effect_d'])})"
            if "value" in given
            else f"d {num(expected['effect_d'])}"
        )
        rows.append(
            [
                f"{h['name']} / {treatment}",
                shown,
                num(expected["power"]),
                num(expected["expected_replicates"]),
                f"{num(expected['saved_replicates'])} ({expected['saved_share'] * 100:.0f}%)",
                ", ".join(f"{p * 100:.0f}%" for p in expected["stop_probabilities"]),
            ]
        )
    blocks.append(Element("h3", "Replicates saved under a true effect"))
    if rows:
        blocks.append(
            Element(
                "table",
                headers=[
                    "hypothesis / treatment",
                    "true effect (sesoi)",
                    "power",
                    "expected replicates",
                    f"saved of {most}",
                    "stops at look 1..K",
                ],
                rows=rows,
            )
        )
        blocks.append(
            Element(
                "small",
                "If the true difference equals the hypothesis' smallest effect size of interest (sesoi; one "
                "given in metric units is standardised by this run's SD): the design's power, the replicates "
                "per condition it expects to use and to save against running them all, and the probability "
                "of stopping at each look (rank tests as their t-test with n × 3/π). Per comparison: the "
                "experiment itself stops only when every comparison has stopped.",
            )
        )
    if missing:
        blocks.append(Element("ul", items=missing))
    return blocks


def _provenance(results: Results) -> list[Element]:
    prov = results.provenance
    blocks = [Element("h2", "Provenance")]
    if not prov:
        return blocks + [Element("p", "No provenance.json.")]
    env = prov["environment"]
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items())
    blocks.append(
        Element(
            "p",
            f"{len(prov['outputs'])} recorded outputs, each with a sha256 and a sidecar under `store/`; "
            f"check them all with `repliflow audit {results.path}`. Config hash `{prov['config_hash'][:16]}` "
            f"({prov['config_files']}), code `{prov['code']['source']}` sha256 "
            f"`{prov['code']['sha256'][:16]}`, created {prov['created']}.",
        )
    )
    work = prov.get("work")
    if isinstance(work, dict) and work:
        blocks.append(
            Element(
                "p",
                "What the run that made these tables did, in replicate-steps: computed, reused from the "
                "store (unchanged recipes), or repaired (a stored file was missing or damaged).",
            )
        )
        rows = [
            [str(name), *(str(counts.get(kind, "")) for kind in ("computed", "reused", "repaired"))]
            for name, counts in work.items()
            if isinstance(counts, dict)
        ]
        blocks.append(Element("table", headers=["condition", "computed", "reused", "repaired"], rows=rows))
    blocks.append(
        Element("small", f"Python {env['python']} on {env['platform']}, host {env['host']}; {packages}.")
    )
    return blocks


def _grid(results: Results) -> list[Element]:
    return [Element(**spec) for spec in grid_elements(results)]


SECTIONS: list[tuple[str, Callable[[Results], list[Element]]]] = [
    ("Verdicts at a glance", _glance),
    ("Design", _design),
    ("Metrics", _metrics),
    ("Grid", _grid),
    ("Verdicts", _verdicts),
    ("Sequential design", _sequential),
    ("Failed or missing replicates", _missing),
    ("Power and replicates", _power),
    ("Provenance", _provenance),
]


def build(results: Results, figures: drawing.FigureProcess | None = None) -> list[Element]:
    """The report's blocks; a section that cannot be built is its heading and a note why.
    The figures are drawn last, all at once: in ``figures`` when given (a process that
    imported matplotlib while the tables were computed), else here."""
    name = results.provenance.get("experiment", results.path.name)
    blocks = [Element("h1", f"repliflow report: {name}")]
    for title, section in SECTIONS:
        try:
            blocks += section(results)
        except Exception as exc:  # one section is never worth the report
            blocks += [
                Element("h2", title),
                Element("note", f"section {title} could not be built: {_reason(exc)}"),
            ]
    return _draw_figures(blocks, figures)


def notes(blocks: list[Element]) -> list[str]:
    """What the report could not show (plots, sections), as its notes say."""
    return [b.text for b in blocks if b.kind == "note"]


def render(results: Results) -> tuple[str, str, list[str]]:
    """(report.html, report.md, the notes of what could not be shown)."""
    blocks = build(results)
    name = results.provenance.get("experiment", results.path.name)
    return to_html(blocks, f"repliflow: {name}"), to_markdown(blocks), notes(blocks)


def last_good(path: Path) -> Path:
    """Where the last report that rendered is kept: ``report.html`` -> ``last-good/report.html``."""
    return path.parent / LAST_GOOD / path.name


def _relative(path: Path) -> str:
    return f"{LAST_GOOD}/{path.name}"


def write_report(
    results_dir: Path,
    html_path: Path,
    md_path: Path,
    figures_dir: Path | None = None,
    figure_process: drawing.FigureProcess | None = None,
) -> list[str]:
    """Render the tables in ``results_dir`` to ``html_path`` and ``md_path``,
    and each figure to an SVG file in ``figures_dir`` (for Snakemake's own
    report); return the report's notes (what it could not show)."""
    try:
        results = read_results(results_dir)
        blocks = build(results, figure_process)
    except (OSError, KeyError, ValueError) as exc:
        raise RepliflowError(f"repliflow: cannot render the report: {_reason(exc)}") from exc
    name = results.provenance.get("experiment", results.path.name)
    storage.atomic_write(html_path, to_html(blocks, f"repliflow: {name}").encode())
    storage.atomic_write(md_path, to_markdown(blocks).encode())
    if figures_dir is not None:
        write_figures(figures_dir, blocks)
    return notes(blocks)


def write_figures(directory: Path, blocks: list[Element]) -> list[Path]:
    """Every figure of the report as ``<nn>-<its caption's first words>.svg``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for number, block in enumerate((b for b in blocks if b.kind == "figure" and b.svg), start=1):
        words = re.findall(r"[A-Za-z0-9]+", block.text)[:3]
        path = directory / f"{number:02d}-{'-'.join(words).lower() or 'figure'}.svg"
        storage.atomic_write(path, block.svg.encode())
        written.append(path)
    return written


def failure_blocks(results_dir: Path, html_path: Path, md_path: Path, reason: str) -> list[Element]:
    """The report written in place of one that cannot be rendered: why, where the
    tables are, where the last good report is, how to make it again."""
    kept = last_good(html_path)
    blocks = [
        Element("h1", f"repliflow report: {results_dir.name}"),
        Element("note", f"The report could not be rendered: {reason}"),
        Element(
            "p",
            "The tables of this run were written and are complete: `metrics.csv`, `hypotheses.json` and "
            "`provenance.json`, beside this file. The traceback is in the job's log, "
            "`logs/aggregate.log`.",
        ),
    ]
    if kept.exists():
        made = datetime.fromtimestamp(kept.stat().st_mtime, UTC).isoformat(timespec="seconds")
        blocks += [
            Element(
                "p",
                f"The last report that rendered is kept as `{_relative(kept)}` (and "
                f"`{_relative(last_good(md_path))}`), "
                f"written {made}: it shows the tables of that run, which may differ from these.",
            ),
            Element("link", f"Open the last good report ({_relative(kept)})", href=_relative(kept)),
        ]
    else:
        blocks.append(Element("p", "No earlier report rendered here, so there is no last good one to show."))
    blocks.append(
        Element(
            "p",
            "Once the cause is fixed, make the report again with the run's snakemake command plus "
            "`--forcerun aggregate` (this job succeeded, so Snakemake considers its outputs up to date).",
        )
    )
    return blocks


def publish(
    results_dir: Path,
    html_path: Path,
    md_path: Path,
    log: TextIO | None = None,
    figures_dir: Path | None = None,
    figure_process: drawing.FigureProcess | None = None,
) -> bool:
    """``write_report``, never failing on the report: what it could not show is
    said in ``log`` and on stderr, and a copy of the report is kept as its
    ``last_good``; a report that cannot be rendered at all is replaced by
    ``failure_blocks`` (the ``last_good`` copies are left as they are). True
    when the report rendered. Only writing the failure report can raise."""

    def say(message: str) -> None:
        for stream in (log, sys.stderr):
            if stream is not None:
                print(message, file=stream, flush=True)

    if figures_dir is not None:  # an output of the job, even when no figure can be drawn
        figures_dir.mkdir(parents=True, exist_ok=True)
    try:
        shown = write_report(results_dir, html_path, md_path, figures_dir, figure_process)
    except Exception as exc:  # the tables are written: the report must not fail the job
        reason = _reason(exc.__cause__ if isinstance(exc, RepliflowError) and exc.__cause__ else exc)
        if log is not None:
            traceback.print_exc(file=log)
        blocks = failure_blocks(results_dir, html_path, md_path, reason)
        storage.atomic_write(html_path, to_html(blocks, f"repliflow: {results_dir.name}").encode())
        storage.atomic_write(md_path, to_markdown(blocks).encode())
        kept = last_good(html_path)
        say(
            f"repliflow: cannot render the report: {reason}; the tables are written, {html_path} says "
            "why" + (f" and the last good report is kept as {kept}" if kept.exists() else "")
        )
        return False
    for note in shown:
        say(f"repliflow: report: {note}")
    for path in (html_path, md_path):
        try:
            storage.atomic_write(last_good(path), path.read_bytes())
        except OSError as exc:  # the report itself is written
            say(f"repliflow: report: could not keep a copy as {last_good(path)}: {_reason(exc)}")
    return True
