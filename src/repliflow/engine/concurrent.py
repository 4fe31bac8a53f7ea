"""Several replicates of a block in flight at once (a step's ``concurrency``).

For steps that wait (an API call, a remote query), not compute. One event
loop runs every replicate of the block as a task; a step's calls pass a
semaphore of its ``concurrency``: an ``async def`` step is awaited on the
loop, a plain function runs on a thread pool. Each replicate's outputs and
sidecars are written as its calls finish, as in a serial run, so a killed
block loses only the calls in flight; and nothing here enters a recipe key,
so the results are those of a serial run.

Python's ``random`` and numpy's global RNG are seeded per call in a serial
run; calls that interleave cannot be. So here both are set to a fixed state
before the block and compared after every call: a step that drew from them
stops the block with a message that says to use ``ctx.rng``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
import sys
import time
from collections.abc import Callable, Container
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from repliflow.core.context import Context
from repliflow.core.records import ManifestReplicate, Retried
from repliflow.engine.runner import BlockRunner, StepTimeout, now
from repliflow.errors import RepliflowError, StepError

SENTINEL_SEED = 20240101  # the global RNGs' state under concurrency; any draw changes it


class GlobalRngUsed(RepliflowError):
    """A step drew from a process-global RNG while replicates interleaved."""


class _GlobalRngs:
    """The global RNG states every call must leave as it found them."""

    def __init__(self) -> None:
        import numpy  # ctx.rng needs it anyway; imported now so its state is watched from the start

        self.numpy = numpy
        random.seed(SENTINEL_SEED)
        numpy.random.seed(SENTINEL_SEED)
        self.random_state = random.getstate()
        self.numpy_state = self._numpy_state()

    def _numpy_state(self) -> tuple[Any, ...]:
        return cast(tuple[Any, ...], self.numpy.random.get_state(legacy=True))

    def used(self) -> list[str]:
        """The global RNGs drawn from (or reseeded) since the block began."""
        used = []
        if random.getstate() != self.random_state:
            used.append("Python's random module")
        state = self._numpy_state()
        before = self.numpy_state
        if state[2:] != before[2:] or not self.numpy.array_equal(state[1], before[1]):
            used.append("numpy.random's global functions")
        return used


class _Block:
    """One block's replicates in flight: gates, thread pool, watch slots."""

    def __init__(self, runner: BlockRunner) -> None:
        self.runner = runner
        start = runner.spec["start"]
        self.gates = [asyncio.Semaphore(n) for n in runner.concurrency]
        self.width = min(max(runner.concurrency[start:]), runner.watch.slots)
        self.admit = asyncio.Semaphore(self.width)  # replicates in flight: one call each
        plain = [
            runner.concurrency[p]
            for p in range(start, len(runner.steps))
            if not inspect.iscoroutinefunction(runner.functions[p])
        ]
        self.pool = ThreadPoolExecutor(max(plain), thread_name_prefix="replicate") if plain else None
        self.free_slots = list(range(self.width))[::-1]  # the parent's view of what is in flight
        self.in_flight: dict[int, int] = {}  # slot -> position
        self.rngs = _GlobalRngs()

    async def replicate(self, replicate: int) -> ManifestReplicate:
        runner = self.runner
        seed, keys, sidecars, first_missing = runner.scan(replicate)
        if first_missing is not None:
            data, upstream = runner.first_input(replicate, keys, first_missing, sidecars)
            for position in range(first_missing, len(runner.steps)):
                started, clock = now(), time.perf_counter()
                data, retried = await self.call(replicate, seed, position, data)
                upstream = runner.record(
                    replicate, seed, position, keys, data, upstream, started, clock, retried, sidecars
                )
        return runner.entry(replicate, seed, keys, sidecars)

    async def call(self, replicate: int, seed: int, position: int, data: Any) -> tuple[Any, list[Retried]]:
        runner = self.runner
        retried: list[Retried] = []
        while True:
            async with self.gates[position]:
                if wait := runner.rates[position].reserve():
                    await asyncio.sleep(wait)
                slot = self.free_slots.pop()
                self.in_flight[slot] = position
                runner.watch.enter(replicate, position, slot)
                try:
                    result = await self.invoke(position, data, runner.context(replicate, seed, position))
                    self.check_rngs(replicate, position)
                    return result, retried
                except (Exception, SystemExit) as exc:
                    if isinstance(exc, GlobalRngUsed):
                        raise
                    self.check_rngs(replicate, position)
                    delay = runner.retry_delay(exc, replicate, position, retried)
                    if delay is None:
                        raise runner.step_error(exc, replicate, position) from exc
                finally:
                    runner.watch.leave(slot)
                    del self.in_flight[slot]
                    self.free_slots.append(slot)
            await asyncio.sleep(delay)  # a call waiting for its retry holds no place

    async def invoke(self, position: int, data: Any, ctx: Context) -> Any:
        runner = self.runner
        function = runner.functions[position]
        params = runner.steps[position].params
        args = (ctx,) if position == 0 else (data, ctx)
        timeout = runner.timeouts[position]
        if inspect.iscoroutinefunction(function):
            try:
                async with asyncio.timeout(timeout) as deadline:
                    return await function(*args, **params)
            except TimeoutError:
                if deadline.expired():
                    raise StepTimeout from None
                raise
        # a plain function cannot be interrupted in its thread: past its timeout
        # the watching parent stops the process (repliflow.engine.supervise)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self.pool, functools.partial(function, *args, **params))
        if inspect.isawaitable(result):
            result = await result
        return result

    def check_rngs(self, replicate: int, position: int) -> None:
        used = self.rngs.used()
        if not used:
            return
        runner = self.runner
        step = runner.steps[position]
        others = sorted({runner.steps[p].name for p in self.in_flight.values()} - {step.name})
        also = f" (or a call of {', '.join(others)} in flight beside it)" if others else ""
        raise GlobalRngUsed(
            f"repliflow: step '{step.name}'{also} drew from {' and '.join(used)} while {self.width} "
            f"replicates ran concurrently (condition '{runner.condition}', replicate {replicate}): "
            "interleaved calls share one global state, so the numbers would depend on timing and "
            "could not be reproduced. Draw from ctx.rng (seeded per replicate and step), or set "
            f"concurrency: 1 on '{step.name}' and the steps that run in the same job with it "
            f"({', '.join(s.name for s in runner.steps[runner.spec['start'] :])})"
        )


def run_concurrently(
    runner: BlockRunner,
    progress: Callable[[int, int, int], None] | None,
    skip: Container[int],
) -> tuple[list[ManifestReplicate], list[StepError]]:
    return asyncio.run(_run(runner, progress, skip))


async def _run(
    runner: BlockRunner,
    progress: Callable[[int, int, int], None] | None,
    skip: Container[int],
) -> tuple[list[ManifestReplicate], list[StepError]]:
    block = _Block(runner)
    lo, hi = runner.spec["lo"], runner.spec["hi"]
    entries: dict[int, ManifestReplicate] = {}
    failures: list[StepError] = []
    done = 0

    async def one(replicate: int) -> None:
        nonlocal done
        async with block.admit:
            try:
                entries[replicate] = await block.replicate(replicate)
            except StepError as exc:
                failures.append(exc)
            done += 1
            if progress:
                progress(done, hi - lo, len(failures))

    try:
        async with asyncio.TaskGroup() as tasks:
            for replicate in range(lo, hi):
                if replicate not in skip:
                    tasks.create_task(one(replicate))
    except* Exception as group:  # the first cause, as a serial run would raise it
        raise group.exceptions[0] from None
    finally:
        if block.pool is not None:
            # threads still in a call (the block is stopping) are not waited for
            block.pool.shutdown(wait=False, cancel_futures=True)
        sys.stderr.flush()
    failures.sort(key=lambda f: f.replicate if f.replicate is not None else -1)
    return [entries[r] for r in sorted(entries)], failures
