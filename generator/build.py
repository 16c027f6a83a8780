"""One build, as the list of its stages: read and plan, find misses, render them,
write web images and pages, save the build state.

Everything that can fail on bad input (posts, specs, models) is checked before the
first byte is written, so an error leaves the cache and ``site/`` as they were.
Each rendered picture is stored the moment it is done, so an interrupted build
loses at most the picture in flight. A rebuild does only what changed: posts come
from ``state.PostCache`` unless their file changed, cache entries are looked up by
stat, ``site/`` is walked once, and pages whose inputs are unchanged are kept.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import output, search
from .cache import Cache
from .changed_pages import KeptPages, render_changed_pages
from .cluster import Where, preflight, worker_pool
from .config import SiteConfig, load_config
from .content import Post, load_posts
from .errors import GenimgError
from .figures import Figures
from .images import ImageWriter
from .misses import find_misses, frozen_error, verify_for_site
from .models import ModelResolver
from .pages import PageRenderer, static_files
from .patch import listing as patch_listing
from .patch import patch
from .plan import Plan, Planner
from .progress import Progress
from .rendering import Interrupted, render_misses
from .specs import ImageSpec
from .stamp import BuildStamp, Inputs, StampCheck, scan_inputs
from .state import PageState, PostCache

__all__ = ["BuildMemory", "BuildOptions", "BuildReport", "Interrupted", "LoadedSite",
           "Progress", "build_site", "load_site"]


@dataclass(frozen=True)
class BuildOptions:
    preview: bool = False  # placeholder pictures, no model
    frozen: bool = False  # render nothing; fail on any picture missing from the cache
    drafts: bool = False
    lock_wait: float = 0.0  # seconds to wait for another build of the same blog
    #: render on this many Ray workers (overrides genimg.yaml); 0: one per GPU, else one
    workers: int | None = None
    cluster: str | None = None  # on this Ray cluster (overrides genimg.yaml's render:)


@dataclass
class BuildReport:
    posts: int = 0
    pictures: int = 0
    rendered: int = 0
    repaired: list[str] = field(default_factory=list)  # corrupt cache entries re-rendered
    files_written: int = 0
    files_removed: int = 0
    site_bytes: int | None = None  # measured when pictures were written or files removed
    seconds: float = 0.0
    preview: bool = False
    unchanged: bool = False  # nothing read or written changed since the last build
    patched: bool = False  # only posts changed, and only pages were written (``patch``)


@dataclass
class BuildMemory:
    """What ``serve`` keeps between its rebuilds: each post as parsed and planned, by its
    file's content (``state.PostCache.memory``), so a save re-reads only that post."""

    posts: dict[str, dict] = field(default_factory=dict)
    context: str = ""  # the PostCache context they were parsed in

    def attach(self, post_cache: PostCache) -> None:
        if post_cache.context != self.context:  # genimg.yaml's defaults changed, say
            self.posts.clear()
            self.context = post_cache.context
        post_cache.memory = self.posts


@dataclass
class LoadedSite:
    """What a build knows after reading input and before touching any output."""

    config: SiteConfig
    posts: list[Post]
    plan: Plan
    resolver: ModelResolver
    images: list[ImageSpec]
    post_cache: PostCache


def load_site(root: Path, options: BuildOptions = BuildOptions(),
              memory: BuildMemory | None = None, config: SiteConfig | None = None
              ) -> LoadedSite:
    """Read config and posts and plan every picture; raises GenimgError on bad input.

    Posts unchanged since the last build come from its state; only ``build_site``
    (holding the lock) saves what was parsed anew.
    """
    config = config or load_config(root)
    if not config.posts_dir.is_dir():
        raise GenimgError(f"no posts folder: {config.posts_dir}", config.file or root)
    post_cache = PostCache(config.cache_dir, config.defaults, config.grid_limit)
    if memory is not None:
        memory.attach(post_cache)
    posts = load_posts(config.posts_dir, config.root, config.defaults, drafts=options.drafts,
                       loader=post_cache, grid_limit=config.grid_limit)
    resolver = ModelResolver(config, preview=options.preview)
    images = [image for post in posts for image in post.images]
    plan = Planner(config.root, resolver, memo=post_cache).plan(images)
    return LoadedSite(config, posts, plan, resolver, images, post_cache)


def build_site(root: Path, options: BuildOptions = BuildOptions(),
               progress: Progress | None = None,
               log: Callable[[str], None] = lambda message: None,
               memory: BuildMemory | None = None) -> BuildReport:
    """Build the blog at ``root`` into its output folder (``memory``: what an earlier
    build of this process learnt, see ``BuildMemory``)."""
    started = time.perf_counter()
    config = load_config(root)
    stamp = BuildStamp(config, options.preview, options.drafts)
    inputs = scan_inputs(config)  # before reading: an edit made meanwhile is seen next time
    check = stamp.check(inputs)
    if check is not None:
        written = 0 if not check.posts else _patched(config, options, stamp, check, inputs,
                                                     memory)
        if written is not None:
            return BuildReport(posts=check.report["posts"], pictures=check.report["pictures"],
                               preview=options.preview, unchanged=not check.posts,
                               patched=bool(check.posts), files_written=written,
                               seconds=time.perf_counter() - started)
    with _gc_paused():
        site = load_site(root, options, memory, config)
    report = BuildReport(posts=len(site.posts), preview=options.preview,
                         pictures=len(set(site.plan.shown_key.values())))
    if _where(config, options).wanted and not options.frozen:
        preflight(_where(config, options))
    cache = Cache(config.cache_dir)
    with cache.lock(wait=options.lock_wait):
        with _gc_paused():
            # Nobody else writes here now: what a killed build left half-written goes.
            cache.remove_temp_files()
            present, folders = output.walk(config.output_dir)
            output.check_owned(config.output_dir, present, config.file or root)
            verify_for_site(site.plan, cache, present, report.repaired, config.originals)
            misses = find_misses(site.plan, cache, report.repaired)
        for key in report.repaired:
            log(f"cache entry {key[:12]} was corrupt; rendering it again")
        if misses and options.frozen:
            raise frozen_error(site.plan, misses)
        if misses:
            with _workers(config, options) as pool:  # Ray workers, if asked for
                # Before rendering: an interrupted build must still leave the fingerprints
                # its pictures are keyed by, or a machine without the model could not find
                # them.
                site.resolver.save()
                report.rendered = render_misses(config, site.plan, cache, misses,
                                                options.preview, progress or Progress(), pool)
        site.resolver.save()
        with _gc_paused():
            _write_everything(site, cache, options, present, folders, report, log,
                              (stamp, inputs))
    report.seconds = time.perf_counter() - started
    return report


def _patched(config: SiteConfig, options: BuildOptions, stamp: BuildStamp,
             check: StampCheck, inputs: Inputs, memory: BuildMemory | None) -> int | None:
    """Only posts changed: ``patch`` the site if it can (files written), else None."""
    post_cache = PostCache(config.cache_dir, config.defaults, config.grid_limit)
    if memory is not None:
        memory.attach(post_cache)
    cache = Cache(config.cache_dir)
    with cache.lock(wait=options.lock_wait), _gc_paused():
        return patch(config, options.preview, stamp, check, inputs, post_cache, cache)


def _write_everything(site: LoadedSite, cache: Cache, options: BuildOptions,
                      present: dict[str, os.DirEntry], folders: list[str],
                      report: BuildReport, log: Callable[[str], None],
                      stamped: tuple[BuildStamp, Inputs]) -> None:
    """Web images, pages, static files, the search index into the site; then save the
    build state, the stamp last."""
    config, out = site.config, site.config.output_dir
    output.mark_owned(out)
    figures = Figures(site.posts, site.plan, cache, options.preview, config.originals,
                      config.originals_url)
    writer = ImageWriter(cache, out, present)
    pictures = writer.write(figures.webs.values())
    pictures += writer.write(figures.befores.values(), thumbs_only=True)
    pictures += writer.write_cards(figures.cards.values())
    # (Pagefind makes no index of nothing: a blog without posts has no search page yet)
    with_search = config.search and bool(site.posts) and search.available()
    if config.search and not with_search:
        log(search.MISSING_NOTE)
    page_state = PageState(config.cache_dir, "pages")
    changed = render_changed_pages(config, site.posts, site.post_cache, figures,
                                   options.preview, present, page_state, with_search)
    pages, kept, inputs = changed.rendered, changed.kept, changed.inputs
    report.files_written += changed.linked
    compared = set(pages) | kept  # files whose content a build checks, not only their name
    if with_search:
        index, kept_index = search.search_files(config, site.posts, figures,
                                                PageRenderer(config, figures).url, present)
        report.files_written += output.link_files(out, index)
        kept.update(index, kept_index)
    files: dict[str, bytes | Path] = {**pages, **static_files(config), **figures.sources}
    if options.preview:
        files[output.PREVIEW_MARKER] = output.PREVIEW_MARKER_TEXT
    files[output.SITE_MARKER] = output.SITE_MARKER_TEXT
    web_files = {rel for web in figures.webs.values() for rel in web.site_files}
    web_files.update(rel for web in figures.befores.values() for rel in web.thumb_files)
    web_files.update(web.card for web in figures.cards.values())
    written, report.files_removed = output.write_site(out, files, web_files | kept, present,
                                                      folders)
    report.files_written += pictures + written
    # Pictures are what brings a site near GitHub Pages' limits; measuring stats every
    # file (~0.3 s at 20,000), so only when pictures came or went, never on a text edit.
    if pictures or report.files_removed:
        report.site_bytes, largest, name = output.site_size(out)
        for warning in output.size_warnings(report.site_bytes, largest, name):
            log(warning)
    recorded = {path: (page_digest, reads) for path, (page_digest, reads) in inputs.items()
                if page_digest is not None}
    KeptPages(config.cache_dir).keep(out, recorded, kept | set(pages), page_state.pages_before())
    for path, (page_digest, reads) in recorded.items():
        page_state.record(path, page_digest, reads, os.stat(out / path))
    page_state.save()
    listing = patch_listing(site.posts, site.post_cache, figures)
    site.post_cache.save()
    cache.save_index()
    stamp, scanned = stamped
    compared.update(rel for rel in files if rel not in pages)
    stamp.save(scanned, site.resolver, site.plan, files.keys() | web_files | kept, compared,
               {"posts": report.posts, "pictures": report.pictures}, listing, with_search)


def _where(config: SiteConfig, options: BuildOptions) -> Where:
    """Ray workers if the command line or genimg.yaml's ``render:`` asks for them."""
    return Where(options.workers if options.workers is not None else config.render.workers,
                 options.cluster or config.render.cluster)


def _workers(config: SiteConfig, options: BuildOptions) -> contextlib.AbstractContextManager:
    where = _where(config, options)
    return worker_pool(config, where, options.preview) if where.wanted else contextlib.nullcontext()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cycle collector. Reading the build state makes half a million objects,
    and the collections they set off, each walking all of them, were a quarter of a
    rebuild. Never around rendering, whose models and tensors must be freed as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
