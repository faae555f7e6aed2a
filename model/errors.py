"""Errors that say what was wrong and what to do.

Every error raised for bad input derives from :class:`InputError`; the CLI prints its
message (no traceback) and exits with status 2.
"""

from __future__ import annotations

import difflib
from pathlib import Path


class InputError(Exception):
    """Bad input: the message names what was wrong and what to do about it."""

    def __init__(self, what: str, todo: str | None = None, path: str | Path | None = None):
        self.what = what
        self.todo = todo
        self.path = Path(path) if path is not None else None
        msg = f"{self.path}: {what}" if path is not None else what
        if todo:
            msg += f" -- {todo}"
        super().__init__(msg)


class UnreadableFileError(InputError):
    """A file that cannot be opened or decoded (truncated, corrupt, wrong format)."""


class WrongProductError(InputError):
    """A readable file of another product than the one asked for."""


class MissingVariableError(InputError):
    """A file that lacks a variable the reader needs."""


class CoverageError(InputError):
    """Data that does not cover the Tibetan Plateau or the period asked for."""


class EmptyAfterPolicyError(InputError):
    """A file or series that the quality policy leaves with no valid value."""


class UnknownNameError(InputError):
    """An unknown registry name; the message lists the nearest valid names."""


def nearest_names(name: str, valid: list[str], n: int = 3) -> list[str]:
    close = difflib.get_close_matches(name, valid, n=n, cutoff=0.3)
    return close or sorted(valid)[:n]


def unknown_name(kind: str, name: str, valid: list[str]) -> UnknownNameError:
    near = ", ".join(nearest_names(name, valid))
    return UnknownNameError(
        f"unknown {kind} {name!r}",
        f"did you mean: {near}? (valid: {', '.join(sorted(valid))})",
    )
