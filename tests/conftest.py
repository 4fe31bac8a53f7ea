"""Shared helpers: run the real workflow on small experiments in a temp dir.

The tests come in two tiers: tests/unit never starts Snakemake or a workflow
subprocess (pure Python, fast: `pytest tests/unit`), tests/workflow runs the real
workflow (and Slurm, the chaos rounds, the examples, the lint checks). Everything
under tests/workflow is marked `workflow` here, so `pytest -m "not workflow"` is
the unit tier too. Test files import helpers only from this module (pyproject's
pytest `pythonpath` puts tests/ on sys.path), never from each other across tiers,
so each tier runs alone.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# The per-user key that signs pickles (repliflow.store.trust): one for the test
# session, never the developer's own; subprocesses (snakemake, jobs) inherit it.
os.environ["REPLIFLOW_TRUST_KEY_FILE"] = str(Path(tempfile.mkdtemp(prefix="repliflow-key-")) / "trust.key")


def store_value(store, key: str, value, **fields):
    """Store ``value`` as the output of ``key`` the way a job does, with a
    complete sidecar (``fields`` override its recipe fields)."""
    from repliflow.core import records
    from repliflow.store import storage

    encoded = storage.encode(value)
    sidecar = {
        "schema": records.SIDECAR_SCHEMA,
        "key": key,
        "step": "datasource",
        "function": "source",
        "position": 0,
        "condition": "baseline",
        "replicate": 0,
        "seed": 1,
        "params": {},
        "code_hash": "0" * 20,
        "upstream": None,
        **fields,
    }
    sidecar["output"] = storage.store_output(store, key, encoded)
    storage.write_sidecar(store, key, sidecar)
    return encoded, Path(storage.output_path(store, key, encoded.format))


# Step functions that append one line per call to calls.log, so tests can count
# exactly which replicate x step ran.
COUNTING_STEPS = textwrap.dedent(
    """
    import os


    def _record(ctx):
        with open(os.path.join(os.path.dirname(__file__), "calls.log"), "a") as handle:
            handle.write(f"{ctx.step},{ctx.condition},{ctx.replicate}\\n")


    def source(ctx, *, n=5, offset=0.0):
        _record(ctx)
        return [float(x) + offset for x in ctx.rng.normal(size=n)]


    def scale(data, ctx, *, factor=1.0):
        _record(ctx)
        if os.environ.get("REPLIFLOW_TEST_FAIL") == f"{ctx.condition}:{ctx.replicate}":
            raise RuntimeError("injected failure")
        return [x * factor for x in data]


    def metrics(data, ctx):
        _record(ctx)
        mean = sum(data) / len(data)
        return {"mean": mean, "spread": max(data) - min(data)}
    """
)


# The same steps with a 50 ms scale step, so a run can be killed mid-way.
SLOW_STEPS = COUNTING_STEPS.replace(
    "        return [x * factor for x in data]",
    "        import time\n        time.sleep(0.05)\n        return [x * factor for x in data]",
)


def counting_config(**overrides) -> dict:
    config = {
        "experiment": "exp",
        "code": "steps.py",
        "replicates": 5,
        "seed": 7,
        "datasource": {"function": "source", "params": {"n": 5}},
        "pipeline": [
            {"function": "scale", "params": {"factor": 1.0}},
            {"function": "metrics"},
        ],
        "treatments": {"double": {"scale": {"factor": 2.0}}},
        "hypotheses": [{"name": "mean_shift", "metric": "spread", "verifier": "welch_t"}],
    }
    config.update(overrides)
    return config


class Experiment:
    """A working directory holding steps.py and config.yaml."""

    def __init__(self, root: Path, config: dict, steps: str = COUNTING_STEPS):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "steps.py").write_text(steps)
        self.write_config(config)

    def write_config(self, config: dict) -> None:
        self.config = config
        (self.root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    @property
    def results(self) -> Path:
        return self.root / "results" / self.config["experiment"]

    def calls(self) -> list[str]:
        log = self.root / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def sidecars(self) -> int:
        """How many replicate x step outputs are stored (complete)."""
        return len(list((self.results / "store").glob("*/*.meta.json")))

    def reset_calls(self) -> None:
        (self.root / "calls.log").unlink(missing_ok=True)

    def snakemake(self, *args: str, check: bool = True, env: dict | None = None, timeout: int = 300):
        return run_snakemake(self.root, *args, check=check, env=env, timeout=timeout)


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """Run the repository's workflow on the experiment in ``workdir``, 2 cores."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        "2",
        *args,
    ]


def run_snakemake(workdir: Path, *args: str, check: bool = True, env: dict | None = None, timeout: int = 300):
    import os

    command = snakemake_command(workdir, *args)
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        )
    return result


def copied(source: Experiment, root: Path) -> Experiment:
    """A copy of a finished experiment (links kept as links, times kept), so a
    test can damage it without running the workflow again."""
    shutil.copytree(source.root, root, symlinks=True)
    return Experiment(root, source.config, steps=(source.root / "steps.py").read_text())


@pytest.fixture
def experiment(tmp_path) -> Experiment:
    return Experiment(tmp_path, counting_config())


@pytest.fixture(scope="session")
def finished(tmp_path_factory) -> Experiment:
    """One completed run of the counting experiment, shared read-only by the
    test modules that only inspect its results (copy it before changing it)."""
    experiment = Experiment(tmp_path_factory.mktemp("finished"), counting_config())
    experiment.snakemake()
    return experiment


# Files opened in this process while a test records them (sys.addaudithook's
# "open" event covers open(), io and os.open). Hooks cannot be removed, so one
# is installed for the session and records only inside `opened()`.
_recording: list[list[str]] = []


def _record_opens(event: str, args: tuple) -> None:
    if event == "open" and _recording and isinstance(args[0], (str, bytes, os.PathLike)):
        _recording[-1].append(os.path.abspath(os.fsdecode(args[0])))


sys.addaudithook(_record_opens)
# What the interpreter and repliflow itself read (imports, the config schema,
# /proc for "is snakemake running").
_LIBRARIES = tuple(
    {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        str(REPO / "src"),
        str(REPO / "workflow" / "schemas"),
        "/proc/",
    }
)


@pytest.fixture
def opened():
    """``with opened() as paths:``: the files opened meanwhile, besides libraries."""
    import contextlib

    @contextlib.contextmanager
    def record():
        paths: list[str] = []
        _recording.append([])
        try:
            yield paths
        finally:
            paths.extend(p for p in _recording.pop() if not p.startswith(_LIBRARIES))

    return record


# --- the tiers ----------------------------------------------------------------------------

WORKFLOW_TIER = Path(__file__).resolve().parent / "workflow"


def pytest_collection_modifyitems(config, items):
    """Mark every test under tests/workflow `workflow` (pyproject registers the markers).
    With pytest-xdist's ``--dist loadgroup`` (pyproject's addopts), the tests of one local
    cluster run in one worker, one after another, as they were written to: each waits for
    its own jobs on a single-node cluster."""
    for item in items:
        if WORKFLOW_TIER in item.path.parents:
            item.add_marker(pytest.mark.workflow)
        for cluster in ("slurm", "htcondor"):
            if item.get_closest_marker(cluster):
                item.add_marker(pytest.mark.xdist_group(cluster))


def _starts_snakemake(args) -> bool:
    words = shlex.split(args) if isinstance(args, str) else [os.fsdecode(w) for w in args]
    return any(Path(word).name in ("snakemake", "Snakefile") for word in words)


class _UnitTierPopen(subprocess.Popen):
    """subprocess.Popen (and so subprocess.run) for a unit test: any process but Snakemake."""

    def __init__(self, args, *rest, **kwargs):
        if _starts_snakemake(args):
            raise AssertionError(
                "a test under tests/unit started Snakemake; tests that run the workflow belong "
                f"in tests/workflow: {args!r}"
            )
        super().__init__(args, *rest, **kwargs)


@pytest.fixture(autouse=True)
def _unit_tests_start_no_snakemake(request, monkeypatch):
    """Keep the unit tier fast and its boundary honest: outside tests/workflow, starting
    Snakemake fails the test instead of silently slowing `pytest tests/unit` down."""
    if request.node.get_closest_marker("workflow") is None:
        monkeypatch.setattr(subprocess, "Popen", _UnitTierPopen)


# --- shared by a unit test file and its workflow counterpart -------------------------------
# (tests/unit/test_X.py and tests/workflow/test_X_e2e.py; a test file never imports another)

# A 3 x 3 x 2 treatment grid and the names of its cells (tests/unit/test_grid.py plans it,
# tests/workflow/test_treatments_e2e.py runs it).
GRID_3x3x2 = {
    "datasource.n": [3, 5, 8],
    "scale.factor": [0.5, 1.0, 2.0],
    "datasource.offset": [0.0, 10.0],
}
NAMES_3x3x2 = [
    f"n-{n}_factor-{factor}_offset-{offset}"
    for n in (3, 5, 8)
    for factor in ("0.5", "1.0", "2.0")
    for offset in ("0.0", "10.0")
]

# Config errors (tests/unit/test_config.py, tests/workflow/test_config_errors_e2e.py).
CUSTOM_VERIFIER = textwrap.dedent(
    """
    def always_significant(baseline, treatment, *, alpha=0.05, tag="x"):
        return {
            "p_value": 0.001,
            "significant": True,
            "statistic": float(len(baseline) + len(treatment)),
            "tag": tag,
        }
    """
)


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


COUNTING_YAML = """\
experiment: exp
code: steps.py
replicates: 5
seed: 7
datasource:
  function: source
  params: {n: 5}
pipeline:
  - function: scale
    params: {factor: 1.0}
  - function: metrics
"""

# Cluster support (tests/unit/test_cluster.py, tests/workflow/test_cluster_e2e.py).
HAS_SLURM_PLUGIN = importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None
HAS_HTCONDOR_PLUGIN = importlib.util.find_spec("snakemake_executor_plugin_htcondor") is not None


def declared_config(**overrides) -> dict:
    """Three steps: the datasource asks for memory, scale for threads and time,
    metrics for more memory and time."""
    config = counting_config(replicates=6, batch={"replicates_per_job": 4}, **overrides)
    config["datasource"].update(mem_mb=1500)
    config["pipeline"][0].update(threads=2, runtime=0.5)
    config["pipeline"][1].update(mem_mb=3000, runtime=2)
    return config


def counting_plan(tmp_path, config):
    """The plan of ``config`` with the counting steps written to ``tmp_path``."""
    from repliflow.core.config import validate_config
    from repliflow.core.plan import build_plan

    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "steps.py").write_text(COUNTING_STEPS)
    return build_plan(validate_config(config, file="test.yaml"), workdir=str(tmp_path))


# `repliflow power` (tests/unit/test_power_hostile.py, tests/workflow/test_power_e2e.py).
def power(capsys, *args: str) -> tuple[int, str, str]:
    from repliflow.cli import main

    code = main(["power", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def commands(plan: dict) -> list[list[str]]:
    return [shlex.split(e["command"]) for e in plan["extend"]]
