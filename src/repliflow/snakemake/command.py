"""The snakemake commands repliflow prints: the one that finishes a run
(``repliflow status``) and, with ``--forcerun``, the one that repairs it
(``repliflow audit``), from the current directory."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CONFIG = "config/config.yaml"  # what the workflow reads without --configfile


def finish_command(workdir: Path, config_file: str | Path | None, *, rerun_incomplete: bool) -> list[str]:
    """The snakemake command, run from the current directory, that finishes the run."""
    command = ["snakemake", "--cores", "all"]
    here = Path.cwd().resolve()
    target = workdir.resolve()
    if not (target / "Snakefile").exists():
        from repliflow.shipped import snakefile

        command += ["--snakefile", str(snakefile())]
        config_file = config_file or workdir / DEFAULT_CONFIG  # say which, explicitly
    if target != here:
        command += ["--directory", os.path.relpath(target, here)]
    if config_file is not None:
        command += ["--configfile", str(config_file)]
    if rerun_incomplete:
        command.append("--rerun-incomplete")
    return command
