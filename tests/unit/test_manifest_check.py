"""check_manifest: every malformed block manifest is refused with the field
that is wrong, and its fast path for plain replicates decides exactly as the
full checks do."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repliflow.core import records
from repliflow.core.records import MANIFEST_SCHEMA, check_manifest
from repliflow.errors import BadRecord

KEY = "0123456789abcdef0123"
SHA = "ab" * 32


def manifest(replicates: int = 3, steps: int = 2) -> dict:
    return {
        "schema": MANIFEST_SCHEMA,
        "experiment": "exp",
        "segment": "seg",
        "condition": "baseline",
        "lo": 4,
        "hi": 4 + replicates,
        "replicates": [
            {
                "replicate": 4 + r,
                "seed": 1000 + r,
                "steps": [
                    {
                        "step": f"s{p}",
                        "position": p,
                        "key": KEY,
                        "file": f"{KEY}.json",
                        "format": "json",
                        "sha256": SHA,
                        "bytes": 10,
                        "sidecar_bytes": 100,
                    }
                    for p in range(steps)
                ],
            }
            for r in range(replicates)
        ],
    }


def test_a_well_formed_manifest_passes():
    value = manifest()
    assert check_manifest(value, "m.json") is value


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("replicates", 1, "replicate"), 9, "replicates[1].replicate is 9, expected 5"),
        (("replicates", 1, "replicate"), True, "field 'replicates[1].replicate' is bool True"),
        (("replicates", 1, "seed"), -1, "field 'replicates[1].seed' is int -1"),
        (("replicates", 1, "seed"), "7", "field 'replicates[1].seed' is str '7'"),
        (("replicates", 1, "steps"), {}, "field 'replicates[1].steps' is dict {}"),
        (("replicates", 1, "steps", 0), "x", "replicates[1].steps[0] is str 'x', expected an object"),
        (("replicates", 2, "steps", 1, "key"), "ABC", "field 'replicates[2].steps[1].key' is str 'ABC'"),
        (("replicates", 2, "steps", 1, "key"), None, "field 'replicates[2].steps[1].key' is NoneType"),
        (("replicates", 0, "steps", 0, "step"), 3, "field 'replicates[0].steps[0].step' is int 3"),
        (("replicates", 0, "steps", 0, "position"), -2, "field 'replicates[0].steps[0].position' is int"),
        (("replicates", 0, "steps", 0, "position"), False, "replicates[0].steps[0].position' is bool"),
        (("replicates", 0, "steps", 0, "sha256"), "ab", "field 'replicates[0].steps[0].sha256' is str"),
        (("replicates", 0, "steps", 0, "format"), "csv", "format 'csv' is not one of"),
        (("replicates", 0, "steps", 0, "file"), "../x.json", "names the file '../x.json'"),
        (("replicates", 0, "steps", 0, "file"), f"{KEY}.npy", "a json output of key"),
        (("replicates", 0, "failed"), {"step": "s0"}, "has no field 'replicates[0].failed.error'"),
    ],
)
def test_a_malformed_field_is_refused_by_name(path, value, message):
    broken = manifest()
    target = broken
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(BadRecord) as caught:
        check_manifest(broken, "m.json")
    assert message in str(caught.value) and "m.json" in str(caught.value)


def test_a_missing_field_is_refused_by_name():
    broken = manifest()
    del broken["replicates"][1]["steps"][0]["sha256"]
    with pytest.raises(BadRecord, match=r"has no field 'replicates\[1\]\.steps\[0\]\.sha256'"):
        check_manifest(broken, "m.json")


def test_a_failed_replicate_goes_through_the_full_checks_and_passes():
    value = manifest()
    failed = {"step": "s0", "error": "boom"}
    value["replicates"][1] = {"replicate": 5, "seed": 3, "failed": failed, "steps": []}
    assert check_manifest(value, "m.json") is value


def _outcome(value: dict, fast: bool) -> str:
    with pytest.MonkeyPatch.context() as patch:
        if not fast:
            patch.setattr(records, "_plain_replicate_ok", lambda replicate, number: False)
        try:
            check_manifest(copy.deepcopy(value), "m.json")
        except BadRecord as exc:
            return str(exc)
        return "ok"


ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 8),
    st.sampled_from(["", "x", KEY, KEY.upper(), SHA, f"{KEY}.json", f"{KEY}.npy", "json", "npy", "pickle"]),
    st.just([]),
    st.just({}),
)
FIELDS = ["step", "position", "key", "file", "format", "sha256", "replicate", "seed", "steps", "failed"]


@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 1), st.sampled_from(FIELDS), ODD_VALUES, st.booleans()),
        max_size=3,
    )
)
def test_the_fast_path_decides_as_the_full_checks_do(edits):
    """A replicate the fast path accepts, the full checks accept too, so a
    manifest passes or fails (with the same message) either way."""
    value = manifest()
    for replicate, position, field, odd, delete in edits:
        record = value["replicates"][replicate]
        if field in ("replicate", "seed", "steps", "failed"):
            target = record
        else:
            steps = record.get("steps")
            target = steps[position] if isinstance(steps, list) and position < len(steps) else None
        if not isinstance(target, dict):
            continue  # an earlier edit removed what this one would edit
        if delete:
            target.pop(field, None)
        else:
            target[field] = odd
    assert _outcome(value, True) == _outcome(value, False)
