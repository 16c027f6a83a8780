"""The one error type genimg lets escape, where it points, and the words of its messages.

Every message about a value a writer typed is made here, so they all read alike:
``'steps' must be between 1 and 500, got 0`` and ``unknown image key 'seeed' (did you
mean 'seed'?)``.
"""

from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class GenimgError(Exception):
    """A user-facing error. ``str()`` gives one line: ``file:line: message``."""

    def __init__(self, message: str, file: str | Path | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled whole (a Ray worker's error reaches the build with its file and line)."""
        return type(self), (self.message, self.file, self.line)

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        return one_line(f"{where}{self.message}")


class StaleState(Exception):
    """Build state turned out missing or not what it claimed, midway through a build that
    relied on it (``patch``): that build gives way to a full one. Never the user's
    mistake, so never shown."""


class ErrorList(GenimgError):
    """Several independent errors found in one pass, reported together."""

    def __init__(self, errors: list[GenimgError]):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.errors,)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


@dataclass(frozen=True)
class Location:
    """Where something was written: a file (as shown to the writer) and a line."""

    file: str
    line: int
    #: Which cell of a comparison grid (its index): the pictures of one grid share a line.
    cell: int | None = None

    def error(self, message: str) -> GenimgError:
        return GenimgError(message, self.file, self.line)


#: What no text genimg reads or writes may hold: C0 controls but tab and newline, DEL, C1
#: controls (terminal escapes), lone surrogates (not text: UTF-8 cannot encode them) and
#: the non-characters XML forbids. Feeds, pages and terminals all choke on them.
NOT_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_ESCAPED = re.compile("[\n\r\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def text_problem(text: str) -> str | None:
    """What makes ``text`` unusable (``a control character (\\x01)``), or None."""
    found = NOT_TEXT.search(text)
    if found is None:
        return None
    char = found.group()
    what = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
    return f"{what} ({escaped(char)})"


def escaped(char: str) -> str:
    """``\\n``, ``\\x01``, ``\\ud800``: a character as Python would write it."""
    return repr(char)[1:-1] if char not in "'\"" else char


def one_line(text: str) -> str:
    """``text`` with newlines, control characters and surrogates written as escapes, so a
    message stays one printable line whatever file name or value it quotes."""
    return _ESCAPED.sub(lambda m: escaped(m.group()), text)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'seed'?)`` when a choice is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _ShortRepr(reprlib.Repr):
    """``reprlib`` that also cuts short subclasses (``LineDict``, ``LineList``): plain
    ``reprlib`` falls back to the full ``repr`` for them."""

    def repr1(self, x: Any, level: int) -> str:
        for base in (dict, list, tuple, set, frozenset, str):
            if isinstance(x, base) and type(x) is not base:
                return getattr(self, f"repr_{base.__name__}")(x, level)
        return super().repr1(x, level)


_REPR = _ShortRepr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = _REPR.maxdict = _REPR.maxset = _REPR.maxtuple = 4
_REPR.maxlevel = 2


def short_repr(value: Any) -> str:
    """``repr`` cut short: a YAML alias bomb or a huge value never floods a message."""
    text = _REPR.repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               dict: "a mapping", list: "a list"}


def type_name(types: tuple[type, ...]) -> str:
    """``(int, float)`` -> ``a number``; ``(str,)`` -> ``a string``."""
    if float in types:
        return "a number"
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types if t is not type(None))


def has_type(value: Any, types: tuple[type, ...]) -> bool:
    """``isinstance``, except that YAML's true/false never counts as a number."""
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def require_type(key: str, value: Any, types: tuple[type, ...], where: Location) -> None:
    """``value`` must be one of ``types``: else ``'key' must be a string, got 3``."""
    if not has_type(value, types):
        raise where.error(f"{key!r} must be {type_name(types)}, got {short_repr(value)}")
