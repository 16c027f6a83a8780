"""Comparison grids: A1111's X/Y/Z plot and prompt matrix, as a gallery block.

A grid block is a base spec (``grid:``) and up to three axes (``x:``, ``y:``, ``z:``),
each one spec key with its values, or ``prompt_sr`` (A1111's Prompt S/R: the first value
is searched for in the prompt and negative prompt, and each value in turn replaces it);
or ``prompt_matrix: true`` (A1111's prompt matrix: the prompt's first ``|`` part always,
each other part on or off, the first half of them over x and the rest over y). Each
cell is an ordinary spec, so it has its own cache key and shares it with every equal
spec of the site; an error in a cell names the line of the axis value that made it.
Without a seed, every cell gets the one the base spec derives (A1111 fixes one seed for a
whole grid too), so the cells differ by their axes alone.

Values are read as A1111's X/Y/Z plot reads them: a string is a comma-separated list
(CSV quoting), and for a number key ``1-5`` is every whole step from 1 to 5,
``1-10 (+2)`` steps by 2 and ``10-100 [5]`` is five values evenly spread (truncated
toward zero for whole-number keys, as A1111 does). Unlike A1111, ``5-1`` counts down,
a step must point at the end, and a float range is exact (``0.1-0.3 (+0.1)`` ends at
0.3). A grid's size is known before any value is expanded: an oversize grid (more than
``limit:``, else ``grid_limit`` of ``genimg.yaml``) is refused at once, cheaply.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import product
from typing import Any

from . import schema
from .errors import ErrorList, GenimgError, Location, did_you_mean, short_repr
from .hashing import derive_seed
from .specs import DEFAULTS, Axis, Gallery, Grid, ImageSpec, parse_defaults, parse_image
from .yamlio import LineList, key_lines_of

PROMPT_SR = "prompt_sr"
MATRIX = "prompt_matrix"
AXES = ("x", "y", "z")
TITLES = {PROMPT_SR: "prompt S/R", MATRIX: "prompt matrix"}
_NUMBER = r"[+-]?(?:\d{1,20}(?:\.\d{0,20})?|\.\d{1,20})"
_RANGE = re.compile(rf"\s*(?P<start>{_NUMBER})\s*-\s*(?P<end>{_NUMBER})\s*"
                    rf"(?:\(\s*(?P<step>{_NUMBER})\s*\)|\[\s*(?P<count>\d{{1,12}})\s*\])?\s*")
_WHOLE = re.compile(r"\s*[+-]?\d{1,20}\s*")
_DECIMAL = re.compile(rf"\s*{_NUMBER}\s*")
_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def label_of(value: Any) -> str:
    """How a header shows a value: ``7.5``, ``20``, ``true``, ``Euler a``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):  # a mapping key's value (``hires``): ``scale 2, steps 10``
        return ", ".join(f"{k} {label_of(v)}" for k, v in value.items()) or "defaults"
    return str(value)


@dataclass(frozen=True)
class Value:
    """One value of an axis: what it sets, the file line it was written on, its label."""

    value: Any
    line: int
    label: str
    count: int = field(default=1, init=False)

    def values(self) -> list[Value]:
        return [self]


@dataclass(frozen=True)
class Span:
    """A range (``1-10 (+2)``, ``10-100 [5]``): counted before it is expanded."""

    start: Fraction
    step: Fraction
    count: int
    whole: bool  # whole-number values, truncated toward zero (A1111's ``int()``)
    line: int

    def values(self) -> list[Value]:
        out = []
        for i in range(self.count):
            exact = self.start + self.step * i
            value: int | float = int(exact) if self.whole else float(exact)
            out.append(Value(value, self.line, label_of(value)))
        return out


@dataclass(frozen=True)
class MatrixHalf:
    """The prompt matrix's parts ``first … first+n-1`` (1-based), each on or off:
    ``2**n`` values, the lowest part changing fastest (A1111's bit order)."""

    parts: tuple[str, ...]
    first: int
    n: int
    line: int

    @property
    def count(self) -> int:
        return 2 ** self.n

    def values(self) -> list[Value]:
        out = []
        for bits in range(self.count):
            chosen = frozenset(self.first + i for i in range(self.n) if bits >> i & 1)
            label = ", ".join(self.parts[i] for i in sorted(chosen)) or "—"
            out.append(Value(chosen, self.line, label))
        return out


Item = Value | Span | MatrixHalf


@dataclass(frozen=True)
class GridAxis:
    """An axis as written: the key it varies and its items, not yet expanded."""

    name: str  # x, y or z
    key: str  # a spec key, PROMPT_SR or MATRIX
    items: tuple[Item, ...]
    line: int

    @property
    def size(self) -> int:
        return sum(item.count for item in self.items)

    @property
    def title(self) -> str:
        return TITLES.get(self.key, self.key)

    def values(self) -> list[Value]:
        return [value for item in self.items for value in item.values()]


# ---------------------------------------------------------------------- values


def number_kind(key: str) -> type | None:
    """``int`` or ``float`` for a number key (ranges allowed), else None."""
    types = schema.SPEC[key].types if key in schema.SPEC else ()
    if float in types:
        return float
    return int if int in types else None


def parse_range(text: str, key: str, kind: type, where: Location) -> Span | None:
    """``text`` as a range of ``key``'s values; None if it is not written as one."""
    match = _RANGE.fullmatch(text)
    if match is None:
        return None
    shown = short_repr(text.strip())
    start, end = Fraction(match["start"]), Fraction(match["end"])
    whole = kind is int
    if whole and (start.denominator != 1 or end.denominator != 1):
        raise where.error(f"{key!r} takes whole numbers: range {shown} does not")
    if match["count"] is not None:
        count = int(match["count"])
        if count < 1:
            raise where.error(f"{key!r} range {shown} has no values")
        step = (end - start) / (count - 1) if count > 1 else Fraction(0)
        return Span(start, step, count, whole, where.line)
    step = Fraction(match["step"]) if match["step"] else Fraction(1 if end >= start else -1)
    if whole and step.denominator != 1:
        raise where.error(f"{key!r} takes whole numbers: the step of {shown} is not one")
    if step == 0:
        raise where.error(f"{key!r} range {shown} has a step of 0")
    if (end - start) * step < 0:
        raise where.error(f"{key!r} range {shown} steps away from its end")
    return Span(start, step, math.floor((end - start) / step) + 1, whole, where.line)


def parse_item(raw: Any, key: str, where: Location) -> Item:
    """One written value: a range, a number or true/false written as text, or as it is."""
    kind = number_kind(key)
    if key == PROMPT_SR:
        if isinstance(raw, str) or (isinstance(raw, int | float) and not isinstance(raw, bool)):
            return Value(str(raw), where.line, str(raw))
        raise where.error(f"{PROMPT_SR!r} values are text, got {short_repr(raw)}")
    value = raw
    if isinstance(raw, str) and kind is not None:
        span = parse_range(raw, key, kind, where)
        if span is not None:
            return span
        if _WHOLE.fullmatch(raw):
            value = int(raw)
        elif kind is float and _DECIMAL.fullmatch(raw):
            value = float(raw)
    elif isinstance(raw, str) and bool in schema.SPEC[key].types:
        value = _BOOLS.get(raw.strip().lower(), raw)
    return Value(value, where.line, label_of(value))


def split_values(raw: Any, where: Location) -> list[tuple[Any, int]]:
    """An axis's values with their lines: a YAML list item by item, a string as A1111's
    comma-separated list (CSV quoting; empty items dropped), anything else as one value."""
    if isinstance(raw, list):
        lines = raw.item_lines if isinstance(raw, LineList) else []
        return [(v, lines[i] if i < len(lines) else where.line) for i, v in enumerate(raw)]
    if isinstance(raw, str):
        rows = csv.reader(io.StringIO(raw), skipinitialspace=True)
        return [(cell.strip(), where.line) for row in rows for cell in row if cell.strip()]
    if raw is None or isinstance(raw, Mapping):
        raise where.error(f"an axis needs a list of values, got {short_repr(raw)}")
    return [(raw, where.line)]


def parse_axis(name: str, raw: Any, where: Location) -> GridAxis:
    """``x: {steps: [10, 20]}``: one key and its values (not yet expanded)."""
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise where.error(f"'{name}:' must be one key and its values, like "
                          f"'{name}: {{steps: [10, 20, 30]}}', got {short_repr(raw)}")
    ((key, values),) = raw.items()
    at = Location(where.file, key_lines_of(raw).get(key, where.line))
    if key != PROMPT_SR and (key not in schema.SPEC or key in schema.PRESENTATION_KEYS):
        known = [k for k in schema.SPEC if k not in schema.PRESENTATION_KEYS] + [PROMPT_SR]
        raise at.error(f"a grid axis varies a spec key or {PROMPT_SR!r}, not "
                       f"{short_repr(key)}{did_you_mean(str(key), known)}")
    items = tuple(parse_item(value, key, Location(where.file, line))
                  for value, line in split_values(values, at))
    if key in schema.SPEC:  # each value written as it is: checked at its own line now
        for item in items:
            if isinstance(item, Value):
                schema.SPEC[key].checked(item.value, Location(where.file, item.line))
    if not items:
        raise at.error(f"'{name}:' has no values for {key!r}")
    return GridAxis(name, key, items, at.line)


def matrix_axes(prompt: str, where: Location) -> tuple[tuple[str, ...], list[GridAxis]]:
    """A1111's prompt matrix: the parts of ``prompt`` and its x (and y) axes."""
    parts = tuple(part.strip().strip(",").strip() for part in prompt.split("|"))
    if len(parts) < 2:
        raise where.error("'prompt_matrix: true' needs a prompt of parts separated by '|', "
                          "like 'a cat|in the snow|at night'")
    if not all(parts):
        raise where.error(f"the prompt matrix has an empty part: {short_repr(prompt)}")
    optional = len(parts) - 1
    on_x = optional - optional // 2
    axes = [GridAxis("x", MATRIX, (MatrixHalf(parts, 1, on_x, where.line),), where.line)]
    if optional > on_x:
        half = MatrixHalf(parts, 1 + on_x, optional - on_x, where.line)
        axes.append(GridAxis("y", MATRIX, (half,), where.line))
    return parts, axes


# ---------------------------------------------------------------------- cells


def cells(axes: Sequence[Sequence[Value]]) -> Iterator[tuple[Value, ...]]:
    """Every combination of one value per axis, x fastest, then y, then z (A1111's order)."""
    for combination in product(*reversed(axes)):
        yield tuple(reversed(combination))


def search_replace(prompt: str, negative: str, search: str, replace: str, where: Location
                   ) -> tuple[str, str]:
    """A1111's Prompt S/R: ``search`` replaced in both prompts; it must be in one."""
    if search not in prompt and search not in negative:
        raise where.error(f"{PROMPT_SR}: {short_repr(search)} is in neither the prompt nor "
                          "the negative prompt")
    return prompt.replace(search, replace), negative.replace(search, replace)


def matrix_prompt(parts: Sequence[str], chosen: Iterable[int]) -> str:
    """The first part and the chosen ones, in their order, joined as A1111 does."""
    return ", ".join([parts[0], *(parts[i] for i in sorted(chosen))])


def cell_raw(base: Mapping[str, Any], lines: Mapping[str, int], prompts: tuple[str, str],
             axes: Sequence[GridAxis], values: tuple[Value, ...], parts: Sequence[str],
             file: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The spec mapping of one cell and each key's line (an axis key: its value's).

    Axes apply in x, y, z order, as A1111's do: a Prompt S/R after an axis of prompts
    searches the prompt that axis gave."""
    raw, key_lines = dict(base), dict(lines)
    prompt, negative = prompts
    if parts:
        prompt = matrix_prompt(parts, {i for axis, value in zip(axes, values, strict=True)
                                       if axis.key == MATRIX for i in value.value})
    for axis, value in zip(axes, values, strict=True):
        if axis.key == PROMPT_SR:
            first = axis.items[0]
            assert isinstance(first, Value)
            prompt, negative = search_replace(prompt, negative, first.value, value.value,
                                              Location(file, first.line))
            key_lines["prompt"] = key_lines["negative_prompt"] = value.line
        elif axis.key == "prompt":
            prompt, key_lines["prompt"] = value.value, value.line
        elif axis.key == "negative_prompt":
            negative, key_lines["negative_prompt"] = value.value, value.line
        elif axis.key != MATRIX:
            raw[axis.key] = value.value
            key_lines[axis.key] = value.line
    if prompt != prompts[0]:
        raw["prompt"] = prompt
    if negative != prompts[1]:
        raw["negative_prompt"] = negative
    return raw, key_lines


# ---------------------------------------------------------------------- the block


def parse_grid(data: Mapping[str, Any], top_lines: Mapping[str, int], where: Location,
               defaults: Mapping[str, Any], limit: int) -> Gallery:
    """A gallery block with ``grid:``: every cell an ImageSpec, and the grid's axes."""
    def at(key: str) -> Location:
        return Location(where.file, top_lines.get(key, where.line))

    for key, problem in (("images", "a gallery has 'images:' or 'grid:', not both"),
                         ("columns", "a grid's columns are its 'x:' values")):
        if key in data:
            raise at(key).error(problem)
    base, base_lines = _base(data["grid"], at("grid"))
    block_defaults: Mapping[str, Any] = {}
    if data.get("defaults") is not None:
        raw = data["defaults"]
        block_defaults = parse_defaults(raw, at("defaults"), key_lines_of(raw))
    merged_defaults = {**defaults, **block_defaults}
    merged = {**DEFAULTS, **merged_defaults, **base}
    prompts = (str(merged.get("prompt", "")), str(merged.get("negative_prompt", "")))
    axes, parts = _axes(data, at, prompts[0])
    _check_size(axes, data.get("limit", limit), at("limit" if "limit" in data else "grid"))
    if "seed" not in merged and "seed" not in {axis.key for axis in axes}:
        base = {**base, "seed": _one_seed(base, at("grid"), merged_defaults)}
    expanded = [axis.values() for axis in axes]
    images: list[ImageSpec] = []
    errors: dict[int | None, GenimgError] = {}  # the first of each line: not one per cell
    for index, values in enumerate(cells(expanded)):
        caption = " · ".join(f"{axis.title}: {value.label}"
                             for axis, value in zip(axes, values, strict=True))
        try:
            raw, lines = cell_raw(base, base_lines, prompts, axes, values, parts, where.file)
            images.append(parse_image({**raw, "caption": caption},
                                      Location(where.file, at("grid").line, index),
                                      merged_defaults, lines))
        except GenimgError as exc:
            errors.setdefault(exc.line, exc)
    if errors:
        raise ErrorList(list(errors.values()))
    shown = {axis.name: Axis(axis.title, tuple(v.label for v in values))
             for axis, values in zip(axes, expanded, strict=True)}
    grid = Grid(shown["x"], shown.get("y"), shown.get("z"))
    return Gallery(tuple(images), None, data.get("caption"), where, grid)


def _base(raw: Any, where: Location) -> tuple[dict[str, Any], dict[str, int]]:
    """``grid:``: the spec every cell starts from (no id, caption or alt: those are a
    cell's own, and the axes caption it)."""
    if not isinstance(raw, Mapping):
        raise where.error(f"'grid:' must be a mapping of image keys, got {short_repr(raw)}")
    lines = key_lines_of(raw)
    for key in raw:
        if key in schema.PRESENTATION_KEYS:
            raise Location(where.file, lines.get(key, where.line)).error(
                f"{key!r} cannot be set on a grid: its cells are named by their axes")
    schema.check_keys(raw, schema.SPEC, "grid", where, lines)
    return dict(raw), lines


def _one_seed(base: Mapping[str, Any], where: Location, defaults: Mapping[str, Any]) -> int:
    """The seed the base spec derives (A1111 fixes one seed for a whole grid, too): the
    cells then differ by their axes alone. A base that is no picture alone (an img2img
    without ``from:`` given by an axis) derives it from its keys as they are."""
    try:
        return parse_image(base, where, defaults).seed
    except GenimgError:
        merged = {**DEFAULTS, **defaults, **base}
        return derive_seed({key: short_repr(value) for key, value in sorted(merged.items())})


def _axes(data: Mapping[str, Any], at: Any, prompt: str
          ) -> tuple[list[GridAxis], tuple[str, ...]]:
    """The grid's axes in x, y, z order (a prompt matrix takes x and y)."""
    parts: tuple[str, ...] = ()
    axes: list[GridAxis] = []
    if data.get("prompt_matrix"):
        for name in ("x", "y"):
            if name in data:
                raise at(name).error(f"'prompt_matrix: true' fills x and y: '{name}:' "
                                     "cannot be given too (use 'z:' for another axis)")
        parts, axes = matrix_axes(prompt, at("prompt_matrix"))
    elif "x" not in data:
        raise at("grid").error("a grid needs 'x:' (a key and its values), or "
                               "'prompt_matrix: true'")
    varied: dict[str, str] = {}
    for name in AXES:
        if name not in data:
            continue
        axis = parse_axis(name, data[name], at(name))
        if axis.key in varied and axis.key != PROMPT_SR:
            raise Location(at(name).file, axis.line).error(
                f"{axis.key!r} is varied by '{varied[axis.key]}:' already")
        varied[axis.key] = name
        axes.append(axis)
    return axes, parts


def _check_size(axes: Sequence[GridAxis], limit: int, where: Location) -> None:
    """Refuse a grid of more than ``limit`` pictures, before expanding a single value."""
    sizes = [axis.size for axis in axes]
    total = math.prod(sizes)
    if total > limit:
        shape = " × ".join(map(str, sizes)) + " = " if len(sizes) > 1 else ""
        raise where.error(
            f"this grid has {shape}{total} pictures, more than its limit of {limit} "
            "(raise it with 'limit:' in the block or 'grid_limit:' in genimg.yaml)")
