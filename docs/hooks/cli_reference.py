"""mkdocs hook: the command-line reference, from the commands' own ``--help``.

``docs/cli.md`` holds the marker ``<!-- cli-reference -->``. On every build
the marker is replaced by ``repliflow --help`` and ``repliflow <command>
--help`` for every subcommand the parser lists, run with the checkout's
``src/`` first on the path, so the page documents this tree's code and a new
option or command appears without editing the docs.

``repliflow run`` is the exception: everything after ``run`` goes to
Snakemake (``--help`` included), so its help is Snakemake's own and the page
says so instead of copying it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / "src" / "repliflow" / "cli.py"
PAGE = "cli.md"
MARKER = "<!-- cli-reference -->"
WIDTH = "100"  # argparse wraps to $COLUMNS: fixed, so every machine renders the same page

RUN = """\
`repliflow run [snakemake options]` runs the workflow that comes with the package
(`repliflow/workflow/` after a plain `pip install .`, the checkout's `workflow/` in an editable
install) as `snakemake --snakefile <that folder>/Snakefile [options]`, in the same Python process.
So it works in any folder that holds an experiment (`config/config.yaml`, or the file given with
`--configfile`), checkout or not. Every option after `run` is Snakemake's, and
`repliflow run --help` prints Snakemake's help. For example: `repliflow run --cores all`,
`repliflow run --cores 2 --configfile my.yaml`, `repliflow run -n` (a dry run).
"""


def _fail(message: str):
    from mkdocs.exceptions import PluginError

    raise PluginError(message)


def help_text(*args: str) -> str:
    """``python -m repliflow.cli ARGS --help``, as a user sees it."""
    env = dict(os.environ, COLUMNS=WIDTH)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "repliflow.cli", *args, "--help"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _fail(f"cannot run {' '.join(command)}: {exc}")
    if result.returncode != 0:
        _fail(f"{' '.join(command)} failed (exit {result.returncode}): {result.stderr.strip()}")
    return result.stdout.rstrip()


def subcommands(top_help: str) -> list[str]:
    """The subcommands the top-level usage line lists: ``{run,init,...}``."""
    match = re.search(r"\{([a-z0-9_,-]+)\}", top_help)
    if match is None:
        _fail("repliflow --help lists no subcommands")
    return match.group(1).split(",")


def render() -> str:
    top = help_text()
    lines = ["## `repliflow`", "", "```text", top, "```", ""]
    for command in subcommands(top):
        lines += [f"## `repliflow {command}`", ""]
        if command == "run":
            lines += [RUN]
            continue
        lines += ["```text", help_text(command), "```", ""]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if markdown.count(MARKER) != 1:
        _fail(f"docs/{PAGE} must hold the marker {MARKER} exactly once")
    return markdown.replace(MARKER, render())


def on_serve(server, config, builder, **kwargs):
    # `mkdocs serve` rebuilds when the commands change, not only when docs/ does
    server.watch(str(CLI))
    return server
