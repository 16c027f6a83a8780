"""End to end: a tiny blog rendered by the real build with the tiny SD model (no preview)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from generator.build import BuildOptions, Progress, build_site
from generator.metadata import parse_infotext
from tests.helpers import MakeBlog
from tests.tinymodels import TinyModel

pytestmark = [pytest.mark.slow, pytest.mark.render,
              pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")]

POST = """
    ---
    title: Pairs
    date: 2022-10-30
    ---

    ```gallery
    - id: girl
      prompt: high quality photo, beautiful young girl
      seed: 482861532
    - id: anime
      mode: img2img
      from: girl
      prompt: high quality cg, beautiful young girl
      seed: 3509550471
      strength: 0.6
    - mode: img2img
      from: anime
      prompt: anime, red cheek
      seed: 7
      strength: 0.5
    ```

    ```gallery
    - prompt: a cat
      seed: 1
    ```
"""


class Steps(Progress):
    def __init__(self) -> None:
        self.total = self.done = 0

    def start(self, pictures: int, steps: int) -> None:
        self.total += steps

    def advance_steps(self, steps: int) -> None:
        self.done += steps


def pictures(root: Path) -> dict[str, str]:
    """Site PNGs by prompt: their file names (content-addressed)."""
    out = {}
    for png in (root / "site/images").glob("*.png"):
        with Image.open(png) as image:
            out[parse_infotext(image.info["parameters"])["prompt"]] = png.name
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_renders_caches_and_rerenders_only_descendants(
    make_blog: MakeBlog, tiny_model: TinyModel
) -> None:
    config = (f"title: Tiny\nbase_url: /\nmodels:\n  default: {tiny_model.folder}\n"
              "defaults:\n  steps: 3\n  width: 64\n  height: 64\n")
    root = make_blog({"2022-10-30-pairs.md": POST}, config=config)
    progress = Steps()
    report = build_site(root, BuildOptions(), progress)
    assert report.rendered == 4 and not report.preview
    assert progress.done == progress.total == 3 + int(3 * 0.6) + int(3 * 0.5) + 3
    first = pictures(root)
    assert len(first) == 4 and not (root / "site/.genimg-preview").exists()
    with Image.open(root / "site/images" / first["a cat"]) as cat:
        info = parse_infotext(cat.info["parameters"])
        assert cat.size == (64, 64) and info["Seed"] == "1" and info["Steps"] == "3"
        # a folder has no checkpoint file: named, with no A1111 hash (issue 12)
        assert "Preview" not in info and info["Model"] == tiny_model.folder.name
        assert "Model hash" not in info

    again = build_site(root, BuildOptions())
    assert again.rendered == 0 and again.files_written == 0

    post = root / "posts/2022-10-30-pairs.md"
    cat_bytes = digest(root / "site/images" / first["a cat"])
    post.write_text(post.read_text().replace("high quality cg", "watercolour"))
    assert build_site(root, BuildOptions()).rendered == 2  # "anime" and its child
    second = pictures(root)
    assert second["high quality photo, beautiful young girl"] == first[
        "high quality photo, beautiful young girl"]
    assert second["anime, red cheek"] != first["anime, red cheek"]  # new parent, new picture

    post.write_text(post.read_text().replace("high quality photo", "old photo"))
    assert build_site(root, BuildOptions()).rendered == 3  # the whole chain, not the cat
    assert pictures(root)["a cat"] == first["a cat"]
    assert digest(root / "site/images" / first["a cat"]) == cat_bytes
    assert len(list((root / "site/images").glob("*.png"))) == 4
