"""Steps that wait on IO: ``async def`` steps (awaited by the runner) and steps
that use a thread pool, run in-process by the block runner."""

from __future__ import annotations

import textwrap
import time

import pytest

from repliflow.core.config import validate_config
from repliflow.core.plan import build_plan
from repliflow.engine.runner import BlockRunner
from repliflow.errors import StepError
from repliflow.store import storage

WAIT = 0.1  # seconds each simulated request waits
REQUESTS = 8

IO_STEPS = textwrap.dedent(
    f'''
    import asyncio
    import time
    from concurrent.futures import ThreadPoolExecutor


    async def async_source(ctx, *, requests={REQUESTS}, wait={WAIT}):
        """Concurrent requests on one event loop; each returns a number from ctx.rng."""
        numbers = [float(x) for x in ctx.rng.normal(size=requests)]

        async def request(x):
            await asyncio.sleep(wait)
            return x

        start = time.perf_counter()
        fetched = await asyncio.gather(*(request(x) for x in numbers))
        return {{"values": fetched, "seconds": time.perf_counter() - start}}


    def pooled(data, ctx, *, workers={REQUESTS}, wait={WAIT}):
        """A thread pool inside a step: results come back in input order."""
        def work(x):
            time.sleep(wait)
            return 2 * x

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            doubled = list(pool.map(work, data["values"]))
        return {{"values": doubled, "seconds": time.perf_counter() - start}}


    async def async_metrics(data, ctx, *, fail=False):
        asyncio.get_running_loop()  # a real event loop runs this step
        await asyncio.sleep(0)
        if fail and ctx.replicate == 1:
            raise ConnectionError("the server went away")
        return {{"total": sum(data["values"]), "seconds": data["seconds"]}}
    '''
)


def _plan(tmp_path, **overrides):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "steps.py").write_text(IO_STEPS)
    config = {
        "experiment": "io",
        "code": "steps.py",
        "replicates": 2,
        "seed": 1,
        "datasource": {"function": "async_source"},
        "pipeline": [{"function": "pooled"}, {"function": "async_metrics"}],
        **overrides,
    }
    return build_plan(validate_config(config), workdir=str(tmp_path))


def _run(plan, tmp_path):
    (segment,) = plan.segments.values()
    (block,) = plan.blocks(segment)
    return BlockRunner(plan.block_spec(block), str(tmp_path)).run()


def _outputs(plan, tmp_path, replicate):
    store = tmp_path / plan.store_dir
    return [storage.load(store, key)[0] for key in plan.keys("baseline", replicate)]


def test_async_and_thread_pool_steps_run_concurrently_and_reproducibly(tmp_path):
    plan = _plan(tmp_path, batch={"replicates_per_job": 2})
    assert [step.is_async for step in plan.conditions[0].steps] == [True, False, True]
    entries, failures = _run(plan, tmp_path)
    assert failures == [] and len(entries) == 2
    pooled_values = []
    for replicate in range(2):
        source, pooled, metrics = _outputs(plan, tmp_path, replicate)
        pooled_values.append(pooled["values"])
        serial = REQUESTS * WAIT
        assert source["seconds"] < serial / 2, "async requests did not overlap"
        assert pooled["seconds"] < serial / 2, "the thread pool did not overlap"
        assert pooled["values"] == [2 * x for x in source["values"]]  # order kept
        assert metrics["total"] == pytest.approx(sum(pooled["values"]))
    other = _plan(tmp_path / "again", batch={"replicates_per_job": 2})
    _run(other, tmp_path / "again")
    for replicate in range(2):  # timings differ between runs; the data do not
        assert _outputs(other, tmp_path / "again", replicate)[1]["values"] == pooled_values[replicate]


def test_a_failing_async_step_names_step_condition_and_replicate(tmp_path):
    plan = _plan(
        tmp_path,
        pipeline=[{"function": "pooled"}, {"function": "async_metrics", "params": {"fail": True}}],
        batch={"replicates_per_job": 2},
    )
    start = time.perf_counter()
    entries, failures = _run(plan, tmp_path)
    assert time.perf_counter() - start < 10
    assert len(entries) == 1 and len(failures) == 1
    (failure,) = failures
    assert isinstance(failure, StepError)
    assert (failure.step, failure.condition, failure.replicate) == ("async_metrics", "baseline", 1)
    assert "ConnectionError: the server went away" in str(failure)
