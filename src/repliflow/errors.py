"""Errors that end a run with one readable paragraph instead of a traceback."""

from __future__ import annotations


class RepliflowError(Exception):
    """Base class: its message is meant for the user, as is."""


class ConfigError(RepliflowError):
    """A mistake in the experiment config or the code it names.

    ``key`` is the dotted config key at fault; ``file`` is filled in by the
    caller that knows which config file was read.
    """

    def __init__(self, message: str, *, key: str | None = None, file: str | None = None):
        super().__init__(message)
        self.message = message
        self.key = key
        self.file = file

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(f"config file {self.file}")
        if self.key:
            where.append(f"key '{self.key}'")
        prefix = (
            f"repliflow: bad experiment config ({', '.join(where)}): "
            if where
            else ("repliflow: bad experiment config: ")
        )
        return prefix + self.message


class StepError(RepliflowError):
    """A step function raised, or returned something that cannot be stored."""

    def __init__(self, message: str, *, condition: str, replicate: int, step: str):
        super().__init__(
            f"repliflow: step '{step}' failed for condition '{condition}', replicate {replicate}: {message}"
        )
        self.condition = condition
        self.replicate = replicate
        self.step = step


class IntegrityError(RepliflowError):
    """A stored file does not match the checksum its sidecar recorded."""


class LayoutError(RepliflowError):
    """A file under results/ is missing, malformed or names an unsafe path."""


class UnsafePathError(LayoutError):
    """A path is a symbolic link, not a regular file, or leaves the results folder."""


class BadRecord(LayoutError):
    """A record (sidecar, manifest, provenance.json, a table) is malformed.

    ``path`` is the file and ``kind`` what it is meant to be, so commands can
    report it as a bad file rather than fail with a traceback.
    """

    def __init__(self, path: str, problem: str, *, kind: str = "record"):
        super().__init__(f"repliflow: {path} ({kind}) {problem}")
        self.path = path
        self.problem = problem
        self.kind = kind


class UntrustedError(IntegrityError):
    """A pickle this machine did not sign: it is never unpickled (repliflow.store.trust)."""


class StoreMismatch(IntegrityError):
    """A stored output does not have the sha256 a record lists for it.

    ``record_wrong`` is True when the file still matches its own sidecar: the
    record that listed it (a block manifest) was edited, not the file.
    """

    def __init__(self, message: str, *, key: str, path: str, record_wrong: bool):
        super().__init__(message)
        self.key = key
        self.path = path
        self.record_wrong = record_wrong
