"""Safe YAML that remembers line numbers, so errors can name the line."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import GenimgError


class LineDict(dict):
    """A mapping from YAML that knows the file line of itself and of each key."""

    line: int = 0
    key_lines: dict[Any, int]


class LineList(list):
    """A sequence from YAML that knows the file line of itself and of each item."""

    line: int = 0
    item_lines: list[int]


class _Lines(yaml.constructor.SafeConstructor):
    """Safe construction (no objects) that records line numbers."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # SafeConstructor lets plain Python errors escape for some bad scalars
        # (``2022-02-30``, ``!!int abc``, ``!!bool maybe``): give them the node's line.
        try:
            return super().construct_object(node, deep=deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception as exc:  # any of them means "bad value here"
            shown = f" {_cut(repr(node.value))}" if isinstance(node, yaml.ScalarNode) else ""
            why = f"not valid for {node.tag}" if isinstance(exc, LookupError) else str(exc)
            raise yaml.constructor.ConstructorError(
                None, None, f"invalid value{shown}: {_cut(why)}", node.start_mark
            ) from None


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _construct_mapping(loader: _Lines, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "found an unhashable key", key_node.start_mark
            ) from None
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {_cut(repr(key))}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line
    return result


def _construct_sequence(loader: _Lines, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line
    result.item_lines = [child.start_mark.line for child in node.value]
    return result


# (on the mixin, so both loaders below have them; the stubs allow only whole loaders)
_Lines.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,  # type: ignore[type-var]
                       _construct_mapping)
_Lines.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,  # type: ignore[type-var]
                       _construct_sequence)


class _LineLoader(_Lines, yaml.SafeLoader):
    """PyYAML's own parser, in Python: its error messages are the ones genimg words
    its errors for (``_describe``)."""


#: libyaml's parser (where PyYAML has it): the same nodes and marks, four times as fast.
#: Whatever it rejects is parsed again by ``_LineLoader``, so errors read as they always did.
_FastLineLoader: type[yaml.CSafeLoader] | None = None
if hasattr(yaml, "CSafeLoader"):
    class _FastLineLoader(_Lines, yaml.CSafeLoader):  # type: ignore[no-redef]
        pass

#: Where libyaml and PyYAML's Python parser part ways (found by ``tests/test_yamlio.py``):
#: tabs, tags (``!``), block scalars (``|``, ``>``), other line breaks, BOMs and control
#: characters. libyaml accepts some of these where Python rejects them, and reads a bare
#: ``!`` otherwise. Text holding one is parsed by Python alone.
_PARTING = re.compile("[\t!|>\r\ufeff\x85\u2028\u2029\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _describe(exc: yaml.MarkedYAMLError, first_line: int) -> tuple[str, int]:
    """One-line message and file line of a YAML error; where the problem was only noticed
    later (an unclosed quote or bracket), the line where it began is named too."""
    problem, context = exc.problem, exc.context
    mark = exc.problem_mark or exc.context_mark
    line = first_line + (mark.line if mark else 0)
    message = _cut(_one_line(problem or context or "invalid YAML"), 120)
    if problem and context and exc.context_mark is not None:
        began = first_line + exc.context_mark.line
        if began != line:
            message += f" ({_cut(_one_line(context), 80)} that begins on line {began})"
            unclosed = ("end of stream" in problem or "<stream end>" in problem
                        or "flow" in context or "quoted" in context)
            if unclosed:  # a bracket or quote left open: where it began is the line to fix
                line = began
    return f"invalid YAML: {message}", line


def key_lines_of(data: Any) -> dict[Any, int]:
    """The file line of each key of a mapping from ``load_yaml`` ({} for anything else)."""
    return dict(data.key_lines) if isinstance(data, LineDict) else {}


def load_yaml(text: str, file: str, first_line: int) -> tuple[Any, dict[Any, int]]:
    """Parse ``text`` (which starts at ``first_line`` of ``file``) safely.

    Returns the data and the file line of each top-level key; nested mappings are
    ``LineDict`` and nested sequences ``LineList``, whose lines are made absolute too.
    Every problem is a one-line ``GenimgError`` naming the file line.
    """
    try:
        data = _load(text)
    except yaml.MarkedYAMLError as exc:
        message, line = _describe(exc, first_line)
        raise GenimgError(message, file, line) from None
    except yaml.reader.ReaderError as exc:
        line = first_line + text.count("\n", 0, max(0, exc.position))
        raise GenimgError(
            f"invalid YAML: character {_cut(repr(exc.character))} is not allowed", file, line
        ) from None
    except yaml.YAMLError as exc:
        raise GenimgError(f"invalid YAML: {_cut(_one_line(str(exc)), 120)}", file,
                          first_line) from None
    except RecursionError:
        raise GenimgError("invalid YAML: nested too deeply", file, first_line) from None
    _shift(data, first_line, set())
    lines = key_lines_of(data)
    return data, lines


def _load(text: str) -> Any:
    """``text`` parsed by libyaml if it can, else by PyYAML in Python, with the same
    result either way (both safe: ``SafeConstructor``, no object is made from a tag)."""
    if _FastLineLoader is not None and not _PARTING.search(text):
        with contextlib.suppress(yaml.YAMLError, RecursionError):
            return yaml.load(text, Loader=_FastLineLoader)
    return yaml.load(text, Loader=_LineLoader)


def _shift(data: Any, first_line: int, seen: set[int]) -> None:
    """Turn 0-based lines within the YAML text into 1-based file lines.

    Aliases make one object appear several times: each is shifted exactly once.
    """
    if not isinstance(data, LineDict | LineList) or id(data) in seen:
        return
    seen.add(id(data))
    data.line += first_line
    if isinstance(data, LineDict):
        data.key_lines = {k: v + first_line for k, v in data.key_lines.items()}
        children = list(data.values())
    else:
        data.item_lines = [v + first_line for v in data.item_lines]
        children = list(data)
    for value in children:
        _shift(value, first_line, seen)


def read_text_file(path: Path, file: str) -> str:
    """A UTF-8 text file; errors name the file (and the line of a byte that is not UTF-8)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise GenimgError(f"cannot read: {exc.strerror or exc}", file) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise GenimgError(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded "
            "(save the file as UTF-8)", file, line) from None
