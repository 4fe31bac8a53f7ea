"""Replicates in flight at once inside a block (issue 17), in-process: the same
outputs as a serial run, global RNGs caught, rate limits and retries."""

from __future__ import annotations

import json
import textwrap
import time

import pytest
from conftest import counting_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repliflow.core.config import validate_config
from repliflow.core.plan import build_plan
from repliflow.engine.pacing import RateLimit, RetryPolicy
from repliflow.engine.runner import BlockRunner
from repliflow.errors import RepliflowError, StepError
from repliflow.store import storage

STEPS = textwrap.dedent(
    """
    import asyncio
    import json
    import os
    import random
    import time

    import numpy as np


    async def fetch(ctx, *, n=4, wait=0.05):
        await asyncio.sleep(wait)
        return [float(x) for x in ctx.rng.normal(size=n)]


    def fetch_blocking(ctx, *, n=4, wait=0.05):
        time.sleep(wait)
        return [float(x) for x in ctx.rng.normal(size=n)]


    def uses_random(ctx, *, n=4, wait=0.01):
        time.sleep(wait)
        return [random.random() for _ in range(n)]


    def uses_numpy_global(ctx, *, n=4, wait=0.01):
        time.sleep(wait)
        return list(np.random.normal(size=n))


    def _attempt(ctx):
        # how many times this replicate's step was called (a file: each runner loads the module anew)
        path = os.path.join(os.path.dirname(__file__), f"attempts-{ctx.condition}-{ctx.replicate}")
        count = int(open(path).read()) + 1 if os.path.exists(path) else 1
        with open(path, "w") as handle:
            handle.write(str(count))
        return count


    def flaky(ctx, *, n=4):
        # flaky.json (absent: never fails) says which replicates fail their first
        # `failures` calls, and with which error; not a param, so the keys stay those of a clean run
        path = os.path.join(os.path.dirname(__file__), "flaky.json")
        plan = json.load(open(path)) if os.path.exists(path) else {"fail_on": []}
        if ctx.replicate in plan["fail_on"] and _attempt(ctx) <= plan.get("failures", 2):
            errors = {"TimeoutError": TimeoutError, "ValueError": ValueError}
            raise errors[plan.get("error", "TimeoutError")]("flaky")
        return [float(x) for x in ctx.rng.normal(size=n)]


    async def slow(ctx, *, n=4):
        await asyncio.sleep(30)
        return [0.0] * n


    async def jitter_async(ctx, *, delays=(0.0,), fail=()):
        # each replicate waits its own time, so calls finish out of order
        await asyncio.sleep(delays[ctx.replicate % len(delays)])
        if ctx.replicate in fail:
            raise RuntimeError("chosen to fail")
        return [float(x) for x in ctx.rng.normal(size=3)]


    def jitter(ctx, *, delays=(0.0,), fail=()):
        time.sleep(delays[ctx.replicate % len(delays)])
        if ctx.replicate in fail:
            raise RuntimeError("chosen to fail")
        return [float(x) for x in ctx.rng.normal(size=3)]


    def summary(data, ctx):
        return {"mean": sum(data) / len(data), "first": data[0]}
    """
)


def _plan(root, datasource, *, replicates=8, concurrency=None, batch=None, pipeline=None):
    root.mkdir(parents=True, exist_ok=True)
    (root / "steps.py").write_text(STEPS)
    source = dict(datasource)
    if concurrency is not None:
        source["concurrency"] = concurrency
    config = counting_config(
        replicates=replicates,
        datasource=source,
        pipeline=pipeline or [{"function": "summary"}],
        treatments={},
        hypotheses=[],
        batch=batch if batch is not None else {"replicates_per_job": replicates},
    )
    return build_plan(validate_config(config), workdir=str(root))


def _run(plan, root):
    """Every block; the manifests' entries (sizes of sidecars dropped: their timings vary)."""
    entries, failures = [], []
    for segment in plan.segments.values():
        for block in plan.blocks(segment):
            found, failed = BlockRunner(plan.block_spec(block), str(root)).run()
            entries += found
            failures += failed
    for entry in entries:
        for step in entry["steps"]:
            step.pop("sidecar_bytes", None)
    return entries, failures


def _timed_run(plan, root):
    clock = time.perf_counter()
    entries, failures = _run(plan, root)
    assert not failures
    return entries, time.perf_counter() - clock


@pytest.mark.parametrize("function", ["fetch", "fetch_blocking"])
def test_concurrent_replicates_store_the_bytes_a_serial_run_stores(tmp_path, function):
    source = {"function": function, "params": {"wait": 0.1}}
    serial, serial_s = _timed_run(_plan(tmp_path / "serial", source, replicates=16), tmp_path / "serial")
    plan = _plan(tmp_path / "concurrent", source, replicates=16, concurrency=16)
    concurrent, concurrent_s = _timed_run(plan, tmp_path / "concurrent")
    # same keys, same sha256 of every output (the metrics included), in the same order
    assert concurrent == serial
    assert serial_s > 1.6 and concurrent_s < serial_s / 3
    sidecar = storage.read_sidecar(tmp_path / "concurrent" / plan.store_dir, plan.keys("baseline", 5)[0])
    assert sidecar["replicate"] == 5 and "retried" not in sidecar


def test_concurrency_never_enters_a_key_nor_the_specs_of_serial_experiments(tmp_path):
    source = {"function": "fetch"}
    serial = _plan(tmp_path / "a", source)
    concurrent = _plan(tmp_path / "b", source, concurrency=4)
    assert serial.keys("baseline", 3) == concurrent.keys("baseline", 3)
    block = next(iter(serial.segments.values()))
    assert "concurrency" not in serial.block_spec(serial.blocks(block)[0])
    block = next(iter(concurrent.segments.values()))
    assert concurrent.block_spec(concurrent.blocks(block)[0])["concurrency"] == [4, 1]


def test_batch_concurrency_is_every_steps_default(tmp_path):
    plan = _plan(tmp_path, {"function": "fetch"}, batch={"replicates_per_job": 8, "concurrency": 3})
    segment = next(iter(plan.segments.values()))
    assert plan.block_spec(plan.blocks(segment)[0])["concurrency"] == [3, 3]


@pytest.mark.parametrize(
    ("function", "what"),
    [("uses_random", "Python's random module"), ("uses_numpy_global", "numpy.random's global functions")],
)
def test_a_global_rng_under_concurrency_stops_the_block_with_what_to_do(tmp_path, function, what):
    plan = _plan(tmp_path, {"function": function}, concurrency=4)
    with pytest.raises(RepliflowError) as error:
        _run(plan, tmp_path)
    text = str(error.value)
    assert f"step 'datasource' drew from {what}" in text
    assert "Draw from ctx.rng" in text and "concurrency: 1" in text
    assert "replicates ran concurrently" in text and "condition 'baseline'" in text


def test_a_global_rng_stays_reproducible_without_concurrency(tmp_path):
    first, _ = _run(_plan(tmp_path / "a", {"function": "uses_random"}), tmp_path / "a")
    second, _ = _run(_plan(tmp_path / "b", {"function": "uses_random"}), tmp_path / "b")
    assert first == second


@pytest.mark.parametrize("concurrency", [None, 4])
def test_listed_exceptions_are_retried_with_backoff_and_recorded(tmp_path, concurrency):
    clean = {"function": "flaky", "params": {}}
    expected, _ = _run(_plan(tmp_path / "clean", clean), tmp_path / "clean")
    source = {
        "function": "flaky",
        "retries": {"attempts": 3, "exceptions": ["TimeoutError"], "backoff": 0.05},
    }
    plan = _plan(tmp_path / "flaky", source, concurrency=concurrency)
    (tmp_path / "flaky" / "flaky.json").write_text(json.dumps({"fail_on": [2, 5], "failures": 2}))
    clock = time.perf_counter()
    entries, failures = _run(plan, tmp_path / "flaky")
    assert not failures and entries == expected  # a retry is the same recipe, with the same numbers
    assert time.perf_counter() - clock >= 0.15  # waited 0.05 s, then 0.1 s
    store = tmp_path / "flaky" / plan.store_dir
    sidecar = storage.read_sidecar(store, plan.keys("baseline", 5)[0])
    assert sidecar["retried"] == [
        {"attempt": 1, "error": "TimeoutError: flaky", "waited_s": 0.05},
        {"attempt": 2, "error": "TimeoutError: flaky", "waited_s": 0.1},
    ]
    assert "retried" not in storage.read_sidecar(store, plan.keys("baseline", 4)[0])


@pytest.mark.parametrize(
    ("params", "retries", "cause"),
    [
        ({"error": "ValueError"}, {"attempts": 3, "exceptions": ["TimeoutError"]}, "ValueError: flaky"),
        ({"failures": 3}, {"attempts": 2, "exceptions": ["OSError"], "backoff": 0}, "TimeoutError: flaky"),
    ],
    ids=["not-listed", "attempts-exhausted"],
)
def test_an_unlisted_or_persistent_error_fails_the_replicate(tmp_path, params, retries, cause):
    source = {"function": "flaky", "retries": retries}
    plan = _plan(tmp_path, source, concurrency=2)
    (tmp_path / "flaky.json").write_text(json.dumps({"fail_on": [3], **params}))
    _, failures = _run(plan, tmp_path)
    assert [(f.replicate, f.step) for f in failures] == [(3, "datasource")]
    assert cause in str(failures[0])
    calls = int((tmp_path / "attempts-baseline-3").read_text())
    assert calls == (1 if params.get("error") else 3)


@pytest.mark.parametrize("concurrency", [None, 8])
def test_max_rate_spaces_the_calls_of_a_block(tmp_path, concurrency):
    source = {"function": "fetch", "params": {"wait": 0}, "max_rate": 20}
    _, elapsed = _timed_run(_plan(tmp_path, source, replicates=8, concurrency=concurrency), tmp_path)
    assert elapsed >= 7 / 20 - 0.02  # 8 calls, 1/20 s apart


def test_an_async_step_past_its_timeout_fails_only_its_replicate_under_concurrency(tmp_path):
    source = {"function": "slow", "timeout": 0.3}
    clock = time.perf_counter()
    _, failures = _run(_plan(tmp_path, source, replicates=4, concurrency=4), tmp_path)
    assert time.perf_counter() - clock < 5
    assert sorted(f.replicate for f in failures) == [0, 1, 2, 3]
    assert all("ran longer than its timeout of 0.3 s" in str(f) for f in failures)


def test_a_failing_replicate_leaves_the_others_stored(tmp_path):
    plan = _plan(tmp_path, {"function": "flaky"}, concurrency=4)
    (tmp_path / "flaky.json").write_text(json.dumps({"fail_on": [1], "failures": 9}))
    entries, failures = _run(plan, tmp_path)
    assert [f.replicate for f in failures] == [1]
    assert [e["replicate"] for e in entries] == [0, 2, 3, 4, 5, 6, 7]
    with pytest.raises(StepError):
        raise failures[0]


def test_rate_limit_reserves_slots_in_order():
    limit = RateLimit(10)
    waits = [limit.reserve() for _ in range(3)]
    assert (
        waits[0] == 0
        and waits[1] == pytest.approx(0.1, abs=0.01)
        and waits[2] == pytest.approx(0.2, abs=0.01)
    )
    assert RateLimit(None).reserve() == 0


def test_retry_policy_matches_by_name_dotted_name_and_subclass():
    policy = RetryPolicy.of({"attempts": 2, "exceptions": ["OSError", "builtins.ValueError"], "backoff": 1})
    assert policy.delay(ConnectionError("x"), 1) == 1  # a subclass of OSError
    assert policy.delay(ValueError("x"), 2) == 2
    assert policy.delay(ValueError("x"), 3) is None  # 2 retries used
    assert policy.delay(KeyError("x"), 1) is None
    assert policy.delay(SystemExit(1), 1) is None
    capped = RetryPolicy.of({"attempts": 20, "exceptions": ["OSError"], "backoff": 1, "max_backoff": 5})
    assert capped.delay(OSError(), 10) == 5


def test_a_concurrent_step_keeps_its_declared_threads(tmp_path):
    from repliflow.snakemake.resources import block_resources

    plan = _plan(tmp_path, {"function": "fetch", "threads": 2}, replicates=100, concurrency=50, batch={})
    segment = next(iter(plan.segments.values()))
    block = plan.blocks(segment)[0]
    assert block_resources(plan, block)["threads"] == 2  # not 50: waiting replicates hold no core
    assert plan.block_size == 128  # auto: two waves of 50, rounded up to a power of two


def test_a_concurrent_steps_runtime_counts_its_waves_not_its_replicates(tmp_path):
    from repliflow.snakemake.resources import block_resources

    source = {"function": "fetch", "runtime": 0.5}
    serial = _plan(tmp_path / "a", source, replicates=40)
    concurrent = _plan(tmp_path / "b", source, replicates=40, concurrency=10)
    minutes = [
        block_resources(p, p.blocks(next(iter(p.segments.values())))[0])["runtime"]
        for p in (serial, concurrent)
    ]
    assert minutes == [1 + 20, 1 + 2]  # 40 x 0.5 min; 4 waves of 10 x 0.5 min


@pytest.mark.parametrize("concurrency", [None, 2])
def test_a_call_stopped_by_its_timeout_is_retried_when_step_timeout_is_listed(tmp_path, concurrency, capsys):
    source = {
        "function": "slow",
        "timeout": 0.2,
        "retries": {"attempts": 1, "exceptions": ["StepTimeout"], "backoff": 0},
    }
    _, failures = _run(_plan(tmp_path, source, replicates=2, concurrency=concurrency), tmp_path)
    assert sorted(f.replicate for f in failures) == [0, 1]
    assert all("ran longer than its timeout of 0.2 s" in str(f) for f in failures)
    err = capsys.readouterr().err
    for replicate in (0, 1):
        assert f"replicate {replicate}, step datasource: it ran longer than its timeout of 0.2 s" in err
    assert err.count("retry 1 of 1 in 0 s") == 2


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    replicates=st.integers(1, 12),
    concurrency=st.integers(2, 8),
    function=st.sampled_from(["jitter", "jitter_async"]),
    delays=st.lists(st.sampled_from([0.0, 0.001, 0.003, 0.006]), min_size=1, max_size=5),
    fail=st.sets(st.integers(0, 11), max_size=3),
)
def test_any_concurrency_and_finishing_order_gives_the_serial_runs_outputs(
    tmp_path_factory, replicates, concurrency, function, delays, fail
):
    root = tmp_path_factory.mktemp("fuzz")
    source = {"function": function, "params": {"delays": delays, "fail": sorted(fail)}}
    serial, serial_failed = _run(_plan(root / "serial", source, replicates=replicates), root / "serial")
    plan = _plan(root / "concurrent", source, replicates=replicates, concurrency=concurrency)
    concurrent, concurrent_failed = _run(plan, root / "concurrent")
    assert concurrent == serial
    assert [f.replicate for f in concurrent_failed] == [f.replicate for f in serial_failed]
    assert [f.replicate for f in serial_failed] == sorted(r for r in fail if r < replicates)
