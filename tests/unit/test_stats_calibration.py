"""Calibration of every built-in verifier, and of `repliflow power`.

* A/A: 400 seeded comparisons of two samples from one distribution; at
  alpha = 0.05 the number of rejections must lie inside the binomial(400, 0.05)
  central 99% interval.
* Power: under a known shift, the power `repliflow power --effect <shift>`
  predicts from a pilot run whose observed difference and SD are exactly that
  shift and 1 lies within 10 percentage points of the rejection rate over 400
  seeded runs. (TOST's calibration is in test_stats_equivalence.py.)

Samples have 50 values per condition, the default experiment's replicates.
The permutation and bootstrap verifiers draw 499 and 999 resamples here (9999
by default) to keep the suite fast. The BCa bootstrap is liberal in smaller
samples (about 8% A/A rejections with 20 or 30 per condition); the README
says so.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from repliflow.cli import main
from repliflow.stats import DIFFERENCE_NAMES, PAIRED
from repliflow.stats.builtin import BUILTINS

RUNS = 400
N = 50  # the default experiment's replicates
ALPHA = 0.05
FAST = {"permutation": {"n_resamples": 499}, "bootstrap": {"n_resamples": 999}}
LOW, HIGH = stats.binom.interval(0.99, RUNS, ALPHA)


def _rejections(name: str, shift: float, seed: int) -> int:
    """Samples of N per condition; paired verifiers get pairs whose differences are N(shift, 1)."""
    rng = np.random.default_rng(seed)
    verifier = BUILTINS[name]
    rejected = 0
    for _ in range(RUNS):
        baseline = rng.normal(0, 1, N)
        noise = rng.normal(shift, 1, N)
        treatment = baseline + noise if name in PAIRED else noise
        result = verifier(baseline.tolist(), treatment.tolist(), alpha=ALPHA, **FAST.get(name, {}))
        rejected += result["significant"]
    return rejected


@pytest.mark.parametrize("name", DIFFERENCE_NAMES)
def test_aa_rejection_rate_is_inside_the_binomial_99_percent_interval(name):
    rejected = _rejections(name, 0.0, seed=20240)
    assert LOW <= rejected <= HIGH, (
        f"{name}: {rejected}/{RUNS} A/A rejections, expected {LOW:.0f}..{HIGH:.0f}"
    )


def _pilot(directory, name: str, shift: float) -> None:
    """A results directory whose observed difference is exactly ``shift`` and whose
    SD (pooled, or of the paired differences) is exactly 1, at N replicates."""
    rng = np.random.default_rng(1)

    def standard(x):
        return (x - x.mean()) / x.std(ddof=1)

    baseline = standard(rng.normal(size=N))
    if name in PAIRED:
        treatment = baseline + shift + standard(rng.normal(size=N))
    else:
        treatment = standard(rng.normal(size=N)) + shift
    lines = ["condition,replicate,seed,metric,value"]
    for condition, values in [("baseline", baseline), ("shifted", treatment)]:
        lines += [f"{condition},{r},{r},m,{v!r}" for r, v in enumerate(values.tolist())]
    directory.mkdir()
    (directory / "metrics.csv").write_text("\n".join(lines) + "\n")
    hypothesis = {
        "name": "h",
        "metric": "m",
        "verifier": name,
        "params": {"alpha": ALPHA},
        "correction": "holm",
        "results": {"shifted": {}},
        "ranking": ["shifted"],
    }
    (directory / "hypotheses.json").write_text(json.dumps({"hypotheses": [hypothesis]}))


@pytest.mark.parametrize("name", DIFFERENCE_NAMES)
def test_predicted_power_is_within_10_points_of_the_observed_rate(name, tmp_path, capsys):
    shift = 0.3 if name in PAIRED else 0.45  # power about 0.55 to 0.65, where errors show most
    _pilot(tmp_path / "pilot", name, shift)
    # power is planned for a declared effect only (never the observed one): --effect
    assert main(["power", str(tmp_path / "pilot"), "--json", "--effect", str(shift)]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["observed_difference"] == pytest.approx(shift) and row["sd"] == pytest.approx(1.0)
    assert row["effect"] == pytest.approx(shift) and row["effect_source"] == "given"
    assert row["replicates"] == N
    observed = _rejections(name, shift, seed=777) / RUNS
    assert abs(row["power"] - observed) <= 0.10, (
        f"{name}: predicted {row['power']:.3f}, observed {observed:.3f}"
    )
