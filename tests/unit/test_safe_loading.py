"""Safe loading: no pickle is unpickled unless its sha256 matches its sidecar,
and audit, the view and gc never unpickle at all."""

from __future__ import annotations

import json
import os
import pickle

import pytest
from conftest import store_value

from repliflow.errors import IntegrityError
from repliflow.store import storage
from repliflow.store.audit import audit

KEY = "ab" + "3" * 18


class _Payload:
    """Unpickling this creates a directory: proof that a pickle was loaded."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _stored_pickle(store):
    encoded, path = store_value(store, KEY, {"a set": {1, 2}})
    assert encoded.format == "pickle"
    return path


def test_a_replaced_pickle_is_refused_before_it_is_unpickled(tmp_path):
    path = _stored_pickle(tmp_path / "store")
    marker = tmp_path / "pwned"
    path.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(IntegrityError, match="does not match its record"):
        storage.load(tmp_path / "store", KEY)
    assert not marker.exists()


def test_the_genuine_pickle_loads(tmp_path):
    _stored_pickle(tmp_path / "store")
    value, _ = storage.load(tmp_path / "store", KEY)
    assert value == {"a set": {1, 2}}


def test_audit_reads_bytes_only(tmp_path):
    """Even a pickle whose records were rewritten to match is never unpickled by audit."""
    results = tmp_path / "results" / "exp"
    path = _stored_pickle(results / "store")
    marker = tmp_path / "pwned"
    data = pickle.dumps(_Payload(str(marker)))
    path.write_bytes(data)
    sha = storage.sha256_hex(data)
    provenance = {
        "schema": "repliflow.provenance/2",
        "code": {"source": "missing.py"},
        "outputs": [
            {
                "key": KEY,
                "path": f"store/ab/{KEY}.pkl",
                "sidecar": f"store/ab/{KEY}.meta.json",
                "sha256": sha,
                "position": 0,
                "seed": 1,
                "step": "datasource",
                "replicate": 0,
                "conditions": ["baseline"],
            }
        ],
    }
    (results / "provenance.json").write_text(json.dumps(provenance))
    result = audit(results, check_code=False)
    assert not result.ok  # the sidecar is not a real one
    assert not marker.exists()
