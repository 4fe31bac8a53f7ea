"""Read the result tables back: ``metrics.csv``, ``hypotheses.json``, ``provenance.json``.

Shared by the report and ``repliflow power``, which work from a finished
results directory only.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Results:
    """One results directory: metric values by (condition, metric) in replicate
    order (NaN where the metric was NaN, missing or unparsable), the hypotheses
    and the provenance record (empty when absent)."""

    path: Path
    values: dict[tuple[str, str], list[float]]
    hypotheses: list[dict]
    provenance: dict

    @property
    def conditions(self) -> list[str]:
        if self.provenance.get("conditions"):
            return list(self.provenance["conditions"])
        return list(dict.fromkeys(condition for condition, _ in self.values))

    @property
    def metrics(self) -> list[str]:
        return sorted({metric for _, metric in self.values})

    def finite(self, condition: str, metric: str) -> list[float]:
        return [v for v in self.values.get((condition, metric), []) if math.isfinite(v)]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def read_metrics(path: Path) -> dict[tuple[str, str], list[float]]:
    """``metrics.csv`` as {(condition, metric): values by replicate}; an empty
    value (a replicate that did not return the metric) reads as NaN."""
    rows: dict[tuple[str, str], dict[int, float]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            by_replicate = rows.setdefault((row["condition"], row["metric"]), {})
            by_replicate[int(row["replicate"])] = _number(row["value"])
    return {key: [reps[r] for r in sorted(reps)] for key, reps in rows.items()}


def load(metrics, hypotheses, provenance=None, directory=None) -> Results:
    """The tables at these paths; ``directory`` (default: the one holding
    metrics.csv) is how the results directory is named in messages."""
    provenance = Path(provenance) if provenance else None
    return Results(
        path=Path(directory) if directory is not None else Path(metrics).parent,
        values=read_metrics(Path(metrics)),
        hypotheses=json.loads(Path(hypotheses).read_text())["hypotheses"],
        provenance=json.loads(provenance.read_text()) if provenance and provenance.exists() else {},
    )


def read_results(directory) -> Results:
    """The tables of a results directory, ``results/<experiment>``."""
    directory = Path(directory)
    return load(
        directory / "metrics.csv", directory / "hypotheses.json", directory / "provenance.json", directory
    )
