"""The report's figures: matplotlib rendered to inline SVG (text kept as text).

``distribution`` draws one box plot per condition with every replicate as a
jittered point; ``paired_differences`` draws, per treatment, each replicate's
treatment-minus-baseline difference (the quantity paired tests test) around
a zero line, with the mean difference's confidence interval. The SVG carries
no date and salted, stable ids, so equal data give equal bytes.
"""

from __future__ import annotations

import io
import math
import re

import numpy as np

BASELINE_COLOR = "#4c5d73"
TREATMENT_COLORS = ["#d1603d", "#3a8d5c", "#7b57a6", "#c9a227", "#2f7fbf", "#b84a7a", "#6d8f2a", "#8c6d46"]


def condition_colors(conditions: list[str]) -> dict[str, str]:
    colors = {}
    for index, condition in enumerate(conditions):
        colors[condition] = (
            BASELINE_COLOR if index == 0 else TREATMENT_COLORS[(index - 1) % len(TREATMENT_COLORS)]
        )
    return colors


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.fonttype": "none",
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "axes.grid.axis": "y",
            "grid.color": "#e4e4e4",
            "axes.axisbelow": True,
        }
    )
    return plt


def _svg(fig, salt: str) -> str:
    plt = _pyplot()
    buffer = io.StringIO()
    with plt.rc_context({"svg.hashsalt": salt}):
        fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]  # inline: drop the XML declaration and DOCTYPE
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)


def _strip(ax, position: float, values: np.ndarray, color: str, seed: int, horizontal: bool = False) -> None:
    jitter = np.random.default_rng(seed).uniform(-0.12, 0.12, len(values))
    x, y = position + jitter, values
    if horizontal:
        x, y = y, x
    ax.scatter(x, y, s=11, color=color, alpha=0.7, linewidths=0, zorder=3)


def _box(ax, values: list[np.ndarray], positions, colors: list[str], vert: bool = True) -> None:
    kept = [(v, p, c) for v, p, c in zip(values, positions, colors, strict=True) if len(v)]
    if not kept:
        return
    boxes = ax.boxplot(
        [v for v, _, _ in kept],
        positions=[p for _, p, _ in kept],
        orientation="vertical" if vert else "horizontal",
        widths=0.5,
        showfliers=False,
        patch_artist=True,
        medianprops={"color": "#222222", "linewidth": 1.4},
    )
    for patch, (_, _, color) in zip(boxes["boxes"], kept, strict=True):
        patch.set_facecolor(color + "33")
        patch.set_edgecolor(color)


def distribution(metric: str, conditions: list[str], values: dict[str, list[float]], salt: str) -> str:
    """Box + strip plot of one metric, one column per condition."""
    plt = _pyplot()
    colors = condition_colors(conditions)
    fig, ax = plt.subplots(figsize=(max(3.6, 1.5 + 1.3 * len(conditions)), 3.2))
    finite = [np.array([v for v in values.get(c, []) if math.isfinite(v)]) for c in conditions]
    positions = list(range(1, len(conditions) + 1))
    _box(ax, finite, positions, [colors[c] for c in conditions])
    for index, (condition, data) in enumerate(zip(conditions, finite, strict=True)):
        _strip(ax, positions[index], data, colors[condition], seed=index)
    labels = []
    for condition, data in zip(conditions, finite, strict=True):
        missing = len(values.get(condition, [])) - len(data)
        labels.append(f"{condition}\nn={len(data)}" + (f", {missing} missing" if missing else ""))
    ax.set_xticks(positions, labels)
    ax.set_xlim(0.4, len(conditions) + 0.6)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: every replicate, by condition", loc="left", fontsize=10)
    return _svg(fig, salt)


def paired_differences(
    metric: str,
    treatments: list[str],
    differences: dict[str, list[float]],
    intervals: dict[str, tuple[float, float | None, float | None]],
    colors: dict[str, str],
    salt: str,
) -> str:
    """Per treatment, replicate r's treatment minus baseline value, with the mean
    difference and its confidence interval (``intervals``: mean, low, high)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, max(1.8, 0.9 + 0.8 * len(treatments))))
    positions = list(range(len(treatments), 0, -1))
    data = [np.array([d for d in differences.get(t, []) if math.isfinite(d)]) for t in treatments]
    _box(ax, data, positions, [colors[t] for t in treatments], vert=False)
    for index, (treatment, diffs) in enumerate(zip(treatments, data, strict=True)):
        _strip(ax, positions[index], diffs, colors[treatment], seed=index, horizontal=True)
        mean, low, high = intervals.get(treatment, (math.nan, None, None))
        if math.isfinite(mean):
            lo = low if low is not None and math.isfinite(low) else mean
            hi = high if high is not None and math.isfinite(high) else mean
            ax.errorbar(
                [mean],
                [positions[index] + 0.36],
                xerr=[[mean - lo], [hi - mean]],
                fmt="D",
                color="#111111",
                markersize=4,
                capsize=3,
                linewidth=1.2,
                zorder=4,
            )
    ax.axvline(0, color="#888888", linewidth=1, linestyle="--", zorder=1)
    ax.set_yticks(positions, treatments)
    ax.set_ylim(0.4, len(treatments) + 0.75)
    ax.grid(axis="x", color="#e4e4e4")
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(f"{metric}: treatment minus baseline, same replicate (seed)")
    ax.set_title(
        f"{metric}: paired differences (diamond: mean difference and its CI)", loc="left", fontsize=10
    )
    return _svg(fig, salt)
