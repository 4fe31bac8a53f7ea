"""What Snakemake's own state says about a working directory: the outputs it
marked incomplete (``.snakemake/incomplete/``) and whether a snakemake runs there."""

from __future__ import annotations

import os
from base64 import urlsafe_b64decode
from pathlib import Path

# What the jobs read besides their inputs, written by the Snakefile: each
# segment's block spec (the runner's --spec-file) and the summary jobs' spec
# (repliflow.snakemake.summary). A file, not params: a short command line, so a
# failing job's repliflow line is what one reads.
SPECS = Path(".snakemake", "repliflow-specs")


def incomplete_outputs(workdir: Path) -> set[str]:
    """The output paths (relative to ``workdir``, as Snakemake names them) that
    Snakemake marked incomplete: a job was started for them and has not
    finished, because it is running or because its Snakemake was killed.

    Snakemake stores one file per output under ``.snakemake/incomplete/``,
    named by the urlsafe base64 of the path, split into ``@``-prefixed
    directories when longer than a file name may be.
    """
    root = workdir / ".snakemake" / "incomplete"
    found: set[str] = set()
    for folder, _, files in os.walk(root):
        parts = [p[1:] for p in Path(folder).relative_to(root).parts if p.startswith("@")]
        for name in files:
            try:
                found.add(urlsafe_b64decode("".join([*parts, name])).decode())
            except ValueError:  # not a marker (e.g. "migration_underway")
                continue
    return found


def snakemake_active(workdir: Path) -> bool:
    """Whether a snakemake process works in ``workdir`` now (on this host).

    Without /proc (not Linux) a held lock is taken as an active run.
    """
    if Path("/proc").is_dir():
        return snakemake_running_here(workdir.resolve())
    locks = workdir / ".snakemake" / "locks"
    return locks.is_dir() and any(locks.iterdir())


def snakemake_running_here(cwd: Path) -> bool:
    """Whether a live snakemake process on this host works in ``cwd``."""
    return bool(snakemake_pids_here(cwd))


def snakemake_pids_here(cwd: Path) -> list[int]:
    """The live snakemake processes on this host (other than this one) that
    work in ``cwd``: another run, or the jobs of a cluster run, which run their
    own snakemake in the submit folder."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        if int(proc.name) == os.getpid():
            continue
        try:
            if b"snakemake" in (proc / "cmdline").read_bytes() and (proc / "cwd").resolve() == cwd:
                found.append(int(proc.name))
        except OSError:
            continue
    return sorted(found)


def process_alive(pid: object) -> bool:
    """Whether ``pid`` is a live process on this host. A zombie is not: a killed
    process whose parent died stays one where PID 1 does not reap (containers)."""
    try:
        stat = Path("/proc", str(int(str(pid))), "stat").read_text()
    except (OSError, ValueError):
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]  # the state follows the command name
