"""Small helpers the Snakefile uses, kept here so they are tested Python."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path


def prepare_job_environment(src: Path) -> None:
    """Make the jobs' ``python`` the interpreter that runs Snakemake (the one
    with our dependencies) and let it import repliflow from ``src`` even
    without ``pip install -e .``. Cluster jobs re-parse the workflow, so they
    get the same environment."""
    paths = [str(src), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


def describe_config_files(files) -> str:
    names = [str(f) for f in files]
    return ", ".join(dict.fromkeys(names)) or "(none: --config only)"


def fail(exc: Exception) -> None:
    """End the Snakemake parse with one paragraph and no traceback."""
    message = "\n".join(textwrap.wrap(str(exc), width=100, break_on_hyphens=False))
    print(message, file=sys.stderr, flush=True)
    sys.exit(1)
