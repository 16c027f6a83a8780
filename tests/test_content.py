"""Posts: front matter, Markdown, gallery blocks with file lines, CJK slugs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from generator.content import load_post, load_posts, slugify
from generator.errors import ErrorList, GenimgError


def write(tmp_path: Path, text: str, name: str = "2022-10-30-hello-world.md") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_front_matter_and_markdown(tmp_path: Path) -> None:
    post = load_post(write(tmp_path, "---\ntitle: Hi\ntags: [a, 美丽图片]\n---\n\nSome *text*.\n"),
                     {})
    assert post.title == "Hi" and post.tags == ("a", "美丽图片")
    assert post.date == dt.date(2022, 10, 30) and post.slug == "hello-world"
    assert "<em>text</em>" in post.html and post.summary == "Some text."


def test_cjk_slugs_keep_letters() -> None:
    assert slugify("AI 生成的一些图片") == "ai-生成的一些图片"
    assert slugify("美丽图片") == "美丽图片"
    assert slugify("Hello, World!") == "hello-world"
    assert slugify("!!!") == "untitled"


def test_gallery_block_becomes_specs_with_file_lines(tmp_path: Path) -> None:
    text = (
        "---\ntitle: T\n---\n"          # lines 1-3
        "\nIntro.\n\n"                  # lines 4-6
        "```gallery\n"                  # line 7
        "- id: a\n"                     # line 8
        "  prompt: one\n"
        "- prompt: two\n"               # line 10
        "  seed: 5\n"
        "```\n"
        "\nBetween.\n\n"
        "~~~~ gallery\n"                # line 16
        "images:\n"
        "  - prompt: three\n"           # line 18
        "columns: 1\n"
        "~~~~\n"
        "\n```python\nprint('code stays code')\n```\n"
    )
    post = load_post(write(tmp_path, text), {}, display_path="posts/p.md")
    assert [g.location.line for g in post.galleries] == [7, 16]
    assert [i.location.line for i in post.images] == [8, 10, 18]
    assert post.galleries[1].columns == 1
    assert post.html.count("<!--genimg-gallery:") == 2
    code = "<pre><code class=\"language-python\">print('code stays code')\n</code></pre>"
    assert post.html.endswith(code)  # a plain code block stays one, its quotes as written


def test_errors_name_file_and_line(tmp_path: Path) -> None:
    text = "---\ntitle: T\n---\n\n```gallery\n- prompt: x\n  sead: 3\n```\n"
    with pytest.raises(ErrorList) as info:
        load_post(write(tmp_path, text), {}, display_path="posts/p.md")
    assert str(info.value) == "posts/p.md:7: unknown image key 'sead' (did you mean 'seed'?)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("---\ntitle: [oops\n---\n", "posts/p.md:2: invalid YAML"),
        ("---\ntitel: x\n---\n", "posts/p.md:2: unknown front matter key 'titel' (did you mean"),
        ("---\ntitle: x\n", "posts/p.md:1: front matter starts with '---' but never ends"),
        ("---\ndate: 30/10/2022\n---\n", "posts/p.md:2: date must look like 2022-10-30"),
        ("---\ndraft: maybe\n---\n", "posts/p.md:2: 'draft' must be true or false"),
        ("```gallery\n- prompt: x\n", "posts/p.md:1: gallery block is never closed"),
        ("text\n\n```gallery\n- prompt: [x\n```\n", "posts/p.md:4: invalid YAML"),
        ("```gallery\n[]\n```\n", "posts/p.md:1: a gallery needs a non-empty list of images"),
        ("```gallery\nimage: []\n```\n", "posts/p.md:2: unknown gallery key 'image'"),
    ],
)
def test_bad_posts(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(GenimgError) as info:
        load_post(write(tmp_path, text), {}, display_path="posts/p.md")
    assert str(info.value).startswith(expected), str(info.value)


def test_drafts_and_order(tmp_path: Path) -> None:
    posts_dir = tmp_path / "posts"
    posts_dir.mkdir()
    write(posts_dir, "---\ntitle: Old\n---\n", "2020-01-01-old.md")
    write(posts_dir, "---\ntitle: New\n---\n", "2021-01-01-new.md")
    write(posts_dir, "---\ntitle: Draft\ndraft: true\n---\n", "2022-01-01-draft.md")
    assert [p.title for p in load_posts(posts_dir, tmp_path, {})] == ["New", "Old"]
    assert len(load_posts(posts_dir, tmp_path, {}, drafts=True)) == 3


def test_duplicate_slugs_are_errors(tmp_path: Path) -> None:
    posts_dir = tmp_path / "posts"
    posts_dir.mkdir()
    write(posts_dir, "---\nslug: same\n---\n", "2020-01-01-a.md")
    write(posts_dir, "---\nslug: same\n---\n", "2020-01-02-b.md")
    with pytest.raises(ErrorList, match="two posts share the slug 'same'"):
        load_posts(posts_dir, tmp_path, {})


def test_two_images_on_one_line_are_refused(tmp_path: Path) -> None:
    text = "```gallery\n[{prompt: a}, {prompt: b}]\n```\n"
    with pytest.raises(GenimgError, match=r"posts/p\.md:2: put each image of a gallery on its own"):
        load_post(write(tmp_path, text), {}, display_path="posts/p.md")
