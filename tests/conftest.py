"""Shared fixtures: small blogs written into a temp dir, and the repo's example blog.

Tests marked ``render`` need the render extras (``pip install -e ".[render]"``): they
are skipped where those are not installed, unless ``GENIMG_REQUIRE_RENDER=1`` (CI),
which makes a missing extra an error instead.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import DEFAULT_CONFIG, REPO, MakeBlog, write_blog

# The session fixture ``tiny_model`` (a random-weight SD pipeline built from configs).
pytest_plugins = ["tests.tinymodels"]

# Tests never reach a hub: everything is built locally from configs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

#: The modules of the render extras (pyproject.toml), as imported.
RENDER_MODULES = ("torch", "torchvision", "diffusers", "transformers", "accelerate",
                  "safetensors", "peft", "gfpgan", "facexlib", "basicsr", "spandrel")
REQUIRE_RENDER = "GENIMG_REQUIRE_RENDER"


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected what will not run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    render = [item for item in items if item.get_closest_marker("render")]
    if not render:
        return
    missing = [name for name in RENDER_MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        return
    extras = f"the render extras (pip install -e '.[render]'); missing: {', '.join(missing)}"
    if os.environ.get(REQUIRE_RENDER) == "1":
        raise pytest.UsageError(f"{REQUIRE_RENDER}=1: {len(render)} selected tests need {extras}")
    for item in render:
        item.add_marker(pytest.mark.skip(reason=f"needs {extras}"))


@pytest.fixture
def make_blog(tmp_path: Path) -> MakeBlog:
    """``make_blog({"2024-01-01-a.md": "..."}, config="title: x")`` -> blog folder.

    Post texts are dedented; the config defaults to a title and base_url only.
    """

    def make(posts: dict[str, str], config: str = DEFAULT_CONFIG, name: str = "blog") -> Path:
        return write_blog(tmp_path, posts, config, name)

    return make


@pytest.fixture
def example_blog(tmp_path: Path) -> Path:
    """A copy of the repository's example blog (genimg.yaml + posts/)."""
    root = tmp_path / "example"
    root.mkdir()
    shutil.copy(REPO / "genimg.yaml", root / "genimg.yaml")
    shutil.copytree(REPO / "posts", root / "posts")
    return root


SIMPLE_POST = """
    ---
    title: "AI 生成的一些图片"
    date: 2022-10-30
    tags: [美丽图片, tech]
    ---

    Some *text*.

    ```gallery
    - id: girl
      prompt: high quality photo, beautiful young girl
      seed: 482861532
    - mode: img2img
      from: girl
      prompt: high quality cg, beautiful young girl
      seed: 3509550471
      strength: 0.6
    ```
"""


@pytest.fixture
def simple_blog(make_blog: MakeBlog) -> Path:
    """One post with a txt2img -> img2img pair."""
    return make_blog({"2022-10-30-pair.md": SIMPLE_POST})


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the post files that a build parses (rather than takes from the state)."""
    import generator.state

    calls: list[str] = []
    real = generator.state.load_post

    def load_post(path: Path, *args: object) -> object:
        calls.append(path.name)
        return real(path, *args)

    monkeypatch.setattr(generator.state, "load_post", load_post)
    return calls


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Site paths of the pages a build renders (rather than keeps or links back)."""
    import generator.pages

    paths: list[str] = []
    real = generator.pages.PageRenderer.render

    def render(self: generator.pages.PageRenderer, page: generator.pages.Page) -> object:
        paths.append(page.path)
        return real(self, page)

    monkeypatch.setattr(generator.pages.PageRenderer, "render", render)
    return paths
