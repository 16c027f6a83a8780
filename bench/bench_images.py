"""Web-image derivatives: WebP thumbnails per second, serial vs parallel, bytes saved.

    python bench/bench_images.py                      # 512- and 1024-wide sources
    python bench/bench_images.py --widths 512 --pictures 48 --repeats 5

Sources are square PNGs (as Stable Diffusion writes them) cut from the photos that
scikit-image ships (astronaut, coffee, chelsea, rocket), or synthetic pictures if
scikit-image is not installed; each carries an A1111 infotext and is put in a real
genimg cache. For each source width it measures

* encode only: genimg's thumbnail function (decode PNG, resize, WebP q82) for every
  thumbnail width genimg makes for that source (512, and 1024 capped at the picture's
  width), one thread vs a thread pool vs a process pool, each with one worker per core;
* ImageWriter: genimg's writer end to end into an empty site and an empty derivative
  cache (PNG copy + thumbnails, each written atomically with fsync), serially vs its
  own thread pool;
* bytes: the PNGs against their WebP thumbnails.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from _util import machine_line, median, table

from generator.cache import Cache
from generator.images import (
    THUMB_WIDTHS,
    WEBP_QUALITY,
    ImageWriter,
    WebImage,
    _decode,
    _thumbnail_bytes,
)
from generator.metadata import png_bytes


def _photos() -> list:
    """RGB photos to cut sources from (scikit-image's bundled ones, if present)."""
    from PIL import Image

    try:
        from skimage import data
    except ImportError:
        return []
    photos = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        try:
            photos.append(Image.fromarray(getattr(data, name)()).convert("RGB"))
        except Exception:  # a data file missing from this install
            continue
    return photos


def _synthetic(size: int, rng: random.Random):
    from PIL import Image, ImageChops, ImageDraw, ImageFilter

    base = Image.linear_gradient("L").resize((size, size)).rotate(rng.randrange(360))
    noise = Image.effect_noise((size, size), 30).filter(ImageFilter.GaussianBlur(2))
    image = Image.merge("RGB", (base, ImageChops.add(base, noise, scale=1.5), noise))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(size), rng.randrange(size)
        r = rng.randrange(size // 16, size // 4)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in "rgb"))
    return image.filter(ImageFilter.GaussianBlur(1.5))


def make_sources(width: int, count: int) -> tuple[list, str]:
    """``count`` distinct square pictures ``width`` wide; and where they come from."""
    from PIL import Image, ImageEnhance, ImageOps

    rng = random.Random(width)
    photos = _photos()
    images = []
    for n in range(count):
        if not photos:
            images.append(_synthetic(width, rng))
            continue
        photo = photos[n % len(photos)]
        side = rng.randint(min(photo.size) * 2 // 3, min(photo.size))
        x = rng.randint(0, photo.width - side)
        y = rng.randint(0, photo.height - side)
        image = photo.crop((x, y, x + side, y + side)).resize(
            (width, width), Image.Resampling.LANCZOS)
        if n % 2:
            image = ImageOps.mirror(image)
        image = ImageEnhance.Color(image).enhance(0.7 + rng.random() * 0.6)
        images.append(image)
    origin = "scikit-image photos" if photos else "synthetic pictures"
    return images, origin


def fill_cache(cache: Cache, images: list) -> list[WebImage]:
    webs = []
    for n, image in enumerate(images):
        key = hashlib.sha256(f"bench-{image.width}-{n}".encode()).hexdigest()
        infotext = (f"high quality photo, bench picture {n}\nSteps: 20, Sampler: Euler a, "
                    f"CFG scale: 7, Seed: {n}, Size: {image.width}x{image.height}")
        cache.put(key, png_bytes(image, infotext),
                  {"width": image.width, "height": image.height, "preview": False,
                   "infotext": infotext})
        webs.append(WebImage(key, f"{n}-bench-{key[:8]}", image.width, image.height))
    return webs


def _encode(job: tuple[bytes, int]) -> int:
    png, width = job
    return len(_thumbnail_bytes(_decode(png), width))


def time_encode(jobs: list[tuple[bytes, int]], workers: int, repeats: int) -> dict[str, float]:
    """Median seconds to make every thumbnail: serial, thread pool, process pool."""
    results: dict[str, list[float]] = {"serial": [], "threads": [], "processes": []}
    with ThreadPoolExecutor(workers) as threads, ProcessPoolExecutor(workers) as procs:
        list(procs.map(_encode, jobs[:workers]))  # start the workers outside the timing
        for _ in range(repeats):
            started = time.perf_counter()
            for job in jobs:
                _encode(job)
            results["serial"].append(time.perf_counter() - started)
            started = time.perf_counter()
            list(threads.map(_encode, jobs))
            results["threads"].append(time.perf_counter() - started)
            started = time.perf_counter()
            list(procs.map(_encode, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
            results["processes"].append(time.perf_counter() - started)
    return {k: median(v) for k, v in results.items()}


def time_writer(cache: Cache, site: Path, webs: list[WebImage], repeats: int
                ) -> dict[str, float]:
    """Median seconds of ImageWriter from scratch: one picture at a time vs write()."""
    results: dict[str, list[float]] = {"serial": [], "pool": []}
    derived = cache.dir / "derived"
    for _ in range(repeats):
        for mode in ("serial", "pool"):
            shutil.rmtree(site, ignore_errors=True)
            shutil.rmtree(derived, ignore_errors=True)
            writer = ImageWriter(cache, site, present=set())  # an empty site
            started = time.perf_counter()
            if mode == "serial":
                for web in webs:
                    writer._write_one(web)
            else:
                writer.write(webs)
            results[mode].append(time.perf_counter() - started)
    return {k: median(v) for k, v in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[512, 1024],
                        help="source picture widths (square pictures)")
    parser.add_argument("--pictures", type=int, default=32, help="pictures per width")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="workers of the thread and process pools (default: cores)")
    args = parser.parse_args()

    print(f"bench_images: {machine_line()}")
    print(f"thumbnail widths {THUMB_WIDTHS} (capped at the picture's), WebP quality "
          f"{WEBP_QUALITY}; ImageWriter pool: min(8, cores) = {min(8, os.cpu_count() or 1)} "
          f"threads; encode pools: {args.workers} workers")
    speed_rows, writer_rows, size_rows = [], [], []
    origin = ""
    for width in args.widths:
        images, origin = make_sources(width, args.pictures)
        with tempfile.TemporaryDirectory(prefix="genimg-bench-images-") as tmp:
            cache = Cache(Path(tmp) / "cache")
            webs = fill_cache(cache, images)
            pngs = {web.key: cache.read_bytes(web.key) for web in webs}
            jobs = [(pngs[web.key], w) for web in webs for w in web.thumb_widths()]
            enc = time_encode(jobs, args.workers, args.repeats)
            label = f"{width}px -> {'+'.join(str(w) for w in webs[0].thumb_widths())}"
            for mode in ("serial", "threads", "processes"):
                speed_rows.append((f"{label}, {mode}", len(jobs), f"{enc[mode]:.3f}",
                                   f"{len(jobs) / enc[mode]:.1f}",
                                   f"{enc['serial'] / enc[mode]:.2f}x"))
            wr = time_writer(cache, Path(tmp) / "site", webs, args.repeats)
            files = sum(len(web.files()) for web in webs)
            for mode in ("serial", "pool"):
                writer_rows.append((f"{width}px, {mode}", len(webs), files, f"{wr[mode]:.3f}",
                                    f"{len(webs) / wr[mode]:.1f}",
                                    f"{len(jobs) / wr[mode]:.1f}",
                                    f"{wr['serial'] / wr[mode]:.2f}x"))
            png_total = sum(len(p) for p in pngs.values())
            for thumb in sorted({w for _, w in jobs}):
                webp_total = sum(_encode((pngs[web.key], thumb)) for web in webs
                                 if thumb in web.thumb_widths())
                size_rows.append((f"{width}px PNG -> WebP {thumb}", len(webs),
                                  f"{png_total / len(webs) / 1024:.0f}",
                                  f"{webp_total / len(webs) / 1024:.0f}",
                                  f"{100 * (1 - webp_total / png_total):.1f}%"))
    print(f"sources: {args.pictures} square pictures per width, cut from {origin}")
    print()
    print(table(("thumbnail encode (decode+resize+WebP)", "thumbs", "s (median)", "thumbs/s",
                 "speed-up"), speed_rows))
    print()
    print(table(("ImageWriter, empty site + cache", "pictures", "files", "s (median)",
                 "pictures/s", "thumbs/s", "speed-up"), writer_rows))
    print()
    print(table(("bytes", "pictures", "PNG KiB/pic", "WebP KiB/pic", "saved vs PNG"),
                size_rows))


if __name__ == "__main__":
    main()
