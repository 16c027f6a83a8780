"""Web derivatives of cached pictures: the full PNG and WebP thumbnails for ``srcset``.

Names are readable and content-addressed (``<seed>-<prompt-slug>-<key8>``), so a
file that exists under its name never needs rewriting; derivatives are kept in
the cache folder too, so each is encoded once per key, ever.

Site files and thumbnails are written without fsync: they are rebuilt from the
cache, and fsyncing ten thousand files made a cold build several times slower.
A site thumbnail is a hard link to its ``derived/`` file (making a file costs far
more than linking one on a busy disk); nothing writes into either in place, and
both are only derivatives. The PNG is a copy (``atomic.copy_atomic``: in the kernel,
a reflink where the filesystem shares blocks), never a hard link: a file of ``site/``
edited in place (a PNG optimiser) must not change a cache entry, nor a damaged entry
the site. It is copied without being read again when its file is unchanged since its
hash was last checked (``Cache.verify(again=False)``).
"""

from __future__ import annotations

import base64
import functools
import io
import os
import struct
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from .atomic import copy_atomic, link_atomic, usable, write_atomic
from .cache import Cache
from .content import slugify

if TYPE_CHECKING:
    from PIL import Image

THUMB_WIDTHS = (512, 1024)
#: The share card (Open Graph, Twitter): 1.91:1, the size Facebook, X and Mastodon ask for.
CARD_SIZE = (1200, 630)
CARD_QUALITY = 85
#: The inline placeholder: a picture this many pixels on its long side, blurred by an SVG
#: filter (no JavaScript), about 400 bytes of HTML per picture.
PLACEHOLDER_SIDE = 12
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

    @property
    def thumb_files(self) -> list[str]:
        return [self.thumb(w) for w in self.thumb_widths()]

    @property
    def card(self) -> str:
        """The share card of a post whose first picture this is."""
        return f"images/{self.stem}-card.jpg"

    def files(self) -> list[str]:
        thumbs = [self.thumb(w) for w in self.thumb_widths()]
        return [self.full, *thumbs] if self.full else thumbs


def stem_for(key: str, seed: int | None, prompt: str, fallback: str = "image") -> str:
    """``<seed>-<prompt-slug>-<key8>``, the way A1111 names its outputs."""
    slug = slugify(prompt)[:60].rstrip("-") if prompt.strip() else slugify(fallback)[:60]
    parts = [str(seed)] if seed is not None else []
    return "-".join([*parts, slug, key[:8]])


def _decode(png: bytes) -> Image.Image:
    """The picture as RGB pixels: decoded once for all its derivatives."""
    from PIL import Image  # here: a build with every derivative in place needs no PIL

    with Image.open(io.BytesIO(png)) as source:
        return source.convert("RGB")


def _thumbnail_bytes(image: Image.Image, width: int) -> bytes:
    from PIL import Image

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
    exif = _user_comment_exif(infotext) if infotext else Image.Exif().tobytes()
    out = io.BytesIO()
    image.save(out, format="WEBP", lossless=True, quality=80, method=4, exif=exif)
    return out.getvalue()


def _user_comment_exif(text: str) -> bytes:
    """EXIF holding only ``text`` as a UserComment of type UNDEFINED, as piexif (A1111's
    writer) stores it: Pillow would type it BYTE, which A1111 and piexif-based readers
    (sd-prompt-reader) read as a tuple of numbers and give up on."""
    comment = b"UNICODE\0" + text.encode("utf-16-be")
    exif_ifd = 8 + 2 + 12 + 4  # after the header and IFD0's one entry
    ifd0 = struct.pack(">H HHII I", 1, 0x8769, 4, 1, exif_ifd, 0)
    sub = struct.pack(">H HHII I", 1, 0x9286, 7, len(comment), exif_ifd + 2 + 12 + 4, 0)
    return b"Exif\0\0MM\0*" + struct.pack(">I", 8) + ifd0 + sub + comment


def _card_bytes(png: bytes) -> bytes:
    """The picture whole, as large as fits a ``CARD_SIZE`` JPEG, on a blurred, darkened
    copy of itself: no platform crops a face off, and none shows a tiny square."""
    from PIL import Image, ImageEnhance, ImageFilter, ImageOps

    image = _decode(png)
    back = ImageOps.fit(image.resize((image.width // 4 or 1, image.height // 4 or 1)),
                        (CARD_SIZE[0] // 8, CARD_SIZE[1] // 8))
    back = back.filter(ImageFilter.GaussianBlur(3)).resize(CARD_SIZE, Image.Resampling.BILINEAR)
    card = ImageEnhance.Brightness(back).enhance(0.55)
    # bicubic, baseline JPEG: 22 ms a card where Lanczos and progressive took 38 ms
    front = ImageOps.contain(image, CARD_SIZE, Image.Resampling.BICUBIC)
    card.paste(front, ((CARD_SIZE[0] - front.width) // 2, (CARD_SIZE[1] - front.height) // 2))
    out = io.BytesIO()
    card.save(out, format="JPEG", quality=CARD_QUALITY)
    return out.getvalue()


def _placeholder_bytes(image: Image.Image) -> bytes:
    """A ``PLACEHOLDER_SIDE`` WebP of the picture, for the inline placeholder."""
    from PIL import Image

    image = image.copy()
    image.thumbnail((PLACEHOLDER_SIDE, PLACEHOLDER_SIDE), Image.Resampling.BOX)
    out = io.BytesIO()
    image.save(out, format="WEBP", quality=40, method=4)
    return out.getvalue()


def placeholder_uri(webp: bytes, width: int, height: int) -> str:
    """An SVG data URI that blurs the tiny WebP over the whole box (the technique of
    Next.js' ``blurDataURL``): shown by CSS alone until the thumbnail covers it."""
    side = 40 * PLACEHOLDER_SIDE  # the blur's radius is relative to the viewBox
    w, h = round(side * width / max(width, height, 1)), round(side * height / max(width, height, 1))
    image = "data:image/webp;base64," + base64.b64encode(webp).decode("ascii")
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {w} {h}'>"
           "<filter id='b' color-interpolation-filters='sRGB'><feGaussianBlur stdDeviation='20'/>"
           "<feComponentTransfer><feFuncA type='discrete' tableValues='1 1'/>"
           "</feComponentTransfer></filter><image width='100%' height='100%' x='0' y='0' "
           f"preserveAspectRatio='none' filter='url(#b)' href='{image}'/></svg>")
    return "data:image/svg+xml;charset=utf-8," + quote(svg, safe=" ='/:;,()+")


def placeholder(cache: Cache, key: str) -> bytes:
    """The tiny WebP of a picture, made once per key and kept in ``derived/``."""
    derived = cache.dir / "derived" / f"{key}-placeholder.webp"
    if usable(derived):
        return derived.read_bytes()
    data = _placeholder_bytes(_decode(cache.read_bytes(key)))
    write_atomic(derived, data, durable=False)
    return data


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

    def _write_one(self, image: WebImage, thumbs_only: bool = False) -> int:
        """Write one picture's missing files (its placeholder into ``derived/``, for
        the pages); returns how many were written to the site."""
        written = 0
        png: bytes | None = None
        if not thumbs_only and image.full is not None and image.full not in self.present:
            if image.original == "webp":  # encoded once per key, like the thumbnails
                full = self.derived / f"{image.key}-full.webp"
                if not usable(full):
                    png = self.cache.read_bytes(image.key)  # verified: never a corrupt one
                    write_atomic(full, _lossless_webp(png), durable=False)
                link_atomic(full, self.site / image.full)
            else:
                self.cache.verify(image.key, again=False)  # never copy a corrupt entry
                copy_atomic(self.cache.paths(image.key)[0], self.site / image.full)
            written += 1
        missing = [w for w in image.thumb_widths() if image.thumb(w) not in self.present]
        derived = {w: self.derived / f"{image.key}-{w}.webp" for w in missing}
        todo = [w for w in missing if not usable(derived[w])]
        placeholder = self.derived / f"{image.key}-placeholder.webp"
        if todo or not usable(placeholder):
            pixels = _decode(png or self.cache.read_bytes(image.key))
            for width in todo:
                write_atomic(derived[width], _thumbnail_bytes(pixels, width), durable=False)
            if not usable(placeholder):
                write_atomic(placeholder, _placeholder_bytes(pixels), durable=False)
        for width in missing:
            link_atomic(derived[width], self.site / image.thumb(width))
            written += 1
        return written

    def _derived(self, image: WebImage, name: str, make: Callable[[bytes], bytes],
                 site_path: str) -> int:
        """One derivative of a picture into ``derived/`` (once per key) and the site."""
        if site_path in self.present:
            return 0
        derived = self.derived / f"{image.key}-{name}"
        if not usable(derived):
            write_atomic(derived, make(self.cache.read_bytes(image.key)), durable=False)
        link_atomic(derived, self.site / site_path)
        return 1

    def write_cards(self, images: Iterable[WebImage]) -> int:
        """The share cards (one per post)."""
        todo = [image for image in images if image.card not in self.present]
        return _in_threads(lambda image: self._derived(image, "card.jpg", _card_bytes,
                                                       image.card), todo)

    def write(self, images: Iterable[WebImage], thumbs_only: bool = False) -> int:
        """Write what is missing."""
        todo = [image for image in images
                if not all(rel in self.present
                           for rel in (image.thumb_files if thumbs_only else image.site_files))]
        return _in_threads(functools.partial(self._write_one, thumbs_only=thumbs_only), todo)


def _in_threads(work: Callable[[WebImage], int], todo: list[WebImage]) -> int:
    """Sum of ``work`` over ``todo``; Pillow and hashlib release the GIL, so threads scale."""
    workers = min(8, os.cpu_count() or 1)
    if len(todo) < 4 or workers == 1:
        return sum(work(image) for image in todo)
    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(work, todo))
