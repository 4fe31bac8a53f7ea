"""The per-user key that signs pickles (repliflow.store.trust): made once, private, and
the same for processes that race to make it. Hostile results folders, which need a real
run, are in tests/workflow/test_trust.py."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_the_key_is_made_once_private_and_shared_by_racing_processes(tmp_path):
    key_file = tmp_path / "cfg" / "trust.key"
    code = (
        "import os, sys; sys.path.insert(0, sys.argv[1]);"
        "os.environ['REPLIFLOW_TRUST_KEY_FILE'] = sys.argv[2];"
        "from repliflow.store.trust import signature; print(signature('a' * 20, 'b' * 64))"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(REPO / "src"), str(key_file)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    signatures = {run.communicate()[0] for run in runs}
    assert len(signatures) == 1
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert not [p for p in key_file.parent.iterdir() if p.name != "trust.key"]  # no temp files left
