"""What the gallery gives a reader besides the pictures, as built files: the search index
(or a note without Pagefind), copy data, slider pictures, share cards, placeholders."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml
from bs4 import BeautifulSoup
from PIL import Image

from generator import search
from generator.build import BuildOptions, build_site
from generator.errors import GenimgError
from generator.images import placeholder_uri
from tests.helpers import MakeBlog

POST = """
    ---
    title: Faces 人像
    tags: [portraits]
    ---
    Two faces.

    ```gallery
    compare: {compare}
    images:
      - id: raw
        prompt: an old fisherman, 渔夫
        seed: 5
        restore_faces: true
      - mode: img2img
        from: raw
        prompt: an old fisherman, anime
        seed: 6
        strength: 0.5
    ```
"""
CONFIG = "title: Test\nbase_url: https://example.org/sub/\n"


def _blog(make_blog: MakeBlog, compare: str = "side-by-side", config: str = CONFIG) -> Path:
    return make_blog({"2024-01-01-faces.md": POST.format(compare=compare)}, config=config)


def _build(root: Path, log: list[str] | None = None) -> Path:
    build_site(root, BuildOptions(preview=True), log=(log if log is not None else []).append)
    return root / "site"


def _soup(site: Path, page: str) -> BeautifulSoup:
    return BeautifulSoup((site / page).read_text(encoding="utf-8"), "html.parser")


def test_copy_data_is_the_png_infotext_and_a_spec_to_paste(make_blog: MakeBlog):
    site = _build(_blog(make_blog))
    soup = _soup(site, "posts/faces/index.html")
    figure = soup.select("figure.picture")[0]
    copies = {b["data-what"]: b["data-copy"] for b in figure.select("button.copy")}
    png = site / unquote(figure.select_one("a.download")["href"]).removeprefix("/sub/")
    with Image.open(png) as image:
        assert copies["Generation data"] == image.info["parameters"]
    assert copies["Prompt"] == "an old fisherman, 渔夫"
    spec = yaml.safe_load(copies["Spec"])
    assert spec[0]["prompt"] == "an old fisherman, 渔夫" and spec[0]["seed"] == 5
    assert spec[0]["restore_faces"] is True and spec[0]["id"] == "raw"
    feed = (site / "feed.xml").read_text(encoding="utf-8")  # no buttons in feed readers
    assert "data-copy" not in feed and "compare-range" not in feed
    assert "data:image/svg" not in feed


def test_each_picture_made_from_another_has_its_before(make_blog: MakeBlog):
    site = _build(_blog(make_blog))
    figures = _soup(site, "posts/faces/index.html").select("figure.picture")
    befores = [f.select_one(".compare-before") for f in figures]
    assert all(b is not None for b in befores)
    assert "face restoration" in befores[0]["alt"] and "Source" in befores[1]["alt"]
    # the unrestored picture: a thumbnail only; the img2img's source: the first figure
    first = figures[0].select_one(".picture-link img")["src"]
    assert befores[1]["src"] == first and befores[0]["src"] != first
    assert (site / unquote(befores[0]["src"]).removeprefix("/sub/")).is_file()
    assert len(list((site / "images").glob("*.png"))) == 2
    assert figures[0].get("data-compare") is None
    assert figures[0].select_one(".compare")["hidden"] is not None


def test_the_gallery_option_makes_the_slider_the_default(make_blog: MakeBlog):
    site = _build(_blog(make_blog, compare="slider"))
    figures = _soup(site, "posts/faces/index.html").select("figure.picture")
    assert [f.get("data-compare") for f in figures] == ["slider", "slider"]


def test_compare_takes_only_its_two_values(make_blog: MakeBlog):
    root = _blog(make_blog, compare="slide")
    with pytest.raises(GenimgError, match=r"compare.*'slide'|'slide'.*compare"):
        _build(root)


def test_share_cards_are_absolute_and_sized(make_blog: MakeBlog):
    site = _build(_blog(make_blog))
    for page in ("posts/faces/index.html", "index.html", "tags/index.html"):
        meta = {m.get("property") or m.get("name"): m["content"]
                for m in _soup(site, page).select("meta[property], meta[name^=twitter]")}
        assert meta["og:image"].startswith("https://example.org/sub/images/")
        assert meta["og:url"].startswith("https://example.org/sub/")
        with Image.open(site / unquote(meta["og:image"]).removeprefix(
                "https://example.org/sub/")) as card:
            assert card.size == (int(meta["og:image:width"]), int(meta["og:image:height"]))
            assert card.size == (1200, 630) and card.format == "JPEG"
    post = {m["property"]: m["content"] for m in
            _soup(site, "posts/faces/index.html").select("meta[property^=og]")}
    assert post["og:type"] == "article" and post["og:title"] == "Faces 人像"


def test_no_share_tags_without_a_host_in_base_url(make_blog: MakeBlog):
    site = _build(_blog(make_blog, config="title: Test\nbase_url: /\n"))
    assert not _soup(site, "posts/faces/index.html").select("meta[property^=og]")


def test_placeholders_are_inline_and_tiny(make_blog: MakeBlog):
    site = _build(_blog(make_blog))
    img = _soup(site, "posts/faces/index.html").select_one(".picture-link img")
    style = img["style"]
    assert style.startswith('background-image: url("data:image/svg+xml')
    assert len(style) < 800 and img["width"] == "512" and img["height"] == "512"
    webp = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)", unquote(style)).group(1))
    with Image.open(io.BytesIO(webp)) as tiny:
        assert tiny.format == "WEBP" and max(tiny.size) <= 12
    assert "viewBox='0 0 480 240'" in unquote(placeholder_uri(webp, 1024, 512))


def test_without_pagefind_the_build_says_so_and_has_no_search(make_blog: MakeBlog,
                                                               monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(search, "available", lambda: False)
    log: list[str] = []
    site = _build(_blog(make_blog), log)
    assert log == [search.MISSING_NOTE]
    assert not (site / "search").exists() and not (site / "pagefind").exists()
    assert not _soup(site, "index.html").select("form[role=search]")


def test_a_blog_without_posts_builds_without_a_search_page(make_blog: MakeBlog):
    root = make_blog({})
    log: list[str] = []
    site = _build(root, log)
    assert (site / "index.html").is_file() and not (site / "search").exists()


def test_search_off_in_the_config_is_silent(make_blog: MakeBlog):
    log: list[str] = []
    site = _build(_blog(make_blog, config=CONFIG + "search: false\n"), log)
    assert log == [] and not (site / "pagefind").exists()


@pytest.mark.skipif(not search.available(), reason="needs Pagefind: pip install genimg[search]")
def test_the_index_is_kept_until_its_records_change(make_blog: MakeBlog,
                                                    monkeypatch: pytest.MonkeyPatch):
    root = _blog(make_blog)
    site = _build(root)
    files = sorted(p.relative_to(site) for p in (site / "pagefind").rglob("*") if p.is_file())
    assert any(p.suffix == ".pf_fragment" for p in files)
    assert not any("-ui." in p.name for p in files)  # Pagefind's own UIs are left out
    assert (site / "search/index.html").is_file()

    def fail(*args: object) -> None:
        raise AssertionError("the index was made again")

    monkeypatch.setattr(search, "index_files", fail)
    _build(root)  # unchanged: kept as it is
    assert sorted(p.relative_to(site) for p in (site / "pagefind").rglob("*")
                  if p.is_file()) == files
    monkeypatch.undo()
    post = root / "posts" / "2024-01-01-faces.md"
    post.write_text(post.read_text().replace("anime", "watercolor"), encoding="utf-8")
    _build(root)
    now = sorted(p.relative_to(site) for p in (site / "pagefind").rglob("*") if p.is_file())
    assert now != files and len(now) == len(files)  # a new index; the old chunks pruned


@pytest.mark.skipif(not search.available(), reason="needs Pagefind: pip install genimg[search]")
def test_a_new_site_links_the_index_kept_in_the_cache(make_blog: MakeBlog,
                                                      monkeypatch: pytest.MonkeyPatch):
    import shutil

    root = _blog(make_blog)
    site = _build(root)
    built = {p.relative_to(site): p.read_bytes() for p in (site / "pagefind").rglob("*")
             if p.is_file()}
    kept = root / ".genimg" / "derived" / "search"
    bundles = [p for p in kept.iterdir() if p.is_dir()]
    assert len(bundles) == 1 and (kept / f"{bundles[0].name}.files").is_file()

    def fail(*args: object) -> None:
        raise AssertionError("the index was made again")

    shutil.rmtree(site)  # a fresh clone with its cache, or rm -rf site
    monkeypatch.setattr(search, "index_files", fail)
    _build(root)
    again = {p.relative_to(site): p for p in (site / "pagefind").rglob("*") if p.is_file()}
    assert {rel: p.read_bytes() for rel, p in again.items()} == built
    entry = again[Path("pagefind/pagefind-entry.json")]
    assert entry.stat().st_ino == (bundles[0] / "pagefind-entry.json").stat().st_ino

    shutil.rmtree(site)  # a damaged bundle (emptied by a power cut) is made again
    (bundles[0] / "pagefind-entry.json").write_bytes(b"")
    monkeypatch.undo()
    _build(root)
    assert {p.relative_to(site): p.read_bytes() for p in (site / "pagefind").rglob("*")
            if p.is_file()} == built

    post = root / "posts" / "2024-01-01-faces.md"  # new records: a new bundle, the old gone
    post.write_text(post.read_text().replace("anime", "watercolor"), encoding="utf-8")
    _build(root)
    now = sorted(p.name for p in kept.iterdir())
    assert len(now) == 2 and bundles[0].name not in now[0]


def test_records_hold_what_a_reader_searches_for(make_blog: MakeBlog):
    from generator.build import load_site
    from generator.cache import Cache
    from generator.figures import Figures

    root = _blog(make_blog)
    _build(root)
    loaded = load_site(root, BuildOptions(preview=True))
    figures = Figures(loaded.posts, loaded.plan, Cache(loaded.config.cache_dir), True)
    found = search.records(loaded.posts, figures, lambda p: "/sub/" + p)
    pictures = [r for r in found if r["meta"]["kind"] == "picture"]
    assert len(pictures) == 2 and len(found) == 3
    first = pictures[0]
    assert first["url"].startswith("/sub/posts/faces/#img-")
    for word in ("fisherman", "渔夫", "5", "Euler a", "default", "portraits", "Faces 人像"):
        assert word in first["content"]
    assert first["meta"]["image"].startswith("/sub/images/") and first["meta"]["preview"]
