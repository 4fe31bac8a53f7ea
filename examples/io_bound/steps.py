"""IO-bound steps: a thread pool and an ``async def`` step inside one job.

A replicate "fetches" ``items`` resources, each answering after ``latency``
seconds (a sleep stands in for the network), with a thread pool of
``workers`` threads; then an ``async def`` step writes every payload to a
local file and reads it back, at most ``concurrency`` at a time, each write
waiting ``latency`` seconds first (a slow disk); then ``checksum`` hashes the
payloads on a thread pool that really computes (hashlib releases the GIL).
The runner awaits an ``async def`` step (on the job's event loop); a thread pool
needs nothing special.

Waiting threads hold no core, so ``fetch`` and ``store`` declare no threads
(one core is enough for many waiting threads), while ``checksum`` declares
``threads: 2`` in the config: its block jobs ask Snakemake for two cores.
``serial_fetch`` (one worker) must be flagged as slower to fetch and
``serial_writes`` as slower to write, while the content (``content`` metric,
a number derived from the payloads' sha256) is the same under every degree of
parallelism and is never flagged.

Replicates run concurrently too: the config's ``concurrency: 10`` keeps ten
replicates of ``fetch`` in flight inside each block job (each on the job's
thread pool), so a block of 20 waits about twice, not twenty times. ``fetch``
draws only from ``ctx.rng`` (its own per replicate): Python's ``random`` or
numpy's global functions would make the numbers depend on timing, and the
runner stops the job if a step uses them under concurrency.

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


_dropped: set[tuple[str, int]] = set()  # replicates whose first connection dropped, in this job


def fetch(ctx, *, items=16, latency=0.02, workers=8, size=64):
    """Fetch ``items`` payloads of ``size`` bytes with ``workers`` threads.

    The first call of every fifth replicate (3, 8, 13, ...) drops its connection, as a real
    service sometimes does: the config's ``retries`` calls it again, with the
    same ctx, so the payloads are those of a first-time success."""
    if ctx.replicate % 5 == 3 and (ctx.condition, ctx.replicate) not in _dropped:
        _dropped.add((ctx.condition, ctx.replicate))
        raise ConnectionError("connection reset by peer (simulated)")
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
    return {
        "payloads": [p.hex() for p in read],
        "fetch_seconds": data["fetch_seconds"],
        "write_seconds": time.perf_counter() - start,
    }


def checksum(data, ctx, *, workers=2, rounds=16, repeat=4096):
    """CPU work on a thread pool: ``rounds`` salted sha256 digests of the
    payloads repeated ``repeat`` times (about 4 MB). hashlib releases the GIL
    on large buffers, so ``workers`` threads keep ``workers`` cores busy; the
    config declares ``threads: 2`` on this step so that Snakemake reserves them."""
    blob = b"".join(bytes.fromhex(p) for p in data["payloads"]) * repeat

    def digest(salt: int) -> str:
        hasher = hashlib.sha256(salt.to_bytes(4, "big"))
        hasher.update(blob)
        return hasher.hexdigest()

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        digests = list(pool.map(digest, range(rounds)))
    return {
        "fetch_seconds": data["fetch_seconds"],
        "write_seconds": data["write_seconds"],
        "checksum_seconds": time.perf_counter() - start,
        "sha256": hashlib.sha256("".join(digests).encode()).hexdigest(),
    }


def metrics(data, ctx):
    return {
        "fetch_seconds": data["fetch_seconds"],
        "write_seconds": data["write_seconds"],
        "checksum_seconds": data["checksum_seconds"],
        "content": int(data["sha256"][:8], 16) / 16**8,  # in [0, 1): the same data, the same number
    }
