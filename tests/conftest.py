"""Shared fixtures: small blogs written into a temp dir, and the repo's example blog."""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# The session fixture ``tiny_model`` (a random-weight SD pipeline built from configs).
pytest_plugins = ["tests.tinymodels"]

# Tests never reach a hub: everything is built locally from configs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

MakeBlog = Callable[..., Path]


@pytest.fixture
def make_blog(tmp_path: Path) -> MakeBlog:
    """``make_blog({"2024-01-01-a.md": "..."}, config="title: x")`` -> blog folder.

    Post texts are dedented; the config defaults to a title and base_url only.
    """

    def make(posts: dict[str, str], config: str = "title: Test blog\nbase_url: /\n",
             name: str = "blog") -> Path:
        root = tmp_path / name
        (root / "posts").mkdir(parents=True, exist_ok=True)
        (root / "genimg.yaml").write_text(textwrap.dedent(config), encoding="utf-8")
        for file, text in posts.items():
            path = root / "posts" / file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return root

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
