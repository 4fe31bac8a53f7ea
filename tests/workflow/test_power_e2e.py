"""`repliflow power` on the tables of a real run (the hostile and malformed
folders, written by hand, are in tests/unit/test_power_hostile.py)."""

from __future__ import annotations

import json

from conftest import commands, power


def test_a_real_run_reads_back_and_takes_the_users_config(finished, capsys):
    """One real run: its tables pass every check; its record names its config (not
    config/config.yaml), so the command gets it only from --configfile."""
    config = str(finished.root / "config.yaml")
    code, out, _ = power(capsys, str(finished.results), "--json")
    plan = json.loads(out)
    assert code == 0 and plan["rows"] and config not in out
    if plan["extend"]:
        assert plan["note"] and all("--configfile" not in c for c in commands(plan))
    code, out, _ = power(capsys, str(finished.results), "--json", "--configfile", config)
    plan = json.loads(out)
    assert code == 0 and not plan["note"]
    assert all(c[3:5] == ["--configfile", config] for c in commands(plan))
