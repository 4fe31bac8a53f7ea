"""A finished run's results as pandas objects, for scripts and notebooks.

    import repliflow
    run = repliflow.load("results/titanic_age")
    run.metrics          # tidy: condition, replicate, seed, metric, value
    run.wide()           # one row per condition x replicate, one column per metric
    run.hypotheses       # one row per hypothesis x treatment: p, adjusted p, effect, CI, verdict
    run.output("baseline", 3, "normalize_age")   # a stored output, checked before it is loaded
    run.provenance       # provenance.json

pandas comes with the ``analysis`` extra (``pip install 'repliflow[analysis]'``):
the workflow's jobs never import this module. Everything is read from the
results folder alone, under the rules every reader follows: tables and
records are type-checked (``repliflow.report.tables``), a stored output is
loaded only when its bytes match the sha256 the run recorded, and a pickle
only when this user's key signed it (``repliflow trust`` signs a received
folder's pickles after asking).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repliflow.core.records import StoredOutput
from repliflow.errors import RepliflowError
from repliflow.report.tables import Results, read_results
from repliflow.store import storage
from repliflow.store.layout import METRICS, PROVENANCE, ResultsLayout, output_paths
from repliflow.store.provenance import read_provenance

if TYPE_CHECKING:
    import pandas

HYPOTHESIS_COLUMNS = [
    "hypothesis",
    "metric",
    "verifier",
    "treatment",
    "n_baseline",
    "n_treatment",
    "mean_difference",
    "mean_difference_ci_low",
    "mean_difference_ci_high",
    "effect_size",
    "effect",
    "effect_ci_low",
    "effect_ci_high",
    "statistic",
    "p_value_raw",
    "p_value",
    "correction",
    "alpha",
    "significant",
    "verdict",
]


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise RepliflowError(
            "repliflow: repliflow.load needs pandas, which comes with the analysis extra: "
            "pip install 'repliflow[analysis]'"
        ) from None
    return pandas


def load(results_dir: str | Path, store: str | Path | None = None) -> RunResults:
    """The results of ``results/<experiment>``: its tables checked for their
    types, as pandas objects (see the module's docstring). Outputs are read
    from ``store`` if given, else from the shared store provenance.json
    names, else from the results folder's own."""
    _pandas()
    return RunResults(Path(results_dir), read_results(results_dir), None if store is None else Path(store))


@dataclass
class RunResults:
    path: Path
    tables: Results = field(repr=False)
    store: Path | None = None

    @property
    def experiment(self) -> str:
        return str(self.tables.provenance.get("experiment") or self.path.name)

    @property
    def provenance(self) -> dict[str, Any]:
        return self.tables.provenance

    @cached_property
    def metrics(self) -> pandas.DataFrame:
        """``metrics.csv``: one row per condition x replicate x metric; seeds
        are Python ints (128 bits: no numpy integer holds them)."""
        pd = _pandas()
        frame = pd.read_csv(
            self.path / METRICS,
            dtype={"condition": str, "replicate": "int64", "seed": str, "metric": str, "value": "float64"},
            keep_default_na=False,
            na_values={"value": ["", "nan", "NaN"]},
        )
        frame["seed"] = frame["seed"].map(int).astype(object)
        return frame

    def wide(self) -> pandas.DataFrame:
        """``metrics`` with one column per metric, indexed by condition and
        replicate (conditions in config order: baseline first)."""
        pd = _pandas()
        frame = self.metrics.pivot_table(
            index=["condition", "replicate"], columns="metric", values="value", aggfunc="first", dropna=False
        )
        frame.columns.name = None
        order = {name: i for i, name in enumerate(self.tables.conditions)}
        keys = pd.Index([order.get(c, len(order)) for c, _ in frame.index])
        return frame.iloc[keys.argsort(kind="stable")]

    @cached_property
    def hypotheses(self) -> pandas.DataFrame:
        """One row per hypothesis x treatment, in the order of hypotheses.json;
        ``p_value`` is the adjusted p-value the verdict uses."""
        pd = _pandas()
        rows = []
        for hypothesis in self.tables.hypotheses:
            for treatment, result in hypothesis.get("results", {}).items():
                rows.append(_hypothesis_row(hypothesis, treatment, result))
        return pd.DataFrame(rows, columns=HYPOTHESIS_COLUMNS)

    def output(self, condition: str, replicate: int, step: str) -> Any:
        """The stored output of ``step`` (or "datasource") for one replicate of
        ``condition``, checked against the sha256 provenance.json records
        (and, for a pickle, this user's signature) before it is decoded."""
        for index, entry in enumerate(self._outputs):
            if entry.get("step") != step or entry.get("replicate") != replicate:
                continue
            if condition not in (entry.get("conditions") or []):
                continue
            path, _ = output_paths(entry, f"{self.path / PROVENANCE}: outputs[{index}]")
            record: StoredOutput = {
                "file": Path(path).name,
                "format": entry.get("format") or _format_of(path),
                "sha256": entry["sha256"],
            }
            shared = self.store or self.provenance.get("store")
            value, _ = storage.load(
                ResultsLayout(str(self.path), shared and str(shared)).store, entry["key"], record
            )
            return value
        steps = sorted({str(entry.get("step")) for entry in self._outputs})
        raise RepliflowError(
            f"repliflow: {self.path / PROVENANCE} records no output of step {step!r} for condition "
            f"{condition!r}, replicate {replicate} (steps: {', '.join(steps) or 'none'}; conditions: "
            f"{', '.join(self.tables.conditions)})"
        )

    @cached_property
    def _outputs(self) -> list[dict[str, Any]]:
        outputs = read_provenance(self.path).get("outputs")
        return [entry for entry in outputs or [] if isinstance(entry, dict)]

    def _repr_html_(self) -> str:
        """A notebook's view: what ran, and the verdicts."""
        counts = self.metrics.groupby("condition", sort=False)["replicate"].nunique()
        head = (
            f"<p><b>{html.escape(self.experiment)}</b>: {len(counts)} conditions "
            f"({', '.join(f'{html.escape(str(c))} x {n}' for c, n in counts.items())} replicates), "
            f"{self.metrics['metric'].nunique()} metrics; {html.escape(str(self.path))}</p>"
        )
        columns = ["hypothesis", "treatment", "effect_size", "effect", "p_value", "verdict"]
        table = self.hypotheses[columns].to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="")
        return head + str(table)

    def __repr__(self) -> str:
        return f"RunResults({str(self.path)!r}: {len(self.tables.conditions)} conditions)"


def _format_of(path: str) -> str:
    extension = path.rsplit(".", 1)[-1]
    for fmt, ext in storage.EXTENSIONS.items():
        if ext == extension:
            return str(fmt)
    raise RepliflowError(f"repliflow: {path}: not a store file this repliflow reads")


def _pair(value: Any) -> tuple[float, float]:
    if isinstance(value, list | tuple) and len(value) == 2:
        return _number(value[0]), _number(value[1])
    return math.nan, math.nan


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def _hypothesis_row(hypothesis: dict[str, Any], treatment: str, result: dict[str, Any]) -> dict[str, Any]:
    effect_size = result.get("effect_size")
    effect_ci = _pair(result.get(f"{effect_size}_ci")) if effect_size else (math.nan, math.nan)
    difference_ci = _pair(result.get("mean_difference_ci"))
    significant = bool(result.get("significant"))
    verdict = result.get("verdict") or ("difference" if significant else "no difference found")
    return {
        "hypothesis": hypothesis.get("name"),
        "metric": hypothesis.get("metric"),
        "verifier": hypothesis.get("verifier"),
        "treatment": treatment,
        "n_baseline": result.get("n_baseline"),
        "n_treatment": result.get("n_treatment"),
        "mean_difference": _number(result.get("mean_difference")),
        "mean_difference_ci_low": difference_ci[0],
        "mean_difference_ci_high": difference_ci[1],
        "effect_size": effect_size,
        "effect": _number(result.get(effect_size)) if effect_size else math.nan,
        "effect_ci_low": effect_ci[0],
        "effect_ci_high": effect_ci[1],
        "statistic": _number(result.get("statistic")),
        "p_value_raw": _number(result.get("p_value_raw", result.get("p_value"))),
        "p_value": _number(result.get("p_value")),
        "correction": result.get("correction", hypothesis.get("correction")),
        "alpha": _number(result.get("alpha", hypothesis.get("alpha"))),
        "significant": significant,
        "verdict": verdict,
    }
