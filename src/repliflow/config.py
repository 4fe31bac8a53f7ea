"""Validate an experiment config against the JSON Schema, with readable errors."""

from __future__ import annotations

import copy
from pathlib import Path

from repliflow.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def validate_config(config: dict, *, file: str | None = None, schema: Path | None = None) -> dict:
    """Validate ``config`` with ``snakemake.utils.validate`` and fill defaults.

    Returns a validated deep copy; raises ConfigError naming the key at fault.
    """
    from jsonschema import ValidationError
    from snakemake.utils import validate

    config = copy.deepcopy(dict(config))
    try:
        validate(config, str(schema or SCHEMA_PATH), set_default=True)
    except Exception as exc:  # snakemake wraps the jsonschema error in a WorkflowError
        error = next((a for a in exc.args if isinstance(a, ValidationError)), None)
        if error is None and isinstance(exc, ValidationError):
            error = exc
        if error is None and isinstance(exc.__context__, ValidationError):
            error = exc.__context__  # snakemake 9 keeps only the text in args
        if error is None:
            raise ConfigError(str(exc), file=file) from None
        key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        expected = error.schema.get("description", "") if isinstance(error.schema, dict) else ""
        hint = f" Expected: {expected}" if expected else ""
        raise ConfigError(f"{error.message}.{hint}", key=key, file=file) from None
    return config
