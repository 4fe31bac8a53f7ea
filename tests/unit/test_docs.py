"""The docs site builds clean, its generated references are complete, and the
README stays a short start that links into it."""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
README_LIMIT = 8192  # bytes: the README is the five-minute start, the docs hold the rest


def _load_hook(name: str):
    """A docs hook module, imported by path (docs/hooks is no package)."""
    spec = importlib.util.spec_from_file_location(f"docs_hook_{name}", REPO / "docs" / "hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built with `mkdocs build --strict` (the mkdocs.yml at the root)."""
    for module in ("mkdocs", "material"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (it is in the test extra: pip install -e '.[test]')")
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(target)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # material's banner about MkDocs 2, not a finding
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return target


def test_mkdocs_build_strict_succeeds(site):
    pages = {p.parent.name for p in site.glob("*/index.html")}
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    expected = {Path(next(iter(entry.values()))).stem for entry in nav} - {"index"}
    assert expected <= pages
    # both generated references replaced their markers
    configuration = (site / "configuration" / "index.html").read_text()
    cli = (site / "cli" / "index.html").read_text()
    assert "config-reference" not in configuration and "replicates_per_job" in configuration
    assert "cli-reference" not in cli and "usage: repliflow audit" in cli


def _schema_keys(node: dict, root: dict, path: str = "") -> list[tuple[str, dict]]:
    """Every key of the schema with its schema (``$ref`` followed), its path
    written as the reference writes it: ``.<i>`` for a list item, ``.<*>`` for
    a key the user chooses. Walked here rather than with the hook's own
    walker, so a key the hook skips fails the test."""
    while "$ref" in node:
        target = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    found = [(path, node)] if path else []
    for name, child in node.get("properties", {}).items():
        found += _schema_keys(child, root, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), dict):
        found += _schema_keys(node["items"], root, f"{path}.<i>")
    if isinstance(node.get("additionalProperties"), dict):
        found += _schema_keys(node["additionalProperties"], root, f"{path}.<*>")
    return found


def test_configuration_reference_names_every_schema_key():
    schema = yaml.safe_load(SCHEMA.read_text())
    rendered = _load_hook("config_reference").render(schema)
    keys = _schema_keys(schema, schema)
    paths = [path for path, _ in keys]
    assert {"experiment", "datasource.function", "pipeline.<i>.params", "batch.replicates_per_job"} <= set(
        paths
    )
    text = html.unescape(rendered).replace("\\*", "*").lower()
    for path, node in keys:
        # `<*>` is a placeholder the hook names (`<treatment>`, `<step.param>`, ...)
        pattern = re.escape(f"`{path}`").replace(re.escape("<*>"), "<[^>`]+>")
        assert re.search(pattern, rendered), f"the configuration reference does not name {path}"
        if "description" in node:  # and says what the schema says of it
            start = " ".join(node["description"].split()[:4]).lower()
            assert start in text, f"the configuration reference lacks the description of {path}"


def test_readme_is_short_and_keeps_the_commands():
    data = README.read_bytes()
    assert len(data) <= README_LIMIT, f"README.md is {len(data)} bytes, more than {README_LIMIT}"
    text = data.decode()
    assert "snakemake --cores" in text
    assert ".venv/bin/pip install -e . && .venv/bin/snakemake --cores 2" in text
    assert ".venv/bin/pip install -e '.[test,cluster]' && .venv/bin/python -m pytest" in text


def test_readme_relative_links_exist():
    text = README.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    relative = [link for link in links if not re.match(r"^[a-z][a-z0-9+.-]*:|^#", link)]
    assert relative, "the README links into docs/"
    for link in relative:
        target = REPO / link.split("#", 1)[0]
        assert target.exists(), f"README.md links to {link}, which does not exist"


def test_architecture_names_every_module():
    """docs/architecture.md walks the package room by room: a new module must
    get its line there."""
    page = (REPO / "docs" / "architecture.md").read_text()
    package = REPO / "src" / "repliflow"
    missing = [
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        if path.name != "__init__.py" and f"`{path.relative_to(package).as_posix()}`" not in page
    ]
    assert not missing, f"docs/architecture.md does not describe: {', '.join(missing)}"
