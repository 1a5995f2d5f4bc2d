"""User-facing errors.

A `CurateError` is a problem with the user's input, not a bug: the CLI prints its
message (and its hint) without a traceback and exits 1, or 2 for `BadUsage`.
"""

from __future__ import annotations


class CurateError(Exception):
    """An error the user can fix; `hint` says how."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class BadUsage(CurateError):
    """Options or arguments that cannot work together."""

    exit_code = 2


class BadInput(CurateError):
    """A data file that cannot be read or mapped."""


class NotFound(CurateError):
    """A dataset, version or path that does not exist."""


class WorkspaceBusy(CurateError):
    """Another process holds the workspace for longer than we were willing to wait."""


class ModelLoadError(CurateError):
    """A model id or folder that transformers cannot load."""


class DiskFull(CurateError):
    """The workspace's device ran out of space while a command wrote to it; nothing half-written is kept."""
