"""Fuzz: every reader of a results folder meets a hostile or broken record
with a message, never a traceback, a hang or a file opened outside.

Each example copies one finished run, mutates one of its records
(provenance.json, a sidecar, a block manifest, metrics.csv, hypotheses.json)
with wrong types, truncation, deep nesting, huge numbers, odd unicode, or
replaces it with a FIFO, a directory or a symlink (to /dev/zero, to a file
outside), then runs ``audit``, ``audit --prov``, ``status``, ``power`` and
``gc --delete`` on it in this process, recording every file opened
(``sys.addaudithook``; see conftest's ``opened``).

Seeded (``derandomize``) and bounded so that it stays well under a minute.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import signal
import traceback
from pathlib import Path

import pytest
from conftest import Experiment, counting_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repliflow.cli import main

DEEP = "\u0000deep\u0000"  # replaced by nesting too deep for a recursive reader
EXAMPLES = int(os.environ.get("REPLIFLOW_FUZZ_EXAMPLES", 60))  # more for a longer hunt
SECONDS_PER_COMMAND = 20

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.just(10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),  # includes lone surrogates, NULs and right-to-left marks
    st.sampled_from(["../../../../etc/passwd", "/dev/zero", "store/00/" + "0" * 20 + ".pkl", "pickle"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.just(DEEP),
)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Experiment:
    root = tmp_path_factory.mktemp("fuzz-template")
    experiment = Experiment(root, counting_config(replicates=3))
    experiment.snakemake()
    return experiment


def _records(work: Path) -> list[Path]:
    results = work / "results" / "exp"
    sidecars = sorted((results / "store").glob("*/*.meta.json"))
    manifests = sorted((results / "blocks").glob("*/*.json"))
    return [
        results / "provenance.json",
        results / "metrics.csv",
        results / "hypotheses.json",
        *sidecars[:3],
        *manifests[:2],
    ]


def _json_text(value) -> str:
    text = json.dumps(value, allow_nan=True)
    return text.replace(json.dumps(DEEP), "[" * 50_000 + "]" * 50_000)


def _mutate_json(path: Path, data) -> str:
    document = json.loads(path.read_text())
    holder, where = None, None
    node = document
    trail = []
    for _ in range(6):  # walk to a random place in the document
        if isinstance(node, dict) and node and data.draw(st.booleans(), label="descend"):
            key = data.draw(st.sampled_from(sorted(node)), label="key")
        elif isinstance(node, list) and node and data.draw(st.booleans(), label="descend"):
            key = data.draw(st.integers(0, len(node) - 1), label="index")
        else:
            break
        holder, where, node = node, key, node[key]
        trail.append(key)
    replacement = data.draw(values, label="value")
    if holder is None:
        document = replacement
    elif data.draw(st.booleans(), label="delete") and isinstance(holder, dict):
        del holder[where]
        replacement = "<deleted>"
    else:
        holder[where] = replacement
    path.write_text(_json_text(document))
    return f"{path.name} at {trail}: {replacement!r:.60}"


def _mutate_csv(path: Path, data) -> str:
    lines = path.read_text().splitlines()
    row = data.draw(st.integers(0, len(lines) - 1), label="row")
    cells = lines[row].split(",")
    column = data.draw(st.integers(0, len(cells)), label="column")
    cell = data.draw(st.one_of(st.text(max_size=8), st.sampled_from(["1e999", "nan", '"', "9" * 5000])))
    if column == len(cells):
        cells.append(cell)
    else:
        cells[column] = cell
    lines[row] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return f"{path.name} row {row} column {column}: {cell!r:.60}"


def _mutate(work: Path, outside: Path, data) -> str:
    path = data.draw(st.sampled_from(_records(work)), label="file")
    how = data.draw(
        st.sampled_from(["value", "value", "value", "truncate", "bytes", "fifo", "zero", "outside", "dir"]),
        label="how",
    )
    if how == "value":
        return _mutate_csv(path, data) if path.suffix == ".csv" else _mutate_json(path, data)
    if how == "truncate":
        content = path.read_bytes()
        path.write_bytes(content[: data.draw(st.integers(0, max(0, len(content) - 1)), label="at")])
        return f"{path.name} truncated"
    if how == "bytes":
        path.write_bytes(data.draw(st.binary(max_size=40), label="bytes"))
        return f"{path.name} replaced by bytes"
    path.unlink()
    if how == "fifo":
        os.mkfifo(path)
    elif how == "zero":
        path.symlink_to("/dev/zero")
    elif how == "outside":
        path.symlink_to(outside)
    else:
        path.mkdir()
    return f"{path.name} replaced: {how}"


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang


def _run(command: list[str]) -> str | None:
    """None when the command ended with an exit code; else what went wrong."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SECONDS_PER_COMMAND)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(command)
        assert isinstance(code, int)
        out.getvalue().encode("utf-8", "backslashreplace")
        return None
    except _Hang:
        return f"hung for {SECONDS_PER_COMMAND} s"
    except SystemExit as exc:
        return None if isinstance(exc.code, int) else f"SystemExit({exc.code!r})"
    except BaseException:
        return traceback.format_exc()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="REPLIFLOW_FUZZ_EXAMPLES" not in os.environ,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_reader_crashes_hangs_or_opens_outside(template, tmp_path_factory, opened, data):
    base = tmp_path_factory.mktemp("fuzz")
    work = base / "work"
    shutil.copytree(template.root, work, symlinks=True, ignore=shutil.ignore_patterns(".snakemake"))
    outside = base / "outside.txt"
    outside.write_text("not yours\n")
    random.seed(0)
    mutation = _mutate(work, outside, data)
    results, config = str(work / "results" / "exp"), str(work / "config.yaml")
    commands = [
        ["audit", results, "--config", config, "--workers", "1"],
        ["audit", "--prov", results, "--config", config, "--workers", "1"],
        ["status", "-d", str(work), config],
        ["power", results],
        ["gc", "--delete", "-d", str(work), config],
    ]
    with opened() as paths:
        failures = {" ".join(c[:2]): why for c in commands if (why := _run(c)) is not None}
    assert not failures, f"after mutating {mutation}: {failures}"
    strays = sorted({p for p in paths if not p.startswith(str(work) + os.sep)})
    assert not strays, f"after mutating {mutation}, opened outside the work folder: {strays}"
    inside_but_not_ours = sorted(
        {
            p
            for p in paths
            if not p.startswith((results + os.sep, config, str(work / "steps.py"), str(work / ".snakemake")))
        }
    )
    assert not inside_but_not_ours, f"after mutating {mutation}: {inside_but_not_ours}"
