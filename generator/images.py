"""Web derivatives of cached pictures: the full PNG and WebP thumbnails for ``srcset``.

Names are readable and content-addressed (``<seed>-<prompt-slug>-<key8>``), so a
file that exists under its name never needs rewriting; derivatives are kept in
the cache folder too, so each is encoded once per key, ever.

Site files and thumbnails are written without fsync: they are rebuilt from the
cache, and fsyncing ten thousand files made a cold build several times slower.
A site thumbnail is a hard link to its ``derived/`` file (making a file costs far
more than linking one on a busy disk); nothing writes into either in place, and
both are only derivatives. The PNG is a copy: a file of ``site/`` edited in place
(a PNG optimiser) must not change a cache entry, nor a damaged entry the site.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import os
import threading
from collections.abc import Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .atomic import write_atomic
from .cache import Cache
from .content import slugify

THUMB_WIDTHS = (512, 1024)
#: libwebp ``method`` 2 at quality 83 gives the PSNR of method 4 at quality 82 (the
#: settings before) in 2.3x less time, for files about 9% larger; thumbnails are encoded
#: on every cold build (CI keeps no ``derived/``), so the time matters more.
WEBP_QUALITY = 83
WEBP_METHOD = 2


@dataclass(frozen=True)
class WebImage:
    """Where one picture lives in the site, and its thumbnails."""

    key: str
    stem: str  # file name without suffix
    width: int
    height: int
    original: str = "png"  # how the full-size picture is published: png, webp or none

    @property
    def full(self) -> str | None:
        """The full-size picture's site path (None: not in the site)."""
        return None if self.original == "none" else f"images/{self.stem}.{self.original}"

    def thumb_widths(self) -> list[int]:
        """Widths of the WebP thumbnails: each listed width not above the picture's."""
        widths = {w for w in THUMB_WIDTHS if w < self.width}
        return sorted({*widths, min(self.width, THUMB_WIDTHS[-1])})

    @functools.cached_property
    def site_files(self) -> tuple[str, ...]:
        """``files()``, computed once: a build asks for them three times per picture."""
        return tuple(self.files())

    def thumb(self, width: int) -> str:
        return f"images/{self.stem}-{width}.webp"

    def files(self) -> list[str]:
        thumbs = [self.thumb(w) for w in self.thumb_widths()]
        return [self.full, *thumbs] if self.full else thumbs


def stem_for(key: str, seed: int | None, prompt: str, fallback: str = "image") -> str:
    """``<seed>-<prompt-slug>-<key8>``, the way A1111 names its outputs."""
    slug = slugify(prompt)[:60].rstrip("-") if prompt.strip() else slugify(fallback)[:60]
    parts = [str(seed)] if seed is not None else []
    return "-".join([*parts, slug, key[:8]])


def _thumbnail_bytes(png: bytes, width: int) -> bytes:
    from PIL import Image  # here: a build with every thumbnail in place needs no PIL

    with Image.open(io.BytesIO(png)) as source:
        image = source.convert("RGB")
    if image.width != width:
        height = round(image.height * width / image.width)
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
    return out.getvalue()


def _lossless_webp(png: bytes) -> bytes:
    """The same pixels as lossless WebP, the infotext kept as A1111 keeps it in WebP:
    an EXIF UserComment ("UNICODE" + UTF-16 big-endian, as piexif writes it)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as source:
        infotext = str(source.info.get("parameters") or "")
        image = source.convert("RGB")
    exif = Image.Exif()
    if infotext:
        exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + infotext.encode("utf-16-be")
    out = io.BytesIO()
    image.save(out, format="WEBP", lossless=True, quality=80, method=4, exif=exif.tobytes())
    return out.getvalue()


def _share(src: Path, dest: Path) -> None:
    """Make ``dest`` a hard link to ``src``, atomically; a copy where links cannot be."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # left by a killed build that had the same pid and thread id
    try:
        os.link(src, tmp)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        write_atomic(dest, src.read_bytes(), durable=False)
        return
    try:
        os.replace(tmp, dest)  # a link made at ``dest`` itself could not replace a file
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _usable(path: Path) -> bool:
    """A derived file that is there and not empty (not fsynced: a power cut may empty it)."""
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


class ImageWriter:
    """Writes the web files of pictures into the site, in parallel across cores.

    ``present`` holds the site files that exist (one walk of ``site/`` per build):
    a picture whose files are all there is not looked at again.
    """

    def __init__(self, cache: Cache, site_dir: Path, present: Collection[str]):
        self.cache = cache
        self.site = site_dir
        self.derived = cache.dir / "derived"
        self.present = present

    def _write_one(self, image: WebImage) -> int:
        """Write one picture's missing files; returns how many were written."""
        written = 0
        png: bytes | None = None
        if image.full is not None and image.full not in self.present:
            png = self.cache.read_bytes(image.key)  # verified: never copy a corrupt entry
            if image.original == "webp":  # encoded once per key, like the thumbnails
                derived = self.derived / f"{image.key}-full.webp"
                if not _usable(derived):
                    write_atomic(derived, _lossless_webp(png), durable=False)
                _share(derived, self.site / image.full)
            else:
                write_atomic(self.site / image.full, png, durable=False)
            written += 1
        for width in image.thumb_widths():
            if image.thumb(width) in self.present:
                continue
            derived = self.derived / f"{image.key}-{width}.webp"
            if not _usable(derived):
                if png is None:
                    png = self.cache.read_bytes(image.key)
                write_atomic(derived, _thumbnail_bytes(png, width), durable=False)
            _share(derived, self.site / image.thumb(width))
            written += 1
        return written

    def write(self, images: Iterable[WebImage]) -> int:
        """Write what is missing; Pillow and hashlib release the GIL, so threads scale."""
        todo = [image for image in images
                if not all(rel in self.present for rel in image.site_files)]
        workers = min(8, os.cpu_count() or 1)
        if len(todo) < 4 or workers == 1:
            return sum(self._write_one(image) for image in todo)
        with ThreadPoolExecutor(workers) as pool:
            return sum(pool.map(self._write_one, todo))
