"""Formats by type, atomic writes, and the sha256 gate on loading."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import store_value

from repliflow.errors import IntegrityError
from repliflow.store import storage


def _store(tmp_path, key, value):
    return store_value(tmp_path, key, value)


@pytest.mark.parametrize(
    ("value", "fmt"),
    [
        ({"a": 1.5, "b": [1, 2]}, "json"),
        ([1, "x", None], "json"),
        (3.0, "json"),
        ({"n": np.float64(2.5), "k": np.int64(3)}, "json"),
        (np.arange(6).reshape(2, 3), "npy"),
        ((1, 2), "pickle"),
        ({1: "non-string key"}, "pickle"),
        ({"s": {1, 2}}, "pickle"),
    ],
)
def test_format_is_chosen_by_type_and_round_trips(tmp_path, value, fmt):
    encoded, _ = _store(tmp_path, "ab" + "0" * 18, value)
    assert encoded.format == fmt
    loaded, _ = storage.load(tmp_path, "ab" + "0" * 18)
    if fmt == "npy":
        assert (loaded == value).all() and loaded.dtype == value.dtype
    elif fmt == "json" and isinstance(value, dict) and "k" in value:
        assert loaded == {"n": 2.5, "k": 3}
    else:
        assert loaded == value


def test_a_tampered_pickle_is_never_unpickled(tmp_path):
    _, path = _store(tmp_path, "cd" + "1" * 18, (1, 2))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match its record"):
        storage.load(tmp_path, "cd" + "1" * 18)


def test_atomic_write_leaves_no_temp_file(tmp_path):
    target = tmp_path / "x" / "out.json"
    storage.atomic_write(target, b"{}")
    storage.atomic_write(target, b"[]")
    assert target.read_bytes() == b"[]"
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]
