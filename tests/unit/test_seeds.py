"""Replicate and step seeds: 128-bit SeedSequence states, one per replicate (issue 12).

With 32-bit seeds two replicates of one base could draw the same seed (seen at
300 replicates), compute identical data into one shared store file and still be
counted as independent. Now replicate r's seed is the state of numpy's
``SeedSequence(base).spawn(r + 1)[r]``, which is one-to-one in r.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import counting_config

from repliflow.core import hashing
from repliflow.core.config import validate_config
from repliflow.core.plan import build_plan
from repliflow.engine.runner import BlockRunner
from repliflow.store import storage

MILLION = 1_000_000
BASES = (0, 1, 42, 2**63)

# Pinned so that an accidental change of the derivation is caught: every recipe
# key contains the seed, so a change here recomputes every store.
GOLDEN = {
    (42, 0): 89243099840137918447686405965974980260,
    (42, 1): 142136486468327698964923369428397472954,
}
GOLDEN_STEP = {0: 219995334438942221519875407264949057514, 1: 43647554529232229946881937640922320762}


def numpy_state(entropy, spawn_key=()) -> int:
    """What numpy itself makes: ``generate_state(4)`` as one int, lowest word first."""
    return as_int(np.random.SeedSequence(entropy, spawn_key=spawn_key).generate_state(4))


def million_seeds(base: int, count: int = MILLION) -> np.ndarray:
    """Replicate seeds 0..count-1 of ``base`` (below 2**128) as rows of four
    32-bit words, vectorised: numpy's pool for ``SeedSequence(base)`` with the
    replicate's word mixed in (SeedSequence's last step for a one-word spawn
    key), then read out as ``generate_state`` does. Independent of
    hashing.py's code; checked against it below."""
    mask = 0xFFFFFFFF
    init_a, mult_a, init_b, mult_b = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
    mult_l, mult_r = 0xCA01F9DD, 0x4973F715
    # A base of fewer than four words is padded with zero words when a spawn key
    # follows, and hashed as zeros when none does: the same pool either way.
    pool = [int(word) for word in np.random.SeedSequence(base).pool]
    hash_const = init_a * pow(mult_a, 16, 1 << 32) & mask  # 16 hashmix calls made the pool
    out_const = init_b
    replicate = np.arange(count, dtype=np.uint32)
    words = np.empty((count, 4), dtype=np.uint32)
    for index in range(4):
        following = hash_const * mult_a & mask
        value = (replicate ^ np.uint32(hash_const)) * np.uint32(following)
        value ^= value >> np.uint32(16)
        value = np.uint32(mult_l * pool[index] & mask) - np.uint32(mult_r) * value
        value ^= value >> np.uint32(16)
        out_following = out_const * mult_b & mask
        value = (value ^ np.uint32(out_const)) * np.uint32(out_following)
        words[:, index] = value ^ (value >> np.uint32(16))
        hash_const, out_const = following, out_following
    return words


def as_int(words) -> int:
    return sum(int(word) << (32 * index) for index, word in enumerate(words))


def low_64_bits(words: np.ndarray) -> np.ndarray:
    return words[:, 0].astype(np.uint64) | (words[:, 1].astype(np.uint64) << np.uint64(32))


def all_different(values: np.ndarray) -> bool:
    ordered = np.sort(values)  # np.unique is ten times slower here
    return bool((ordered[1:] != ordered[:-1]).all())


def test_golden_values():
    for (base, replicate), seed in GOLDEN.items():
        assert hashing.replicate_seed(base, replicate) == seed
    for position, seed in GOLDEN_STEP.items():
        assert hashing.step_seed(GOLDEN[(42, 0)], position) == seed


@pytest.mark.parametrize("base", [*BASES, 2**127 + 5, 2**200 + 7])
def test_replicate_seed_is_child_r_of_the_base_seed_sequence(base):
    children = np.random.SeedSequence(base).spawn(6)
    for replicate, child in enumerate(children):
        assert hashing.replicate_seed(base, replicate) == as_int(child.generate_state(4))
    assert hashing.replicate_seed(base, 2**32 - 1) == numpy_state(base, (2**32 - 1,))


def test_seed_sequence_state_is_numpys():
    """The copy of SeedSequence in hashing.py equals the installed numpy's on
    entropies and spawn keys of every length (pool padding, extra words)."""
    rnd = random.Random(12)
    edges = [0, 1, 42, 2**32 - 1, 2**32, 2**63, 2**96, 2**128 - 1, 2**128, 2**200 + 7]
    for _ in range(400):
        entropy = rnd.choice([*edges, rnd.getrandbits(rnd.randint(1, 300))])
        key = tuple(
            rnd.choice([*edges, rnd.getrandbits(rnd.randint(1, 80))]) for _ in range(rnd.randint(0, 3))
        )
        assert hashing.seed_sequence_state(entropy, key) == numpy_state(entropy, key), (entropy, key)


@pytest.mark.parametrize("base", BASES)
def test_a_million_replicates_never_share_a_seed(base):
    words = million_seeds(base)
    # the vectorised seeds are hashing.replicate_seed's: all of the first
    # 20 000, and a sample up to the last
    for replicate in range(20_000):
        assert as_int(words[replicate]) == hashing.replicate_seed(base, replicate)
    for replicate in random.Random(base).sample(range(MILLION), 2_000) + [MILLION - 1]:
        assert as_int(words[replicate]) == hashing.replicate_seed(base, replicate)
    # the low 64 bits alone are all different, so the 128-bit seeds are
    assert all_different(low_64_bits(words))


def test_no_seed_is_shared_between_these_bases():
    low = np.concatenate([low_64_bits(million_seeds(base, MILLION // 4)) for base in BASES])
    assert all_different(low)


def test_negative_and_huge_bases_are_distinct_streams():
    seeds = {}
    for base in (-1, 1, -42, 42, -(2**63), 2**63, 2**128, 2**200 + 7, -(2**200 + 7)):
        for replicate in range(2_000):
            seeds.setdefault(hashing.replicate_seed(base, replicate), []).append((base, replicate))
    assert all(len(owners) == 1 for owners in seeds.values())
    assert hashing.replicate_seed(-42, 3) == numpy_state(42, (3, 0))  # child 0 of child 3
    assert all(0 <= seed < 2**128 for seed in seeds)


def test_replicate_seeds_are_128_bit_ints():
    seeds = [hashing.replicate_seed(42, r) for r in range(10_000)]
    assert all(type(seed) is int and 0 <= seed < 2**128 for seed in seeds)
    assert max(seeds) >= 2**120  # the high words are used
    assert json.loads(json.dumps(seeds)) == seeds  # JSON keeps them exact


def test_step_seeds_are_distinct_across_positions_and_replicates():
    seen = set()
    for replicate in range(2_000):
        seed = hashing.replicate_seed(7, replicate)
        seen.add(seed)
        for position in range(8):
            step = hashing.step_seed(seed, position)
            assert 0 <= step < 2**128
            seen.add(step)
    assert len(seen) == 2_000 * 9
    for replicate in range(20):
        seed = hashing.replicate_seed(7, replicate)
        children = np.random.SeedSequence(seed).spawn(8)
        assert [hashing.step_seed(seed, p) for p in range(8)] == [
            as_int(c.generate_state(4)) for c in children
        ]


def test_legacy_seed_is_32_bit_words_numpy_random_seed_takes():
    steps = [hashing.step_seed(hashing.replicate_seed(42, r), p) for r in range(200) for p in range(3)]
    # two step seeds equal in their low 32 bits still seed numpy.random differently
    steps.append(steps[0] ^ (1 << 100))
    draws = set()
    for step in steps:
        words = hashing.legacy_seed(step)
        assert words == hashing.legacy_seed(step) and len(words) == 4
        assert all(type(word) is int and 0 <= word < 2**32 for word in words)
        assert as_int(words) == step
        np.random.seed(words)
        draws.add(tuple(np.random.random(2)))
    assert len(draws) == len(steps)
    with pytest.raises(ValueError):
        np.random.seed(steps[0])  # why the helper exists


def test_seeds_are_the_same_in_another_process():
    code = (
        "from repliflow.core import hashing\n"
        "s = [hashing.replicate_seed(b, r) for b in (0, 42, -3, 2**63) for r in (0, 1, 999_999)]\n"
        "print([s, [hashing.step_seed(x, p) for x in s for p in (0, 5)]])\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": salt},
        ).stdout
        for salt in ("1", "2")
    ]
    seeds = [hashing.replicate_seed(b, r) for b in (0, 42, -3, 2**63) for r in (0, 1, 999_999)]
    expected = [seeds, [hashing.step_seed(x, p) for x in seeds for p in (0, 5)]]
    assert runs[0] == runs[1] == f"{expected}\n"


# --- what steps see: the runner ------------------------------------------------------------

SEED_STEPS = textwrap.dedent(
    """
    import random

    import numpy as np


    def source(ctx, *, n=3):
        return {
            "seed": ctx.seed,
            "step_seed": ctx.step_seed,
            "rng": ctx.rng.random(n).tolist(),
            "random": random.random(),
            "numpy_random": float(np.random.random()),
        }


    def metrics(data, ctx):
        return {"first": data["rng"][0]}
    """
)


def _run(tmp_path, treatments):
    (tmp_path / "steps.py").write_text(SEED_STEPS)
    config = counting_config(
        replicates=6,
        seed=42,
        datasource={"function": "source", "params": {"n": 3}},
        pipeline=[{"function": "metrics"}],
        treatments=treatments,
        hypotheses=[],
    )
    plan = build_plan(validate_config(config), workdir=str(tmp_path))
    for segment in plan.segments.values():
        for block in plan.blocks(segment):
            _, failures = BlockRunner(plan.block_spec(block), str(tmp_path)).run()
            if failures:
                raise failures[0]
    return plan


def _source_output(plan, tmp_path, condition, replicate):
    key = plan.keys(condition, replicate)[0]
    sidecar = storage.read_sidecar(tmp_path / plan.store_dir, key)
    output = tmp_path / plan.store_dir / key[:2] / sidecar["output"]["file"]
    return sidecar, json.loads(output.read_text())


def test_every_condition_sees_the_replicates_seed_and_streams(tmp_path):
    """Common random numbers: replicate r has one seed in every condition (a
    treatment of the datasource runs its own datasource, with the same seed),
    and the sidecar records the 128-bit seeds the step saw."""
    plan = _run(tmp_path, {"more": {"datasource": {"n": 4}}})
    for replicate in range(6):
        seed = hashing.replicate_seed(42, replicate)
        step_seed = hashing.step_seed(seed, 0)
        base_sidecar, base = _source_output(plan, tmp_path, "baseline", replicate)
        more_sidecar, more = _source_output(plan, tmp_path, "more", replicate)
        assert base_sidecar["seed"] == more_sidecar["seed"] == base["seed"] == more["seed"] == seed
        assert base_sidecar["step_seed"] == base["step_seed"] == more["step_seed"] == step_seed
        assert more["rng"][:3] == base["rng"] == np.random.default_rng(step_seed).random(3).tolist()
        random.seed(step_seed)
        assert base["random"] == more["random"] == random.random()
        np.random.seed(hashing.legacy_seed(step_seed))
        assert base["numpy_random"] == more["numpy_random"] == float(np.random.random())
    assert len({_source_output(plan, tmp_path, "baseline", r)[1]["rng"][0] for r in range(6)}) == 6
