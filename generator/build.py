"""One build: posts -> plan -> render misses -> web images -> pages -> ``site/``.

Everything that can fail on bad input (posts, specs, models) is checked before the
first byte is written, so an error leaves the cache and ``site/`` as they were.
Each rendered picture is stored the moment it is done, so an interrupted build
loses at most the picture in flight.

A rebuild does only what changed: posts come from ``state.PostCache`` unless their
file changed, cache entries are looked up by stat (``Cache.brief``), ``site/`` is
walked once, and a page is rendered only if a digest of everything it was made from
differs from the one ``state.PageState`` recorded (or its file did).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import io
import os
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

import generator

from .atomic import is_temp_file, write_if_changed
from .cache import Brief, Cache, CorruptEntry
from .config import SiteConfig, load_config
from .content import Post, load_posts
from .errors import ErrorList, GenimgError
from .images import ImageWriter, WebImage, stem_for
from .metadata import format_infotext, png_bytes
from .models import ModelResolver, model_missing_error
from .pages import Page, PageRenderer, shape, static_files, theme_dirs
from .plan import Node, Plan, Planner
from .render.base import Renderer, RenderTask
from .specs import ImageSpec, Location
from .state import PageState, PostCache, code_digest, digest

if TYPE_CHECKING:
    from PIL import Image

PREVIEW_MARKER = ".genimg-preview"
#: Marks an output folder as genimg's: files in it that a build did not write get removed,
#: so a folder without the mark (hand-written docs/, say) is never pruned.
SITE_MARKER = ".genimg-site"
SITE_MARKER_TEXT = b"Built by genimg; files here that a build did not write are removed.\n"


class Interrupted(GenimgError):
    """Ctrl-C between pictures: what was rendered is saved."""


@dataclass(frozen=True)
class BuildOptions:
    preview: bool = False  # placeholder pictures, no model
    frozen: bool = False  # render nothing; fail on any picture missing from the cache
    drafts: bool = False
    lock_wait: float = 0.0  # seconds to wait for another build of the same blog


@dataclass
class BuildReport:
    posts: int = 0
    pictures: int = 0
    rendered: int = 0
    repaired: list[str] = field(default_factory=list)  # corrupt cache entries re-rendered
    files_written: int = 0
    files_removed: int = 0
    seconds: float = 0.0
    preview: bool = False


class Progress:
    """What the build reports while rendering; the CLI gives a rich progress bar."""

    def start(self, pictures: int, steps: int) -> None: ...
    def advance_steps(self, steps: int) -> None: ...
    def picture_done(self, node: Node) -> None: ...
    def stop(self) -> None: ...


@dataclass
class LoadedSite:
    """What a build knows after reading input and before touching any output."""

    config: SiteConfig
    posts: list[Post]
    plan: Plan
    resolver: ModelResolver
    images: list[ImageSpec]
    post_cache: PostCache


def load_site(root: Path, options: BuildOptions = BuildOptions()) -> LoadedSite:
    """Read config and posts and plan every picture; raises GenimgError on bad input.

    Posts unchanged since the last build come from its state; only ``build_site``
    (holding the lock) saves what was parsed anew.
    """
    config = load_config(root)
    if not config.posts_dir.is_dir():
        raise GenimgError(f"no posts folder: {config.posts_dir}", config.file or root)
    post_cache = PostCache(config.cache_dir, config.defaults)
    posts = load_posts(config.posts_dir, config.root, config.defaults, drafts=options.drafts,
                       loader=post_cache)
    resolver = ModelResolver(config, preview=options.preview)
    images = [image for post in posts for image in post.images]
    plan = Planner(config.root, resolver).plan(images)
    return LoadedSite(config, posts, plan, resolver, images, post_cache)


def _versions(preview: bool) -> dict[str, str]:
    import importlib.metadata  # here: slow to import, and only a render needs it

    versions = {"genimg": generator.__version__}
    if not preview:
        for package in ("torch", "diffusers", "transformers", "gfpgan"):
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                versions[package] = importlib.metadata.version(package)
    return versions


def infotext_for(node: Node, plan: Plan, preview: bool = False) -> str:
    """The A1111 ``parameters`` text of a node (restore steps inherit their parent's).

    Preview pictures say so, so no tool mistakes a placeholder for a rendering.
    """
    text = _infotext(node, plan)
    return text + ", Preview: genimg placeholder" if preview else text


def _infotext(node: Node, plan: Plan) -> str:
    spec = node.spec
    if spec.mode == "restore":
        parent = plan.nodes.get(node.parent) if node.parent else None
        base = parent.spec if parent else None
        params: dict[str, Any] = {}
        if parent is not None and base is not None and base.mode != "restore":
            model = parent.model
            params = _diffusion_params(base, model.name if model else base.model,
                                       model.short_hash if model else None)
        elif node.file is not None:
            params["Source"] = node.file.name
        params["Face restoration"] = "GFPGAN"
        params["Face weight"] = f"{spec.face_weight:g}"
        prompt = base.prompt if base is not None else ""
        negative = base.negative_prompt if base is not None else ""
        return format_infotext(prompt, negative, params)
    model = node.model
    params = _diffusion_params(spec, model.name if model else spec.model,
                               model.short_hash if model else None)
    return format_infotext(spec.prompt, spec.negative_prompt, params)


def _diffusion_params(spec: ImageSpec, model: str, model_hash: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "Steps": spec.steps, "Sampler": spec.sampler, "CFG scale": f"{spec.cfg:g}",
        "Seed": spec.seed, "Size": f"{spec.width}x{spec.height}",
        "Model hash": model_hash, "Model": model,
    }
    if spec.mode == "img2img":
        params["Denoising strength"] = f"{spec.strength:g}"
    return params


def _needed(plan: Plan, cache: Cache, report: BuildReport) -> list[Node]:
    """Nodes to render: shown pictures not cached, plus uncached ancestors of those."""
    missing: set[str] = set()
    # (key, will its bytes be read?) Entries read as a source are verified first.
    stack = [(key, False) for key in dict.fromkeys(plan.shown_key.values())]
    while stack:
        key, read = stack.pop()
        if key in missing or (cache.has(key) and (not read or _sound(cache, key, report))):
            continue
        missing.add(key)
        parent = plan.nodes[key].parent
        if parent:
            stack.append((parent, True))
    return [node for key, node in plan.nodes.items() if key in missing]


def _sound(cache: Cache, key: str, report: BuildReport) -> bool:
    """Verify an entry whose bytes will be read; a corrupt one is discarded and reported."""
    try:
        cache.get(key)
    except CorruptEntry:
        cache.discard(key)
        report.repaired.append(key)
        return False
    return True


def _verify_for_site(plan: Plan, cache: Cache, present: Mapping[str, Any],
                     report: BuildReport) -> None:
    """Shown entries whose site files must be (re)written are verified before the copy
    (in threads: reading and hashing release the GIL)."""
    todo = []
    for key in dict.fromkeys(plan.shown_key.values()):
        brief = cache.brief(key)
        if brief is not None and not all(
                f in present for f in _web_image(plan, key, brief).site_files):
            todo.append(key)
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda key: _sound(cache, key, report), todo))
    report.repaired.sort()


def _web_image(plan: Plan, key: str, brief: Brief) -> WebImage:
    """Name a picture after the generation it comes from (restores have no prompt).

    Memoised in the plan, so each build makes one WebImage per picture.
    """
    web = plan.webs.get(key)
    if web is None or (web.width, web.height) != (brief.width, brief.height):
        origin = plan.nodes[key]
        while origin.spec.mode == "restore" and origin.parent:
            origin = plan.nodes[origin.parent]
        if origin.spec.mode == "restore":  # GFPGAN on a user file
            name = origin.file.stem if origin.file else "image"
            stem = stem_for(key, None, "", fallback=f"restored-{name}")
        else:
            stem = stem_for(key, origin.spec.seed, origin.spec.prompt)
        web = plan.webs[key] = WebImage(key, stem, brief.width, brief.height)
    return web


class _Renderers:
    """Routes tasks to the diffusion or face renderer, creating each only when needed."""

    def __init__(self, config: SiteConfig, preview: bool):
        self.config = config
        self.preview = preview
        self._made: dict[str, Renderer] = {}

    def for_mode(self, mode: str) -> Renderer:
        kind = "preview" if self.preview else ("faces" if mode == "restore" else "diffusion")
        if kind not in self._made:
            if kind == "preview":
                from .render.preview import PreviewRenderer

                self._made[kind] = PreviewRenderer()
            elif kind == "faces":
                from .render.faces import FaceRestorer

                self._made[kind] = FaceRestorer(self.config)
            else:
                from .render.diffusion import DiffusionRenderer

                self._made[kind] = DiffusionRenderer(self.config)
        return self._made[kind]

    def close(self) -> None:
        for renderer in self._made.values():
            renderer.close()


def _waves(nodes: list[Node]) -> Iterator[list[Node]]:
    """Groups of nodes whose parents are all done, each sorted so models don't swap."""
    pending = {node.key: node for node in nodes}
    while pending:
        wave = [n for n in pending.values() if not n.parent or n.parent not in pending]
        wave.sort(key=lambda n: (n.spec.mode == "restore", n.model.name if n.model else "",
                                 n.spec.width, n.spec.height))
        for node in wave:
            del pending[node.key]
        yield wave


def frozen_error(plan: Plan, misses: list[Node]) -> ErrorList:
    """``--frozen`` found pictures missing from the cache: name each (post, line, prompt)."""
    shown_keys = set(plan.shown_key.values())
    errors = []
    for node in misses:
        if node.key in shown_keys:
            spec = node.shown
            what = (f"restore of {spec.source!r}" if spec.mode == "restore"
                    else f"{spec.mode} {spec.prompt[:60]!r} (seed {spec.seed})")
            errors.append(spec.location.error(f"not in the cache: {what}"))
    return ErrorList(errors or [GenimgError(f"{len(misses)} pictures are not in the cache")])


def _check_renderable(misses: list[Node]) -> None:
    errors: list[GenimgError] = []
    seen: set[str] = set()
    for node in misses:
        where = node.shown.location
        model, restorer = node.model, node.restorer
        if model is not None and model.problem and model.name not in seen:
            seen.add(model.name)
            errors.append(where.error(model_missing_error(model.name, model.problem).message))
        if restorer is not None and restorer.problem and "faces" not in seen:
            seen.add("faces")
            errors.append(where.error(restorer.problem))
    if errors:
        raise ErrorList(errors)


def _source_image(node: Node, cache: Cache) -> Image.Image | None:
    if node.parent:
        data = cache.read_bytes(node.parent)
    elif node.file is not None:
        data = node.file.read_bytes()
    else:
        return None
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def render_misses(site: LoadedSite, cache: Cache, misses: list[Node], options: BuildOptions,
                  progress: Progress) -> int:
    """Render and store every miss in dependency order; returns how many were stored."""
    _check_renderable(misses) if not options.preview else None
    renderers = _Renderers(site.config, options.preview)
    versions = _versions(options.preview)
    stored = 0
    progress.start(len(misses), sum(_task(n, None).work for n in misses))
    try:
        for wave in _waves(misses):
            groups: dict[bool, list[RenderTask]] = {}
            for node in wave:
                task = _task(node, _source_image(node, cache))
                groups.setdefault(node.spec.mode == "restore", []).append(task)
            for is_restore, tasks in sorted(groups.items()):
                renderer = renderers.for_mode("restore" if is_restore else "txt2img")
                started = time.perf_counter()
                for task, image in renderer.render(tasks, progress.advance_steps):
                    node = site.plan.nodes[task.key]
                    infotext = infotext_for(node, site.plan, options.preview)
                    meta = {
                        "spec": node.fields,  # exactly what the key is the hash of
                        "shown": node.shown.as_yaml_dict(),
                        "infotext": infotext, "width": image.width, "height": image.height,
                        "preview": options.preview, "versions": versions,
                        "render_seconds": round(time.perf_counter() - started, 3),
                        "location": f"{node.shown.location.file}:{node.shown.location.line}",
                    }
                    cache.put(task.key, png_bytes(image, infotext), meta)
                    stored += 1
                    progress.picture_done(node)
                    started = time.perf_counter()
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted: {stored} of {len(misses)} pictures were saved to the cache; "
            "run the build again to render the rest"
        ) from None
    finally:
        progress.stop()
        renderers.close()
    return stored


def _task(node: Node, source: Image.Image | None) -> RenderTask:
    return RenderTask(node.key, node.spec, node.model, node.restorer, source)


class Figures(Mapping[Location, dict[str, Any]]):
    """Template data for each image, made on first use (most pages are not rendered),
    plus the web images to write and the user source files to copy."""

    def __init__(self, site: LoadedSite, cache: Cache, preview: bool):
        # Keyed as images name their post (a posts_dir outside the blog has no relative path).
        post_of = {image.location.file: post for post in site.posts for image in post.images}
        plan = site.plan
        self.webs: dict[str, WebImage] = {}
        self.sources: dict[str, Path] = {}
        anchors: dict[str, str] = {}  # image id -> "posts/slug/#img-…"
        for image in site.images:
            key = plan.shown_key[image.location]
            if image.id:
                post = post_of.get(image.location.file)
                anchors[image.id] = f"{post.url if post else ''}#img-{key[:8]}"
        #: location -> (image, key, web, source url, source label, preview): all a figure
        #: is made from, so their digest stands for the figures of a post
        self._inputs: dict[Location, tuple] = {}
        for image in site.images:
            key = plan.shown_key[image.location]
            node = plan.nodes[key]
            brief = cache.brief(key)
            if brief is None:
                raise GenimgError(f"cache entry {key[:12]} vanished during the build")
            web = self.webs[key] = _web_image(plan, key, brief)
            source_url = source_label = None
            if image.source:
                if image.source in anchors:
                    source_url, source_label = anchors[image.source], image.source
                else:
                    root_node = node if node.file else plan.nodes.get(node.parent or "", node)
                    if root_node.file is not None:
                        digest8 = root_node.key[:8]
                        name = f"images/source-{digest8}-{root_node.file.name}"
                        self.sources[name] = root_node.file
                        source_url, source_label = name, root_node.file.name
            shown_preview = preview if brief.preview is None else brief.preview
            self._inputs[image.location] = (image, key, web, source_url, source_label,
                                            shown_preview)
        self._made: dict[Location, dict[str, Any]] = {}

    def __getitem__(self, location: Location) -> dict[str, Any]:
        if location not in self._made:
            self._made[location] = _figure(*self._inputs[location])
        return self._made[location]

    def __iter__(self) -> Iterator[Location]:
        return iter(self._inputs)

    def __len__(self) -> int:
        return len(self._inputs)

    def digest(self, post: Post) -> str:
        """Digest of what the figures of ``post`` are made from (its specs aside)."""
        return digest([(key, web.stem, web.width, web.height, url, label, preview)
                       for _, key, web, url, label, preview
                       in (self._inputs[image.location] for image in post.images)])


def _figure(image: ImageSpec, key: str, web: WebImage, source_url: str | None,
            source_label: str | None, preview: bool) -> dict[str, Any]:
    """What the theme gets for one picture (see ``gallery.html``)."""
    widths = web.thumb_widths()
    return {
        "key": key, "anchor": f"img-{key[:8]}", "full": web.full,
        "thumbs": [(web.thumb(w), w) for w in widths], "src": web.thumb(widths[0]),
        "width": web.width, "height": web.height,
        "alt": image.alt or image.prompt or image.caption or "picture",
        "caption": image.caption, "prompt": image.prompt,
        "negative_prompt": image.negative_prompt, "seed": image.seed,
        "sampler": image.sampler, "steps": image.steps, "cfg": f"{image.cfg:g}",
        "model": image.model, "mode": image.mode,
        "strength": f"{image.strength:g}" if image.mode == "img2img" else None,
        "face_restored": image.restore_faces or image.mode == "restore",
        "face_weight": f"{image.face_weight:g}",
        "source_url": source_url, "source_label": source_label,
        "preview": preview,
    }


def _walk(out: Path) -> tuple[dict[str, os.DirEntry], list[str]]:
    """Every file below ``out`` (site path -> entry, not stat-ed) and every folder, in one
    ``scandir`` walk that the image writer, page skipping and stale removal share."""
    files: dict[str, os.DirEntry] = {}
    folders: list[str] = []
    stack = [("", str(out))]
    while stack:
        rel, path = stack.pop()
        try:
            listing = os.scandir(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(rel + entry.name)
                    stack.append((rel + entry.name + "/", entry.path))
                else:
                    files[rel + entry.name] = entry
    return files, folders


def _pages_context(config: SiteConfig, preview: bool) -> str:
    """Digest of what every page depends on: code, config, theme templates, mode."""
    templates: list[str | tuple[str, str]] = []
    for theme in theme_dirs(config):
        folder = theme / "templates"
        templates.append(str(folder))
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                templates.append((file.relative_to(folder).as_posix(),
                                  hashlib.sha256(file.read_bytes()).hexdigest()))
    return digest("pages", code_digest(), jinja2.__version__, repr(config), preview, templates)


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


def _render_pages(site: LoadedSite, figures: Figures, preview: bool,
                  present: Mapping[str, os.DirEntry], page_state: PageState
                  ) -> tuple[dict[str, bytes], set[str], dict[str, tuple[str | None, list[str]]]]:
    """Render the pages that changed: (path -> bytes, paths kept as they are, and
    path -> (digest, posts read) of each page rendered, to record once written)."""
    config = site.config
    renderer = PageRenderer(config, figures, preview=preview)
    digests = _PageDigests(site.posts, site.post_cache, figures, _pages_context(config, preview))
    rendered: dict[str, bytes] = {}
    kept: set[str] = set()
    inputs: dict[str, tuple[str | None, list[str]]] = {}
    for page in renderer.pages(site.posts):
        if page_state.unchanged(page.path, functools.partial(digests.page, page),
                                present.get(page.path)):
            kept.add(page.path)
            continue
        rendered[page.path], reads = renderer.render(page)
        inputs[page.path] = (digests.page(page, reads), reads)
    return rendered, kept, inputs


def _write_site(out: Path, files: dict[str, bytes | Path], also_keep: set[str],
                present: Mapping[str, os.DirEntry], folders: list[str]) -> tuple[int, int]:
    """Write changed files, delete files no longer produced; returns (written, removed)."""
    written = 0
    for rel, data in files.items():
        dest = out / rel
        if isinstance(data, Path):
            # Copies (theme statics, user pictures) keep their source's mtime: size and
            # mtime both equal means unchanged, even for a same-size edit of style.css.
            source = data.stat()
            try:
                entry = present.get(rel)
                same = entry is not None and (entry.stat().st_size, entry.stat().st_mtime_ns) \
                    == (source.st_size, source.st_mtime_ns)
            except FileNotFoundError:
                same = False
            if same:
                continue
            written += write_if_changed(dest, data.read_bytes(), durable=False)
            os.utime(dest, ns=(source.st_atime_ns, source.st_mtime_ns))
            continue
        written += write_if_changed(dest, data, durable=False)
    return written, _remove_stale(out, present, folders, set(files) | also_keep)


def _remove_stale(out: Path, present: Mapping[str, os.DirEntry], folders: list[str],
                  keep: set[str]) -> int:
    removed = 0
    for rel, entry in present.items():
        if rel not in keep:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    for rel in sorted(folders, key=lambda f: f.count("/"), reverse=True):
        with contextlib.suppress(OSError):
            (out / rel).rmdir()  # only if empty
    return removed


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


def build_site(root: Path, options: BuildOptions = BuildOptions(),
               progress: Progress | None = None,
               log: Callable[[str], None] = lambda message: None) -> BuildReport:
    """Build the blog at ``root`` into its output folder."""
    started = time.perf_counter()
    progress = progress or Progress()
    with _gc_paused():
        site = load_site(root, options)
    config = site.config
    report = BuildReport(posts=len(site.posts), preview=options.preview)
    report.pictures = len(set(site.plan.shown_key.values()))
    cache = Cache(config.cache_dir)
    with cache.lock(wait=options.lock_wait):
        with _gc_paused():
            # Nobody else writes here now: what a killed build left half-written goes.
            cache.remove_temp_files()
            present, folders = _walk(config.output_dir)
            # (a killed build's temp files don't count as someone else's files)
            if SITE_MARKER not in present and any(
                    not is_temp_file(name.rpartition("/")[2]) for name in present):
                raise GenimgError(
                    f"{config.output_dir} holds files genimg did not write (no {SITE_MARKER} "
                    "mark); genimg removes stale files there, so it will not build into it. "
                    "Empty it, or set another output_dir", config.file or root)
            _verify_for_site(site.plan, cache, present, report)
            misses = _needed(site.plan, cache, report)
        for key in report.repaired:
            log(f"cache entry {key[:12]} was corrupt; rendering it again")
        if misses and options.frozen:
            raise frozen_error(site.plan, misses)
        if misses:
            # Before rendering: an interrupted build must still leave the fingerprints its
            # pictures are keyed by, or a machine without the model could not find them.
            site.resolver.save()
            report.rendered = render_misses(site, cache, misses, options, progress)
        site.resolver.save()
        with _gc_paused():
            _write_everything(site, cache, options, present, folders, report)
    report.seconds = time.perf_counter() - started
    return report


def _write_everything(site: LoadedSite, cache: Cache, options: BuildOptions,
                      present: dict[str, os.DirEntry], folders: list[str],
                      report: BuildReport) -> None:
    """Web images, pages, static files into the site; then save the build state."""
    config = site.config
    # The mark goes first: a build killed after it wrote anything still owns the folder.
    write_if_changed(config.output_dir / SITE_MARKER, SITE_MARKER_TEXT, durable=False)
    figures = Figures(site, cache, options.preview)
    writer = ImageWriter(cache, config.output_dir, present)
    report.files_written += writer.write(figures.webs.values())
    page_state = PageState(config.cache_dir, "pages")
    pages, kept, inputs = _render_pages(site, figures, options.preview, present, page_state)
    files: dict[str, bytes | Path] = dict(pages)
    files.update(static_files(config))
    files.update(figures.sources)
    web_files = {rel for web in figures.webs.values() for rel in web.site_files}
    if options.preview:
        files[PREVIEW_MARKER] = b"This site was built with --preview: do not publish.\n"
    files[SITE_MARKER] = SITE_MARKER_TEXT
    written, removed = _write_site(config.output_dir, files, web_files | kept, present, folders)
    report.files_written += written
    report.files_removed = removed
    for path, (page_digest, reads) in inputs.items():
        if page_digest is not None:
            page_state.record(path, page_digest, reads, os.stat(config.output_dir / path))
    page_state.save()
    site.post_cache.save()
    cache.save_index()
