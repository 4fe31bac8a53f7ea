"""Where things are under ``results/<experiment>/``, and which store names are valid.

``ResultsLayout`` names every path of a results folder (the rules, the runner,
aggregate, status, gc, the view and audit all take their paths from it), and
of its store: ``results/<experiment>/store`` unless the config names a shared
one (``store:``, or ``REPLIFLOW_STORE``; see repliflow.store.shared);
``output_paths`` checks that a path taken from a record is exactly the one its
key dictates before anything is opened, linked or deleted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from repliflow.core import hashing
from repliflow.errors import LayoutError
from repliflow.store.pathgate import EXTENSIONS

if TYPE_CHECKING:
    from repliflow.core.records import OutputEntry

KEY_PATTERN = re.compile(rf"^[0-9a-f]{{{hashing.KEY_LENGTH}}}$")
OUTPUT_SUFFIXES = frozenset(EXTENSIONS.values())
SIDECAR_SUFFIX = ".meta.json"
# Hard links to the tables of the last aggregate that finished, and a copy of
# the last report that rendered: Snakemake deletes a job's outputs before it runs.
LAST_GOOD = "last-good"
METRICS, HYPOTHESES, PROVENANCE = "metrics.csv", "hypotheses.json", "provenance.json"
TABLES = (METRICS, HYPOTHESES, PROVENANCE)


@dataclass(frozen=True)
class ResultsLayout:
    """The paths of one experiment's results folder, as strings relative to the
    working directory (Snakemake's paths) or absolute when ``root`` is.

    ::

        results/<experiment>/
          store/<kk>/<key>.<ext>, <key>.meta.json   outputs and their sidecars
          blocks/<segment>/<lo>-<hi>.json           one manifest per block job
          logs/blocks/<segment>/<lo>-<hi>.log       the block job's log
          logs/blocks/<segment>/<lo>-<hi>.attempt.json  how its last attempt went
          logs/aggregate.log, logs/view.log
          metrics.csv, hypotheses.json, provenance.json, report.html, report.md
          last-good/                                the last tables that finished
          runs/<condition>/rep-<r>/<step>.<ext>     the readable view (links; r zero-padded)
          quarantine/                               damaged files, with log.tsv
                                                    (a shared store keeps its own: <store>/quarantine/)
          repairs.tsv                               what reconcile scheduled again
          looks/look-<k>.json                       a sequential design's decisions at look k
    """

    root: str
    # an absolute path when the store is shared between results folders
    shared_store: str | None = None

    @classmethod
    def of(cls, experiment: str, workdir: str = "", store: str | None = None) -> ResultsLayout:
        root = f"{workdir.rstrip('/')}/results/{experiment}" if workdir else f"results/{experiment}"
        return cls(root, store)

    @property
    def store(self) -> str:
        return self.shared_store or f"{self.root}/store"

    def in_store(self, recorded: str) -> str:
        """The file a record's ``store/<kk>/<name>`` path (relative to the
        results folder, as provenance.json and the view's index give it)
        names, in this layout's store."""
        return (
            f"{self.store}{recorded[len('store') :]}"
            if recorded.startswith("store/")
            else f"{self.root}/{recorded}"
        )

    @property
    def blocks(self) -> str:
        return f"{self.root}/blocks"

    @property
    def logs(self) -> str:
        return f"{self.root}/logs"

    @property
    def runs(self) -> str:
        return f"{self.root}/runs"

    @property
    def quarantine(self) -> str:
        """Where damaged store files are moved: beside the store they were in
        (a rename, never a copy across file systems)."""
        return f"{self.shared_store}/quarantine" if self.shared_store else f"{self.root}/quarantine"

    @property
    def last_good(self) -> str:
        return f"{self.root}/{LAST_GOOD}"

    @property
    def repairs(self) -> str:
        return f"{self.root}/repairs.tsv"

    @property
    def looks(self) -> str:
        return f"{self.root}/looks"

    def look(self, k: int | str) -> str:
        """A sequential look's decisions (``k``: 1-based, or Snakemake's ``{k}``)."""
        return f"{self.root}/looks/look-{k}.json"

    @property
    def provenance(self) -> str:
        return f"{self.root}/{PROVENANCE}"

    def table(self, name: str) -> str:
        """``metrics.csv``, ``hypotheses.json``, ``provenance.json``, ``report.html`` ..."""
        return f"{self.root}/{name}"

    def segment_blocks(self, segment_label: str) -> str:
        return f"{self.root}/blocks/{segment_label}"

    def segment_logs(self, segment_label: str) -> str:
        return f"{self.root}/logs/blocks/{segment_label}"

    def manifest(self, segment_label: str, block_label: str) -> str:
        return f"{self.root}/blocks/{segment_label}/{block_label}.json"

    def block_log(self, segment_label: str, block_label: str) -> str:
        return f"{self.root}/logs/blocks/{segment_label}/{block_label}.log"

    def block_attempt(self, segment_label: str, block_label: str) -> str:
        return f"{self.root}/logs/blocks/{segment_label}/{block_label}.attempt.json"

    def rule_log(self, rule: str) -> str:
        return f"{self.root}/logs/{rule}.log"


def is_key(text: object) -> bool:
    return isinstance(text, str) and KEY_PATTERN.match(text) is not None


def is_safe_name(name: object) -> bool:
    """A condition or step name that is safe as one path component."""
    from repliflow.core.plan import NAME_PATTERN  # the plan imports this module

    return isinstance(name, str) and NAME_PATTERN.match(name) is not None and ".." not in name


@dataclass(frozen=True)
class StoreFile:
    """A store file name taken apart: ``<key>.<suffix>``."""

    key: str
    suffix: str  # an output extension, or "meta.json"

    @property
    def is_sidecar(self) -> bool:
        return self.suffix == "meta.json"


def parse_store_name(name: str) -> StoreFile | None:
    """``<key>.<ext>`` or ``<key>.meta.json``, else None (temp files, strangers)."""
    key, dot, suffix = name.partition(".")
    if not dot or not is_key(key):
        return None
    if suffix == "meta.json" or suffix in OUTPUT_SUFFIXES:
        return StoreFile(key, suffix)
    return None


def output_paths(entry: object, where: str = "output") -> tuple[str, str]:
    """The output and sidecar paths (relative to results/<experiment>) of a
    provenance entry, its fields type-checked and its path checked to be
    exactly where its key and format put it; raises BadRecord for a malformed
    entry and LayoutError for any other path, such as ``../../etc/passwd``."""
    from repliflow.core.records import check_output_entry

    checked: OutputEntry = check_output_entry(entry, where)
    key = checked["key"]
    folder = f"store/{key[:2]}/"
    path, sidecar = checked.get("path"), checked.get("sidecar")
    if not isinstance(path, str) or not path.startswith(folder):
        raise LayoutError(f"path {shown_value(path)} is not in {folder}, where key {key} belongs")
    parsed = parse_store_name(path[len(folder) :])
    if parsed is None or parsed.key != key or parsed.is_sidecar:
        raise LayoutError(
            f"path {shown_value(path)} is not {folder}{key}.<one of {', '.join(sorted(OUTPUT_SUFFIXES))}>"
        )
    fmt = checked.get("format")
    if fmt is not None and parsed.suffix != EXTENSIONS[fmt]:
        raise LayoutError(f"path {shown_value(path)} does not have the extension of its format {fmt!r}")
    if sidecar != f"{folder}{key}{SIDECAR_SUFFIX}":
        raise LayoutError(f"sidecar {shown_value(sidecar)} is not {folder}{key}{SIDECAR_SUFFIX}")
    return path, sidecar


def shown_value(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
