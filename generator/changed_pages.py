"""Render only the pages whose inputs changed since the last build.

A page's inputs are its shape (``pages.shape``: template and context, naming posts by
URL), the data of each post it read, and the context of every page: genimg's code, the
config, the theme's templates and preview mode. ``state.PageState`` remembers the
digest each page was written with.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping
from typing import Any

import jinja2

from .config import SiteConfig
from .content import Post
from .figures import Figures
from .hashing import digest
from .pages import Page, PageRenderer, shape, theme_dirs
from .state import PageState, PostCache, code_digest


def _pages_context(config: SiteConfig, preview: bool, with_search: bool) -> str:
    """Digest of what every page depends on: code, config, theme templates, mode."""
    templates: list[str | tuple[str, str]] = []
    for theme in theme_dirs(config):
        folder = theme / "templates"
        templates.append(str(folder))
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                templates.append((file.relative_to(folder).as_posix(),
                                  hashlib.sha256(file.read_bytes()).hexdigest()))
    return digest("pages", code_digest(), jinja2.__version__, repr(config), preview, templates,
                  with_search)


class _PageDigests:
    """Digest of a page's inputs: its shape, and the data of each post it read."""

    def __init__(self, posts: list[Post], post_cache: PostCache, figures: Figures,
                 context: str):
        self.context = context
        self.posts = {post.url: post for post in posts}
        self._post_cache = post_cache
        self._figures = figures
        self._of_post: dict[str, str] = {}
        self._shapes: dict[int, Any] = {}

    def post(self, url: str) -> str | None:
        if url not in self._of_post:
            post = self.posts.get(url)
            if post is None:
                return None
            self._of_post[url] = digest(self._post_cache.digests.get(post.source),
                                        str(post.source), self._figures.digest(post))
        return self._of_post[url]

    def page(self, page: Page, reads: list[str]) -> str | None:
        """None when it cannot be told (a post is gone, a context value is opaque)."""
        posts = [self.post(url) for url in reads]
        if None in posts:
            return None
        try:
            context = shape(page.context, self._shapes)
        except TypeError:
            return None
        return digest(self.context, page.path, page.template, context, sorted(page.lazy),
                      reads, posts)


def render_changed_pages(config: SiteConfig, posts: list[Post], post_cache: PostCache,
                         figures: Figures, preview: bool, present: Mapping[str, os.DirEntry],
                         page_state: PageState, with_search: bool = False
                         ) -> tuple[dict[str, bytes], set[str],
                                    dict[str, tuple[str | None, list[str]]]]:
    """Render the pages that changed: (path -> bytes, paths kept as they are, and
    path -> (digest, posts read) of each page rendered, to record once written)."""
    renderer = PageRenderer(config, figures, preview=preview, search=with_search)
    digests = _PageDigests(posts, post_cache, figures,
                           _pages_context(config, preview, with_search))
    rendered: dict[str, bytes] = {}
    kept: set[str] = set()
    inputs: dict[str, tuple[str | None, list[str]]] = {}
    for page in renderer.pages(posts):
        if page_state.unchanged(page.path, functools.partial(digests.page, page),
                                present.get(page.path)):
            kept.add(page.path)
            continue
        rendered[page.path], reads = renderer.render(page)
        inputs[page.path] = (digests.page(page, reads), reads)
    return rendered, kept, inputs
