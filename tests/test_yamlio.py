"""YAML parsed by libyaml gives exactly what PyYAML's Python parser gives (values, types
and every line), and whatever libyaml rejects is reported as the Python parser words it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from generator import yamlio

pytestmark = pytest.mark.skipif(yamlio._FastLineLoader is None, reason="PyYAML without libyaml")


def shape(data: Any) -> Any:
    """Data with its types and the lines ``yamlio`` recorded, for comparing."""
    if isinstance(data, yamlio.LineDict):
        return ("map", data.line, sorted(((repr(k), line) for k, line in data.key_lines.items())),
                [(repr(k), shape(v)) for k, v in data.items()])
    if isinstance(data, yamlio.LineList):
        return ("seq", data.line, data.item_lines, [shape(v) for v in data])
    return (type(data).__name__, repr(data))


def parsed(text: str, loader: Any) -> Any:
    """What ``loader`` gives: data, or the exception's type."""
    try:
        return shape(loader(text))
    except (yaml.YAMLError, RecursionError) as exc:
        return type(exc).__name__


def python(text: str) -> Any:
    return yaml.load(text, Loader=yamlio._LineLoader)


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=12), st.dates())
documents = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)),
    max_leaves=12)
#: text that is YAML-ish: its syntax characters, line breaks, indents, words, numbers
pieces = st.sampled_from(["- ", ": ", "\n", "  ", "[", "]", "{", "}", ", ", "'", '"', "#",
                          "&a ", "*a", "!!int ", "!!str ", "? ", "|", ">", "~", "\t", "yes",
                          "no", "1.5", "0x1F", "2022-10-30", "2022-02-30", "null", "prompt",
                          "seed", "é", "\u2028", "\x85", "\\", "%", "@", "`"])


@settings(max_examples=400, deadline=None)
@given(documents, st.sampled_from([False, True]))
def test_what_is_dumped_loads_as_the_python_parser_loads_it(data: Any, flow: bool) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)
    assert parsed(text, yamlio._load) == parsed(text, python)


@settings(max_examples=3000, deadline=None)
@given(st.lists(pieces, max_size=30).map("".join))
def test_any_text_loads_as_the_python_parser_loads_it(text: str) -> None:
    """libyaml where it agrees with Python, Python where they part ways: the same data
    and lines, or the Python parser's error."""
    assert parsed(text, yamlio._load) == parsed(text, python)


def test_libyaml_does_the_work_where_it_can() -> None:
    text = "- prompt: a fox\n  seed: 1\n"
    assert yamlio._PARTING.search(text) is None
    assert shape(yaml.load(text, Loader=yamlio._FastLineLoader)) == shape(python(text))


@pytest.mark.parametrize("text", ["!!str \t", "!", "|#", "é\t"])
def test_where_the_parsers_part_ways_python_decides(text: str) -> None:
    assert yamlio._PARTING.search(text)
    assert parsed(text, yamlio._load) == parsed(text, python)
