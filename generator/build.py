"""One build: posts -> plan -> render misses -> web images -> pages -> ``site/``.

Everything that can fail on bad input (posts, specs, models) is checked before the
first byte is written, so an error leaves the cache and ``site/`` as they were.
Each rendered picture is stored the moment it is done, so an interrupted build
loses at most the picture in flight.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

import generator

from .atomic import write_if_changed
from .cache import Cache, CorruptEntry
from .config import SiteConfig, load_config
from .content import Post, load_posts
from .errors import ErrorList, GenimgError
from .images import ImageWriter, WebImage, stem_for
from .metadata import format_infotext, png_bytes
from .models import ModelResolver, model_missing_error
from .pages import PageRenderer, static_files
from .plan import Node, Plan, Planner, key_fields
from .render.base import Renderer, RenderTask
from .specs import ImageSpec, Location

PREVIEW_MARKER = ".genimg-preview"


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


def load_site(root: Path, options: BuildOptions = BuildOptions()) -> LoadedSite:
    """Read config and posts and plan every picture; raises GenimgError on bad input."""
    config = load_config(root)
    if not config.posts_dir.is_dir():
        raise GenimgError(f"no posts folder: {config.posts_dir}", config.file or root)
    posts = load_posts(config.posts_dir, config.root, config.defaults, drafts=options.drafts)
    resolver = ModelResolver(config, preview=options.preview)
    images = [image for post in posts for image in post.images]
    plan = Planner(config.root, resolver, resolver.hasher).plan(images)
    return LoadedSite(config, posts, plan, resolver, images)


def _versions(preview: bool) -> dict[str, str]:
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
        if base is not None and base.mode != "restore":
            params = _diffusion_params(base, parent.model.name if parent.model else base.model,
                                       parent.model.short_hash if parent.model else None)
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


def _verify_for_site(plan: Plan, cache: Cache, site: Path, report: BuildReport) -> None:
    """Shown entries whose site files must be (re)written are verified before the copy."""
    for key in dict.fromkeys(plan.shown_key.values()):
        meta = cache.meta(key)
        if meta is not None:
            web = _web_image(plan, key, meta)
            if not all((site / f).exists() for f in web.files()):
                _sound(cache, key, report)


def _web_image(plan: Plan, key: str, meta: dict[str, Any]) -> WebImage:
    """Name a picture after the generation it comes from (restores have no prompt)."""
    origin = plan.nodes[key]
    while origin.spec.mode == "restore" and origin.parent:
        origin = plan.nodes[origin.parent]
    if origin.spec.mode == "restore":  # GFPGAN on a user file
        name = origin.file.stem if origin.file else "image"
        stem = stem_for(key, None, "", fallback=f"restored-{name}")
    else:
        stem = stem_for(key, origin.spec.seed, origin.spec.prompt)
    return WebImage(key, stem, int(meta["width"]), int(meta["height"]))


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
    done: set[str] = set()
    while pending:
        wave = [n for n in pending.values() if not n.parent or n.parent not in pending]
        wave.sort(key=lambda n: (n.spec.mode == "restore", n.model.name if n.model else "",
                                 n.spec.width, n.spec.height))
        for node in wave:
            del pending[node.key]
        yield wave
        done.update(n.key for n in wave)


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
                        "spec": key_fields(node.spec, node.model and node.model.fingerprint,
                                           None, node.restorer and node.restorer.fingerprint),
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


def _figures(site: LoadedSite, cache: Cache, preview: bool
             ) -> tuple[dict[Location, dict[str, Any]], dict[str, WebImage], dict[str, Path]]:
    """Template data for each image, the web images to write, user source files to copy."""
    post_of = {str(p.source.relative_to(site.config.root)): p for p in site.posts}
    plan = site.plan
    webs: dict[str, WebImage] = {}
    sources: dict[str, Path] = {}
    anchors: dict[str, str] = {}  # image id -> "posts/slug/#img-…"
    for image in site.images:
        key = plan.shown_key[image.location]
        if image.id:
            post = post_of.get(image.location.file)
            anchors[image.id] = f"{post.url if post else ''}#img-{key[:8]}"
    figures: dict[Location, dict[str, Any]] = {}
    for image in site.images:
        key = plan.shown_key[image.location]
        node = plan.nodes[key]
        meta = cache.meta(key) or {}
        web = webs.setdefault(key, _web_image(plan, key, meta))
        source_url = source_label = None
        if image.source:
            if image.source in anchors:
                source_url, source_label = anchors[image.source], image.source
            else:
                root_node = node if node.file else plan.nodes.get(node.parent or "", node)
                if root_node.file is not None:
                    digest = root_node.key[:8]
                    name = f"images/source-{digest}-{root_node.file.name}"
                    sources[name] = root_node.file
                    source_url, source_label = name, root_node.file.name
        widths = web.thumb_widths()
        figures[image.location] = {
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
            "preview": bool(meta.get("preview", preview)),
        }
    return figures, webs, sources


def _write_site(out: Path, files: dict[str, bytes | Path], also_keep: set[str]
                ) -> tuple[int, int]:
    """Write changed files, delete files no longer produced; returns (written, removed)."""
    written = 0
    for rel, data in files.items():
        dest = out / rel
        if isinstance(data, Path):
            try:
                same = dest.stat().st_size == data.stat().st_size
            except FileNotFoundError:
                same = False
            if same:
                continue
            data = data.read_bytes()
        written += write_if_changed(dest, data)
    return written, _remove_stale(out, set(files) | also_keep)


def _remove_stale(out: Path, keep: set[str]) -> int:
    removed = 0
    if not out.is_dir():
        return 0
    for dirpath, dirnames, filenames in os.walk(out, topdown=False):
        for name in filenames:
            path = Path(dirpath) / name
            if path.relative_to(out).as_posix() not in keep:
                path.unlink()
                removed += 1
        for name in dirnames:
            with contextlib.suppress(OSError):
                (Path(dirpath) / name).rmdir()  # only if empty
    return removed


def build_site(root: Path, options: BuildOptions = BuildOptions(),
               progress: Progress | None = None,
               log: Callable[[str], None] = lambda message: None) -> BuildReport:
    """Build the blog at ``root`` into its output folder."""
    started = time.perf_counter()
    progress = progress or Progress()
    site = load_site(root, options)
    config = site.config
    report = BuildReport(posts=len(site.posts), preview=options.preview)
    report.pictures = len(set(site.plan.shown_key.values()))
    cache = Cache(config.cache_dir)
    with cache.lock(wait=options.lock_wait):
        # Nobody else writes here now: what a killed build left half-written goes.
        cache.remove_temp_files()
        _verify_for_site(site.plan, cache, config.output_dir, report)
        misses = _needed(site.plan, cache, report)
        for key in report.repaired:
            log(f"cache entry {key[:12]} was corrupt; rendering it again")
        if misses and options.frozen:
            raise frozen_error(site.plan, misses)
        if misses:
            report.rendered = render_misses(site, cache, misses, options, progress)
        site.resolver.save()
        figures, webs, sources = _figures(site, cache, options.preview)
        writer = ImageWriter(cache, config.output_dir)
        report.files_written += writer.write(webs.values())
        renderer = PageRenderer(config, figures, preview=options.preview)
        files: dict[str, bytes | Path] = dict(renderer.render_all(site.posts))
        files.update(static_files(config))
        files.update(sources)
        web_files = {rel for web in webs.values() for rel in web.files()}
        if options.preview:
            files[PREVIEW_MARKER] = b"This site was built with --preview: do not publish.\n"
        written, removed = _write_site(config.output_dir, files, web_files)
        report.files_written += written
        report.files_removed = removed
    report.seconds = time.perf_counter() - started
    return report
