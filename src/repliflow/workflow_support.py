"""Small helpers the Snakefile uses, kept here so they are tested Python."""

from __future__ import annotations

import sys
import textwrap


def describe_config_files(files) -> str:
    names = [str(f) for f in files]
    return ", ".join(dict.fromkeys(names)) or "(none: --config only)"


def fail(exc: Exception) -> None:
    """End the Snakemake parse with one paragraph and no traceback."""
    message = "\n".join(textwrap.wrap(str(exc), width=100, break_on_hyphens=False))
    print(message, file=sys.stderr, flush=True)
    sys.exit(1)
