"""The package's public API: every name in ``repliflow.__all__`` resolves, and
``import repliflow`` (done by every job) loads neither scipy nor Snakemake."""

from __future__ import annotations

import subprocess
import sys

import repliflow


def test_every_public_name_resolves():
    assert set(repliflow.__all__) == {"__version__", *repliflow._WHERE}
    for name in repliflow.__all__:
        assert getattr(repliflow, name) is not None, name
    assert repliflow.ResultsLayout.of("exp").store == "results/exp/store"
    assert issubclass(repliflow.RepliflowError, Exception)


def test_importing_the_package_is_light():
    heavy = "('scipy', 'snakemake', 'numpy', 'pandas')"
    code = f"import sys, repliflow; print(sorted(m for m in {heavy} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
