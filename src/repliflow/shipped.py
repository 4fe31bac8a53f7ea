"""The files that ship with the package: the workflow and the example experiments.

A plain ``pip install`` puts them inside the package (``repliflow/workflow``,
``repliflow/examples``; pyproject.toml maps the checkout's ``workflow/`` and
``examples/`` there); a checkout or an editable install reads them where they
are. Nothing here looks at the working directory.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parents[1]  # src/repliflow -> the repository, when this is one
DEFAULT_EXAMPLE = "titanic"  # config/config.yaml of a checkout runs it


def _shipped(name: str) -> Path:
    installed = PACKAGE / name
    return installed if installed.is_dir() else CHECKOUT / name


def workflow_dir() -> Path:
    return _shipped("workflow")


def snakefile() -> Path:
    return workflow_dir() / "Snakefile"


def schema(name: str) -> Path:
    """``workflow/schemas/<name>.schema.yaml``."""
    return workflow_dir() / "schemas" / f"{name}.schema.yaml"


def examples_dir() -> Path:
    return _shipped("examples")


def example_names() -> list[str]:
    return sorted(p.name for p in examples_dir().iterdir() if (p / "config.yaml").is_file())
