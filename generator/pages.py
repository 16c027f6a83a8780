"""Every page of the site from Jinja2 templates: index, posts, tags, archive, feed, sitemap.

Templates and static files come from the blog's own ``theme/`` first, then from the
default theme shipped with genimg, so a user overrides any single file by name.
All URLs go through ``url()``, so a site served under a sub-path keeps working.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

import generator

from .config import SiteConfig
from .content import GALLERY_PLACEHOLDER, Post, slugify


def default_theme_dir() -> Path:
    """The theme inside the wheel, or the repository's ``theme/`` in a source checkout."""
    package = Path(generator.__file__).parent
    shipped = package / "theme"
    return shipped if shipped.is_dir() else package.parent / "theme"


def theme_dirs(config: SiteConfig) -> list[Path]:
    """Theme folders, the user's first; the default theme is last."""
    dirs = [config.theme_dir] if config.theme_dir.is_dir() else []
    default = default_theme_dir()
    if default.resolve() not in [d.resolve() for d in dirs]:
        dirs.append(default)
    return dirs


def static_files(config: SiteConfig) -> dict[str, Path]:
    """``static/…`` site path -> source file, user files shadowing the default theme's."""
    files: dict[str, Path] = {}
    for theme in reversed(theme_dirs(config)):
        static = theme / "static"
        if static.is_dir():
            for file in static.rglob("*"):
                if file.is_file():
                    files["static/" + file.relative_to(static).as_posix()] = file
    return files


@dataclass(frozen=True)
class Tag:
    name: str
    slug: str
    posts: tuple[Post, ...]

    @property
    def url(self) -> str:
        return f"tags/{self.slug}/"


class PageRenderer:
    """Renders pages to bytes; knows nothing of caches or models."""

    def __init__(self, config: SiteConfig, figures: Mapping[Any, Mapping[str, Any]],
                 preview: bool = False):
        self.config = config
        self.figures = figures
        self.preview = preview
        loader = jinja2.FileSystemLoader([str(d / "templates") for d in theme_dirs(config)])
        self.env = jinja2.Environment(
            loader=loader,
            autoescape=jinja2.select_autoescape(["html", "xml"], default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.globals.update(
            url=self.url, abs_url=self.abs_url, site=config, preview=preview,
            genimg_version=generator.__version__,
            tag_url=lambda tag: f"tags/{slugify(str(tag))}/",
        )
        self.env.filters["isodate"] = _isodate

    def url(self, path: str = "") -> str:
        """Site-relative path -> URL path under ``base_url`` (percent-encoded)."""
        return self.config.base_path + quote(path.lstrip("/"), safe="/#?=&")

    def abs_url(self, path: str = "") -> str:
        base = self.config.base_url if "://" in self.config.base_url else ""
        return base.rstrip("/") + self.url(path) if base else self.url(path)

    def _render(self, template: str, **context: Any) -> bytes:
        return self.env.get_template(template).render(**context).encode("utf-8")

    def post_html(self, post: Post) -> str:
        """The post body with each gallery placeholder replaced by its rendered row."""
        html = post.html
        template = self.env.get_template("gallery.html")
        for index, gallery in enumerate(post.galleries):
            figures = [self.figures[image.location] for image in gallery.images]
            row = template.render(gallery=gallery, figures=figures, post=post)
            html = html.replace(GALLERY_PLACEHOLDER.format(index), row)
        return html

    def tags(self, posts: list[Post]) -> list[Tag]:
        by_slug: dict[str, list[Post]] = {}
        names: dict[str, str] = {}
        for post in posts:
            for tag in post.tags:
                slug = slugify(tag)
                names.setdefault(slug, tag)
                by_slug.setdefault(slug, []).append(post)
        return sorted((Tag(names[s], s, tuple(p)) for s, p in by_slug.items()),
                      key=lambda t: (-len(t.posts), t.name))

    def render_all(self, posts: list[Post]) -> dict[str, bytes]:
        """Every page: site path -> bytes."""
        pages: dict[str, bytes] = {}
        tags = self.tags(posts)
        per_page = self.config.per_page
        chunks = [posts[i:i + per_page] for i in range(0, len(posts), per_page)] or [[]]
        for number, chunk in enumerate(chunks, start=1):
            path = "index.html" if number == 1 else f"page/{number}/index.html"
            pager = {
                "number": number, "total": len(chunks),
                "prev": None if number == 1 else ("" if number == 2 else f"page/{number - 1}/"),
                "next": f"page/{number + 1}/" if number < len(chunks) else None,
            }
            pages[path] = self._render("index.html", posts=chunk, pager=pager, tags=tags,
                                       page_url="" if number == 1 else f"page/{number}/")
        for i, post in enumerate(posts):
            newer = posts[i - 1] if i > 0 else None
            older = posts[i + 1] if i + 1 < len(posts) else None
            pages[post.url + "index.html"] = self._render(
                "post.html", post=post, content=self.post_html(post), newer=newer, older=older,
                page_url=post.url,
            )
        for tag in tags:
            pages[tag.url + "index.html"] = self._render("tag.html", tag=tag, page_url=tag.url)
        pages["tags/index.html"] = self._render("tags.html", tags=tags, page_url="tags/")
        years: dict[int, list[Post]] = {}
        for post in posts:
            years.setdefault(post.date.year, []).append(post)
        pages["archive/index.html"] = self._render(
            "archive.html", years=sorted(years.items(), reverse=True), page_url="archive/")
        updated = max((p.date for p in posts), default=dt.date(2000, 1, 1))
        pages["feed.xml"] = self._render(
            "feed.xml", posts=posts[:20], updated=updated, content=self.post_html)
        urls = [""] + [p.url for p in posts] + [t.url for t in tags] + ["tags/", "archive/"]
        pages["sitemap.xml"] = self._render("sitemap.xml", urls=urls, posts=posts)
        pages["robots.txt"] = self._render("robots.txt")
        pages["404.html"] = self._render("404.html", page_url="404.html")
        return pages


def _isodate(value: dt.date) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).isoformat()
