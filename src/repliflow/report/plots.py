"""The report's figures: matplotlib rendered to inline SVG (text kept as text).

``distribution`` draws one box plot per condition with every replicate as a
jittered point; ``paired_differences`` draws, per treatment, each replicate's
treatment-minus-baseline difference (the quantity paired tests test) around
a zero line, with the mean difference's confidence interval. Beyond
``MAX_POINTS`` replicates a series draws a sample of its points (``sample``;
the box still summarises all of them, the tick labels say how many are
drawn): 50,000 points a condition made a 40 MB report. The SVG carries no
date and salted, stable ids, so equal data give equal bytes.

Names (metrics, conditions) are drawn as plain text: mathtext is off, so a
``$`` is a dollar sign. Non-finite values are left out (the tick labels count
them); values beyond ``LARGE`` are drawn divided by a power of ten that the
axis label names, since matplotlib's axis arithmetic overflows near the float
maximum; error bars are clipped to the mean (never negative).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TypedDict, Unpack

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.typing import RcKeyType

FloatArray = npt.NDArray[np.float64]

BASELINE_COLOR = "#4c5d73"
TREATMENT_COLORS = ["#d1603d", "#3a8d5c", "#7b57a6", "#c9a227", "#2f7fbf", "#b84a7a", "#6d8f2a", "#8c6d46"]


def condition_colors(conditions: Sequence[str]) -> dict[str, str]:
    colors = {}
    for index, condition in enumerate(conditions):
        colors[condition] = (
            BASELINE_COLOR if index == 0 else TREATMENT_COLORS[(index - 1) % len(TREATMENT_COLORS)]
        )
    return colors


# Applied around building and saving each figure (matplotlib reads some of them
# when an artist is made, some at draw time), so nothing leaks into the process's
# rcParams. svg.fonttype none keeps text as text; svg.hashsalt (per figure, below)
# makes the SVG's ids stable.
STYLE: dict[RcKeyType, object] = {
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.color": "#e4e4e4",
    "axes.axisbelow": True,
    "text.parse_math": False,  # names are text: "$x$" is not mathtext
    "text.usetex": False,
}

# Beyond this, matplotlib's limits and ticks overflow (a range of 2e308 is inf):
# such data are drawn in units of a power of ten (``_units``).
LARGE = 1e300


def overflow_safe(statistic: Callable[[list[float]], float], values: list[float]) -> float:
    """``statistic`` (mean, SD, median: scale-equivariant) of finite ``values``,
    computed on values divided by their largest magnitude when the direct
    computation overflows (``statistics.fmean`` of two 1.7e308 raises, their
    median is inf). The result is inf only when the answer itself is."""
    try:
        result = statistic(values)
    except OverflowError:
        result = math.inf
    scale = max((abs(v) for v in values), default=0.0)
    if math.isfinite(result) or not 0 < scale < math.inf:
        return result
    return statistic([v / scale for v in values]) * scale


def _render(figsize: tuple[float, float], salt: str, draw: Callable[[Axes], None]) -> str:
    """One Axes on a Figure of ``figsize`` inches, filled by ``draw``, as inline SVG.

    matplotlib's object-oriented API (no pyplot: no global figure registry or
    backend selection, nothing to close) and imported here, not at module import,
    so commands that never plot do not pay for matplotlib."""
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    buffer = io.StringIO()
    with matplotlib.rc_context({**STYLE, "svg.hashsalt": salt}):
        fig = Figure(figsize=figsize)
        draw(fig.add_subplot())
        FigureCanvasSVG(fig).print_figure(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buffer.getvalue()
    text = text[text.index("<svg") :]  # inline: drop the XML declaration and DOCTYPE
    return re.sub(r"<metadata>.*?</metadata>", "", text, count=1, flags=re.S)


def _finite(values: Sequence[float]) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    return array[np.isfinite(array)]


def _units(arrays: Iterable[FloatArray], *bounds: float | None) -> tuple[float, str]:
    """(divisor, label suffix) for data this large: a power of ten near their
    largest magnitude, else (1, "")."""
    finite = [abs(b) for b in bounds if b is not None and math.isfinite(b)]
    largest = max([float(np.max(np.abs(a))) for a in arrays if len(a)] + finite, default=0.0)
    if largest <= LARGE:
        return 1.0, ""
    exponent = math.floor(math.log10(largest))
    return float(f"1e{exponent}"), f" (× 1e{exponent})"


def _counts(values: Sequence[float], drawn: FloatArray) -> str:
    """``n=…`` with how many values are missing (NaN) and infinite (not drawn)."""
    array = np.asarray(values, dtype=float)
    missing, infinite = int(np.isnan(array).sum()), int(np.isinf(array).sum())
    return (
        f"n={len(drawn)}"
        + (f", {missing} missing" if missing else "")
        + (f", {infinite} infinite" if infinite else "")
    )


MAX_POINTS = 1000  # points a strip draws per series; beyond, ``sample``


def sample(values: FloatArray, seed: int) -> FloatArray:
    """At most MAX_POINTS of ``values`` for a strip: all of them when there are
    no more; else every value beyond 1.5 IQR of the quartiles (where the
    whiskers end: the points an eye looks for; a random half of MAX_POINTS of
    them when there are more) and a random sample of the others, seeded."""
    if len(values) <= MAX_POINTS:
        return values
    q1, q3 = np.percentile(values, [25, 75])
    beyond = (values < q1 - 1.5 * (q3 - q1)) | (values > q3 + 1.5 * (q3 - q1))
    rng = np.random.default_rng(seed)
    far, near = values[beyond], values[~beyond]
    if len(far) > MAX_POINTS // 2:
        far = rng.choice(far, MAX_POINTS // 2, replace=False)
    return np.concatenate([rng.choice(near, MAX_POINTS - len(far), replace=False), far])


def _drawn(values: FloatArray) -> str:
    """``, 1000 drawn`` when a strip draws a sample of its points."""
    return f", {MAX_POINTS} drawn" if len(values) > MAX_POINTS else ""


def _strip(
    ax: Axes, position: float, values: FloatArray, color: str, seed: int, horizontal: bool = False
) -> None:
    values = sample(values, seed)
    jitter = np.random.default_rng(seed).uniform(-0.12, 0.12, len(values))
    x, y = position + jitter, values
    if horizontal:
        x, y = y, x
    ax.scatter(x, y, s=11, color=color, alpha=0.7, linewidths=0, zorder=3)


class LineStyle(TypedDict, total=False):
    """The Line2D properties the box plot's lines set."""

    color: str
    linestyle: str
    linewidth: float
    solid_capstyle: str


WHISKER: LineStyle = {"color": "black", "linestyle": "-", "linewidth": 1.0}  # and caps
MEDIAN: LineStyle = {
    "color": "#222222",
    "linewidth": 1.4,
    "solid_capstyle": "butt",
}  # butt: ends at the box's edges


def _box(
    ax: Axes,
    values: Sequence[FloatArray],
    positions: Sequence[float],
    colors: Sequence[str],
    vert: bool = True,
) -> None:
    """Per non-empty series: its quartile box (width 0.5, at its position), the
    whiskers to the furthest data within 1.5 IQR with caps, and the median; no
    fliers (the strip draws every replicate).

    These are the artists ``Axes.boxplot(patch_artist=True, showfliers=False)``
    makes, in its order and style, made here because boxplot reads every rcParam,
    ``backend`` included, and reading ``backend`` imports pyplot to choose one."""
    from matplotlib.cbook import boxplot_stats
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path

    def line(along: list[float], across: list[float], zorder: float = 2, **style: Unpack[LineStyle]) -> None:
        xy = (along, across) if vert else (across, along)  # ``along`` the positions' axis
        merged: LineStyle = {**WHISKER, **style}
        ax.plot(*xy, **merged, marker="", zorder=zorder)

    for data, position, color in zip(values, positions, colors, strict=True):
        if not len(data):
            continue
        stats = boxplot_stats(data, whis=1.5)[0]
        q1, q3, low, high = stats["q1"], stats["q3"], stats["whislo"], stats["whishi"]
        left, right = position - 0.25, position + 0.25
        corners = [(left, q1), (right, q1), (right, q3), (left, q3), (left, q1)]
        # closed=True: the last vertex is only where CLOSEPOLY goes (as boxplot makes it)
        outline = Path([c if vert else c[::-1] for c in [*corners, corners[0]]], closed=True)
        box = PathPatch(outline, facecolor=color + "33", edgecolor=color, linewidth=1.0, zorder=2)
        ax.add_artist(box)
        line([position, position], [q1, low])
        line([position, position], [q3, high])
        line([position - 0.125, position + 0.125], [low, low])
        line([position - 0.125, position + 0.125], [high, high])
        line([left, right], [stats["med"]] * 2, **MEDIAN, zorder=2.1)


def distribution(metric: str, conditions: list[str], values: Mapping[str, Sequence[float]], salt: str) -> str:
    """Box + strip plot of one metric, one column per condition."""
    colors = condition_colors(conditions)
    finite = [_finite(values.get(c, [])) for c in conditions]
    divisor, units = _units(finite)
    finite = [data / divisor for data in finite]
    positions = list(range(1, len(conditions) + 1))

    def draw(ax: Axes) -> None:
        _box(ax, finite, positions, [colors[c] for c in conditions])
        for index, (condition, data) in enumerate(zip(conditions, finite, strict=True)):
            _strip(ax, positions[index], data, colors[condition], seed=index)
        labels = [
            f"{condition}\n{_counts(values.get(condition, []), data)}{_drawn(data)}"
            for condition, data in zip(conditions, finite, strict=True)
        ]
        ax.set_xticks(positions, labels)
        ax.set_xlim(0.4, len(conditions) + 0.6)
        ax.set_ylabel(metric + units)
        ax.set_title(f"{metric}: every replicate, by condition", loc="left", fontsize=10)

    return _render((max(3.6, 1.5 + 1.3 * len(conditions)), 3.2), salt, draw)


def paired_differences(
    metric: str,
    treatments: list[str],
    differences: Mapping[str, Sequence[float]],
    intervals: Mapping[str, tuple[float, float | None, float | None]],
    colors: Mapping[str, str],
    salt: str,
) -> str:
    """Per treatment, replicate r's treatment minus baseline value, with the mean
    difference and its confidence interval (``intervals``: mean, low, high; a
    missing or infinite bound draws no bar on its side)."""
    positions = list(range(len(treatments), 0, -1))
    data = [_finite(differences.get(t, [])) for t in treatments]
    means = [intervals.get(t, (math.nan, None, None))[0] for t in treatments]
    divisor, units = _units(data, *means)
    data = [diffs / divisor for diffs in data]

    def draw(ax: Axes) -> None:
        _box(ax, data, positions, [colors[t] for t in treatments], vert=False)
        for index, (treatment, diffs) in enumerate(zip(treatments, data, strict=True)):
            _strip(ax, positions[index], diffs, colors[treatment], seed=index, horizontal=True)
            bar = _error_bar(*intervals.get(treatment, (math.nan, None, None)), divisor)
            if bar is not None:
                mean, below, above = bar
                ax.errorbar(
                    [mean],
                    [positions[index] + 0.36],
                    xerr=[[below], [above]],
                    fmt="D",
                    color="#111111",
                    markersize=4,
                    capsize=3,
                    linewidth=1.2,
                    zorder=4,
                )
        ax.axvline(0, color="#888888", linewidth=1, linestyle="--", zorder=1)
        labels = [
            f"{treatment}\nn={len(diffs)}{_drawn(diffs)}" if len(diffs) > MAX_POINTS else treatment
            for treatment, diffs in zip(treatments, data, strict=True)
        ]
        ax.set_yticks(positions, labels)
        ax.set_ylim(0.4, len(treatments) + 0.75)
        ax.grid(axis="x", color="#e4e4e4")
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(f"{metric}: treatment minus baseline, same replicate (seed){units}")
        ax.set_title(
            f"{metric}: paired differences (diamond: mean difference and its CI)", loc="left", fontsize=10
        )

    return _render((6.4, max(1.8, 0.9 + 0.8 * len(treatments))), salt, draw)


def _error_bar(
    mean: float | None, low: float | None, high: float | None, divisor: float = 1.0
) -> tuple[float, float, float] | None:
    """(mean, length below, length above) in units of ``divisor``, or None when
    the mean is not finite. A bound that is missing, infinite or on the wrong
    side of the mean (rounding: constant paired differences give a CI of
    [1.0, 1.0] around a mean of 0.9999999999999999) draws no bar on its side."""
    if mean is None or not math.isfinite(mean):
        return None
    mean /= divisor

    def length(bound: float | None, sign: int) -> float:
        if bound is None or not math.isfinite(bound):
            return 0.0
        extent = sign * (bound / divisor - mean)
        return extent if math.isfinite(extent) and extent > 0 else 0.0

    return mean, length(low, -1), length(high, 1)
