"""provenance.json's text: the same JSON value, one line per output."""

from __future__ import annotations

import json

import pytest

from repliflow.engine.aggregate import provenance_json

OUTPUT = {"key": "ab" * 10, "path": "store/ab/x.json", "sha256": "f" * 64, "conditions": ["baseline", "b"]}


@pytest.mark.parametrize(
    "provenance",
    [
        {"schema": "s", "config": {"a": [1, 2.5, None]}, "outputs": [OUTPUT, {**OUTPUT, "replicate": 1}]},
        {"schema": "s", "outputs": [], "results": {"metrics.csv": "0" * 64}},
        {"outputs": [OUTPUT]},
        {"schema": "s"},
        {},
    ],
)
def test_provenance_json_is_the_same_json_value(provenance):
    assert json.loads(provenance_json(provenance)) == provenance


def test_each_output_is_one_line():
    text = provenance_json({"schema": "s", "outputs": [OUTPUT, {**OUTPUT, "replicate": 1}]})
    lines = [line for line in text.splitlines() if '"key"' in line]
    assert len(lines) == 2 and all(json.loads(line.strip().rstrip(",")) for line in lines)


def test_nan_is_refused():
    with pytest.raises(ValueError):
        provenance_json({"outputs": [{"value": float("nan")}]})


def test_write_provenance_streams_the_same_text(tmp_path):
    from repliflow.engine.aggregate import write_provenance

    for outputs in ([], [OUTPUT, {**OUTPUT, "replicate": 1}]):
        provenance = {"schema": "s", "seeds": {"base": 1}, "outputs": outputs}
        write_provenance(tmp_path / "p.json", provenance, iter(outputs))
        assert (tmp_path / "p.json").read_text() == provenance_json(provenance)
