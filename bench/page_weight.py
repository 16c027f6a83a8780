"""Bytes a reader downloads: the index page and a post of 20 pictures, in Chromium.

    python bench/page_weight.py                      # this checkout
    python bench/page_weight.py --checkout /tmp/old  # another checkout (before/after)

Writes a blog of 10 posts under ``--workdir``: one post of 20 pictures (10 rows of a
txt2img picture and an img2img of it, 512x512, the layout of the seed post) and 9 posts
of 2 pictures, so the index shows 10 summaries with their covers. The cache is filled
with grainy gradient PNGs (WebP sizes like photos'), the site is built with
``genimg build --frozen`` by the checkout's own ``generator`` under ``/blog/``, served,
and opened in Chromium at 1280x900: "first view" is what loads before any scrolling,
"scrolled" after scrolling to the bottom (every lazy picture in view once), "search"
the search page with one query (``?q=lantern``, 20 results), where there is one. Bytes are bodies as
served (no compression); "gzip" is what the text files weigh gzip-compressed, as
GitHub Pages sends them. ``BUDGET`` is checked against the gzip column (``--check``
exits 1 when a page is over it).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import os
import random
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from _util import REPO

PICTURES = 512
POSTS = 10
#: The budget, in bytes as sent (gzip for text): what a reader on a slow phone line
#: should wait for. The first view holds 8 thumbnails of about 18 KB each.
BUDGET = {"index, first view": 200_000, "20-picture post, first view": 200_000,
          "index, scrolled": 450_000, "20-picture post, scrolled": 450_000,
          "search page + a query": 600_000}
TEXT_TYPES = (".html", ".css", ".js", ".json", ".xml", "")


def write_blog(root: Path) -> None:
    """The blog: a 20-picture post and 9 small ones, and a fake model file."""
    posts = root / "posts"
    posts.mkdir(parents=True, exist_ok=True)
    (root / "genimg.yaml").write_text(
        "title: page weight\nbase_url: https://example.org/blog/\nlanguage: en\n"
        "output_dir: public/blog\nmodels:\n  default: model.safetensors\n"
        f"defaults:\n  width: {PICTURES}\n  height: {PICTURES}\n", encoding="utf-8")
    (root / "model.safetensors").write_bytes(random.Random(1).randbytes(1024))
    rows = []
    for n in range(10):
        rows.append(f"```gallery\n- id: p{n}\n  prompt: a quiet street at night, lantern {n}, "
                    f"rain\n  seed: {100 + n}\n- mode: img2img\n  from: p{n}\n  prompt: anime "
                    f"street at night, lantern {n}\n  seed: {200 + n}\n  strength: 0.6\n```\n")
    (posts / "2024-02-01-twenty.md").write_text(
        "---\ntitle: Twenty pictures\ntags: [streets]\n---\n\nTen pairs, side by side.\n\n"
        + "\n".join(rows), encoding="utf-8")
    for i in range(POSTS - 1):
        (posts / f"2024-01-{i + 1:02d}-small-{i}.md").write_text(
            f"---\ntitle: Small post {i}\ntags: [notes]\n---\n\nA short post with two "
            f"pictures.\n\n```gallery\n- prompt: a garden in the morning {i}\n  seed: {i}\n"
            f"- prompt: a garden at dusk {i}\n  seed: {50 + i}\n```\n", encoding="utf-8")


def fill_cache(root: Path) -> None:
    """A real PNG (with its infotext) for every planned picture, through genimg's API."""
    sys.path.insert(0, str(REPO / "bench"))
    import bench_site
    from bench_site import _base_images

    from generator.build import BuildOptions, load_site
    from generator.cache import Cache
    from generator.infotext import infotext_for
    from generator.metadata import png_bytes
    from generator.plan import key_fields

    bench_site.PICTURE_SIZE = PICTURES
    site = load_site(root, BuildOptions(frozen=True))
    cache = Cache(site.config.cache_dir)
    bases = _base_images(8)
    with cache.lock():
        for n, (key, node) in enumerate(sorted(site.plan.nodes.items())):
            if cache.has(key):
                continue
            image, infotext = bases[n % len(bases)], infotext_for(node, site.plan)
            source = node.parent
            meta = {"spec": key_fields(node.spec, node.model and node.model.fingerprint,
                                       source, None),
                    "shown": node.shown.as_yaml_dict(), "infotext": infotext,
                    "width": image.width, "height": image.height, "preview": False,
                    "versions": {"bench": "1"}, "render_seconds": 0.0,
                    "location": f"{node.shown.location.file}:{node.shown.location.line}"}
            cache.put(key, png_bytes(image, infotext), meta)
    site.resolver.save()


def build(root: Path, checkout: Path) -> str:
    """``genimg build --frozen`` by ``checkout``'s generator; returns what it printed."""
    shutil.rmtree(root / "public", ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(checkout))
    done = subprocess.run([sys.executable, "-m", "generator", "build", "--frozen"], cwd=root,
                          env=env, capture_output=True, text=True, check=True)
    return (done.stdout + done.stderr).strip()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def measure(page: Any, url: str, scroll: bool) -> dict[str, int]:
    """Bytes of every response while ``url`` loads (and, if asked, is scrolled through)."""
    sizes: dict[str, tuple[str, int]] = {}

    def seen(response: Any) -> None:
        try:
            body = response.body()
        except Exception:  # a redirect or an aborted request has none
            return
        suffix = os.path.splitext(response.url.split("?")[0].rstrip("/"))[1]
        sizes[response.url] = (suffix, len(body), len(gzip.compress(body, 6))
                               if suffix in TEXT_TYPES else len(body))

    page.on("response", seen)
    page.goto(url, wait_until="networkidle")
    if scroll:
        height = page.evaluate("() => document.body.scrollHeight")
        for y in range(0, height + 900, 450):
            page.evaluate(f"() => window.scrollTo(0, {y})")
            page.wait_for_timeout(60)
        page.wait_for_load_state("networkidle")
    page.remove_listener("response", seen)
    images = [s for s in sizes.values() if s[0] in (".webp", ".png", ".jpg", ".avif")]
    return {"requests": len(sizes), "bytes": sum(s[1] for s in sizes.values()),
            "gzip": sum(s[2] for s in sizes.values()),
            "pictures": len(images), "picture bytes": sum(s[1] for s in images)}


def run(root: Path) -> dict[str, dict[str, int]]:
    from playwright.sync_api import sync_playwright

    handler = functools.partial(_Quiet, directory=str(root / "public"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{httpd.server_address[1]}"
    results: dict[str, dict[str, int]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--no-sandbox", "--disable-gpu"])
        for name, path, scroll in [("index, first view", "/blog/", False),
                                   ("index, scrolled", "/blog/", True),
                                   ("20-picture post, first view", "/blog/posts/twenty/", False),
                                   ("20-picture post, scrolled", "/blog/posts/twenty/", True)]:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            results[name] = measure(context.new_page(), origin + path, scroll)
            context.close()
        if (root / "public/blog/search/index.html").is_file():
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            results["search page + a query"] = measure(
                page, origin + "/blog/search/?q=lantern", False)
            context.close()
        browser.close()
    httpd.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=Path, default=REPO,
                        help="the repository whose generator builds the site")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/genimg-page-weight"))
    parser.add_argument("--check", action="store_true", help="exit 1 when over the budget")
    args = parser.parse_args()
    root = args.workdir
    write_blog(root)
    fill_cache(root)
    print(build(root, args.checkout.resolve()))
    print(f"checkout: {args.checkout}")
    print(f"{'page':32} {'requests':>8} {'bytes':>10} {'gzip':>10} {'pictures':>8} "
          f"{'picture bytes':>14} {'budget (gzip)':>14}")
    over = []
    for name, row in run(root).items():
        budget = BUDGET.get(name)
        verdict = "" if budget is None else f"{budget:,} " + (
            "ok" if row["gzip"] <= budget else "OVER")
        if budget is not None and row["gzip"] > budget:
            over.append(name)
        print(f"{name:32} {row['requests']:8} {row['bytes']:10,} {row['gzip']:10,} "
              f"{row['pictures']:8} {row['picture bytes']:14,} {verdict:>14}")
    if over and args.check:
        raise SystemExit(f"over budget: {', '.join(over)}")


if __name__ == "__main__":
    main()
