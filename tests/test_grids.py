"""Comparison grids (issue 16): A1111's X/Y/Z plot and prompt matrix as gallery blocks.

Expansion (order, ranges, Prompt S/R, prompt matrix) as properties; errors naming the
line of the wrong axis value; the size limit (refused before anything is written); a
grid's cells sharing cache entries with equal specs anywhere; the example's samplers
grid keeping the pinned keys of the pictures it showed before; ``genimg info`` on a cell.
"""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.build import BuildOptions, build_site, load_site
from generator.content import parse_gallery
from generator.errors import ErrorList, GenimgError, Location
from generator.grids import cells
from generator.state import post_from_record, post_record
from tests.helpers import REPO, MakeBlog, genimg
from tests.pinned_keys import PINNED_KEYS

WHERE = Location("posts/p.md", 10)  # the fence; the YAML starts on line 11
PROPERTY = settings(max_examples=60, deadline=None)


def grid(yaml: str, defaults: dict | None = None, limit: int = 100):
    return parse_gallery(yaml, WHERE, defaults or {}, limit)


def error_of(yaml: str, limit: int = 100) -> str:
    with pytest.raises(GenimgError) as caught:
        grid(yaml, limit=limit)
    return str(caught.value)


# ------------------------------------------------------------------- properties


@PROPERTY
@given(st.lists(st.lists(st.integers(1, 500), min_size=1, max_size=4, unique=True),
                min_size=1, max_size=3))
def test_cells_come_x_fastest_then_y_then_z(values: list[list[int]]) -> None:
    keys = ["steps", "seed", "width"][:len(values)]
    values = [v if k != "width" else [64 + 8 * (i % 100) for i in v]
              for k, v in zip(keys, values, strict=True)]
    axes = "".join(f"{name}:\n  {key}: {v}\n"
                   for name, key, v in zip("xyz", keys, values, strict=False))
    gallery = grid("grid:\n  prompt: a river\n" + axes)
    sizes = [len(v) for v in values]
    assert len(gallery.images) == math.prod(sizes)
    for index, image in enumerate(gallery.images):
        rest = index
        for key, axis in zip(keys, values, strict=True):
            assert getattr(image, key) == axis[rest % len(axis)]
            rest //= len(axis)
        assert image.location == Location("posts/p.md", 11, index)
    layers = gallery.grid.layers(list(range(len(gallery.images))))
    assert [i for layer in layers for row in layer for i in row] == list(range(len(layers) * (
        len(layers[0]) * len(layers[0][0]))))
    assert len(layers[0][0]) == sizes[0]
    assert gallery.grid.x.labels == tuple(map(str, values[0]))


@PROPERTY
@given(st.lists(st.integers(0, 9), min_size=0, max_size=3).map(tuple), st.integers(1, 3))
def test_cells_is_the_product_in_a1111s_order(shape: tuple[int, ...], extra: int) -> None:
    axes = [list(range(n + 1)) for n in (*shape, extra)]
    got = list(cells(axes))
    assert len(got) == math.prod(len(a) for a in axes)
    for index, cell in enumerate(got):  # A1111: index = ix + iy * nx + iz * nx * ny
        assert index == sum(v * math.prod(len(a) for a in axes[:i]) for i, v in enumerate(cell))


def _values(yaml_value: str, key: str = "steps") -> list:
    gallery = grid(f"grid:\n  prompt: a river\nx:\n  {key}: {yaml_value}\n", limit=10**6)
    return [getattr(image, key) for image in gallery.images]


@PROPERTY
@given(st.integers(1, 200), st.integers(1, 200), st.integers(1, 30))
def test_integer_ranges_step_to_their_end(a: int, b: int, step: int) -> None:
    forward = list(range(a, b + 1, step)) if a <= b else list(range(a, b - 1, -step))
    assert _values(f'"{a}-{b} ({"+" if a <= b else "-"}{step})"') == forward
    if a <= b:  # A1111's own result for the same text
        assert _values(f'"{a}-{b}"') == list(range(a, b + 1))
        assert _values(f'"{a} - {b} (+{step})"') == list(range(a, b + 1, step))
    else:
        assert _values(f'"{a}-{b}"') == list(range(a, b - 1, -1))  # counts down


@PROPERTY
@given(st.integers(1, 500), st.integers(1, 500), st.integers(1, 12))
def test_counted_ranges_spread_evenly_and_truncate_like_a1111(a: int, b: int, n: int) -> None:
    got = _values(f'"{a}-{b} [{n}]"')
    assert len(got) == n and got[0] == a and (n == 1 or got[-1] == b)
    exact = [a + Fraction(b - a) * i / max(n - 1, 1) for i in range(n)]
    assert got == [int(v) for v in exact]  # toward zero, as A1111's int(np.linspace(...))
    assert all(abs(g - float(v)) < 1 for g, v in zip(got, exact, strict=True))


@PROPERTY
@given(st.integers(0, 400), st.integers(1, 100), st.integers(1, 40))
def test_float_ranges_are_exact_in_tenths(start: int, span: int, step: int) -> None:
    a, b, s = Fraction(start, 10), Fraction(start + span, 10), Fraction(step, 10)
    a, b = min(a, Fraction(50)), min(b, Fraction(50))
    got = _values(f'"{float(a)}-{float(b)} (+{float(s)})"', "cfg")
    expected = [float(a + s * i) for i in range(int((b - a) / s) + 1)] if b >= a else []
    if b >= a:
        assert got == expected  # 0.1-0.3 (+0.1) ends at 0.3, not 0.30000000000000004


@PROPERTY
@given(st.lists(st.sampled_from(["Euler a", "DDIM", "Euler", "DPM++ 2M Karras", "LMS"]),
                min_size=1, max_size=5))
def test_a_comma_separated_string_is_a_list(samplers: list[str]) -> None:
    as_list = grid(f"grid: {{prompt: a}}\nx:\n  sampler: {json.dumps(samplers)}\n")
    as_text = grid(f"grid: {{prompt: a}}\nx:\n  sampler: {', '.join(samplers)}\n")
    assert as_list.images == as_text.images


WORD = st.text("abcdefghij", min_size=1, max_size=6)


@PROPERTY
@given(WORD, WORD, st.lists(WORD, min_size=1, max_size=4), st.booleans())
def test_prompt_sr_replaces_the_first_value_in_both_prompts(
        before: str, search: str, replacements: list[str], negative: bool) -> None:
    prompt = f"{before} {search} x" if not negative else before
    negative_prompt = f"no {search}" if negative else ""
    values = [search, *replacements]
    gallery = grid(f"grid:\n  prompt: {json.dumps(prompt)}\n"
                   f"  negative_prompt: {json.dumps(negative_prompt)}\n"
                   f"x:\n  prompt_sr: {json.dumps(values)}\n")
    for image, value in zip(gallery.images, values, strict=True):
        assert image.prompt == prompt.replace(search, value)
        assert image.negative_prompt == negative_prompt.replace(search, value)
    assert gallery.images[0].prompt == prompt  # the first value: the prompt as written
    assert gallery.grid.x.labels == tuple(values)


@PROPERTY
@given(st.lists(WORD, min_size=2, max_size=6, unique=True))
def test_prompt_matrix_turns_each_part_on_and_off(parts: list[str]) -> None:
    gallery = grid(f"grid:\n  prompt: {json.dumps(' | '.join(parts))}\nprompt_matrix: true\n")
    optional = len(parts) - 1
    assert len(gallery.images) == 2 ** optional
    for index, image in enumerate(gallery.images):  # A1111: bit n of the index is part n+1
        chosen = [parts[0]] + [p for n, p in enumerate(parts[1:]) if index >> n & 1]
        assert image.prompt == ", ".join(chosen)
    assert len(gallery.grid.x.labels) == 2 ** (optional - optional // 2)
    assert gallery.grid.y is None if optional == 1 else len(gallery.grid.y.labels) == 2 ** (
        optional // 2)
    assert gallery.grid.x.labels[0] == "—" and gallery.grid.x.labels[1] == parts[1]


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize(("yaml", "line", "message"), [
    ("grid: {prompt: a}\nx:\n  steps:\n    - 10\n    - 600\n", 15,
     "'steps' must be between 1 and 500, got 600"),
    ("grid: {prompt: a}\nx:\n  sampler: [Euler a, Eulr]\n", 13, "unknown sampler 'Eulr'"),
    ("grid: {prompt: a}\nx:\n  stepz: [1, 2]\n", 13, "not 'stepz' (did you mean 'steps'?)"),
    ("grid: {prompt: a}\nx:\n  steps: 1-10 (-1)\n", 13, "steps away from its end"),
    ("grid: {prompt: a}\nx:\n  steps: 1.5-3\n", 13, "'steps' takes whole numbers"),
    ("grid: {prompt: a}\nx:\n  steps: 1-3 [0]\n", 13, "has no values"),
    ("grid: {prompt: a}\nx:\n  steps: [10]\ny:\n  steps: [20]\n", 15,
     "'steps' is varied by 'x:' already"),
    ("grid: {prompt: a}\nx:\n  prompt_sr: [dog, cat]\n", 13,
     "prompt_sr: 'dog' is in neither the prompt nor the negative prompt"),
    ("grid: {prompt: a, caption: hi}\nx:\n  steps: [1]\n", 11, "'caption' cannot be set"),
    ("grid: {prompt: a}\n", 11, "a grid needs 'x:'"),
    ("grid: {prompt: a}\nprompt_matrix: true\n", 12, "needs a prompt of parts"),
    ("grid: {prompt: a|b}\nprompt_matrix: true\nx: {steps: [1]}\n", 13,
     "'prompt_matrix: true' fills x and y"),
    ("grid: {prompt: a}\nx: {steps: [1]}\nimages: []\n", 13, "'images:' or 'grid:'"),
    ("images: [{prompt: a}]\nx: {steps: [1]}\n", 12, "'x:' belongs to a comparison grid"),
    ("grid: {prompt: a}\nx:\n  steps: 1-11\ny:\n  seed: 1-10\n", 11,
     "this grid has 11 × 10 = 110 pictures, more than its limit of 100"),
    ("grid: {prompt: a}\nlimit: 5\nx:\n  steps: 1-1000000000\n", 12,
     "this grid has 1000000000 pictures, more than its limit of 5"),
])
def test_errors_name_the_line_of_the_wrong_value(yaml: str, line: int, message: str) -> None:
    text = error_of(yaml)
    assert text.startswith(f"posts/p.md:{line}: ") and message in text, text
    assert "\n" not in text  # a bad value is one error, not one per cell


def test_limits_come_from_the_block_then_the_config() -> None:
    yaml = "grid: {prompt: a}\nx:\n  steps: 1-20\ny:\n  seed: 1-10\n"
    assert len(grid(yaml, limit=200).images) == 200
    assert len(grid("limit: 200\n" + yaml).images) == 200
    assert "limit of 150" in error_of("limit: 150\n" + yaml, limit=1000)


def test_a_grid_survives_the_state_of_parsed_posts(tmp_path: Path) -> None:
    from generator.content import load_post

    path = tmp_path / "2024-01-01-g.md"
    path.write_text("---\ntitle: G\n---\n```gallery\ngrid: {prompt: a river, seed: 3}\n"
                    "x: {sampler: [Euler a, DDIM]}\ny: {steps: 10-20 (+10)}\n"
                    "z: {prompt_sr: [river, lake]}\n```\n", encoding="utf-8")
    post = load_post(path, {}, "posts/g.md")
    back = post_from_record(path, "posts/g.md", json.loads(json.dumps(post_record(post))))
    assert back.galleries == post.galleries
    assert [i.location for i in back.images] == [i.location for i in post.images]
    assert back.galleries[0].grid.z.labels == ("river", "lake")


# ------------------------------------------------------------- cache and build


GRID_POST = """
    ---
    title: Grid
    ---
    ```gallery
    grid:
      prompt: a river at night
      seed: 7
      width: 64
      height: 64
    x:
      sampler: [Euler a, DDIM]
    y:
      steps: 2-4 (+2)
    ```
"""

ROW_POST = """
    ---
    title: Row
    ---
    ```gallery
    - prompt: a river at night
      seed: 7
      width: 64
      height: 64
      steps: 4
      sampler: DDIM
      caption: the same picture as a cell
    ```
"""


def test_a_grid_shares_cache_entries_with_equal_specs(make_blog: MakeBlog) -> None:
    root = make_blog({"2024-01-01-grid.md": GRID_POST, "2024-01-02-row.md": ROW_POST})
    site = load_site(root, BuildOptions(preview=True))
    keys = site.plan.shown_key
    row = next(image for image in site.images if image.caption.startswith("the same"))
    cell = next(image for image in site.images
                if image.location.cell is not None and image.steps == 4
                and image.sampler == "DDIM")
    assert keys[row.location] == keys[cell.location]
    assert len(site.images) == 5 and len(site.plan.nodes) == 4
    first = build_site(root, BuildOptions(preview=True))
    assert first.rendered == 4
    (root / "posts" / "2024-01-01-grid.md").unlink()
    assert build_site(root, BuildOptions(preview=True)).rendered == 0  # reused, not re-made


def test_a_refused_oversize_grid_writes_nothing(make_blog: MakeBlog) -> None:
    root = make_blog({"2024-01-01-big.md": """
        ---
        title: Big
        ---
        ```gallery
        grid: {prompt: a river}
        x:
          steps: 1-30
        y:
          seed: 1-5
        ```
        """}, config="title: T\nbase_url: /\ngrid_limit: 120\n")
    result = genimg("build", "--preview", "-q", "-C", root)
    assert result.exit_code == 1
    assert result.stderr == ("error: posts/2024-01-01-big.md:5: this grid has 30 × 5 = 150 "
                             "pictures, more than its limit of 120 (raise it with 'limit:' in "
                             "the block or 'grid_limit:' in genimg.yaml)\n")
    assert sorted(p.name for p in root.iterdir()) == ["genimg.yaml", "posts"]
    post = root / "posts" / "2024-01-01-big.md"
    post.write_text(post.read_text().replace("grid: {", "limit: 150\ngrid: {"))
    result = genimg("check", "-C", root)
    assert result.exit_code == 1 and "unknown model 'default'" in result.stderr  # size is fine


def test_genimg_info_on_a_cell_gives_its_own_spec(make_blog: MakeBlog) -> None:
    root = make_blog({"2024-01-01-grid.md": GRID_POST})
    build_site(root, BuildOptions(preview=True))
    site = load_site(root, BuildOptions(preview=True))
    html = (root / "site/posts/grid/index.html").read_text(encoding="utf-8")
    for image in site.images:
        key = site.plan.shown_key[image.location]
        png = next((root / "site/images").glob(f"*-{key[:8]}.png"))
        assert png.name in html
        out = genimg("info", png).stdout
        assert f"sampler: {image.sampler}" in out and f"steps: {image.steps}" in out
        assert "prompt: a river at night" in out and "seed: 7" in out


def test_the_example_grid_keeps_the_pinned_pictures() -> None:
    """The samplers post became a grid: its cells of equal specs have the keys pinned for
    the pictures it showed before, and every other post's pictures are unchanged."""
    pinned = json.loads(PINNED_KEYS.read_text(encoding="utf-8"))
    for case, preview in (("example", False), ("example_preview", True)):
        site = load_site(REPO, BuildOptions(preview=preview))
        keys = {(s.location.file, s.location.line, s.location.cell):
                (site.plan.shown_key[s.location], s.seed) for s in site.images}
        old = pinned[case]["images"]
        samplers = {at: v for at, v in old.items() if "samplers" in at}
        assert len(samplers) == 3
        grid_keys = {tuple(v) for (file, _, cell), v in keys.items() if cell is not None}
        assert len(grid_keys) == 9 and {tuple(v) for v in samplers.values()} <= grid_keys
        rest = {f"{f}:{line}": list(v) for (f, line, cell), v in keys.items() if cell is None}
        assert rest == {at: v for at, v in old.items() if at not in samplers}


def test_errors_in_cells_are_reported_once_with_the_value_line() -> None:
    with pytest.raises(ErrorList) as caught:
        grid("grid: {prompt: a}\nx:\n  seed: -1-1\ny:\n  steps: 0-2\n")
    lines = sorted(re.findall(r":(\d+): ", str(caught.value)))
    assert lines == ["13", "15"]


def test_without_a_seed_every_cell_has_the_one_the_base_derives(make_blog: MakeBlog) -> None:
    """A1111 fixes one seed for a whole grid: cells differ by their axes alone, and the
    cell equal to the base is the picture an ordinary spec of the base's keys shows."""
    gallery = grid("grid: {prompt: a river}\nx:\n  steps: [10, 20, 30]\n")
    row = parse_gallery("- prompt: a river\n  steps: 20\n", WHERE, {})
    assert {image.seed for image in gallery.images} == {row.images[0].seed}
    assert gallery.images[1].pixel_fields() == row.images[0].pixel_fields()
    seeds = grid("grid: {prompt: a river}\nx:\n  seed: [1, 2]\n").images
    assert [image.seed for image in seeds] == [1, 2]


def test_a_prompt_sr_searches_the_prompt_an_earlier_axis_gave() -> None:
    gallery = grid("grid: {prompt: x}\nx:\n  prompt: [a cat, big cat]\ny:\n"
                   "  prompt_sr: [cat, bird]\n")
    assert [image.prompt for image in gallery.images] == ["a cat", "big cat", "a bird",
                                                          "big bird"]


def test_a_range_of_wrong_values_is_one_error() -> None:
    text = error_of("grid: {prompt: a}\nx:\n  seed: -5-5\n")
    assert text == "posts/p.md:13: 'seed' must be between 0 and 4294967295, got -5"
    text = error_of("grid: {prompt: a}\nx:\n  prompt: [a, 3]\n")
    assert text == "posts/p.md:13: 'prompt' must be a string, got 3"


def test_z_values_are_stacked_tables_and_a_grid_without_y_has_no_row_labels(
        make_blog: MakeBlog) -> None:
    from bs4 import BeautifulSoup

    root = make_blog({"2024-01-01-z.md": """
        ---
        title: Z
        ---
        ```gallery
        grid: {prompt: a river at night, seed: 1, width: 64, height: 64}
        x: {steps: 1-3}
        z: {prompt_sr: [river, lake]}
        caption: two stacked grids
        ```
        """})
    build_site(root, BuildOptions(preview=True))
    soup = BeautifulSoup((root / "site/posts/z/index.html").read_text(), "html.parser")
    layers = soup.select(".grid .grid-layer")
    assert [h.get_text() for h in soup.select(".grid-z")] == ["prompt S/R: river",
                                                            "prompt S/R: lake"]
    assert len(layers) == 2 and not soup.select(".grid-corner, th[scope=row]")
    for layer, word in zip(layers, ["river", "lake"], strict=True):
        assert [th.get_text() for th in layer.select("thead .grid-label")] == ["1", "2", "3"]
        links = layer.select("td a.picture-link")
        assert len(links) == 3 and all(a["data-prompt"] == f"a {word} at night" for a in links)
    assert soup.select_one(".grid .gallery-caption").get_text() == "two stacked grids"
