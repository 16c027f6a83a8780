"""Render the misses: routed by mode to their renderer, in waves, stored one by one.

A wave holds the nodes whose parents are done, sorted so models don't swap; each
picture goes into the cache the moment it is made, so an interrupted build loses at
most the pictures in flight. Renderers are created (and torch imported) only when a
picture needs them.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import generator

from .cache import Cache
from .config import SiteConfig
from .errors import ErrorList, GenimgError
from .infotext import infotext_for
from .metadata import png_bytes
from .models import model_missing_error
from .modes import MODES, RENDER_ORDER, RENDERERS
from .plan import Node, Plan
from .progress import Progress
from .render.base import Renderer, RenderTask
from .writer import Writer

if TYPE_CHECKING:
    from PIL import Image

    from .cluster import Pool


class Interrupted(GenimgError):
    """Ctrl-C between pictures: what was rendered is saved."""


class Renderers:
    """The renderer of each mode (every mode's is ``preview`` in a preview build),
    created on first use."""

    def __init__(self, config: SiteConfig, preview: bool):
        self.config = config
        self.preview = preview
        self._made: dict[str, Renderer] = {}

    def for_mode(self, mode: str) -> Renderer:
        name = "preview" if self.preview and not exact(mode) else MODES[mode].renderer
        if name not in self._made:
            self._made[name] = RENDERERS[name].load()(self.config)
        return self._made[name]

    def close(self) -> None:
        for renderer in self._made.values():
            renderer.close()


def exact(mode: str) -> bool:
    """Is a picture of ``mode`` the same in a preview build (its renderer needs no model)?"""
    return RENDERERS[MODES[mode].renderer].exact


def _order(node: Node) -> tuple[int, str, int, int]:
    renderer = MODES[node.spec.mode].renderer
    return (RENDER_ORDER.index(renderer), node.model.name if node.model else "",
            node.spec.width, node.spec.height)


def waves(nodes: list[Node]) -> Iterator[list[Node]]:
    """Groups of nodes whose parents are all done, each sorted so models don't swap."""
    pending = {node.key: node for node in nodes}
    while pending:
        wave = [n for n in pending.values() if not n.parent or n.parent not in pending]
        wave.sort(key=_order)
        for node in wave:
            del pending[node.key]
        yield wave


def check_renderable(misses: list[Node]) -> None:
    """Every model and restorer the misses need is here: else one error for each."""
    errors: list[GenimgError] = []
    seen: set[str] = set()
    for node in misses:
        where = node.shown.location
        restorer = node.restorer
        for model in (node.model, node.refiner):
            if model is not None and model.problem and model.name not in seen:
                seen.add(model.name)
                errors.append(where.error(model_missing_error(model.name,
                                                              model.problem).message))
        if restorer is not None and restorer.problem and "faces" not in seen:
            seen.add("faces")
            errors.append(where.error(restorer.problem))
    if errors:
        raise ErrorList(errors)


def source_image(node: Node, cache: Cache) -> Image.Image | None:
    """The picture a node is made from, RGB; a photo turned upright as its EXIF says (a
    phone stores a portrait photo sideways, with an orientation tag)."""
    if node.parent:
        data = cache.read_bytes(node.parent)
    elif node.file is not None:
        data = node.file.read_bytes()
    else:
        return None
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as image:
        upright = ImageOps.exif_transpose(image) if node.file is not None else image
        return upright.convert("RGB")


def task_for(node: Node, source: Image.Image | None) -> RenderTask:
    return RenderTask(node.key, node.spec, node.model, node.restorer, source, node.loras,
                      node.vae, node.embeddings, node.refiner, node.upscaler)


def _versions(preview: bool) -> dict[str, str]:
    import importlib.metadata  # here: slow to import, and only a render needs it

    versions = {"genimg": generator.__version__}
    if not preview:
        for package in ("torch", "diffusers", "transformers", "gfpgan"):
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                versions[package] = importlib.metadata.version(package)
    return versions


class Store:
    """Each finished picture into the cache at once: only the build's own process (the
    driver, with workers) ever writes it."""

    def __init__(self, cache: Cache, plan: Plan, preview: bool, progress: Progress):
        self.cache, self.plan, self.preview, self.progress = cache, plan, preview, progress
        self.versions = _versions(preview)
        self.stored = 0

    def __call__(self, node: Node, image: Image.Image, seconds: float) -> None:
        _store(self.cache, self.plan, node, image, self.preview and not exact(node.spec.mode),
               self.versions, seconds)
        self.stored += 1
        self.progress.picture_done(node.key)


def by_renderer(wave: list[Node]) -> dict[str, list[Node]]:
    """A wave's nodes by renderer; a wave is sorted by renderer, so groups keep its order."""
    groups: dict[str, list[Node]] = {}
    for node in wave:
        groups.setdefault(MODES[node.spec.mode].renderer, []).append(node)
    return groups


def render_misses(config: SiteConfig, plan: Plan, cache: Cache, misses: list[Node],
                  preview: bool, progress: Progress, pool: Pool | None = None) -> int:
    """Render and store every miss in dependency order, here or on ``pool``'s workers;
    returns how many were stored."""
    if not preview:
        check_renderable(misses)
    store = Store(cache, plan, preview, progress)
    progress.start(len(misses), sum(MODES[n.spec.mode].work(n.spec) for n in misses))
    try:
        if pool is None:  # the pictures stored while the next batch renders
            with Writer(store, depth=2 * config.batch_limit) as writer:
                _render_here(config, cache, misses, preview, progress, writer)
        else:
            pool.render(plan, cache, misses, progress, store)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted: {store.stored} of {len(misses)} pictures were saved to the cache; "
            "run the build again to render the rest"
        ) from None
    finally:
        progress.stop()
    return store.stored


def _render_here(config: SiteConfig, cache: Cache, misses: list[Node], preview: bool,
                 progress: Progress, writer: Writer) -> None:
    """The single-process build: wave by wave, each renderer's group in one call; a wave
    starts when the pictures it reads are in the cache."""
    renderers = Renderers(config, preview)
    nodes_by_key = {node.key: node for node in misses}
    try:
        for wave in waves(misses):
            writer.flush()
            for nodes in by_renderer(wave).values():
                tasks = [task_for(node, source_image(node, cache)) for node in nodes]
                renderer = renderers.for_mode(tasks[0].spec.mode)
                started = time.perf_counter()
                for task, image in renderer.render(tasks, progress.advance_steps):
                    writer.put(nodes_by_key[task.key], image, time.perf_counter() - started)
                    started = time.perf_counter()
    finally:
        renderers.close()


def _store(cache: Cache, plan: Plan, node: Node, image: Image.Image, preview: bool,
           versions: dict[str, str], seconds: float) -> None:
    """One rendered picture into the cache, with its infotext and a sidecar that records
    exactly what its key is the hash of."""
    infotext = infotext_for(node, plan, preview)
    meta: dict[str, Any] = {
        "spec": node.key_dict(),
        "shown": node.shown.as_yaml_dict(),
        "infotext": infotext, "width": image.width, "height": image.height,
        "preview": preview, "versions": versions,
        "render_seconds": round(seconds, 3),
        "location": f"{node.shown.location.file}:{node.shown.location.line}",
    }
    cache.put(node.key, png_bytes(image, infotext), meta)
