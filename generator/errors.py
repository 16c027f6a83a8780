"""The one error type genimg lets escape: a message that names file and line."""

from __future__ import annotations

from pathlib import Path


class GenimgError(Exception):
    """A user-facing error. ``str()`` gives one line: ``file:line: message``."""

    def __init__(self, message: str, file: str | Path | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        return f"{where}{self.message}"


class ErrorList(GenimgError):
    """Several independent errors found in one pass, reported together."""

    def __init__(self, errors: list[GenimgError]):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)
