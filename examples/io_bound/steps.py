"""IO-bound steps: a thread pool and an ``async def`` step inside one job.

A replicate "fetches" ``items`` resources, each answering after ``latency``
seconds (a sleep stands in for the network), with a thread pool of
``workers`` threads; then an ``async def`` step writes every payload to a
local file and reads it back, at most ``concurrency`` at a time, each write
waiting ``latency`` seconds first (a slow disk). The runner awaits an
``async def`` step with ``asyncio.run``; a thread pool needs nothing special.

While the threads sleep they hold no core, so the wall time of a replicate
is about ``items / workers * latency``: ``serial_fetch`` (one worker) must be
flagged as slower and ``serial_writes`` as slower to write, while the
content (``content`` metric, a number derived from the payloads' sha256) is
the same under every degree of parallelism and is never flagged.

Payloads are drawn from ``ctx.rng`` before any thread starts: a NumPy
Generator must not be shared between threads.
"""

import asyncio
import hashlib
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _fetch_one(payload: bytes, latency: float) -> bytes:
    time.sleep(latency)  # waiting on the "network" releases the GIL
    return payload


def fetch(ctx, *, items=16, latency=0.02, workers=8, size=64):
    """Fetch ``items`` payloads of ``size`` bytes with ``workers`` threads."""
    payloads = [bytes(ctx.rng.integers(0, 256, size=size, dtype="uint8")) for _ in range(items)]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        fetched = list(pool.map(_fetch_one, payloads, [latency] * items))
    return {"payloads": [p.hex() for p in fetched], "fetch_seconds": time.perf_counter() - start}


async def _write_and_read(path: Path, payload: bytes, latency: float, gate: asyncio.Semaphore) -> bytes:
    async with gate:
        await asyncio.sleep(latency)  # a slow disk
        await asyncio.to_thread(path.write_bytes, payload)
        return await asyncio.to_thread(path.read_bytes)


async def store(data, ctx, *, concurrency=8, latency=0.01):
    """Write each payload to a file and read it back, ``concurrency`` at a time."""
    payloads = [bytes.fromhex(p) for p in data["payloads"]]
    gate = asyncio.Semaphore(concurrency)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="repliflow-io-") as directory:
        paths = [Path(directory, f"item-{i:04d}.bin") for i in range(len(payloads))]
        read = await asyncio.gather(
            *(
                _write_and_read(path, payload, latency, gate)
                for path, payload in zip(paths, payloads, strict=True)
            )
        )
    if read != payloads:
        raise OSError("a file read back differs from what was written")
    digest = hashlib.sha256(b"".join(read)).hexdigest()
    return {
        "fetch_seconds": data["fetch_seconds"],
        "write_seconds": time.perf_counter() - start,
        "sha256": digest,
    }


def metrics(data, ctx):
    return {
        "fetch_seconds": data["fetch_seconds"],
        "write_seconds": data["write_seconds"],
        "content": int(data["sha256"][:8], 16) / 16**8,  # in [0, 1): the same data, the same number
    }
