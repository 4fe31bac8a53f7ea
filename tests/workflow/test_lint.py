"""The workflow lints clean, the code is ruff-clean and the Snakemake files are
snakefmt-formatted (definition of done; .ci/run makes the same checks)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.lint


def test_snakemake_lint_has_no_findings():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--lint",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(REPO),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_ruff_check_is_clean():
    ruff = shutil.which("ruff", path=str(REPO / ".venv" / "bin")) or shutil.which("ruff")
    command = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    result = subprocess.run([*command, "check", str(REPO)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_check_is_clean():
    snakefmt = shutil.which("snakefmt", path=str(REPO / ".venv" / "bin")) or shutil.which("snakefmt")
    command = [snakefmt] if snakefmt else [sys.executable, "-m", "snakefmt"]
    result = subprocess.run(
        [*command, "--check", "Snakefile", "workflow/"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
