"""Canonical JSON, content hashes, replicate seeds and recipe keys.

Everything that names a file in the store goes through this module, so the
rules for what makes two recipes equal live in one place.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

# Bump when the meaning of a key changes (new fields, new storage semantics):
# every key changes with it, so old outputs are never mistaken for new ones.
RECIPE_VERSION = 1
KEY_LENGTH = 20  # hex characters: 80 bits, collision-free at any realistic scale


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace; the only form we ever hash.

    Floats that are integral stay floats (``1.0`` and ``1`` hash differently),
    because a step can tell them apart. NaN and infinities are rejected: they
    have no canonical JSON form.
    """
    return json.dumps(_check_finite(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _check_finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cannot hash the non-finite number {value!r}")
    if isinstance(value, dict):
        for item in value.values():
            _check_finite(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_finite(item)
    return value


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(value: Any, length: int = KEY_LENGTH) -> str:
    return sha256_hex(canonical_json(value).encode())[:length]


def sha256_file(path: str, chunk_size: int = 1 << 20) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            hasher.update(chunk)
    return hasher.hexdigest()


def replicate_seed(base_seed: int, replicate: int) -> int:
    """The seed of replicate ``replicate``: a function of the base seed and the
    index only, so replicate r of every condition sees the same seed (common
    random numbers). 32 bits, because ``numpy.random.seed`` takes no more."""
    raw = hashlib.sha256(f"repliflow-seed:{base_seed}:{replicate}".encode()).digest()
    return int.from_bytes(raw[:4], "big")


def step_seed(seed: int, position: int) -> int:
    """Seed for one step of one replicate; ``position`` 0 is the datasource.

    Each step gets its own stream so inserting a step does not shift the
    random numbers another step sees. The position is part of the recipe key
    through the upstream chain, so this never breaks caching.
    """
    raw = hashlib.sha256(f"repliflow-step:{seed}:{position}".encode()).digest()
    return int.from_bytes(raw[:4], "big")


def recipe_key(function: str, code_hash: str, params: dict, seed: int, upstream: str | None) -> str:
    """The cache key of one replicate x step: equal recipes, equal keys."""
    return digest(
        {
            "v": RECIPE_VERSION,
            "function": function,
            "code": code_hash,
            "params": params,
            "seed": seed,
            "upstream": upstream,
        }
    )
