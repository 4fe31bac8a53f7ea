"""Chaos: kills and damage, then plain re-runs, converge to the undisturbed
results (issue 12).

Seeded rounds on a small experiment. Each round either starts snakemake and
SIGKILLs it, or one of its block jobs, at a random moment; or flips a byte
in, truncates or deletes random store files, sidecars and manifests. After
every round the same plain command runs until it succeeds (a run may stop
once, naming what it moved to quarantine: the next one recomputes it); then
metrics.csv and hypotheses.json must be byte-identical to an undisturbed
run's, and the audit must pass (after the repair command it prints, for
damage only hashing can see).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import SLOW_STEPS, Experiment, counting_config, snakemake_command

from repliflow.store.audit import audit

SEED = 20261201
ROUNDS = int(os.environ.get("REPLIFLOW_CHAOS_ROUNDS", 20))
TABLES = ("metrics.csv", "hypotheses.json")

pytestmark = pytest.mark.chaos


def _config() -> dict:
    return counting_config(replicates=6, batch={"replicates_per_job": 2})


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, bytes]:
    experiment = Experiment(tmp_path_factory.mktemp("undisturbed"), _config(), steps=SLOW_STEPS)
    experiment.snakemake()
    return {name: (experiment.results / name).read_bytes() for name in TABLES}


def _runner_pids(root: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"repliflow.engine.runner" in (entry / "cmdline").read_bytes() and os.readlink(
                    entry / "cwd"
                ) == str(root):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _kill_during_a_run(experiment: Experiment, rng: random.Random, what: str) -> str:
    process = subprocess.Popen(
        snakemake_command(experiment.root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(rng.uniform(0.5, 3.0))
    victim = process.pid
    if what == "runner":
        runners = _runner_pids(experiment.root)
        victim = rng.choice(runners) if runners else process.pid
    os.kill(victim, signal.SIGKILL)
    if victim != process.pid:
        process.wait(timeout=120)
    else:
        process.wait()
    return f"killed {'a block job' if victim != process.pid else 'snakemake'}"


def _damage(experiment: Experiment, rng: random.Random) -> str:
    results = experiment.results
    files = sorted(p for p in (results / "store").rglob("*") if p.is_file())
    files += sorted((results / "blocks").rglob("*.json"))
    done = []
    for path in rng.sample(files, k=min(len(files), rng.randint(1, 4))):
        how = rng.choice(["flip", "truncate", "delete"])
        data = path.read_bytes()
        if how == "flip" and data:
            at = rng.randrange(len(data))
            path.write_bytes(data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1 :])
        elif how == "truncate":
            path.write_bytes(data[: rng.randrange(max(1, len(data)))])
        else:
            path.unlink()
        done.append(f"{how} {path.relative_to(results)}")
    return "; ".join(done)


def _converge(experiment: Experiment, story: str) -> None:
    runs = []
    for _ in range(4):
        run = experiment.snakemake(check=False, timeout=300)
        runs.append(run)
        if run.returncode == 0:
            break
    else:
        raise AssertionError(f"after {story}: four plain runs failed; last:\n{runs[-1].stderr[-3000:]}")
    config = experiment.root / "config.yaml"
    result = audit(experiment.results, config=config)
    if not result.ok:
        assert result.repair, f"after {story}: the audit found {result.problems} and no repair command"
        forced = result.repair[result.repair.index("--forcerun") :]
        experiment.snakemake(*forced)
        result = audit(experiment.results, config=config)
    assert result.ok, f"after {story}: {result.problems}"


def test_kills_and_damage_converge_to_the_undisturbed_results(tmp_path, reference):
    rng = random.Random(SEED)
    experiment = Experiment(tmp_path / "chaos", _config(), steps=SLOW_STEPS)
    history = []
    for round_ in range(ROUNDS):
        if round_ > 0 and rng.random() < 0.5:
            story = _damage(experiment, rng)
        else:
            story = _kill_during_a_run(experiment, rng, rng.choice(["snakemake", "runner"]))
        history.append(f"round {round_}: {story}")
        _converge(experiment, " / ".join(history))
        for name in TABLES:
            assert (experiment.results / name).read_bytes() == reference[name], f"{name} after {history}"
