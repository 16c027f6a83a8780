"""Safe YAML that remembers line numbers, so errors can name the line."""

from __future__ import annotations

from typing import Any

import yaml

from .errors import GenimgError


class LineDict(dict):
    """A mapping from YAML that knows the file line of itself and of each key."""

    line: int = 0
    key_lines: dict[Any, int]


class _LineLoader(yaml.SafeLoader):
    """``SafeLoader`` (no object construction) that records line numbers."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
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
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str, file: str, first_line: int) -> tuple[Any, dict[Any, int]]:
    """Parse ``text`` (which starts at ``first_line`` of ``file``) safely.

    Returns the data and the file line of each top-level key; nested mappings are
    ``LineDict`` whose lines are made absolute too.
    """
    try:
        data = yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass: safe
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = first_line + (mark.line if mark else 0)
        problem = exc.problem or exc.context or "invalid YAML"
        raise GenimgError(f"invalid YAML: {problem}", file, line) from None
    except yaml.YAMLError as exc:
        raise GenimgError(f"invalid YAML: {exc}", file, first_line) from None
    _shift(data, first_line)
    lines = dict(data.key_lines) if isinstance(data, LineDict) else {}
    return data, lines


def _shift(data: Any, first_line: int) -> None:
    """Turn 0-based lines within the YAML text into 1-based file lines."""
    if isinstance(data, LineDict):
        data.line += first_line
        data.key_lines = {k: v + first_line for k, v in data.key_lines.items()}
        for value in data.values():
            _shift(value, first_line)
    elif isinstance(data, list):
        for item in data:
            _shift(item, first_line)
