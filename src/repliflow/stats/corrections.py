"""Multiple-comparison corrections over the k treatments of one hypothesis.

``holm`` (Holm 1979, the default: controls the family-wise error rate like
Bonferroni and is never less powerful), ``bonferroni``, ``fdr_bh``
(Benjamini & Hochberg 1995, false discovery rate; ``scipy.stats.
false_discovery_control``) and ``none``. Adjusted p-values are the ones R's
``p.adjust`` returns. A NaN p-value (a test that could not be made) is left
out of the family: it stays NaN and does not count towards k.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from repliflow.stats import CORRECTIONS, DEFAULT_CORRECTION

__all__ = ["CORRECTIONS", "DEFAULT_CORRECTION", "adjust", "per_comparison_alpha"]


def _holm(p: np.ndarray) -> np.ndarray:
    k = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((k - np.arange(k)) * p[order])
    adjusted = np.empty(k)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def adjust(p_values: Sequence[float], method: str = DEFAULT_CORRECTION) -> list[float]:
    """Adjusted p-values, in the order given."""
    if method not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, not {method!r}")
    p = np.array([math.nan if v is None else float(v) for v in p_values], dtype=float)
    finite = ~np.isnan(p)
    out = p.copy()
    if finite.any() and method != "none":
        kept = p[finite]
        if method == "bonferroni":
            out[finite] = np.minimum(kept * len(kept), 1.0)
        elif method == "holm":
            out[finite] = _holm(kept)
        else:
            from scipy import stats  # here: importing scipy.stats costs 0.5-0.9 s, and only fdr_bh needs it

            out[finite] = stats.false_discovery_control(kept, method="bh")
    return [float(v) for v in out]


def per_comparison_alpha(alpha: float, k: int, method: str) -> float:
    """The level one comparison must reach in the worst case: alpha / k for
    every correction (the first step of Holm and of BH), alpha for none."""
    return alpha if method == "none" or k <= 1 else alpha / k
