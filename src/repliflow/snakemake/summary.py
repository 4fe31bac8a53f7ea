"""The two summary jobs, ``aggregate`` and ``view``, as plain Python processes.

Both rules run ``python -m repliflow.snakemake.summary {aggregate,view}
--spec-file F --log L`` rather than a Snakemake ``script:``: a script job first
imports ``snakemake.script`` to unpickle its ``snakemake`` object (0.1 s),
and ``aggregate`` is on the critical path of every run. What a script job
found on that object the job reads here instead:

- its config and config files from the spec file, which the Snakefile writes
  where the job reads it. The file is named by its content's hash, and its
  path is the rule's only param, so a changed config re-runs both jobs, as
  the config itself did as a param;
- its inputs (the block manifests) and outputs from the plan, as the
  Snakefile derives them (``summary_manifests``).

This module stays light: ``aggregate`` forks its figure process before it
imports numpy and scipy (``repliflow.report.drawing``), so that matplotlib's
import starts on the other core as soon as the job does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repliflow.errors import RepliflowError
from repliflow.snakemake.markers import SPECS

if TYPE_CHECKING:
    from repliflow.core.plan import Plan


def spec_text(config: dict[str, Any], config_files: str) -> str:
    """What the summary jobs read: the plan's config and the config files' names.
    Keys stay in the config's order, which means something (a grid's axes
    name its conditions in that order)."""
    return json.dumps({"config": config, "config_files": config_files}, allow_nan=False)


def spec_path(experiment: str, text: str) -> str:
    """Where the Snakefile writes ``text``: named by its hash, so two configs never share one."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{SPECS}/{experiment}/summary-{digest}.json"


def write_spec(path: str, text: str) -> None:
    """Write the spec where the jobs read it; the same content already there is left alone."""
    from repliflow.store.storage import write_if_changed

    write_if_changed(path, text.encode())


def read_spec(path: str) -> tuple[dict[str, Any], str]:
    """The config and config files' names in the spec at ``path``; a missing or
    damaged spec is a RepliflowError saying how to make it again."""
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
        config, config_files = spec["config"], spec["config_files"]
        if not isinstance(config, dict) or not isinstance(config_files, str):
            raise TypeError("config must be an object and config_files a string")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RepliflowError(
            f"repliflow: cannot read the job's spec file {path} ({type(exc).__name__}: {exc}); "
            "the Snakefile writes it at the start of every run: run the same snakemake command again"
        ) from exc
    return config, config_files


def summary_manifests(plan: Plan) -> list[str]:
    """The block manifests both summary jobs read, as the Snakefile lists them
    as their input: every block's, or for a sequential design those up to the
    look where the experiment stopped (its look files exist by then)."""
    if plan.sequential is None:
        return plan.all_manifests()
    from repliflow.engine.looks import sequential_manifests

    return sequential_manifests(plan, plan.layout.look)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m repliflow.snakemake.summary",
        description="Run the aggregate or view job of a repliflow workflow (Snakemake runs this).",
    )
    parser.add_argument("job", choices=["aggregate", "view"])
    parser.add_argument("--spec-file", required=True, help="the summary spec the Snakefile wrote")
    parser.add_argument("--log", required=True, help="the job's log file")
    args = parser.parse_args(argv)
    if args.job == "aggregate":
        from repliflow.report import drawing

        figure_process = drawing.start()  # first: matplotlib's import on the other core from now on
        from repliflow.engine.aggregate import run_job

        run_job(args.spec_file, args.log, figure_process)
    else:
        from repliflow.store.view import run_job as run_view

        run_view(args.spec_file, args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
