"""repliflow: replicated experiments as Snakemake workflows.

The public API, for scripts and notebooks (the workflow itself is run with
``snakemake --cores N`` or ``repliflow run``; docs/architecture.md maps the
package):

- ``load(results_dir)``: a finished run's results as pandas objects (metrics,
  hypotheses, verified stored outputs, provenance), with the analysis extra
- ``read_results(results_dir)``: a finished run's tables, type-checked
- ``audit(results_dir)``, ``status(config_file)``, ``gc(config_files)``: the
  commands of the same names, as functions returning dataclasses
- ``load_plan(config_file)``: an experiment's conditions, seeds, recipe keys and jobs
- ``ResultsLayout``: where everything under ``results/<experiment>/`` is
- ``Context``: the type of the ``ctx`` every step receives
- ``RepliflowError``: the base of every error repliflow raises on purpose

Names are imported on first use, so ``import repliflow`` (which every job
does) loads neither scipy nor Snakemake.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_WHERE = {
    "load": "repliflow.analysis",
    "read_results": "repliflow.report.tables",
    "audit": "repliflow.store.audit",
    "status": "repliflow.engine.status",
    "gc": "repliflow.store.gc",
    "load_plan": "repliflow.core.plan",
    "ResultsLayout": "repliflow.store.layout",
    "Context": "repliflow.core.context",
    "RepliflowError": "repliflow.errors",
}
__all__ = [
    "Context",
    "RepliflowError",
    "ResultsLayout",
    "__version__",
    "audit",
    "gc",
    "load",
    "load_plan",
    "read_results",
    "status",
]

if TYPE_CHECKING:
    from repliflow.analysis import load
    from repliflow.core.context import Context
    from repliflow.core.plan import load_plan
    from repliflow.engine.status import status
    from repliflow.errors import RepliflowError
    from repliflow.report.tables import read_results
    from repliflow.store.audit import audit
    from repliflow.store.gc import gc
    from repliflow.store.layout import ResultsLayout


def __getattr__(name: str) -> object:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'repliflow' has no attribute {name!r}")
