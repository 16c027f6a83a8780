"""A build of a few edited posts from the last complete build's stamp (issue 20: a
one-post edit of a 1000-post, 10,000-picture blog in under 0.3 s).

When the stamp finds that only posts changed (``stamp.check``: the config, theme,
models and every output are as the last complete build left them) and each changed
post kept its date, slug, tags, draft flag and pictures, then no picture, web file or
search record can differ: only pages can, and only those that read a field of the
post that changed (``pages.read_of``: the post's own page and the feed for a prose
edit). ``patch`` renders just those. The other posts are known by the listing the
stamp keeps (title, date, tags, summary: what listings show), their bodies and
galleries are read from their build state only if a page shows them, and their
figures come from the state too (``Figures.stored``), so no picture is planned,
looked up or checked. Anything else (a new or removed post, a changed picture, a
changed title under search, state that turns out missing) is a full build, which
stays the reference: a patched site is byte for byte the site a full build gives.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .atomic import file_signature, write_if_changed
from .cache import Cache
from .changed_pages import KeptPages, PageDigests, figures_digest, pages_context, read_digest
from .config import SiteConfig
from .content import Post
from .errors import GenimgError, StaleState
from .figures import Figures, StoredFigures
from .pages import PageRenderer, split_read
from .stamp import BuildStamp, Inputs, StampCheck
from .state import PageState, PostCache, pictures_of, post_from_record

#: A listing row's fields, in order
_FILE, _TITLE, _DATE, _SLUG, _TAGS, _DRAFT, _SUMMARY, _EXTRA, _PARSED, _FIGURES = range(10)


def listing(posts: list[Post], post_cache: PostCache, figures: Figures) -> dict[str, list]:
    """Each post, newest first, as ``patch`` knows it: post file (as scanned) -> row;
    and each post's figures kept in its state. Empty when a post's data is no JSON (it
    is parsed on every build, so there is no state to patch from)."""
    rows: dict[str, list] = {}
    for post in posts:
        file = post_cache.files[post.source]
        if post_cache.entry(file) is None:
            return {}
        shown = figures_digest(figures, post_cache, post)
        post_cache.remember_figures(file, shown, functools.partial(figures.stored, post))
        rows[str(post.source)] = _row(post, file, post_cache.digests[post.source], shown)
    return rows


def _row(post: Post, file: str, parsed: str, figures_digest: str) -> list:
    return [file, post.title, post.date.isoformat(), post.slug, list(post.tags), post.draft,
            post.summary, post.extra, parsed, figures_digest]


class _StoredPost(Post):
    """A post as the last build listed it; its body and galleries are read from its
    build state when first used."""

    def __getattr__(self, name: str) -> Any:
        if name == "source":
            self.source = Path(self.__dict__["_path"])
            return self.source
        if name not in ("html", "galleries"):
            raise AttributeError(name)
        whole = self.__dict__["_load"]()
        self.__dict__.update(html=whole.html, galleries=whole.galleries)
        return self.__dict__[name]


class _Stored:
    """The posts of the last build's listing (by post file, as scanned), and what their
    build state holds."""

    def __init__(self, post_cache: PostCache, rows: Mapping[str, list]):
        self.post_cache = post_cache
        self.rows = dict(rows)
        self.entries: dict[str, dict[str, Any]] = {}

    def entry(self, path: str) -> dict[str, Any]:
        """The post's state, which must be what its listing row was made from."""
        if path not in self.entries:
            entry = self.post_cache.stored(self.rows[path][_FILE])
            if entry.get("digest") != self.rows[path][_PARSED]:
                raise StaleState(path)
            self.entries[path] = entry
        return self.entries[path]

    def post(self, path: str) -> Post:
        row = self.rows[path]
        post = object.__new__(_StoredPost)
        post.__dict__.update(
            _path=path, title=row[_TITLE], date=dt.date.fromisoformat(row[_DATE]),
            slug=row[_SLUG], tags=tuple(row[_TAGS]), draft=row[_DRAFT], summary=row[_SUMMARY],
            extra=row[_EXTRA], _parsed=row[_PARSED], _load=functools.partial(self._whole, path))
        return post

    def _whole(self, path: str) -> Post:
        try:
            return post_from_record(Path(path), self.rows[path][_FILE],
                                    self.entry(path)["post"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StaleState(path) from exc

    def figures(self, post: Post) -> list[dict[str, Any]]:
        """The post's figures as its state keeps them (``Figures.stored``)."""
        path = post.__dict__.get("_path") or str(post.source)
        kept = self.entry(path).get("figures")
        if not (isinstance(kept, list) and len(kept) == 2
                and kept[0] == self.rows[path][_FIGURES]):
            raise StaleState(path)
        return kept[1]

    def reread(self, path: str, last: Post) -> Post | None:
        """A changed post as it is now: ``last`` if only its stat changed; None if more
        changed than its pages show (its date, slug, tags, draft flag or pictures)."""
        file = self.rows[path][_FILE]
        try:
            before = self.entry(path)
            post = self.post_cache.load(Path(path), file)
        except GenimgError:
            return None  # a full build reports it, with every other post's errors
        entry = self.post_cache.entry(file)
        if entry is None:
            return None
        if entry["digest"] == before["digest"]:
            return last
        if ((post.date, post.slug, post.tags, post.draft)
                != (last.date, last.slug, last.tags, last.draft)
                or pictures_of(entry["post"]) != pictures_of(before["post"])):
            return None
        _ = last.html  # read from the last build's state, before it gives way to this one
        self.post_cache.carry(file, before)
        self.entries[path] = entry
        self.rows[path] = _row(post, file, entry["digest"], self.rows[path][_FIGURES])
        return post


def patch(config: SiteConfig, preview: bool, stamp: BuildStamp, check: StampCheck,
          inputs: Inputs, post_cache: PostCache, cache: Cache) -> int | None:
    """Bring the site up to date with the posts ``check`` found changed (call holding
    the cache lock); the number of files written, or None if a full build is needed."""
    try:
        return _patch(config, preview, stamp, check, inputs, post_cache, cache)
    except StaleState:
        return None


def _patch(config: SiteConfig, preview: bool, stamp: BuildStamp, check: StampCheck,
           inputs: Inputs, post_cache: PostCache, cache: Cache) -> int | None:
    if file_signature(stamp.path) != check.signature:
        return None  # another build finished meanwhile
    stored = _Stored(post_cache, check.stamp["listing"])
    posts = {path: stored.post(path) for path in stored.rows}
    edited: dict[str, tuple[Post, Post]] = {}  # url -> (as last built, as now)
    for path in check.posts:
        now = stored.reread(path, posts[path])
        if now is None:
            return None
        if now is not posts[path]:
            edited[now.url] = (posts[path], now)
            posts[path] = now
    with_search = bool(check.stamp["search"])
    if with_search and any((a.title, a.summary) != (b.title, b.summary)
                           for a, b in edited.values()):
        return None  # the search records show them: Pagefind runs again
    written = _write_pages(config, preview, with_search, list(posts.values()), edited,
                           stored, cache) if edited else []
    if written is None:
        return None
    post_cache.save(prune=False)
    stamp.refresh(check, inputs, stored.rows, written)
    return len(written)


class _ChangedReads:
    """Whether a page read a field of an edited post that changed."""

    def __init__(self, edited: Mapping[str, tuple[Post, Post]], rows: Mapping[str, list]):
        self.edited = edited
        self.rows = rows
        self._changed: dict[str, bool] = {}

    def any(self, reads: list[str]) -> bool:
        # Reads end in a post's URL, which has neither ':' nor a line break (a slug).
        try:
            listed = "\n".join(reads) + "\n"
        except TypeError as exc:  # the page's record is damaged
            raise StaleState("pages") from exc
        return any(f":{url}\n" in listed and any(self._read_changed(read) for read in reads
                                                  if read.endswith(f":{url}"))
                   for url in self.edited)

    def _read_changed(self, read: str) -> bool:
        if read not in self._changed:
            url, name = split_read(read)
            before, now = self.edited[url]
            row = self.rows[url]
            figures = lambda post: row[_FIGURES]  # noqa: E731 (the same before and now)
            self._changed[read] = (read_digest(before, name, before.__dict__["_parsed"], figures)
                                   != read_digest(now, name, row[_PARSED], figures))
        return self._changed[read]


def _write_pages(config: SiteConfig, preview: bool, with_search: bool, posts: list[Post],
                 edited: Mapping[str, tuple[Post, Post]], stored: _Stored, cache: Cache
                 ) -> list[str] | None:
    """Render the pages that read what changed of the ``edited`` posts; those written,
    or None if the pages are not those the last build recorded."""
    out = config.output_dir
    rows = stored.rows
    by_file = {rows[path][_FILE]: post for path, post in zip(rows, posts, strict=True)}
    renderer = PageRenderer(config, StoredFigures(by_file, stored.figures, cache),
                            preview=preview, search=with_search)
    page_state = PageState(config.cache_dir, "pages")
    pages = renderer.pages(posts)
    before = page_state.pages_before()
    if before is None or {page.path for page in pages} != before:
        return None
    by_url = {post.url: rows[path] for path, post in zip(rows, posts, strict=True)}
    digests = PageDigests(posts, lambda post: by_url[post.url][_PARSED],
                          lambda post: by_url[post.url][_FIGURES],
                          pages_context(config, preview, with_search))
    changed = _ChangedReads(edited, by_url)
    rendered: list[str] = []
    written: list[str] = []
    for page in pages:
        reads = page_state.reads(page.path)
        if reads is None:
            return None
        if not changed.any(reads):  # then the page's digest is as recorded
            page_state.keep(page.path)
            continue
        data, reads = renderer.render(page)
        if write_if_changed(out / page.path, data, durable=False):
            written.append(page.path)
        page_digest = digests.page(page, reads)
        if page_digest is None:
            return None
        page_state.record(page.path, page_digest, reads, os.stat(out / page.path))
        rendered.append(page.path)
    KeptPages(config.cache_dir).keep(out, rendered, before, before)
    page_state.save()
    return written
