"""mkdocs hook: the configuration reference, rendered from the config schema.

``docs/configuration.md`` holds the marker ``<!-- config-reference -->``. On
every build the marker is replaced by one entry per config key, nested keys
included, read from ``workflow/schemas/config.schema.yaml``: its type,
default, allowed values, limits, whether it is required, and its
``description``. The schema is what validates every config, so a reference
made from it cannot drift from what the workflow accepts.

Keys are written as the dotted paths that config errors name
(``pipeline.0.params``, ``treatments.scale_ages.normalize_age``): a list
position is ``<i>`` and a key you choose is a ``<placeholder>``.

The module needs only PyYAML, so ``tests/unit/test_docs.py`` can import it
and check the rendering without building the site.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
PAGE = "configuration.md"
MARKER = "<!-- config-reference -->"

# What the keys of a mapping are called in a path; a mapping not named here gets <name>.
MAP_KEYS = {
    "treatments": "<treatment>",
    "treatments.<treatment>": "<step>",
    "grid": "<step.param>",
}
ITEM = "<i>"  # a list position, as in the error key `pipeline.0.function`

TYPE_NAMES = {
    "object": "mapping",
    "array": "list",
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
}


@dataclass(frozen=True)
class Entry:
    path: str
    node: dict  # the schema of this key, $ref resolved
    required: bool | None  # None for a list item or a mapping's value: present whenever its parent is


def load_schema(path: Path = SCHEMA) -> dict:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def resolve(node: dict, root: dict) -> dict:
    """``node`` with its ``$ref`` followed; keys written beside the ``$ref``
    (a ``description``, most often) win over the referenced ones."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if ref in seen or not ref.startswith("#/"):
            raise ValueError(f"cannot follow $ref {ref!r} in {SCHEMA}")
        seen.add(ref)
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def entries(root: dict) -> list[Entry]:
    """Every key of the schema, depth first in the schema's order."""
    found: list[Entry] = []
    _walk(root, root, "", found)
    return found


def _walk(node: dict, root: dict, path: str, found: list[Entry]) -> None:
    node = resolve(node, root)
    required = set(node.get("required", []))
    for name, child in (node.get("properties") or {}).items():
        child_path = f"{path}.{name}" if path else name
        found.append(Entry(child_path, resolve(child, root), name in required))
        _walk(child, root, child_path, found)
    items = node.get("items")
    if isinstance(items, dict):
        item_path = f"{path}.{ITEM}"
        found.append(Entry(item_path, resolve(items, root), None))
        _walk(items, root, item_path, found)
    values = node.get("additionalProperties")
    if isinstance(values, dict):
        value_path = f"{path}.{MAP_KEYS.get(path, '<name>')}"
        found.append(Entry(value_path, resolve(values, root), None))
        _walk(values, root, value_path, found)


def anchor(path: str) -> str:
    """The heading id of a key: ``pipeline.<i>.params`` -> ``pipeline-i-params``."""
    return re.sub(r"[^a-z0-9_]+", "-", path.lower()).strip("-")


# --- rendering ----------------------------------------------------------------------------------


def _text(text: str) -> str:
    """Schema prose as Markdown: outside `code`, a `<` would open an HTML tag
    (`results/<experiment>/` would lose a word) and a `*` start emphasis."""
    parts = " ".join(text.split()).split("`")
    for index in range(0, len(parts), 2):  # the even parts lie outside backticks
        parts[index] = parts[index].replace("<", "&lt;").replace(">", "&gt;").replace("*", r"\*")
    return "`".join(parts)


def _sentence(text: str) -> str:
    """A schema description as a sentence: a capital first letter and a full stop."""
    text = _text(text)
    if text[:1].islower():
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _value(value) -> str:
    return f"`{value if isinstance(value, str) else json.dumps(value)}`"


def _limits(node: dict) -> list[str]:
    limits = []
    if "minimum" in node:
        limits.append(f"at least {node['minimum']}")
    if "exclusiveMinimum" in node:
        limits.append(f"greater than {node['exclusiveMinimum']}")
    if "maximum" in node:
        limits.append(f"at most {node['maximum']}")
    if "exclusiveMaximum" in node:
        limits.append(f"less than {node['exclusiveMaximum']}")
    if node.get("minLength") == 1:
        limits.append("not empty")
    elif "minLength" in node:
        limits.append(f"at least {node['minLength']} characters")
    if "maxLength" in node:
        limits.append(f"at most {node['maxLength']} characters")
    if node.get("minItems") == 1:
        limits.append("at least one item")
    elif "minItems" in node:
        limits.append(f"at least {node['minItems']} items")
    if "pattern" in node:
        limits.append(f"matches `{node['pattern']}`")
    if isinstance(node.get("not"), dict) and "pattern" in node["not"]:
        limits.append(f"does not match `{node['not']['pattern']}`")
    return limits


def type_of(node: dict, root: dict) -> str:
    """A short type: ``string``, ``integer (at least 1) or `auto` ``, ..."""
    if "const" in node:
        return _value(node["const"])
    if "oneOf" in node or "anyOf" in node:
        branches = [resolve(b, root) for b in node.get("oneOf", node.get("anyOf"))]
        shown = []
        for branch in branches:
            text = type_of(branch, root)
            limits = _limits(branch) if "const" not in branch else []
            shown.append(f"{text} ({', '.join(limits)})" if limits else text)
        return " or ".join(shown)
    kind = node.get("type")
    if kind is None and "enum" in node:
        kinds = {type(v).__name__ for v in node["enum"]}
        kind = "string" if kinds == {"str"} else None
    if isinstance(kind, list):
        return " or ".join(TYPE_NAMES.get(k, k) for k in kind)
    return TYPE_NAMES.get(kind, kind) if kind else "any value"


def _facts(entry: Entry, root: dict) -> list[str]:
    node = entry.node
    facts = [f"**Type:** {type_of(node, root)}"]
    if entry.required is not None:
        facts.append(f"**Required:** {'yes' if entry.required else 'no'}")
    if "default" in node:
        facts.append(f"**Default:** {_value(node['default'])}")
    if "enum" in node:
        facts.append(f"**Allowed values:** {', '.join(_value(v) for v in node['enum'])}")
    limits = _limits(node) if "oneOf" not in node and "anyOf" not in node else []
    if limits:
        facts.append(f"**Limits:** {'; '.join(limits)}")
    if node.get("required"):
        facts.append(f"**Required keys:** {', '.join(_value(k) for k in node['required'])}")
    names = node.get("propertyNames")
    if isinstance(names, dict):
        names = resolve(names, root)
        about = [_text(names["description"])] if names.get("description") else []
        about += _limits(names)
        facts.append(f"**Keys:** {'; '.join(about)}")
    if node.get("additionalProperties") is False:
        facts.append("**Other keys:** not allowed")
    return facts


def _table(found: list[Entry], root: dict) -> list[str]:
    lines = ["| key | type | required | default |", "|---|---|---|---|"]
    for entry in found:
        required = "" if entry.required is None else ("yes" if entry.required else "no")
        default = _value(entry.node["default"]) if "default" in entry.node else ""
        kind = type_of(entry.node, root).replace("|", r"\|")
        lines.append(f"| [`{entry.path}`](#{anchor(entry.path)}) | {kind} | {required} | {default} |")
    return lines


def render(root: dict) -> str:
    """The reference as Markdown: a summary table, then one entry per key."""
    found = entries(root)
    top = root.get("required", [])
    lines = [
        f"A config file is a mapping. {_sentence(root.get('description', ''))}",
        "",
        f"Required at the top level: {', '.join(_value(k) for k in top)}."
        + (" No other top-level keys are allowed." if root.get("additionalProperties") is False else ""),
        "",
        *_table(found, root),
        "",
    ]
    for entry in found:
        depth = re.sub(r"<[^>]*>", "x", entry.path).count(".")  # a placeholder may hold a dot
        level = "#" * min(6, 3 + depth)
        lines += [f"{level} `{entry.path}` {{ #{anchor(entry.path)} }}", ""]
        lines += [f"- {fact}" for fact in _facts(entry, root)]
        lines.append("")
        if entry.node.get("description"):
            lines += [_sentence(entry.node["description"]), ""]
    return "\n".join(lines)


# --- mkdocs hook events -------------------------------------------------------------------------


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if markdown.count(MARKER) != 1:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"docs/{PAGE} must hold the marker {MARKER} exactly once")
    return markdown.replace(MARKER, render(load_schema()))


def on_serve(server, config, builder, **kwargs):
    # `mkdocs serve` rebuilds when the schema changes, not only when docs/ does
    server.watch(str(SCHEMA))
    return server
