"""The report's grid section: metric means per grid cell, and heatmaps.

One table holds every cell (a column per axis, a column per metric's mean).
For a grid of two or more axes each metric also gets heatmaps of the first
two axes (rows x columns), one per combination of the other axes' values,
all on one colour scale. A ``†`` marks a cell that a hypothesis on that
metric found significant against the baseline.

The section is a list of block specs, ``{"kind": ..., ...}`` with the fields
of ``report.Element``, so the report renders it to HTML and Markdown alike; the
heatmaps are small hand-written SVGs (no scripts, equal data give equal bytes).
"""

from __future__ import annotations

import html
import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from repliflow.core.grid import Axis, Cell, axes, cells
from repliflow.report.plots import overflow_safe

if TYPE_CHECKING:
    from repliflow.report.tables import Results

MAX_PANELS = 12  # more heatmap panels per metric than this and the table alone is shown
LOW, HIGH = (247, 251, 255), (8, 48, 107)  # the colour scale's ends: pale to dark blue
MARK = "†"
CELL_W, CELL_H, LABEL_W, HEAD_H = 78, 26, 96, 40

Means = Mapping[tuple[str, str], float]  # (condition, metric) -> mean over replicates
Marks = Mapping[tuple[str, str], list[str]]  # (condition, metric) -> hypotheses that found it significant


class ElementSpec(TypedDict):
    """The fields of a ``report.Element`` (the report makes one of each)."""

    kind: str
    text: NotRequired[str]
    headers: NotRequired[list[str]]
    rows: NotRequired[list[list[str]]]
    svg: NotRequired[str]


def grid_elements(results: Results) -> list[ElementSpec]:
    """The grid section of a ``tables.Results``, or [] when the experiment has no grid.

    Uses ``results.provenance["config"]`` (the grid), ``results.values``
    ({(condition, metric): values over replicates}) and ``results.hypotheses``.
    """
    config = (results.provenance or {}).get("config", {})
    values, hypotheses = results.values, results.hypotheses
    found = axes(config.get("grid"))
    if not found:
        return []
    grid_cells = cells(config.get("grid"))
    means = {
        key: overflow_safe(statistics.fmean, finite)
        for key, xs in values.items()
        if (finite := [x for x in xs if x is not None and math.isfinite(x)])
    }
    metrics = sorted({metric for _, metric in values})
    marks = _marks(hypotheses)
    shape = " × ".join(str(len(axis.values)) for axis in found)
    described = "; ".join(f"**{a.label}** (`{a.key}`): {', '.join(a.tokens)}" for a in found)
    blocks: list[ElementSpec] = [
        {"kind": "h2", "text": "Grid"},
        {
            "kind": "p",
            "text": f"{shape} = {len(grid_cells)} cells, each a treatment named from its values. "
            f"Axes: {described}. Each number is a metric's mean over replicates; {MARK} marks a cell "
            "that a hypothesis on that metric found significant against the baseline.",
        },
        {
            "kind": "table",
            "headers": [a.label for a in found] + [f"{m} (mean)" for m in metrics],
            "rows": [
                [a.tokens[i] for a, i in zip(found, c.indices, strict=True)]
                + [_text(means.get((c.name, m)), marks.get((c.name, m))) for m in metrics]
                for c in grid_cells
            ]
            + [["baseline"] + [""] * (len(found) - 1) + [_text(means.get(("baseline", m))) for m in metrics]],
        },
    ]
    if len(found) >= 2:
        for metric in metrics:
            blocks += _heatmaps(metric, found, grid_cells, means, marks)
    return blocks


def _marks(hypotheses: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[str]]:
    marks: dict[tuple[str, str], list[str]] = {}
    for hypothesis in hypotheses:
        for treatment, result in hypothesis.get("results", {}).items():
            if result.get("significant"):
                marks.setdefault((treatment, hypothesis["metric"]), []).append(hypothesis["name"])
    return marks


def _text(mean: float | None, mark: list[str] | None = None) -> str:
    return ("–" if mean is None else f"{mean:.4g}") + (MARK if mark else "")


def _fraction(mean: float, low: float, high: float) -> float:
    """Where ``mean`` lies between ``low`` and ``high``, in [0, 1]; halved first
    so that a range near the float maximum does not overflow (0.5 for an empty
    or infinite range)."""
    span = high / 2 - low / 2
    if not 0 < span < math.inf or not math.isfinite(mean):
        return 0.5
    return min(1.0, max(0.0, (mean / 2 - low / 2) / span))


def _colour(fraction: float) -> tuple[str, str]:
    """Fill and text colour for a value at ``fraction`` of the scale."""
    rgb = [round(lo + (hi - lo) * fraction) for lo, hi in zip(LOW, HIGH, strict=True)]
    return "#" + "".join(f"{c:02x}" for c in rgb), "#fff" if fraction > 0.55 else "#222"


def _heatmaps(
    metric: str, found: list[Axis], grid_cells: list[Cell], means: Means, marks: Marks
) -> list[ElementSpec]:
    rows_axis, cols_axis, rest = found[0], found[1], found[2:]
    panels = list(itertools.product(*(range(len(a.values)) for a in rest)))
    if len(panels) > MAX_PANELS:
        return []
    names = {c.indices: c.name for c in grid_cells}
    present = [v for c in grid_cells if (v := means.get((c.name, metric))) is not None and math.isfinite(v)]
    low, high = (min(present), max(present)) if present else (0.0, 0.0)
    blocks: list[ElementSpec] = []
    for panel in panels:
        where = ", ".join(f"{a.label} = {a.tokens[i]}" for a, i in zip(rest, panel, strict=True))
        grid = [
            [names[(r, c, *panel)] for c in range(len(cols_axis.values))]
            for r in range(len(rows_axis.values))
        ]
        svg = _svg(rows_axis, cols_axis, grid, metric, means, marks, low, high)
        caption = (
            f"Mean `{metric}` per cell{' at ' + where if where else ''}: rows {rows_axis.label}, columns "
            f"{cols_axis.label}; colour from {low:.4g} (pale) to {high:.4g} (dark), on one scale for "
            f"every panel of `{metric}`."
        )
        blocks.append({"kind": "figure", "text": caption, "svg": svg})
    return blocks


def _svg(
    rows_axis: Axis,
    cols_axis: Axis,
    grid: list[list[str]],
    metric: str,
    means: Means,
    marks: Marks,
    low: float,
    high: float,
) -> str:
    width = LABEL_W + CELL_W * len(cols_axis.values)
    height = HEAD_H + CELL_H * len(rows_axis.values)
    esc = html.escape
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="system-ui,sans-serif" font-size="11" role="img">',
        f'<text x="{LABEL_W + CELL_W * len(cols_axis.values) / 2}" y="12" text-anchor="middle" '
        f'fill="#555">{esc(cols_axis.label)}</text>',
        f'<text x="4" y="{HEAD_H - 6}" fill="#555">{esc(rows_axis.label)}</text>',
    ]
    for c, token in enumerate(cols_axis.tokens):
        x = LABEL_W + CELL_W * c + CELL_W / 2
        out.append(f'<text x="{x}" y="{HEAD_H - 6}" text-anchor="middle">{esc(token)}</text>')
    for r, token in enumerate(rows_axis.tokens):
        y = HEAD_H + CELL_H * r
        out.append(f'<text x="{LABEL_W - 6}" y="{y + CELL_H / 2 + 4}" text-anchor="end">{esc(token)}</text>')
        for c, name in enumerate(grid[r]):
            mean = means.get((name, metric))
            fill, ink = (
                ("#eee", "#222")
                if mean is None or not math.isfinite(mean)
                else _colour(_fraction(mean, low, high))
            )
            x = LABEL_W + CELL_W * c
            out.append(
                f'<g><title>{esc(name)}</title><rect x="{x}" y="{y}" width="{CELL_W}" height="{CELL_H}" '
                f'fill="{fill}" stroke="#fff"/><text x="{x + CELL_W / 2}" y="{y + CELL_H / 2 + 4}" '
                f'text-anchor="middle" fill="{ink}">{esc(_text(mean, marks.get((name, metric))))}</text></g>'
            )
    out.append("</svg>")
    return "".join(out)
