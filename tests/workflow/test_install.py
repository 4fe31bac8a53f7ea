"""A plain (non-editable) install works outside the checkout: the workflow,
its schemas, the conda env and the examples ship inside the package, so
`repliflow init` and `repliflow run` run the default experiment in any folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package built as a wheel and installed into a folder of its own
    (no dependencies: those of this venv serve)."""
    root = tmp_path_factory.mktemp("install")
    wheels, site = root / "wheels", root / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(REPO)], check=True, timeout=600)
    (wheel,) = wheels.glob("repliflow-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, timeout=300)
    return site


def _run(site: Path, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)  # ahead of this venv's editable finder, which maps to the checkout
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_the_wheel_carries_the_workflow(installed):
    package = installed / "repliflow"
    for name in [
        "workflow/Snakefile",
        "workflow/rules/common.smk",
        "workflow/rules/steps.smk",
        "workflow/schemas/config.schema.yaml",
        "workflow/scripts/look.py",
        "envs/repliflow.yaml",
        "examples/titanic/config.yaml",
        "examples/titanic/passengers.csv",
        "py.typed",
    ]:
        assert (package / name).is_file(), name


def test_the_starter_runs_with_plain_snakemake_from_its_own_folder(installed, tmp_path):
    """The own-folder path: `repliflow init`, then `snakemake --cores 2` in a
    folder holding only the user's Snakefile (the module pattern), config and steps."""
    work = tmp_path / "my-study"
    work.mkdir()
    where = _run(installed, work, "-c", "import repliflow; print(repliflow.__file__)").stdout.strip()
    assert Path(where).is_relative_to(installed), where  # not the checkout
    _run(installed, work, "-m", "repliflow.cli", "init", ".")
    assert sorted(p.name for p in work.iterdir()) == [".gitignore", "Snakefile", "config", "steps.py"]
    run = _run(installed, work, "-m", "snakemake", "--cores", "2")
    assert f"Snakefile: {work / 'Snakefile'}" in run.stdout + run.stderr
    # the module's handlers run too: the lock owner is recorded, the run's work is summarized
    assert "replicate-steps this run computed" in run.stderr
    assert (work / ".snakemake" / "repliflow-lock-owner.json").is_file()
    results = work / "results" / "starter"
    for name in ["metrics.csv", "hypotheses.json", "provenance.json", "report.html", "runs/index.csv"]:
        assert (results / name).is_file(), name
    audit = _run(installed, work, "-m", "repliflow.cli", "audit", "results/starter")
    assert "all match their records" in audit.stdout
    again = _run(installed, work, "-m", "snakemake", "--cores", "2")
    assert "Nothing to be done" in again.stdout + again.stderr
    # `repliflow run` is the same workflow: nothing to do either; and with the cluster extra
    # installed, no warning about HTCondor's configuration when HTCondor is not used
    again = _run(installed, work, "-m", "repliflow.cli", "run", "--cores", "2")
    assert "Nothing to be done" in again.stdout + again.stderr
    assert "CONDOR_CONFIG" not in again.stderr
    # init never overwrites an experiment
    refused = _run(installed, work, "-m", "repliflow.cli", "init", ".", check=False)
    assert refused.returncode == 1 and "already exist" in refused.stderr


def test_init_an_example_and_run_it_from_a_temporary_folder(installed, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    _run(installed, work, "-m", "repliflow.cli", "init", ".", "--example", "titanic")
    assert (work / "config" / "config.yaml").read_text() == (REPO / "config" / "config.yaml").read_text()
    assert (work / "examples" / "titanic" / "steps.py").is_file()
    run = _run(installed, work, "-m", "repliflow.cli", "run", "--cores", "2")
    assert f"Snakefile: {installed / 'repliflow' / 'workflow' / 'Snakefile'}" in run.stdout + run.stderr
    results = work / "results" / "titanic_age"
    for name in ["metrics.csv", "hypotheses.json", "provenance.json", "report.html", "runs/index.csv"]:
        assert (results / name).is_file(), name
    # `snakemake -s "$(repliflow snakefile)"` names the same workflow
    printed = _run(installed, work, "-m", "repliflow.cli", "snakefile").stdout.strip()
    assert printed == str(installed / "repliflow" / "workflow" / "Snakefile")
