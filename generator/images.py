"""Web derivatives of cached pictures: the full PNG and WebP thumbnails for ``srcset``.

Names are readable and content-addressed (``<seed>-<prompt-slug>-<key8>``), so a
file that exists under its name never needs rewriting; derivatives are kept in
the cache folder too, so each is encoded once per key, ever.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .atomic import write_atomic
from .cache import Cache
from .content import slugify

THUMB_WIDTHS = (512, 1024)
WEBP_QUALITY = 82


@dataclass(frozen=True)
class WebImage:
    """Where one picture lives in the site, and its thumbnails."""

    key: str
    stem: str  # file name without suffix
    width: int
    height: int

    @property
    def full(self) -> str:
        return f"images/{self.stem}.png"

    def thumb_widths(self) -> list[int]:
        """Widths of the WebP thumbnails: each listed width not above the picture's."""
        widths = [w for w in THUMB_WIDTHS if w < self.width]
        return [*widths, min(self.width, THUMB_WIDTHS[-1])]

    def thumb(self, width: int) -> str:
        return f"images/{self.stem}-{width}.webp"

    def thumb_height(self, width: int) -> int:
        return round(self.height * width / self.width)

    def files(self) -> list[str]:
        return [self.full, *(self.thumb(w) for w in self.thumb_widths())]


def stem_for(key: str, seed: int | None, prompt: str, fallback: str = "image") -> str:
    """``<seed>-<prompt-slug>-<key8>``, the way A1111 names its outputs."""
    slug = slugify(prompt)[:60].rstrip("-") if prompt.strip() else slugify(fallback)[:60]
    parts = [str(seed)] if seed is not None else []
    return "-".join([*parts, slug, key[:8]])


def _thumbnail_bytes(png: bytes, width: int) -> bytes:
    with Image.open(io.BytesIO(png)) as image:
        image = image.convert("RGB")
        if image.width != width:
            height = round(image.height * width / image.width)
            image = image.resize((width, height), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, format="WEBP", quality=WEBP_QUALITY, method=4)
        return out.getvalue()


def _copy_if_needed(src: Path, dest: Path) -> bool:
    """Copy unless ``dest`` exists with the same size (the name fixes the content)."""
    try:
        if dest.stat().st_size == src.stat().st_size:
            return False
    except FileNotFoundError:
        pass
    write_atomic(dest, src.read_bytes())
    return True


class ImageWriter:
    """Writes the web files of pictures into the site, in parallel across cores."""

    def __init__(self, cache: Cache, site_dir: Path):
        self.cache = cache
        self.site = site_dir
        self.derived = cache.dir / "derived"

    def _write_one(self, image: WebImage) -> int:
        """Write one picture's files; returns how many files were (re)written."""
        written = 0
        full_dest = self.site / image.full
        png: bytes | None = None
        try:
            size_ok = full_dest.stat().st_size == self.cache.meta(image.key)["png_size"]
        except (FileNotFoundError, TypeError):
            size_ok = False
        if not size_ok:
            png = self.cache.read_bytes(image.key)  # verified: never copy a corrupt entry
            write_atomic(full_dest, png)
            written += 1
        for width in image.thumb_widths():
            derived = self.derived / f"{image.key}-{width}.webp"
            if not derived.exists():
                if png is None:
                    png = self.cache.read_bytes(image.key)
                write_atomic(derived, _thumbnail_bytes(png, width))
            written += _copy_if_needed(derived, self.site / image.thumb(width))
        return written

    def write(self, images: Iterable[WebImage]) -> int:
        todo = list(images)
        workers = min(8, os.cpu_count() or 1)
        if len(todo) < 4 or workers == 1:
            return sum(self._write_one(image) for image in todo)
        with ThreadPoolExecutor(workers) as pool:
            return sum(pool.map(self._write_one, todo))
