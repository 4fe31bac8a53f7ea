"""The self-contained ``report.html``: design, metric summaries, verdicts,
provenance. Plain HTML with inline CSS, no external resources."""

from __future__ import annotations

import csv
import html
import json
import math
import statistics
import sys
from pathlib import Path

from repliflow import storage

CSS = """
body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.yes{color:#a40000;font-weight:bold}.no{color:#555}
code{background:#f5f5f5;padding:0 .2em}.small{font-size:.85em;color:#555}
"""


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(headers: list[str], rows: list[list], left: int = 1) -> str:
    head = "".join(
        f'<th class="{"l" if i < left else ""}">{html.escape(h)}</th>' for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"l" if i < left else ""}">{cell}</td>' for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def read_metrics(path: Path) -> dict[tuple[str, str], list[float]]:
    values: dict[tuple[str, str], list[float]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            values.setdefault((row["metric"], row["condition"]), []).append(float(row["value"]))
    return values


def _summary_rows(values: dict, conditions: list[str]) -> dict[str, list[list]]:
    by_metric: dict[str, list[list]] = {}
    for (metric, condition), xs in sorted(
        values.items(), key=lambda kv: (kv[0][0], conditions.index(kv[0][1]))
    ):
        finite = [x for x in xs if not math.isnan(x)]
        std = statistics.stdev(finite) if len(finite) > 1 else float("nan")
        mean = statistics.fmean(finite) if finite else float("nan")
        by_metric.setdefault(metric, []).append(
            [
                html.escape(condition),
                len(xs),
                len(xs) - len(finite),
                _fmt(mean),
                _fmt(std),
                _fmt(min(finite) if finite else None),
                _fmt(statistics.median(finite) if finite else None),
                _fmt(max(finite) if finite else None),
            ]
        )
    return by_metric


def render(metrics_path: Path, hypotheses_path: Path, provenance_path: Path) -> str:
    provenance = json.loads(Path(provenance_path).read_text())
    hypotheses = json.loads(Path(hypotheses_path).read_text())["hypotheses"]
    conditions = list(provenance["conditions"])
    baseline_params = provenance["conditions"]["baseline"]["params"]
    config = provenance["config"]
    parts = [f"<h1>repliflow report: {html.escape(provenance['experiment'])}</h1>"]
    parts.append(
        f'<p class="small">created {html.escape(provenance["created"])} · config '
        f"{html.escape(str(provenance['config_files']))} · config hash "
        f"<code>{provenance['config_hash'][:16]}</code></p>"
    )

    parts.append("<h2>Design</h2>")
    parts.append(
        f"<p>{len(conditions)} condition(s) × {config['replicates']} replicate(s), base seed "
        f"{config.get('seed', 0)}; code <code>{html.escape(provenance['code']['source'])}</code>. "
        f"Replicate r of every condition uses the same seed (common random numbers).</p>"
    )
    steps = provenance["code"]["steps"]
    parts.append(
        _table(
            ["step", "function", "code hash", "baseline params"],
            [
                [
                    html.escape(name),
                    html.escape(info["function"]),
                    f"<code>{info['code_hash'][:12]}</code>",
                    html.escape(json.dumps(baseline_params.get(name, {}), sort_keys=True)),
                ]
                for name, info in steps.items()
            ],
            left=4,
        )
    )
    rows = []
    for condition in conditions[1:]:
        params = provenance["conditions"][condition]["params"]
        diff = {
            step: {k: v for k, v in p.items() if baseline_params.get(step, {}).get(k, object()) != v}
            for step, p in params.items()
        }
        diff = {step: d for step, d in diff.items() if d}
        rows.append([html.escape(condition), html.escape(json.dumps(diff, sort_keys=True)) or "(none)"])
    if rows:
        parts.append("<p>Treatments and the parameters they change:</p>")
        parts.append(_table(["treatment", "differs from baseline"], rows, left=2))

    parts.append("<h2>Metrics per condition</h2>")
    for metric, table_rows in _summary_rows(read_metrics(metrics_path), conditions).items():
        parts.append(f"<h3>{html.escape(metric)}</h3>")
        parts.append(_table(["condition", "n", "NaN", "mean", "std", "min", "median", "max"], table_rows))

    parts.append("<h2>Verdicts</h2>")
    if not hypotheses:
        parts.append("<p>No hypotheses configured.</p>")
    for hypothesis in hypotheses:
        parts.append(
            f"<h3>{html.escape(hypothesis['name'])}: {html.escape(hypothesis['metric'])} "
            f"({html.escape(hypothesis['verifier'])})</h3>"
        )
        table_rows = []
        for rank, treatment in enumerate(hypothesis["ranking"], 1):
            result = hypothesis["results"][treatment]
            significant = result.get("significant")
            table_rows.append(
                [
                    html.escape(treatment),
                    rank,
                    _fmt(result.get("p_value")),
                    _fmt(result.get("statistic")),
                    f'<span class="{"yes" if significant else "no"}">{_fmt(significant)}</span>',
                    _fmt(result.get("mean_baseline")),
                    _fmt(result.get("mean_treatment")),
                ]
            )
        parts.append(
            _table(
                [
                    "treatment",
                    "rank",
                    "p-value",
                    "statistic",
                    "significant",
                    "mean baseline",
                    "mean treatment",
                ],
                table_rows,
            )
        )

    parts.append("<h2>Provenance</h2>")
    env = provenance["environment"]
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items())
    parts.append(
        f"<p>{len(provenance['outputs'])} recorded outputs, each with a sha256 and a sidecar under "
        "<code>store/</code>; check them with <code>repliflow audit "
        f"results/{html.escape(provenance['experiment'])}"
        f"</code>.</p><p class=small>Python {html.escape(env['python'])} on {html.escape(env['platform'])}, "
        f"host {html.escape(env['host'])}; {html.escape(packages)}</p>"
    )
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>repliflow: {html.escape(provenance['experiment'])}</title><style>{CSS}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


def run_from_snakemake(smk) -> None:
    try:
        page = render(Path(smk.input.metrics), Path(smk.input.hypotheses), Path(smk.input.provenance))
    except (OSError, KeyError, ValueError) as exc:
        print(f"repliflow: cannot render the report: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    storage.atomic_write(Path(smk.output.html), page.encode())
