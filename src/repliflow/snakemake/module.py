"""The workflow used as a Snakemake module (``use rule * from repliflow``).

Snakemake runs only the including Snakefile's ``onstart``, ``onsuccess`` and
``onerror``; a module's own handlers are kept in the module's globals and
never called. Without them a run would not record who holds its lock (so a
killed run's lock would not be recognised as stale), would not say what it
computed and reused, and would not print the hint after an error. So the
workflow chains its handlers in front of whatever the including Snakefile
registers: ``workflow._onstart`` and friends are Snakemake's private
attributes (9.x), which is why this lives in one small place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[..., Any]


def chain_handlers(workflow: Any, *, onstart: Handler, onsuccess: Handler, onerror: Handler) -> None:
    """When this workflow is a module, call its handlers (the partials the
    ``onstart:``... directives left in its globals) before the main Snakefile's."""
    if workflow.modifier.is_main_snakefile():
        return
    for name, ours in (("_onstart", onstart), ("_onsuccess", onsuccess), ("_onerror", onerror)):
        setattr(workflow, name, _chained(ours, getattr(workflow, name)))


def _chained(ours: Handler, theirs: Handler) -> Handler:
    def handler(log: Any = None) -> None:
        ours()  # a partial: Snakemake bound the log already
        theirs(log)

    return handler
