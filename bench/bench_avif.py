"""AVIF beside WebP for the thumbnails? Encode time, bytes and PSNR with Pillow.

    python bench/bench_avif.py

For four photos of scikit-image's data set (astronaut, cat, coffee, rocket; installed
with the render extra's basicsr) resized to 1024 and 512 pixels wide, encodes the WebP
genimg writes (quality 83, method 2) and AVIF at a few Pillow settings (quality, speed),
and prints the median milliseconds per thumbnail, the total bytes, and the mean PSNR
against the resized original. A thumbnail is encoded once per picture ever (kept in
``derived/``), but every cold build of CI encodes them all again.
"""

from __future__ import annotations

import io
import math
import statistics
import time

from _util import REPO  # noqa: F401  (puts this checkout first on sys.path)
from PIL import Image, ImageChops, ImageStat, features

from generator.images import WEBP_METHOD, WEBP_QUALITY

SETTINGS = [("WebP q83 m2 (genimg)", "WEBP", {"quality": WEBP_QUALITY, "method": WEBP_METHOD})]
SETTINGS += [(f"AVIF q{q} speed {s}", "AVIF", {"quality": q, "speed": s})
             for q, s in ((60, 6), (60, 8), (50, 8), (70, 10))]


def photos() -> list[Image.Image]:
    from skimage import data

    return [Image.fromarray(getattr(data, name)()).convert("RGB")
            for name in ("astronaut", "chelsea", "coffee", "rocket")]


def psnr(a: Image.Image, b: Image.Image) -> float:
    diff = ImageChops.difference(a, b.convert("RGB"))
    mse = statistics.mean(v * v for v in ImageStat.Stat(diff).rms) or 1e-9
    return 10 * math.log10(255 * 255 / mse)


def main() -> None:
    print(f"Pillow AVIF: {features.check('avif')}, libavif {features.version('avif')}")
    sources = []
    for photo in photos():
        for width in (1024, 512):
            height = round(photo.height * width / photo.width)
            sources.append(photo.resize((width, height), Image.Resampling.LANCZOS))
    print(f"{'format':24} {'ms/thumb':>9} {'KB total':>9} {'PSNR dB':>8}")
    for name, fmt, options in SETTINGS:
        times, size, quality = [], 0, []
        for image in sources:
            for _ in range(3):
                out = io.BytesIO()
                started = time.perf_counter()
                image.save(out, format=fmt, **options)
                times.append(time.perf_counter() - started)
            size += out.tell()
            out.seek(0)
            with Image.open(out) as back:
                quality.append(psnr(image, back))
        print(f"{name:24} {statistics.median(times) * 1000:9.1f} {size / 1024:9.0f} "
              f"{statistics.mean(quality):8.2f}")


if __name__ == "__main__":
    main()
