"""The experiment's own conda environment reaches the rules that run its code
(issue 16, item 6). No conda channel is reachable here, so no environment is
built: a stand-in `conda` answers the questions a dry run asks, and the dry
run says which environment file each job would be created from."""

from __future__ import annotations

import os

from conftest import Experiment, counting_config

INFO = '{"conda_version": "24.11.0", "envs_dirs": [], "platform": "linux-64", "conda_prefix": "/nonexistent"}'
PRIORITY = '{"get": {"channel_priority": "strict"}, "success": true}'
FAKE_CONDA = f"""#!/bin/sh
case "$*" in
  "info --json") echo '{INFO}';;
  "--version") echo "conda 24.11.0";;
  "config --get channel_priority --json") echo '{PRIORITY}';;
  *) echo "stand-in conda cannot: $*" >&2; exit 1;;
esac
"""


def _dry_run_with_conda(experiment: Experiment, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "conda").write_text(FAKE_CONDA)
    (bin_dir / "conda").chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    return experiment.snakemake("--sdm", "conda", "-n", "--forceall", env={"PATH": path})


def test_the_experiments_env_file_is_used_by_the_jobs_that_run_its_code(tmp_path):
    experiment = Experiment(tmp_path / "work", counting_config(replicates=2, conda="envs/steps.yaml"))
    (experiment.root / "envs").mkdir()
    (experiment.root / "envs" / "steps.yaml").write_text(
        "channels: [conda-forge]\ndependencies: [python=3.11]\n"
    )
    dry = _dry_run_with_conda(experiment, tmp_path)
    text = dry.stdout + dry.stderr
    assert "Conda environment envs/steps.yaml will be created." in text
    # the view runs no code of the experiment: repliflow's own environment
    assert "envs/repliflow.yaml will be created." in text


def test_without_conda_in_the_config_every_job_uses_repliflows_env(tmp_path):
    experiment = Experiment(tmp_path / "work", counting_config(replicates=2))
    dry = _dry_run_with_conda(experiment, tmp_path)
    text = dry.stdout + dry.stderr
    assert text.count("will be created.") == 1 and "envs/repliflow.yaml will be created." in text


def test_a_missing_env_file_is_a_config_error_naming_the_key(tmp_path):
    experiment = Experiment(tmp_path / "work", counting_config(replicates=2, conda="envs/nope.yaml"))
    run = experiment.snakemake("-n", check=False)
    assert run.returncode != 0
    text = " ".join(run.stderr.split())
    assert "key 'conda'" in text and "'envs/nope.yaml' is not a file" in text
