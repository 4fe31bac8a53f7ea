"""The readable view: browse outputs by condition and replicate.

Storage stays hashed and shared (``store/<kk>/<key>.<ext>``); the view adds,
for every output the run recorded (``provenance.json``'s ``outputs``, read
from the block manifests in the workflow) and every condition using it::

    results/<experiment>/runs/<condition>/rep-<r>/<step>.<ext>  -> the output

(``<r>`` zero-padded to the widest replicate number, ``<ext>`` the output's own)

as relative symlinks (the tree can be moved or copied with ``cp -a``;
absolute ones into a shared store, repliflow.store.shared), and
``runs/index.csv`` with one row per link: condition, replicate, step,
position, key, output, sidecar, sha256 (paths relative to results/<experiment>).
Where the file system has no symlinks, or the view would have more links
than the config's ``view.max_links``, only ``index.csv`` is written (and
``README.txt``, saying why). The
sidecar of an output sits beside it in the store (``<key>.meta.json``); it
gets no link of its own because creating a link costs as much as creating a
file, and the view already makes one per condition x replicate x step.

The view is rebuilt whole in a temporary directory and swapped in, so it
never shows links of an older config. Names and paths are checked before
use: nothing is created outside ``runs/``, and nothing links outside
the store.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from repliflow.errors import LayoutError, RepliflowError
from repliflow.store.layout import PROVENANCE, ResultsLayout, is_safe_name, output_paths
from repliflow.store.pathgate import check_results_tree
from repliflow.store.provenance import iter_provenance_outputs, read_manifests, read_provenance

INDEX_COLUMNS = ["condition", "replicate", "step", "position", "key", "output", "sidecar", "sha256"]
NO_LINKS_NOTE = "README.txt"  # in runs/ when it holds no links, saying why


@dataclass(frozen=True)
class ViewResult:
    rows: int
    links: bool
    why_no_links: str | None = None  # more rows than view.max_links, or no symlinks here


class _Row(NamedTuple):
    """One line of index.csv (INDEX_COLUMNS) and one link."""

    condition: str
    replicate: int
    step: str
    position: object  # written as recorded
    key: str
    output: str
    sidecar: str
    sha256: object


def _rows(outputs: Iterable[Mapping[str, Any]], source: str, checked: bool) -> list[_Row]:
    """The view's rows, sorted. ``checked``: the entries were made from block
    manifests that ``check_manifest`` passed, so their key, output file and
    format are known good and only the names that become paths are checked."""
    rows: list[_Row] = []
    safe: set[str] = set()  # names checked once: a view has few, repeated 100,000s of times
    for index, entry in enumerate(outputs):
        if checked:
            path, sidecar = entry["path"], entry["sidecar"]
        else:
            try:
                path, sidecar = output_paths(entry, f"outputs[{index}]")
            except LayoutError as exc:
                raise _bad(source, index, str(exc)) from None
        step, replicate = entry.get("step"), entry.get("replicate")
        if step not in safe:
            if not isinstance(step, str) or not is_safe_name(step):
                raise _bad(source, index, f"step name {step!r} cannot be a file name")
            safe.add(step)
        if isinstance(replicate, bool) or not isinstance(replicate, int) or replicate < 0:
            raise _bad(source, index, f"replicate {replicate!r} is not a replicate number")
        for condition in entry.get("conditions") or []:
            if condition not in safe:
                if not is_safe_name(condition):
                    raise _bad(source, index, f"condition {condition!r} cannot be a directory name")
                safe.add(condition)
            rows.append(
                _Row(
                    condition,
                    replicate,
                    step,
                    entry.get("position"),
                    entry["key"],
                    path,
                    sidecar,
                    entry.get("sha256"),
                )
            )
    rows.sort(
        key=lambda row: (row.condition, row.replicate, row.position if isinstance(row.position, int) else -1)
    )
    return rows


def _bad(source: str, index: int, problem: str) -> LayoutError:
    return LayoutError(f"repliflow: {source} outputs[{index}]: {problem}")


def build_view(
    results_dir: str | Path,
    outputs: Iterable[Mapping[str, Any]] | None = None,
    store: str | None = None,
    *,
    max_links: int | None = None,
    checked: bool = False,
) -> ViewResult:
    """(Re)build ``runs/`` under ``results/<experiment>`` from ``outputs``
    (entries as in provenance.json's ``outputs``; default: read from its
    provenance.json, with the store it names). The links of a shared
    ``store`` are absolute: it lies outside the results folder.

    ``max_links`` (the config's ``view.max_links``; None: no limit): with
    more rows than this, only ``index.csv`` is written. A link and its
    replicate's folder cost the file system about as much as a step's output
    does, so at 100,000s of outputs the links alone would take minutes.
    ``checked``: see ``_rows``."""
    results = Path(results_dir)
    check_results_tree(results)  # never build or swap the view through a link
    if outputs is None:
        provenance = read_provenance(results)
        outputs, source, store = provenance["outputs"], PROVENANCE, provenance.get("store")
        checked = False
    else:
        source = "the block manifests'"
    rows = _rows(outputs, source, checked)
    layout = ResultsLayout(str(results), store)
    runs = Path(layout.runs)
    _remove_leftovers(results)
    staging = f"{results}/.runs.{os.getpid()}.tmp"
    os.makedirs(staging)
    over_limit = max_links is not None and len(rows) > max_links
    if over_limit:
        skipped: str | None = f"{len(rows)} outputs, more than view.max_links ({max_links})"
    else:
        skipped = _make_links(rows, staging, layout, store, source)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(INDEX_COLUMNS)
    writer.writerows(rows)
    Path(staging, "index.csv").write_text(buffer.getvalue())
    if skipped is not None:  # whoever opens runs/ expecting folders learns why there are none
        Path(staging, NO_LINKS_NOTE).write_text(_no_links_note(skipped, over_limit))
    _swap(Path(staging), runs)
    return ViewResult(len(rows), skipped is None, skipped)


def _no_links_note(why: str, over_limit: bool) -> str:
    raise_it = (
        "Raise view.max_links in the experiment's config and run snakemake again (only the view "
        "job re-runs) to get them.\n"
        if over_limit
        else ""
    )
    return (
        "This view has no runs/<condition>/rep-<r>/<step> links: "
        f"{why}.\n{raise_it}"
        "index.csv lists every output (condition, replicate, step, key, output, sidecar, sha256), "
        "and repliflow.load() reads them in Python.\n"
    )


def _make_links(
    rows: list[_Row], staging: str, layout: ResultsLayout, store: str | None, source: str
) -> str | None:
    """The links of ``rows`` under ``staging``; None, or why there are none
    (the file system refused a symlink: then ``staging`` is emptied)."""
    made: set[str] = set()
    # zero-padded to the widest replicate number, so folders sort as numbers do
    width = len(str(max((row.replicate for row in rows), default=0)))
    up = os.path.join("..", "..", "..")  # from runs/<condition>/rep-<r>/ to results/<experiment>/
    # Plain strings and os calls: this loop runs once per output and condition.
    for condition, replicate, step, _, _, path, _, _ in rows:
        folder = f"{staging}/{condition}/rep-{replicate:0{width}d}"
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        # with the output's extension, so a file manager opens it with the right program
        link = f"{folder}/{step}{os.path.splitext(path)[1]}"
        try:
            os.symlink(f"{up}/{path}" if store is None else layout.in_store(path), link)
        except FileExistsError:
            raise LayoutError(
                f"repliflow: {source} outputs list step {step!r} twice for condition {condition!r}, "
                f"replicate {replicate}"
            ) from None
        except OSError as exc:  # no symlinks here (some Windows and network file systems)
            shutil.rmtree(staging)
            os.makedirs(staging)
            return f"this file system refused a symlink ({exc.strerror})"
    return None


def _remove_leftovers(results: Path) -> None:
    """Remove the staging and old trees a killed view job left behind
    (``.runs.<pid>.tmp``, ``.runs.<pid>.old``): one view job runs per results
    folder at a time (Snakemake locks its outputs), so none is in use. A
    planted link is removed as the link, never followed."""
    with os.scandir(results) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".runs.") and name.endswith((".tmp", ".old")):
                if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
                    os.unlink(entry.path)
                else:
                    shutil.rmtree(entry.path, ignore_errors=True)


def _swap(staging: Path, runs: Path) -> None:
    old = runs.with_name(f".runs.{os.getpid()}.old")
    if runs.is_symlink() or runs.is_file():
        runs.unlink()
    elif runs.exists():
        runs.rename(old)
    staging.rename(runs)
    shutil.rmtree(old, ignore_errors=True)


def run_job(spec_file: str, log_path: str) -> None:
    """The ``view`` job (``python -m repliflow.snakemake.summary view``). It
    reads the block manifests, as ``aggregate`` does, rather than
    provenance.json, so the two jobs run side by side."""
    from repliflow.core.plan import build_plan
    from repliflow.engine.looks import run_plan
    from repliflow.snakemake.hooks import skip_final_collection
    from repliflow.snakemake.summary import read_spec, summary_manifests

    skip_final_collection()
    with open(log_path, "w") as log:
        try:
            config, _ = read_spec(spec_file)
            planned = build_plan(config)
            manifests = summary_manifests(planned)
            plan = run_plan(planned)  # sequential: up to the stopping look
            results = Path(plan.layout.root)
            outputs = iter_provenance_outputs(plan, read_manifests(manifests))
            limit = (plan.config.get("view") or {}).get("max_links")  # validation filled in its default
            result = build_view(results, outputs, plan.store, max_links=limit, checked=True)
            how = "symlinks and index.csv" if result.links else f"index.csv only ({result.why_no_links})"
            print(f"view of {result.rows} outputs in {results / 'runs'}: {how}", file=log)
        except RepliflowError as exc:
            print(str(exc), file=log)
            print(str(exc), file=sys.stderr)
            sys.exit(1)
