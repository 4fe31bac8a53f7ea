"""What the code hash covers, and signature reading without importing."""

from __future__ import annotations

from repliflow.core.stepcode import function_info

BASE = """
import math

CONSTANT = 1


def helper(x):
    return x + CONSTANT


def step(data, ctx, *, factor=1.0):
    # a comment
    return [helper(x) * factor for x in data]
"""


def _hash(tmp_path, source, name="step"):
    path = tmp_path / "steps.py"
    path.write_text(source)
    return function_info(path, name, key="k").code_hash


def test_formatting_and_comments_do_not_change_the_hash(tmp_path):
    base = _hash(tmp_path, BASE)
    reformatted = BASE.replace("    # a comment\n", "").replace("x) * factor", "x)*factor")
    assert _hash(tmp_path, reformatted) == base


def test_body_signature_and_defaults_change_the_hash(tmp_path):
    base = _hash(tmp_path, BASE)
    assert _hash(tmp_path, BASE.replace("* factor", "/ factor")) != base
    assert _hash(tmp_path, BASE.replace("factor=1.0", "factor=2.0")) != base


def test_helpers_and_module_constants_are_not_covered(tmp_path):
    """Documented limit: only the function's own def is hashed."""
    base = _hash(tmp_path, BASE)
    assert _hash(tmp_path, BASE.replace("CONSTANT = 1", "CONSTANT = 2")) == base
    assert _hash(tmp_path, BASE.replace("x + CONSTANT", "x - CONSTANT")) == base


def test_signature_is_read_without_importing(tmp_path):
    path = tmp_path / "steps.py"
    path.write_text(
        "raise SystemExit('never imported')\n\nasync def s(data, ctx, *, a, b=2, **extra):\n    pass\n"
    )
    info = function_info(path, "s", key="k")
    assert info.signature.positional == ("data", "ctx")
    assert info.signature.required_keyword == ("a",)
    assert info.signature.varkw and info.signature.is_async
