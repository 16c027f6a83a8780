"""Putting the cache's PNGs into ``site/``: the ways genimg did and does it, and a hard link.

    python bench/bench_copy.py                   # 500 PNGs of 512² (~400 KB), 5 rounds
    python bench/bench_copy.py --pictures 2000 --rounds 3

Stores N noisy 512² PNGs in a real ``Cache`` (in ``--workdir``), has each checked once
(as a build does when it first copies them), then copies all of them into an empty
folder per way and round, the ways interleaved:

* before (issue 20): hash the PNG (``Cache.verify``), read it again, ``write_atomic``;
* now: ``Cache.verify(again=False)`` (a stat against the stamp of the last check), then
  ``atomic.copy_atomic`` (``copy_file_range``: in the kernel; a reflink on Btrfs/XFS);
* hard link: ``os.link`` (for scale only: genimg never links a cache PNG into the site).

Single-threaded, so the numbers are seconds of thread time, as a build's workers spend them.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from _util import fmt_s, machine_line, median, table

from generator.cache import Cache


def fill(cache_dir: Path, pictures: int) -> list[str]:
    """N PNG entries of noise over a gradient (~400 KB each, like an SD picture)."""
    from PIL import Image, ImageChops, ImageFilter

    from generator.metadata import png_bytes

    cache = Cache(cache_dir)
    keys = [f"{n:064x}" for n in range(pictures)]
    todo = [k for k in keys if not cache.has(k)]
    rng = random.Random(0)
    base = [ImageChops.add(Image.linear_gradient("L").resize((512, 512)).rotate(r).convert("RGB"),
                           Image.effect_noise((512, 512), 60).filter(ImageFilter.GaussianBlur(0.6))
                           .convert("RGB")) for r in range(0, 360, 45)]
    with cache.lock():
        for key in todo:
            image = base[rng.randrange(len(base))]
            cache.put(key, png_bytes(image, f"picture {key[-6:]}"),
                      {"width": 512, "height": 512})
        cache.save_index()
    return keys


def before(cache: Cache, key: str, dest: Path) -> None:
    from generator.atomic import write_atomic

    cache.verify(key)
    write_atomic(dest, cache.paths(key)[0].read_bytes(), durable=False)


def now(cache: Cache, key: str, dest: Path) -> None:
    from generator.atomic import copy_atomic

    cache.verify(key, again=False)
    copy_atomic(cache.paths(key)[0], dest)


def link(cache: Cache, key: str, dest: Path) -> None:
    os.link(cache.paths(key)[0], dest)


WAYS = {"before: hash, read, write_atomic": before,
        "now: stat stamp, copy_atomic": now,
        "hard link (never used)": link}


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pictures", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "genimg-bench" / "copy")
    args = parser.parse_args()
    print(f"bench_copy: {machine_line()}")
    keys = fill(args.workdir / "cache", args.pictures)
    size = sum(Cache(args.workdir / "cache").paths(k)[0].stat().st_size for k in keys)
    print(f"{len(keys)} PNGs, {size / 1e6:.0f} MB; waiting 2 s so their stamps are not racy")
    time.sleep(2.1)
    with Cache(args.workdir / "cache").lock():
        warm = Cache(args.workdir / "cache")
        for key in keys:  # checked once, as the first build that copies them does
            warm.verify(key, again=False)
        warm.save_index()
    times: dict[str, list[float]] = {name: [] for name in WAYS}
    for r in range(args.rounds):
        for name, way in list(WAYS.items())[r % 3:] + list(WAYS.items())[:r % 3]:
            out = args.workdir / "site"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            cache = Cache(args.workdir / "cache")  # a new build: nothing checked yet
            started = time.perf_counter()
            for key in keys:
                way(cache, key, out / f"{key[-12:]}.png")
            times[name].append(time.perf_counter() - started)
    shutil.rmtree(args.workdir / "site", ignore_errors=True)
    rows = [(name, fmt_s(median(t)), fmt_s(median(t) * 10_000 / len(keys)),
             f"{size / median(t) / 1e6:.0f}") for name, t in times.items()]
    print(table(("way (median of rounds)", f"{len(keys)} PNGs", "per 10,000", "MB/s"), rows))


if __name__ == "__main__":
    main()
