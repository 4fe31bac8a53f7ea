"""Canonical JSON, content hashes, replicate seeds and recipe keys.

Everything that names a file in the store goes through this module, so the
rules for what makes two recipes equal live in one place.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

# Bump when the meaning of a key changes (new fields, new storage semantics):
# every key changes with it, so old outputs are never mistaken for new ones.
# 2: 128-bit replicate and step seeds from SeedSequence (1: 32-bit slices of sha256).
RECIPE_VERSION = 2
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


# --- seeds ----------------------------------------------------------------------------------
#
# Every seed is a 128-bit state of numpy's SeedSequence: the four 32-bit words of
# numpy.random.SeedSequence(entropy, spawn_key=key).generate_state(4), lowest word first.
# The algorithm (Melissa O'Neill's seed_seq as numpy.random.bit_generator implements it)
# is written out here rather than called, for two reasons: seeds name every file in
# the store, so they must not move when numpy does (tests/unit/test_seeds.py checks them
# against the installed numpy), and the Snakefile, the planner and the block jobs
# derive seeds without importing numpy (about 130 ms per process).

_MASK32 = 0xFFFFFFFF
_POOL_SIZE = 4  # 32-bit words: numpy's default 128-bit pool
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_MULT_L, _MIX_MULT_R = 0xCA01F9DD, 0x4973F715
_XSHIFT = 16


def _words(value: int) -> list[int]:
    """A non-negative int as 32-bit words, lowest first (0 is one word), as numpy reads it."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"seed entropy must be a non-negative integer, got {value!r}")
    words = [value & _MASK32]
    value >>= 32
    while value:
        words.append(value & _MASK32)
        value >>= 32
    return words


def _hashmix(value: int, hash_const: int) -> tuple[int, int]:
    value ^= hash_const
    hash_const = (hash_const * _MULT_A) & _MASK32
    value = (value * hash_const) & _MASK32
    return value ^ (value >> _XSHIFT), hash_const


def _mix(x: int, y: int) -> int:
    result = (_MIX_MULT_L * x - _MIX_MULT_R * y) & _MASK32
    return result ^ (result >> _XSHIFT)


def _mix_words(pool: list[int], words: list[int], hash_const: int) -> int:
    """Mix entropy words beyond the pool size into every pool word, in place."""
    for word in words:
        for dst in range(_POOL_SIZE):
            value, hash_const = _hashmix(word, hash_const)
            pool[dst] = _mix(pool[dst], value)
    return hash_const


def _const_pairs(hash_const: int, multiplier: int, count: int) -> tuple[int, ...]:
    """The (xor, multiply) constants of ``count`` hash calls from ``hash_const``
    on, flattened: each call xors with the constant, steps it, multiplies by it."""
    consts: list[int] = []
    for _ in range(count):
        following = (hash_const * multiplier) & _MASK32
        consts += (hash_const, following)
        hash_const = following
    return tuple(consts)


# Filling the pool takes POOL_SIZE hashmix calls and cross-mixing it POOL_SIZE**2 - POOL_SIZE.
_FILL = _POOL_SIZE * _POOL_SIZE
_POOL_CONSTS = _const_pairs(_INIT_A, _MULT_A, _FILL + 1)
_OUTPUT = _const_pairs(_INIT_B, _MULT_B, _POOL_SIZE)  # generate_state's


@functools.lru_cache(maxsize=1024)
def _entropy_pool(entropy: int, spawned: bool) -> tuple[tuple[int, ...], int]:
    """The pool after mixing in ``entropy`` (padded with zero words to the pool
    size when a spawn key follows) and the hash constant reached."""
    run = _words(entropy)
    if spawned:
        run += [0] * (_POOL_SIZE - len(run))
    consts, mask = _POOL_CONSTS, _MASK32
    pool = []
    for index in range(_POOL_SIZE):
        value = (((run[index] if index < len(run) else 0) ^ consts[2 * index]) * consts[2 * index + 1]) & mask
        pool.append(value ^ (value >> _XSHIFT))
    call = 2 * _POOL_SIZE
    for src in range(_POOL_SIZE):
        for dst in range(_POOL_SIZE):
            if src != dst:
                value = ((pool[src] ^ consts[call]) * consts[call + 1]) & mask
                value = (_MIX_MULT_L * pool[dst] - _MIX_MULT_R * (value ^ (value >> _XSHIFT))) & mask
                pool[dst] = value ^ (value >> _XSHIFT)
                call += 2
    hash_const = _mix_words(pool, run[_POOL_SIZE:], consts[2 * _FILL])
    return tuple(pool), hash_const


@functools.lru_cache(maxsize=1024)
def _one_word_key(entropy: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """For the common spawn key of one word: the pool after ``entropy``, times
    the left mixing multiplier, and the four (xor, multiply) hash constants."""
    pool, hash_const = _entropy_pool(entropy, True)
    consts = _const_pairs(hash_const, _MULT_A, _POOL_SIZE)
    return tuple((_MIX_MULT_L * value) & _MASK32 for value in pool), consts


def _state(pool: list[int] | tuple[int, ...]) -> int:
    """generate_state(4) of a pool, as one int (word i at bits 32i..32i+31)."""
    state = 0
    for index, value in enumerate(pool):
        value = ((value ^ _OUTPUT[2 * index]) * _OUTPUT[2 * index + 1]) & _MASK32
        state |= (value ^ (value >> _XSHIFT)) << (32 * index)
    return state


def seed_sequence_state(entropy: int, spawn_key: tuple[int, ...] = ()) -> int:
    """``numpy.random.SeedSequence(entropy, spawn_key=spawn_key).generate_state(4)``
    as one 128-bit int, lowest word first, computed without numpy."""
    if len(spawn_key) == 1 and type(spawn_key[0]) is int and 0 <= spawn_key[0] <= _MASK32:
        return _spawned_once(entropy, spawn_key[0])
    mixed, hash_const = _entropy_pool(entropy, bool(spawn_key))
    pool = list(mixed)  # a copy: the cached pool stays as it is
    for part in spawn_key:
        hash_const = _mix_words(pool, _words(part), hash_const)
    return _state(pool)


def _spawned_once(entropy: int, word: int) -> int:
    # seed_sequence_state(entropy, (word,)) for a one-word key, unrolled: the
    # planner calls it for every replicate.
    (a0, a1, a2, a3), (x0, m0, x1, m1, x2, m2, x3, m3) = _one_word_key(entropy)
    o0, p0, o1, p1, o2, p2, o3, p3 = _OUTPUT
    mask, right = _MASK32, _MIX_MULT_R
    v = ((word ^ x0) * m0) & mask
    v = (a0 - right * (v ^ (v >> 16))) & mask
    v = (((v ^ (v >> 16)) ^ o0) * p0) & mask
    state = v ^ (v >> 16)
    v = ((word ^ x1) * m1) & mask
    v = (a1 - right * (v ^ (v >> 16))) & mask
    v = (((v ^ (v >> 16)) ^ o1) * p1) & mask
    state |= (v ^ (v >> 16)) << 32
    v = ((word ^ x2) * m2) & mask
    v = (a2 - right * (v ^ (v >> 16))) & mask
    v = (((v ^ (v >> 16)) ^ o2) * p2) & mask
    state |= (v ^ (v >> 16)) << 64
    v = ((word ^ x3) * m3) & mask
    v = (a3 - right * (v ^ (v >> 16))) & mask
    v = (((v ^ (v >> 16)) ^ o3) * p3) & mask
    return state | (v ^ (v >> 16)) << 96


def replicate_seed(base_seed: int, replicate: int) -> int:
    """The seed of replicate ``replicate``, a 128-bit int: a function of the
    base seed and the index only, so replicate r of every condition sees the
    same seed (common random numbers).

    It is the state of numpy's ``SeedSequence(base_seed).spawn(r + 1)[r]``,
    child r of the base seed's sequence, so no two replicates of one base share
    a seed: mixing the replicate's word into the base's pool, and reading the
    state out, are one-to-one (for indices below 2**32: every multiplier is
    odd; two seeds of different bases meet with chance about 2**-128). A
    negative base, which numpy refuses, takes the first child of child r of
    ``SeedSequence(-base_seed)``.
    """
    if base_seed < 0:
        return seed_sequence_state(-base_seed, (replicate, 0))
    return seed_sequence_state(base_seed, (replicate,))


def step_seed(seed: int, position: int) -> int:
    """Seed for one step of one replicate (128 bits); ``position`` 0 is the datasource.

    Each step gets its own stream so inserting a step does not shift the
    random numbers another step sees. The position is part of the recipe key
    through the upstream chain, so this never breaks caching. It is the state
    of ``SeedSequence(seed).spawn(position + 1)[position]``: distinct positions
    of one replicate never share a seed.
    """
    return seed_sequence_state(seed, (position,))


def legacy_seed(step_seed: int) -> list[int]:
    """What ``numpy.random.seed`` takes for a step seed: its 32-bit words,
    lowest first, at least four (that function refuses ints of 2**32 or more,
    but seeds its Mersenne Twister from an array of such words, all 128 bits).
    Python's ``random.seed`` takes the step seed itself."""
    words = _words(step_seed)
    return words + [0] * (_POOL_SIZE - len(words))


def recipe_key(
    function: str, code_hash: str, params: Mapping[str, object], seed: int, upstream: str | None
) -> str:
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
