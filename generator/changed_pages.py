"""Render only the pages whose inputs changed since the last build.

A page's inputs are its shape (``pages.shape``: template and context, naming posts by
URL), the data of each post it read, and the context of every page: genimg's code, the
config, the theme's templates and preview mode. ``state.PageState`` remembers the
digest each page was written with, and the size, mtime and inode of its file.

Each page written is also hard-linked under the cache's ``derived/pages/`` (``KeptPages``),
so a new ``site/`` (``rm -rf site``, a clone with its cache) links back every page whose
inputs are unchanged instead of rendering it: the link is the very file the page was
written as (same inode, size and mtime as recorded), so nothing else is trusted.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from .atomic import link_atomic
from .config import SiteConfig
from .content import Post
from .figures import Figures
from .hashing import digest
from .output import walk
from .pages import WHOLE, Page, PageRenderer, shape, split_read, theme_dirs
from .state import PageState, PostCache, code_digest


def pages_context(config: SiteConfig, preview: bool, with_search: bool) -> str:
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


#: Post fields whose value alone is what a template that reads them gets
_FIELDS = frozenset({"title", "date", "slug", "url", "tags", "draft", "summary", "html",
                     "extra"})


def read_digest(post: Post, name: str, parsed: str | None, figures: Callable[[Post], str]
                ) -> str:
    """Digest of what a page got by reading field ``name`` of ``post`` (``parsed``: the
    digest of all the post's parsed data; ``figures``: a post's ``figures_digest``).
    Anything else a template may reach (``galleries``, ``images``, ``source``, a method)
    counts as the whole post."""
    if name in _FIELDS:
        return digest(name, getattr(post, name))
    if name == "figures":
        return digest(name, figures(post))
    return digest(WHOLE, parsed, str(post.source), figures(post))


def figures_digest(figures: Figures, post_cache: PostCache, post: Post) -> str:
    """Digest of what a post's figures show: the keys, web files and links they are
    made of (``Figures.digest``) and the pictures' settings (alt, caption, prompt...)."""
    return digest(figures.digest(post), post_cache.pictures(post))


class PageDigests:
    """Digest of a page's inputs: its shape, and what it read of each post (``parsed``
    and ``figures`` give a post's digests, see ``read_digest``)."""

    def __init__(self, posts: list[Post], parsed: Callable[[Post], str | None],
                 figures: Callable[[Post], str], context: str):
        self.context = context
        self.posts = {post.url: post for post in posts}
        self._parsed = parsed
        self._figures = figures
        self._of_read: dict[str, str] = {}
        self._shapes: dict[int, Any] = {}

    def read(self, read: str) -> str | None:
        if read not in self._of_read:
            url, name = split_read(read)
            post = self.posts.get(url)
            if post is None:
                return None
            self._of_read[read] = read_digest(post, name, self._parsed(post), self._figures)
        return self._of_read[read]

    def page(self, page: Page, reads: list[str]) -> str | None:
        """None when it cannot be told (a post is gone, a context value is opaque)."""
        posts = [self.read(read) for read in reads]
        if None in posts:
            return None
        try:
            context = shape(page.context, self._shapes)
        except TypeError:
            return None
        return digest(self.context, page.path, page.template, context, sorted(page.lazy),
                      reads, posts)


@dataclass
class ChangedPages:
    """What ``render_changed_pages`` did."""

    rendered: dict[str, bytes] = field(default_factory=dict)  # site path -> bytes to write
    kept: set[str] = field(default_factory=set)  # pages left as they are, or linked back
    #: path -> (digest, posts read) of each page rendered, to record once written
    inputs: dict[str, tuple[str | None, list[str]]] = field(default_factory=dict)
    linked: int = 0  # pages linked back from ``KeptPages``


def render_changed_pages(config: SiteConfig, posts: list[Post], post_cache: PostCache,
                         figures: Figures, preview: bool, present: Mapping[str, os.DirEntry],
                         page_state: PageState, with_search: bool = False) -> ChangedPages:
    """Render the pages that changed; link back those unchanged but missing from the site
    (``KeptPages``)."""
    renderer = PageRenderer(config, figures, preview=preview, search=with_search)
    digests = PageDigests(posts, lambda post: post_cache.digests.get(post.source),
                          functools.partial(figures_digest, figures, post_cache),
                          pages_context(config, preview, with_search))
    store = KeptPages(config.cache_dir)
    done = ChangedPages()
    for page in renderer.pages(posts):
        digest_of = functools.partial(digests.page, page)
        on_disk = present.get(page.path)
        if page_state.unchanged(page.path, digest_of, on_disk):
            done.kept.add(page.path)
        elif on_disk is None and page_state.unchanged(page.path, digest_of,
                                                      store.stat(page.path)):
            store.link_back(page.path, config.output_dir)
            done.kept.add(page.path)
            done.linked += 1
        else:
            done.rendered[page.path], reads = renderer.render(page)
            done.inputs[page.path] = (digests.page(page, reads), reads)
    return done


class KeptPages:
    """Each page as last written, hard-linked at its site path under ``derived/pages/``.

    Only a file whose size, mtime and inode are those ``PageState`` recorded for the
    page is linked back: a page edited in place in the site (same inode, new mtime) is
    rendered again, and so is one a power cut emptied (its size)."""

    def __init__(self, cache_dir: Path):
        self.cache_dir = cache_dir
        self.dir = cache_dir / "derived" / "pages"

    def stat(self, page: str) -> os.stat_result | None:
        try:
            return os.stat(self.dir / page)
        except OSError:
            return None

    def link_back(self, page: str, out: Path) -> None:
        link_atomic(self.dir / page, out / page)

    def keep(self, out: Path, written: Iterable[str], pages: Collection[str],
             before: Collection[str] | None = None) -> None:
        """Link the pages just ``written`` into the store; drop what is no page now
        (walking the store only if a page of ``before``, the last build's pages, is gone:
        None if unknown). Where the cache is on another filesystem than the site nothing
        is kept: a copy would never be the file the page was written as."""
        try:
            if os.stat(self.cache_dir).st_dev != os.stat(out).st_dev:
                return
        except OSError:
            return
        written = list(written)
        for page in written:
            link_atomic(out / page, self.dir / page)
        if not written:
            return  # no page rendered: none can have gone (a gone post changes the index)
        if before is not None and all(page in pages for page in before):
            return  # the store holds pages of earlier builds only: none is gone
        files, folders = walk(self.dir)
        for page in files:
            if page not in pages:
                with contextlib.suppress(FileNotFoundError):
                    (self.dir / page).unlink()
        for folder in sorted(folders, key=lambda f: f.count("/"), reverse=True):
            with contextlib.suppress(OSError):
                (self.dir / folder).rmdir()  # only if empty
