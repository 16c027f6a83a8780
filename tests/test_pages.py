"""The built site as a visitor and a crawler see it: links, pictures, feeds, theme overrides.

Every page of the example blog is parsed and every URL in it must name a file inside
``site/``, for a site at the root and for a project site under a sub-path.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import feedparser
import pytest
from bs4 import BeautifulSoup
from PIL import Image

from generator.build import BuildOptions, build_site
from generator.config import load_config
from generator.content import load_posts
from generator.pages import PageRenderer

SUB_PATH = "https://user.github.io/blog/"


def configure(root: Path, **values: object) -> None:
    """Set top-level keys of the blog's ``genimg.yaml`` (replacing a key's line if present)."""
    path = root / "genimg.yaml"
    text = path.read_text(encoding="utf-8")
    for key, value in values.items():
        line = f"{key}: {value}"
        text, found = re.subn(rf"^{key}:.*$", line, text, flags=re.M)
        if not found:
            text = text.rstrip("\n") + "\n" + line + "\n"
    path.write_text(text, encoding="utf-8")


def build(root: Path) -> Path:
    build_site(root, BuildOptions(preview=True))
    return root / "site"


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One picture cache for the module, so each example build renders nothing new."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def example_site(example_blog: Path, shared_cache: Path) -> Path:
    """The example blog built as a project site under ``/blog/``."""
    configure(example_blog, base_url=SUB_PATH, cache_dir=shared_cache)
    return build(example_blog)


class Site:
    """A built site and the URL it is served at; resolves URLs to files inside it."""

    def __init__(self, root: Path, base_url: str):
        self.root = root
        split = urlsplit(base_url)
        self.origin = f"{split.scheme}://{split.netloc}" if split.netloc else ""
        self.base_path = split.path if split.path.endswith("/") else split.path + "/"

    def page_url(self, file: Path) -> str:
        rel = file.relative_to(self.root).as_posix()
        return self.base_path + rel.removesuffix("index.html")

    def file_for(self, url: str, page: str) -> Path | None:
        """The file a URL on ``page`` names, or None for another site's URL.

        Raises AssertionError for a URL of this site that escapes its base path.
        """
        split = urlsplit(urljoin(page, url))
        if split.path + "/" == self.base_path:  # the root without its slash: servers redirect
            split = split._replace(path=self.base_path)
        if split.scheme in ("mailto", "data", "javascript", "tel"):
            return None
        if split.netloc and f"{split.scheme}://{split.netloc}" != self.origin:
            return None
        assert split.path.startswith(self.base_path), f"{url!r} on {page} is outside the site"
        rel = unquote(split.path[len(self.base_path):])
        if rel == "" or rel.endswith("/"):
            rel += "index.html"
        return self.root / rel

    @cache  # noqa: B019 - one Site per test, a handful of pages
    def soup(self, file: Path) -> BeautifulSoup:
        return BeautifulSoup(file.read_text(encoding="utf-8"), "html.parser")

    def html_pages(self) -> list[Path]:
        return sorted(self.root.rglob("*.html"))

    def urls(self, file: Path) -> list[str]:
        """Every URL a browser would follow or fetch from a page."""
        soup = self.soup(file)
        found = [tag["href"] for tag in soup.find_all(["a", "link"], href=True)]
        found += [tag["src"] for tag in soup.find_all(["img", "script", "source"], src=True)]
        for tag in soup.find_all(["img", "source"], srcset=True):
            found += [entry.strip().split()[0] for entry in tag["srcset"].split(",")]
        return found

    def broken_urls(self) -> list[str]:
        """``page: url`` for each internal URL that names no file (or no such #anchor)."""
        broken = []
        for file in self.html_pages():
            page = self.page_url(file)
            for url in self.urls(file):
                target = self.file_for(url, page)
                if target is None:
                    continue
                if not target.is_file():
                    broken.append(f"{page}: {url}")
                    continue
                fragment = urlsplit(url).fragment
                if fragment and target.suffix == ".html" and not self.soup(target).find(
                        id=unquote(fragment)):
                    broken.append(f"{page}: {url} (no such anchor)")
        return broken


@pytest.mark.parametrize("base_url", ["https://qizhen.xyz/genimg/", "/", SUB_PATH, "/a/b/"])
def test_every_internal_url_resolves(example_blog: Path, shared_cache: Path, base_url: str):
    configure(example_blog, base_url=base_url, cache_dir=shared_cache)
    site = Site(build(example_blog), base_url)
    pages = site.html_pages()
    assert len(pages) >= 10
    assert site.broken_urls() == []
    checked = sum(len(site.urls(p)) for p in pages)
    assert checked > 200  # the checker really looked at pictures, srcsets, scripts, css
    for page in pages:  # absolute paths everywhere: a page works wherever it is served
        for url in site.urls(page):
            assert url.startswith(("/", "http://", "https://", "#")), (page, url)


def test_gallery_markup(example_site: Path):
    soup = BeautifulSoup((example_site / "posts/ai-images/index.html").read_text(), "html.parser")
    galleries = soup.select(".content .gallery")
    assert len(galleries) == 9
    assert all(len(g.select("figure.picture")) == 2 for g in galleries)
    for figure in soup.select("figure.picture"):
        link = figure.select_one("a.picture-link")
        assert link["href"].startswith("/blog/images/") and link["href"].endswith(".png")
        img = link.img
        assert img["loading"] == "lazy"
        assert img["width"] == "512" and img["height"] == "512"
        assert img["alt"].strip()
        assert img["src"].endswith(".webp") and "512w" in img["srcset"]
        assert img["sizes"].startswith("(max-width: 640px) 100vw")
        labels = [dt.get_text() for dt in figure.select("details dt")]
        for label in ("Prompt", "Seed", "Sampler", "Steps", "CFG scale", "Model", "Mode"):
            assert label in labels
    second = galleries[1].select("figure.picture")[1]
    assert "img2img" in second.get_text() and "denoising strength 0.6" in second.get_text()
    source = second.select_one("a.source-link")
    assert source.get_text() == "girl-smile"
    assert source["href"] == "/blog/posts/ai-images/#" + galleries[1].figure["id"]
    # Alt text: the prompt, unless the writer gave one; captions shown under the picture.
    assert galleries[1].img["alt"] == "high quality photo, beautiful young girl, red cheek, smile"
    assert galleries[5].select_one("figcaption .caption").get_text() == "二次元原图"


def test_sampler_grid_and_restore_details(example_site: Path):
    soup = BeautifulSoup((example_site / "posts/samplers/index.html").read_text(), "html.parser")
    gallery = soup.select_one(".gallery.grid")
    assert "--columns: 3" in gallery["style"]
    assert gallery.select_one(".gallery-caption").get_text().startswith("同一个种子")
    table = gallery.select_one("table.grid-table")
    assert table.select_one(".grid-axis").get_text() == "sampler"
    assert table.select_one(".grid-corner").get_text() == "steps"
    assert [th.get_text() for th in table.select("thead .grid-label")] == [
        "Euler a", "DPM++ 2M Karras", "DDIM"]
    assert [th.get_text() for th in table.select("tbody th[scope=row]")] == ["10", "20", "30"]
    cells = table.select("tbody td")
    assert len(cells) == 9 and all(td.select_one("figure.picture img[srcset]") for td in cells)
    middle = cells[4]
    assert (middle["data-x"], middle["data-y"]) == ("1", "1")
    assert middle.a["data-caption"] == "sampler: DPM++ 2M Karras · steps: 20"
    assert "DPM++ 2M Karras" in middle.get_text() and "20" in middle.select("dd")[3].get_text()
    soup = BeautifulSoup((example_site / "posts/face-restoration/index.html").read_text(),
                         "html.parser")
    restored = soup.select("figure.picture")[2]
    text = restored.get_text()
    assert "GFPGAN, weight 1" in text and "Seed" not in text
    assert restored.select_one("a.source-link")["href"].startswith("/blog/posts/")


def test_large_pictures_get_512_and_1024_thumbnails(make_blog):
    root = make_blog({"2024-01-01-big.md": """
        ---
        title: Big
        ---
        ```gallery
        - prompt: a wide landscape
          seed: 7
          width: 1536
          height: 1024
        ```
    """})
    site = build(root)
    img = BeautifulSoup((site / "posts/big/index.html").read_text(), "html.parser").select_one(
        ".picture img")
    entries = dict(reversed(e.split()) for e in img["srcset"].split(", "))
    assert sorted(entries) == ["1024w", "512w"]
    assert (img["width"], img["height"]) == ("1536", "1024")
    for width, url in entries.items():
        with Image.open(site / url.removeprefix("/")) as thumb:
            assert thumb.format == "WEBP" and f"{thumb.width}w" == width


def test_feed_is_valid_atom_with_absolute_links(example_site: Path):
    feed = feedparser.parse((example_site / "feed.xml").read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == "AI 生成的图片"
    assert feed.feed.link == SUB_PATH
    assert [e.title for e in feed.entries] == ["GFPGAN 修复前后", "同一个种子，不同的采样器",
                                               "AI 生成的一些图片"]
    site = Site(example_site, SUB_PATH)
    for entry in feed.entries:
        assert entry.link.startswith(SUB_PATH) and entry.id == entry.link
        assert site.file_for(entry.link, SUB_PATH).is_file()
        assert entry.published_parsed and entry.updated_parsed and entry.summary
        assert {t.term for t in entry.tags} >= {"计算机技术"}
        body = BeautifulSoup(entry.content[0].value, "html.parser")
        for img in body.find_all("img"):  # readers show pictures off-site: full URLs
            assert img["src"].startswith(SUB_PATH)
            assert site.file_for(img["src"], SUB_PATH).is_file()
    first = feed.entries[-1]
    assert first.published_parsed[:3] == (2022, 10, 30)


def test_sitemap_and_robots(example_site: Path):
    tree = ET.parse(example_site / "sitemap.xml")
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    locs = [loc.text for loc in tree.getroot().findall("s:url/s:loc", ns)]
    assert len(locs) == len(set(locs))
    site = Site(example_site, SUB_PATH)
    for loc in locs:
        assert loc.startswith(SUB_PATH), loc
        assert site.file_for(loc, SUB_PATH).is_file(), loc
    assert SUB_PATH + "posts/ai-images/" in locs
    assert SUB_PATH + "tags/%E7%BE%8E%E4%B8%BD%E5%9B%BE%E7%89%87/" in locs
    assert not any("404" in loc for loc in locs)
    robots = (example_site / "robots.txt").read_text()
    assert f"Sitemap: {SUB_PATH}sitemap.xml" in robots
    assert "Disallow: /" in robots  # a preview build asks crawlers to stay away


def test_cjk_tag_page_exists_and_is_linked(example_site: Path):
    page = example_site / "tags" / "美丽图片" / "index.html"
    soup = BeautifulSoup(page.read_text(), "html.parser")
    assert soup.h1.get_text(" ", strip=True) == "Tag: 美丽图片"
    assert {a.get_text() for a in soup.select(".post-list a")} == {
        "AI 生成的一些图片", "GFPGAN 修复前后"}
    href = "/blog/tags/%E7%BE%8E%E4%B8%BD%E5%9B%BE%E7%89%87/"
    for linking in ("index.html", "tags/index.html", "posts/ai-images/index.html"):
        soup = BeautifulSoup((example_site / linking).read_text(), "html.parser")
        assert soup.find("a", href=href), linking


def test_language_banner_and_archive(example_site: Path):
    index = BeautifulSoup((example_site / "index.html").read_text(), "html.parser")
    assert index.html["lang"] == "zh-CN"
    assert "Preview build" in index.select_one(".preview-banner").get_text()
    assert index.find("meta", attrs={"name": "robots"})["content"].startswith("noindex")
    assert index.find("link", rel="canonical")["href"] == SUB_PATH
    summaries = index.select("article.post-summary")
    assert len(summaries) == 3 and all(s.select_one(".summary").get_text() for s in summaries)
    assert summaries[0].select(".cover img")  # the first gallery, as a strip of thumbnails
    archive = BeautifulSoup((example_site / "archive/index.html").read_text(), "html.parser")
    assert [h.get("id") for h in archive.select("h2")] == ["y2023", "y2022"]
    not_found = BeautifulSoup((example_site / "404.html").read_text(), "html.parser")
    assert not_found.find("link", rel="stylesheet")["href"] == "/blog/static/style.css"
    assert not not_found.find("link", rel="canonical")


def test_pagination_one_post_per_page(example_blog: Path, shared_cache: Path):
    configure(example_blog, base_url=SUB_PATH, cache_dir=shared_cache, per_page=1)
    site_dir = build(example_blog)
    pages = [site_dir / p for p in ("index.html", "page/2/index.html", "page/3/index.html")]
    assert not (site_dir / "page/4").exists()
    titles = []
    for number, page in enumerate(pages, start=1):
        soup = BeautifulSoup(page.read_text(), "html.parser")
        titles += [a.get_text() for a in soup.select("article.post-summary h2 a")]
        assert f"Page {number} of 3" in soup.select_one(".pager").get_text()
        prev, nxt = soup.find("a", rel="prev"), soup.find("a", rel="next")
        assert (prev is None) == (number == 1) and (nxt is None) == (number == 3)
        if nxt:
            assert nxt["href"] == f"/blog/page/{number + 1}/"
        if prev:
            assert prev["href"] == ("/blog/" if number == 2 else f"/blog/page/{number - 1}/")
    assert titles == ["GFPGAN 修复前后", "同一个种子，不同的采样器", "AI 生成的一些图片"]
    assert Site(site_dir, SUB_PATH).broken_urls() == []


def test_theme_overrides_templates_and_static_files(example_blog: Path, shared_cache: Path):
    configure(example_blog, cache_dir=shared_cache)
    theme = example_blog / "theme"
    (theme / "templates").mkdir(parents=True)
    (theme / "static" / "img").mkdir(parents=True)
    (theme / "templates" / "tag.html").write_text(
        "<!doctype html><p class=mine>{{ tag.name }}</p>\n", encoding="utf-8")
    (theme / "templates" / "post.html").write_text(
        '{% extends "default/post.html" %}{% block title %}MINE {{ post.title }}{% endblock %}',
        encoding="utf-8")
    (theme / "static" / "style.css").write_text("body { color: red }\n", encoding="utf-8")
    (theme / "static" / "img" / "logo.svg").write_text("<svg/>", encoding="utf-8")
    site = build(example_blog)
    tag_page = (site / "tags/美丽图片/index.html").read_text()
    assert '<p class=mine>美丽图片</p>' in tag_page
    post = BeautifulSoup((site / "posts/samplers/index.html").read_text(), "html.parser")
    assert post.title.get_text() == "MINE 同一个种子，不同的采样器"
    assert post.select(".gallery figure")  # the rest of the default post template
    assert (site / "static/style.css").read_text() == "body { color: red }\n"
    assert (site / "static/img/logo.svg").is_file()
    assert "lightbox" in (site / "static/genimg.js").read_text()  # not overridden: default
    # Taking the override away brings the default back on the next build.
    (theme / "static" / "style.css").unlink()
    build(example_blog)
    assert "prefers-color-scheme" in (site / "static/style.css").read_text()


NASTY = "<script>alert(1)</script> & \"quotes\""


def test_text_is_escaped_everywhere(make_blog):
    root = make_blog({"2024-01-01-x.md": f"""
        ---
        title: '{NASTY.replace("'", "''")}'
        tags: ['<b>bold</b>']
        summary: '{NASTY}'
        ---
        Hello.

        ```gallery
        - prompt: '{NASTY}'
          negative_prompt: '<img src=x onerror=alert(2)>'
          caption: '<i>cap</i>'
          seed: 1
        ```
    """})
    site = build(root)
    for page in site.rglob("*.html"):
        soup = BeautifulSoup(page.read_text(), "html.parser")
        scripts = ["/static/genimg.js"] + (["/static/search.js"] * (page.parent.name == "search"))
        assert [s.get("src") for s in soup.find_all("script")] == scripts, page
        assert not soup.find_all(["b", "i"]) and not soup.select("img[onerror]"), page
    post = BeautifulSoup((site / "posts/x/index.html").read_text(), "html.parser")
    assert post.h1.get_text() == NASTY
    assert post.select_one(".picture img")["alt"] == NASTY
    assert post.select_one("dd.prompt").get_text() == NASTY
    assert post.select_one(".caption").get_text() == "<i>cap</i>"
    feed = feedparser.parse((site / "feed.xml").read_bytes())
    assert not feed.bozo and feed.entries[0].title == NASTY
    ET.parse(site / "sitemap.xml")


def test_renderer_without_preview_and_default_language(make_blog):
    """A real (non-preview) build: no banner, crawlers welcome; language defaults to en."""
    root = make_blog({"2024-03-05-plain.md": "---\ntitle: Plain\n---\nJust *words*.\n"},
                     config="title: T\nbase_url: https://example.org/\n")
    config = load_config(root)
    posts = load_posts(config.posts_dir, root, config.defaults)
    pages = PageRenderer(config, {}, preview=False).render_all(posts)
    index = BeautifulSoup(pages["index.html"], "html.parser")
    assert index.html["lang"] == "en"
    assert not index.select(".preview-banner") and not index.find("meta", attrs={"name": "robots"})
    assert "Allow: /" in pages["robots.txt"].decode()
    assert index.find("link", rel="canonical")["href"] == "https://example.org/"
    post = BeautifulSoup(pages["posts/plain/index.html"], "html.parser")
    assert post.select_one(".content em").get_text() == "words"
    assert not post.select(".pager")  # a lone post has no newer/older links
