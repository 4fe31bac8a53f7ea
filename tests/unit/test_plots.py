"""The report's plots, drawn without Snakemake: deterministic SVG with every point,
no global matplotlib state, no pyplot, and no overflow near the float maximum."""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from repliflow.report import plots


def _figures(salt="s"):
    from repliflow.report import plots

    conditions = ["baseline", "small", "big"]
    values = {
        c: [float(i % 17) + shift for i in range(40)] for c, shift in zip(conditions, [0, 1, 2], strict=True)
    }
    values["big"][3] = float("nan")
    treatments = conditions[1:]
    differences = {t: [b - a for a, b in zip(values["baseline"], values[t], strict=True)] for t in treatments}
    intervals = {"small": (1.0, 0.5, 1.5), "big": (2.0, None, float("nan"))}
    colors = plots.condition_colors(conditions)
    return (
        plots.distribution("mean", conditions, values, salt=salt),
        plots.paired_differences("mean", treatments, differences, intervals, colors, salt),
    )


def test_plots_are_deterministic_svg_with_every_point_and_leave_rcparams_alone():
    import matplotlib

    before = dict(matplotlib.rcParams)
    distribution, paired = _figures()
    assert dict(matplotlib.rcParams) == before  # the figure style is applied per figure, not set globally
    assert _figures() == (distribution, paired)  # equal data, equal bytes
    assert _figures(salt="other")[0] != distribution  # the salt goes into the ids
    for svg in (distribution, paired):
        assert svg.startswith("<svg") and "<metadata>" not in svg and "<text" in svg  # text kept as text
    # every finite replicate is a point in its condition's colour (big's NaN is left out and counted)
    assert distribution.count('style="fill: #4c5d73; fill-opacity: 0.7"') == 40
    assert distribution.count('style="fill: #d1603d; fill-opacity: 0.7"') == 40
    assert distribution.count('style="fill: #3a8d5c; fill-opacity: 0.7"') == 39
    assert "n=39, 1 missing" in distribution
    assert paired.count('style="fill: #3a8d5c; fill-opacity: 0.7"') == 39


def test_plots_do_not_import_pyplot():
    code = (
        "import sys; from test_plots import _figures; _figures(); "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).parent, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]


# Values near the float maximum, or infinite, are drawn or noted (issue 12: aggregate never
# destroys; the cases that go through Snakemake are in tests/workflow/test_report_robust.py).


def test_error_bars_are_never_negative_and_skip_what_is_not_finite():
    mean, below, above = plots._error_bar(0.9999999999999999, 1.0, 1.0)  # the CI misses the mean
    assert (mean, below) == (0.9999999999999999, 0.0) and 0 <= above < 1e-15
    assert plots._error_bar(1.0, 0.5, 2.0) == (1.0, 0.5, 1.0)
    assert plots._error_bar(1.0, None, math.inf) == (1.0, 0.0, 0.0)
    assert plots._error_bar(1.7e308, -1.7e308, 1.7e308, 1e308) == pytest.approx((1.7, 3.4, 0.0))
    assert plots._error_bar(math.nan, 0.0, 1.0) is None


def test_summaries_do_not_overflow():
    assert plots.overflow_safe(statistics.fmean, [1.7e308, 1.7e308]) == pytest.approx(1.7e308)
    assert plots.overflow_safe(statistics.median, [1.7e308, 1.7e308]) == pytest.approx(1.7e308)
    assert plots.overflow_safe(statistics.stdev, [1.7e308, -1.7e308]) == math.inf  # the SD itself is
    assert plots.overflow_safe(statistics.fmean, [1.0, 2.0]) == 1.5
